"""Input checks found missing by the twelfth session's review: each test failed before its fix (a silent wrong
answer, an error naming the wrong entry, or a raw numpy error)."""
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.data import check_data, load, stratified_subset
from diffsuite.optim import SGD
from diffsuite.training import TrainingDiverged, train

X3 = np.ones((3, 2))


@pytest.mark.parametrize("targets", [[[1.0], [None], [1.0]], np.array([[1.0], [np.inf], [1.0]], dtype=object)])
def test_object_targets_that_are_not_finite_are_refused(targets):
    with pytest.raises(ValueError, match=r"targets\[1, 0\]"):
        ds.Objective(ds.MLP((2, 1)), "quadratic", X3, targets)


def test_text_targets_and_inputs_are_refused_not_parsed():
    with pytest.raises(ValueError, match="text"):
        ds.Objective(ds.MLP((2, 1)), "quadratic", X3, [["1"], ["2"], ["3"]])
    with pytest.raises(ValueError, match="inputs must be real numbers.*text"):
        ds.Objective(ds.MLP((2, 1)), "quadratic", [["1", "2"]], [[1.0]])
    with pytest.raises(ValueError, match="theta must be real numbers"):
        ds.MLP((2, 1)).forward(np.array(["1", "2", "3"]), X3)


@pytest.mark.parametrize("layers, act, loss", [((2, 1), "identity", "cross_entropy"), ((2, 1), "softmax", "quadratic"),
                                               ((2, 1), "softmax", "binary_cross_entropy")])
def test_losses_constant_by_construction_are_refused(layers, act, loss):
    # (a softmax over one output is 1 whatever the logit: softmax(z) = e^z / e^z; cross_entropy's own softmax too)
    with pytest.raises(ValueError, match="one"):
        ds.Objective(ds.MLP(layers, output_activation=act), loss, X3, np.zeros(3))


@pytest.mark.parametrize("labels, entry", [([0, 1e20, 1], "1e+20"), (np.array([0, 2**64 - 1, 1], dtype=np.uint64),
                                                                      "18446744073709551615"),
                                           ([0, None, 1], "None"), (["a", "b", "a"], "'a'"), ([0, 2.5, 1], "2.5")])
def test_labels_are_named_as_given(labels, entry):
    with pytest.raises(ValueError) as e:
        check_data(X3, labels)
    assert entry in str(e.value) and "np.float64(" not in str(e.value) and "np.str_(" not in str(e.value)


@pytest.mark.parametrize("labels, entry", [([0, 1e20, 1], "targets[1] is 1e+20"),
                                           (np.array([0, 2**64 - 1, 1], dtype=np.uint64), "18446744073709551615"),
                                           ([0, None, 1], "targets[1] is None"), (["cat", "dog", "cat"], "text")])
def test_cross_entropy_labels_are_checked_before_the_int_cast(labels, entry):
    with pytest.raises(ValueError) as e:
        ds.Objective(ds.MLP((2, 3)), "cross_entropy", X3, labels)
    assert entry in str(e.value)


def test_loss_options_with_an_instance_are_refused():
    with pytest.raises(TypeError, match="from_logits"):
        ds.nn.get_loss(ds.nn.BinaryCrossEntropy(), from_logits=True)


def test_stratified_subset_refuses_what_it_cannot_give():
    y = np.array([0, 1] * 5)
    with pytest.raises(ValueError, match="at most 10"):
        stratified_subset(y, 15, 0)
    with pytest.raises(ValueError, match="whole number"):
        stratified_subset(y, 6.5, 0)
    assert len(stratified_subset(y, 6, 0)) == 6


def test_dataset_targets_split_is_train_or_test():
    data = load("moons")
    assert len(data.targets("index", "test")) == len(data.y_test)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.targets("index", "Train")


def test_pytree_leaves_refuse_text_and_name_none():
    grad = ds.get_differentiator("reverse").grad(lambda xp, t: xp.sum(t["a"] ** 2))
    with pytest.raises(TypeError, match="str"):
        grad({"a": "1.0"})
    with pytest.raises(TypeError, match=r"entry \[1\] is None"):
        grad({"a": np.array([1.0, None], dtype=object)})


def test_nested_differentiation_is_named():
    inner = ds.get_differentiator("reverse").grad(lambda xp, u: xp.sum(u ** 3))
    jvp = ds.get_differentiator("forward").jvp(lambda xp, t: xp.sum(inner(t)))
    with pytest.raises(TypeError, match="Nested differentiation"):
        jvp(np.array([1.0, 2.0]), np.array([1.0, 0.0]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (the overflow that the divergence is)
def test_training_diverged_carries_the_run_so_far():
    data = load("moons")
    with pytest.raises(TrainingDiverged) as e:
        train(ds.get_differentiator("reverse"), ds.MLP((2, 8, 2)), "quadratic", data, SGD(lr=1e200), epochs=3,
              batch_size=32)
    run = e.value.run
    assert run is not None and run.diverged_at >= 1
    assert np.isfinite(run.theta).all() and len(run.history) >= 1
    assert run.history["step"].iloc[-1] <= run.diverged_at - 1


@pytest.mark.parametrize("name", ["reverse", "forward", "finite_diff", "symbolic"])
@pytest.mark.parametrize("make", ["grad", "value_and_grad_fn", "grad_argnums"])
def test_keyword_arguments_to_a_derivative_function_are_refused_by_name(name, make):
    d = ds.get_differentiator(name)
    f = lambda xp, t, c: xp.sum(t ** 2) * c  # noqa: E731
    fn = d.grad(f, argnums=(0, 1)) if make == "grad_argnums" else getattr(d, make)(f)
    with pytest.raises(TypeError, match=r"by position.*keyword\(s\) c\."):
        fn(np.array([1.0, 2.0]), c=2.0)
