"""`diffsuite train`'s options: one that does not apply to the chosen differentiator or optimizer is an error
before any step (never silently ignored), limits below 1 are refused, symbolic's loss and budget are checked
up front, and the help says which option applies where."""
import numpy as np
import pytest

import diffsuite as ds
from diffsuite import data
from diffsuite.cli import main
from diffsuite.cli import train as train_cli
from diffsuite.optim import SGD
from diffsuite.training import train

pytest.importorskip("sklearn")


@pytest.fixture
def no_build(monkeypatch):
    """Fail the test if the command gets as far as building a differentiator (the check must come first)."""
    def refuse(args):
        raise AssertionError("built a differentiator before checking the options")
    monkeypatch.setattr(train_cli, "_differentiator", refuse)


@pytest.mark.parametrize("argv, needles", [
    (["--scheme", "richardson"], ["--scheme applies to --differentiator finite_diff only, not reverse",
                                  "drop --scheme, or use --differentiator finite_diff"]),
    (["--scheme", "central", "--differentiator", "symbolic", "--loss", "quadratic"], ["--scheme applies to"]),
    (["--backend", "torch", "--differentiator", "symbolic", "--loss", "quadratic"],
     ["--backend applies to --differentiator reverse only, not symbolic"]),
    (["--backend", "numpy", "--differentiator", "finite_diff"], ["--backend applies to --differentiator reverse"]),
    (["--dtype", "float32", "--differentiator", "symbolic", "--loss", "quadratic"],
     ["--dtype applies to --differentiator reverse or finite_diff only, not symbolic"]),
    (["--time-budget", "5"], ["--time-budget applies to --differentiator symbolic only, not reverse"]),
    (["--nesterov", "--optimizer", "adam"], ["--nesterov applies to --optimizer sgd only, not adam",
                                             "drop --nesterov, or use --optimizer sgd"]),
    (["--momentum", "0.5", "--optimizer", "adamw"], ["--momentum applies to --optimizer sgd only, not adamw"]),
    (["--nesterov", "--momentum", "0.5", "--optimizer", "adam", "--scheme", "central"],
     ["--nesterov applies", "--momentum applies", "--scheme applies"]),  # every problem at once
])
def test_an_option_that_does_not_apply_is_an_error_before_any_step(capsys, no_build, argv, needles):
    assert main(["train", "--data", "moons", "--layers", "2,4,2", "--no-progress", *argv]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("diffsuite train: error: ") and "summary" not in out.out
    for needle in needles:
        assert needle in out.err, out.err


@pytest.fixture
def trained_with(monkeypatch):
    """What the command hands to diffsuite.training.train (the differentiator, the optimizer, the options); the
    real train then runs."""
    import diffsuite.training
    seen = []
    real = diffsuite.training.train

    def spy(diff, model, loss, dataset, opt, **kwargs):
        seen.append({"diff": diff, "opt": opt, **kwargs})
        return real(diff, model, loss, dataset, opt, **kwargs)
    monkeypatch.setattr(diffsuite.training, "train", spy)
    return seen


def test_the_options_of_the_chosen_differentiator_and_optimizer_are_accepted(capsys, trained_with):
    """Accepted, and applied: the oracle is the command line itself and the defaults the help states."""
    argv = ["train", "--data", "moons", "--layers", "2,4,2", "--no-progress", "--max-steps", "2"]
    assert main([*argv, "--differentiator", "finite_diff", "--scheme", "forward", "--dtype", "float32"]) == 0
    assert "finite_diff[forward,float32]" in capsys.readouterr().err
    d = trained_with[-1]["diff"]
    assert (d.name, d.scheme, d.dtype) == ("finite_diff", "forward", "float32")
    assert main([*argv, "--optimizer", "sgd", "--momentum", "0.5", "--nesterov", "--dtype", "float32"]) == 0
    assert "reverse[numpy,float32]" in capsys.readouterr().err
    opt = trained_with[-1]["opt"]
    assert type(opt) is SGD and (opt.lr, opt.momentum, opt.nesterov) == (0.1, 0.5, True)  # lr: sgd's default 0.1
    assert trained_with[-1]["max_steps"] == 2
    assert main([*argv, "--optimizer", "sgd"]) == 0  # momentum's default 0.9, no Nesterov
    opt = trained_with[-1]["opt"]
    assert (opt.lr, opt.momentum, opt.nesterov) == (0.1, 0.9, False)
    assert main([*argv, "--optimizer", "adam"]) == 0
    assert type(trained_with[-1]["opt"]).__name__ == "Adam" and trained_with[-1]["opt"].lr == 0.001  # adam's default
    # --schedule step halves the rate every epoch: moons has 300 training rows, ceil(300 / 32) = 10 steps an epoch
    assert main([*argv, "--lr", "0.4", "--schedule", "step"]) == 0
    lr = trained_with[-1]["opt"].lr
    assert [lr(t) for t in (0, 9, 10, 19, 20)] == [0.4, 0.4, 0.2, 0.2, 0.1]
    # --schedule cosine decays to 0 over all the steps run: here --max-steps 2, so lr(1) = 0.4 (1 + cos(pi/2)) / 2
    assert main([*argv, "--lr", "0.4", "--schedule", "cosine"]) == 0
    lr = trained_with[-1]["opt"].lr
    assert lr(0) == pytest.approx(0.4) and lr(1) == pytest.approx(0.2) and lr(2) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("value", ["0", "-5", "x"])
def test_max_steps_below_one_is_refused_naming_the_option(capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["train", "--max-steps", value])
    assert e.value.code == 2
    assert "diffsuite train: error: argument --max-steps: must be a whole number >= 1" in capsys.readouterr().err


def test_a_negative_seed_is_refused_naming_the_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--seed", "-1"])
    assert e.value.code == 2
    assert "error: argument --seed: must be a whole number >= 0; got '-1'" in capsys.readouterr().err


def test_the_library_loop_honours_max_steps_zero_before_stepping():
    moons, model = data.load("moons", seed=0), ds.MLP((2, 4, 2), "tanh")
    run = train(ds.get_differentiator("reverse"), model, "cross_entropy", moons, SGD(lr=0.1), epochs=2,
                batch_size=16, max_steps=0)
    assert list(run.history["step"]) == [0] and run.summary()["steps"] == 0
    assert np.array_equal(run.theta, model.init(0))
    with pytest.raises(ValueError, match="max_steps must be None .* or an int >= 0; got -1"):
        train(ds.get_differentiator("reverse"), model, "cross_entropy", moons, SGD(lr=0.1), epochs=1,
              batch_size=16, max_steps=-1)


def test_symbolic_with_cross_entropy_is_refused_before_building_and_names_the_losses_that_work(capsys, no_build):
    assert main(["train", "--differentiator", "symbolic", "--no-progress"]) == 2  # cross_entropy: the default
    err = capsys.readouterr().err
    assert "--differentiator symbolic cannot train with --loss cross_entropy (the default)" in err
    assert "--loss quadratic or --loss binary_cross_entropy" in err


def test_a_symbolic_budget_overrun_names_the_option_that_raises_it(capsys):
    pytest.importorskip("symengine")
    assert main(["train", "--differentiator", "symbolic", "--loss", "quadratic", "--time-budget", "0.001",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "exceeded its budget of" in err and "raise --time-budget (now 0.001 s)" in err
    assert "raise the budget" not in err  # no option of that name


def test_help_states_defaults_and_which_option_applies_where(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("reverse only: its arrays (default numpy)", "(default float64;", "finite_diff only (default central)",
                   "sgd only (default 0.9)", "sgd only: Nesterov momentum", "symbolic only:",
                   "forward mode is not offered", "--momentum, --nesterov sgd only"):
        assert needle in text, needle


def test_ctrl_c_during_training_says_nothing_is_saved(capsys, monkeypatch):
    import diffsuite.training

    def interrupted(*args, callback=None, **kwargs):
        callback({"step": 3, "epoch": 0.2, "train_loss": 0.5, "test_acc": 0.75})
        raise KeyboardInterrupt

    monkeypatch.setattr(diffsuite.training, "train", interrupted)
    assert main(["train", "--data", "moons", "--layers", "2,4,2", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "diffsuite train: interrupted at step 3 of 50" in err and "train saves nothing" in err
    assert "results written so far are kept" not in err


def test_setup_errors_give_the_fix_in_the_clis_spelling_too(capsys):
    """A mismatch says layers=(...) for Python and --layers ... for diffsuite train; hinge on a ten-class set names
    the two-class sets, which are indeed two-class (data.load)."""
    from diffsuite.cli import main
    from diffsuite.data import load
    from diffsuite.training import TWO_CLASS_SETS

    assert main(["train", "--data", "moons", "--layers", "64,10", "--no-progress"]) == 2
    assert "--layers 2,..." in capsys.readouterr().err
    assert main(["train", "--loss", "hinge", "--layers", "64,32,1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "use a two-class set (moons, breast_cancer)" in err and "--layers ...,10" in err
    assert all(load(name).n_classes == 2 for name in TWO_CLASS_SETS)
