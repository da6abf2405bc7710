"""Review fixes: the reference campaign's command line (arguments checked before any problem runs, Ctrl-C keeps
the rows done), `diffsuite train`'s summary (no number cut at 80 columns), the docs on training with forward
mode, and the gradient check's errors for a function that is not scalar or does not fit its inputs."""
import re
from pathlib import Path

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.reference import campaign
from diffsuite.testing import assert_gradients_close, check_gradients, check_hessian

ROOT = Path(__file__).resolve().parents[1]


# ----- python -m diffsuite.reference.campaign -----
@pytest.fixture
def no_problem_runs(monkeypatch):
    def refuse(seed, methods=campaign.METHODS):
        raise AssertionError("ran a problem before checking the arguments")
    monkeypatch.setattr(campaign, "check", refuse)


@pytest.mark.parametrize("argv, needle", [
    (["--methods", "foo"], "argument --methods: unknown method(s) foo in 'foo'; give a comma-separated subset of "
                           "reverse,symbolic,complex_step"),
    (["--methods", "reverse,bar"], "unknown method(s) bar"),
    (["--n", "0"], "argument --n: must be a whole number >= 1; got '0'"),
    (["--seed", "-1"], "argument --seed: must be a whole number >= 0; got '-1'"),
    (["--out", "{tmp}/missing/x.csv"], "argument --out: the folder {tmp}/missing of {tmp}/missing/x.csv does not "
                                       "exist; create it first"),
    (["--out", "{tmp}"], "argument --out: {tmp} is a folder; give a CSV file name"),
])
def test_campaign_refuses_bad_arguments_before_any_problem(argv, needle, tmp_path, capsys, no_problem_runs):
    argv = [a.format(tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as e:
        campaign.main(["--n", "3", *argv])
    assert e.value.code == 2
    assert needle.format(tmp=tmp_path) in capsys.readouterr().err


def test_campaign_run_refuses_an_unknown_method_before_any_problem(no_problem_runs):
    with pytest.raises(ValueError, match="unknown method.*'foo'; the campaign's methods are reverse, symbolic"):
        campaign.run(3, methods=("reverse", "foo"))


def test_ctrl_c_writes_the_rows_done_and_exits_130(tmp_path, capsys, monkeypatch):
    out = tmp_path / "campaign.csv"
    out.write_text("an earlier, good file\n")

    def check(seed, methods=campaign.METHODS):
        if seed == 12:
            raise KeyboardInterrupt
        return {"seed": seed, "status": "ok", "ref": np.zeros(2), "err_reverse": 1e-16}
    monkeypatch.setattr(campaign, "check", check)
    try:
        with pytest.raises(SystemExit) as e:
            campaign.main(["--n", "5", "--seed", "10", "--methods", "reverse", "--out", str(out)])
    except KeyboardInterrupt:  # (escaping, it would stop the whole pytest session)
        pytest.fail("Ctrl-C escaped as a KeyboardInterrupt traceback")
    assert e.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err == (f"python -m diffsuite.reference.campaign: interrupted after 2 of 5 problems; the 2 rows done "
                   f"(seeds 10-11) written to {out}")
    assert out.read_text().splitlines() == ["seed,status,err_reverse", "10,ok,1e-16", "11,ok,1e-16"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campaign.csv"]  # no temporary left


def test_a_failed_write_leaves_the_earlier_csv_in_place(tmp_path, monkeypatch):
    import pandas as pd
    out = tmp_path / "campaign.csv"
    out.write_text("an earlier, good file\n")

    def half_then_fail(self, path, **kwargs):
        Path(path).write_text("seed,sta")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        campaign.write_csv([{"seed": 0, "status": "ok"}], out)
    assert out.read_text() == "an earlier, good file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campaign.csv"]


# ----- diffsuite train: the summary -----
@pytest.mark.parametrize("columns", ["80", "40"])
@pytest.mark.parametrize("extra", [[], ["--l1", "0.01"]], ids=["plain", "l1"])
def test_train_summary_shows_every_number_whole(columns, extra, capsys, monkeypatch):
    """lr 1e6 diverges to losses near 2e6: at 80 columns rich cut them to 185809… (reads 10x too small)."""
    import diffsuite.training
    from diffsuite.cli import main
    runs = []
    real_train = diffsuite.training.train

    def recording_train(*args, **kwargs):
        runs.append(real_train(*args, **kwargs))
        return runs[-1]
    monkeypatch.setattr(diffsuite.training, "train", recording_train)
    monkeypatch.setenv("COLUMNS", columns)
    argv = ["train", "--data", "moons", "--layers", "2,8,2", "--lr", "1e6", "--no-progress", *extra]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "…" not in out and max(map(len, out.splitlines())) <= int(columns)
    numbers = [float(t) for t in re.findall(r"-?\d+\.\d+(?:e[+-]\d+)?", out)]
    s = runs[0].summary()
    for key in ("train_loss", "test_loss", "train_acc", "test_acc") + (("penalty",) if extra else ()):
        assert s[key] > 1e4 or key.endswith("acc") or key == "penalty"
        assert any(abs(x - s[key]) <= 5e-4 * abs(s[key]) for x in numbers), (key, s[key], out)


# ----- docs/training.md on forward mode -----
def test_training_docs_say_forward_mode_trains_in_python_and_why_the_cli_leaves_it_out(capsys):
    text = " ".join((ROOT / "docs" / "training.md").read_text().split())
    assert "take no `batch=`" not in text and "forward mode included" in text
    assert "`train()` in Python takes it" in text
    x, y = np.array([[0.5, -1.0], [1.0, 2.0]]), np.array([0, 1])
    obj = ds.Objective(ds.nn.MLP((2, 3, 2), "tanh"), "cross_entropy", x, y)  # what the docs now say: it works
    theta = obj.model.init(0)
    fwd = ds.get_differentiator("forward").value_and_grad(obj)(theta, batch=(x[:1], y[:1])).grad
    rev = ds.get_differentiator("reverse").value_and_grad(obj)(theta, batch=(x[:1], y[:1])).grad
    np.testing.assert_allclose(fwd, rev, rtol=1e-12, atol=1e-15)


# ----- the gradient check: the function's own errors -----
CHECKS = [check_gradients, assert_gradients_close, check_hessian]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("reference", ["auto", "reverse", "central"])
def test_a_function_that_is_not_scalar_is_told_so_not_to_choose_another_reference(check, reference):
    if check is check_hessian and reference == "central":
        reference = "forward_mode"
    with pytest.raises(TypeError) as e:
        check(lambda xp, t: xp.tanh(t), np.ones(3), reference=reference)
    msg = str(e.value)
    assert "<lambda>(xp, theta) must return a scalar" in msg and "returned shape (3,)" in msg
    assert "xp.sum" in msg and "another reference" not in msg


@pytest.mark.parametrize("check", CHECKS)
def test_inputs_that_do_not_fit_the_function_are_told_so(check):
    x = np.ones((5, 3))
    with pytest.raises(ValueError) as e:
        check(lambda xp, t, x: xp.sum(xp.tanh(x @ t)), np.ones(4), x)
    msg = str(e.value)
    assert msg.startswith("<lambda>(xp, theta, *args) raised ValueError: matmul")
    assert "theta: shape (4,); args: shapes (5, 3)" in msg and "do not fit" in msg
    assert "another reference" not in msg
    with pytest.raises(ValueError, match=r"theta: \{'a': \(2,\), 'b': \(3,\)\}; no args"):
        check(lambda xp, t: xp.sum(t["a"] @ t["b"]), {"a": np.ones(2), "b": np.ones(3)})
