"""The tape: the lecture's gate patterns by name, fan-out, fresh tapes, bad input."""
import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.reverse.backends import NumpyBackend
from diffsuite.differentiators.reverse.tape import Tape, TapeNamespace, unpack_record

grad = ds.get_differentiator("reverse").grad


def test_add_gate_distributes_the_gradient():
    # f = (x + y) * 3: the add gate hands the upstream 3 unchanged to both inputs
    g = grad(lambda xp, p: (p["x"] + p["y"]) * 3.0)({"x": 1.5, "y": -4.0})
    assert g == {"x": 3.0, "y": 3.0}


def test_mul_gate_swaps_its_inputs():
    g = grad(lambda xp, p: p["x"] * p["y"])({"x": 2.0, "y": -7.0})
    assert g == {"x": -7.0, "y": 2.0}


def test_max_gate_routes_to_the_larger_input_and_to_the_first_on_ties():
    f = lambda xp, p: xp.maximum(p["x"], p["y"])
    assert grad(f)({"x": 2.0, "y": 5.0}) == {"x": 0.0, "y": 1.0}
    assert grad(f)({"x": 5.0, "y": 2.0}) == {"x": 1.0, "y": 0.0}
    assert grad(f)({"x": 3.0, "y": 3.0}) == {"x": 1.0, "y": 0.0}


def test_copy_gate_adds_the_gradients_of_every_use():
    # f = x * x + x uses x three times: df/dx = 2x + 1
    assert grad(lambda xp, x: x * x + x)(4.0) == 9.0


def test_lecture_add_mul_example():
    """f(x, y, z) = (x + y) z at (-2, 5, -4): q = 3, f = -12, df/dx = df/dy = z = -4, df/dz = q = 3."""
    res = ds.get_differentiator("reverse").value_and_grad_fn(lambda xp, p: (p["x"] + p["y"]) * p["z"])(
        {"x": -2.0, "y": 5.0, "z": -4.0})
    assert res.value == -12.0
    assert res.grad == {"x": -4.0, "y": -4.0, "z": 3.0}


def test_each_call_records_a_fresh_tape():
    vg = ds.get_differentiator("reverse").value_and_grad_fn(lambda xp, x: xp.sum(x * x))
    first = vg(np.array([1.0, 2.0]))
    second = vg(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(first.grad, [2.0, 4.0])
    np.testing.assert_array_equal(second.grad, [2.0, 4.0])  # nothing accumulated from the first call
    assert first.stats == second.stats


def test_unused_input_gets_zeros_and_constant_output_gets_zero_gradient():
    g = grad(lambda xp, p: xp.sum(p["a"] * 2.0))({"a": np.ones(3), "b": np.ones(2)})
    np.testing.assert_array_equal(g["b"], [0.0, 0.0])
    assert grad(lambda xp, x: 5.0)(np.ones(3)).tolist() == [0.0, 0.0, 0.0]


def test_numpy_arrays_on_the_left_defer_to_the_tape():
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = grad(lambda xp, x: xp.sum(w @ x) + xp.sum(np.ones(2) * x))(np.array([0.5, -1.0]))
    np.testing.assert_array_equal(g, w.sum(axis=0) + 1.0)


def test_flat_theta_can_be_indexed_and_sliced():
    f = lambda xp, t: t[0] * t[1] + xp.sum(t[2:] ** 2)
    np.testing.assert_array_equal(grad(f)(np.array([2.0, 3.0, 1.0, -1.0])), [3.0, 2.0, 2.0, -2.0])


def test_stats_report_the_tape_length():
    model = ds.MLP((3, 2, 1), "sigmoid", "sigmoid")
    obj = ds.Objective(model, "quadratic", np.ones((2, 3)), np.ones((2, 1)))
    stats = ds.get_differentiator("reverse").value_and_grad(obj)(model.init(0)).stats
    # counted by hand: leaves W0, b0, W1, b1; forward: X @ W0, + b0, sigmoid, h @ W1, + b1, sigmoid, then the
    # quadratic loss r = y - t, r * r, sum, * (0.5 / batch): 10 ops. Backward, one VJP per traced input:
    # X @ W0 1 (X is data), + b0 2, sigmoid 1, h @ W1 2, + b1 2, sigmoid 1, y - t 1, r * r 2, sum 1, * c 1: 14
    assert stats["tape_leaves"] == 4
    assert stats["tape_forward_ops"] == 10
    assert stats["tape_records"] == 14
    assert stats["tape_backward_ops"] == 14


def test_non_scalar_output_is_refused_with_advice():
    with pytest.raises(TypeError, match=r"scalar.*shape \(3,\).*xp.sum"):
        grad(lambda xp, x: x * 2.0)(np.ones(3))


def test_python_branching_on_a_traced_value_is_refused():
    with pytest.raises(TypeError, match="xp.maximum"):
        grad(lambda xp, x: x * 2.0 if x else x)(2.0)


def test_unknown_primitive_names_the_known_ones():
    tape = Tape(NumpyBackend())
    x = tape.input(np.ones(2))
    with pytest.raises(NotImplementedError, match=r"no primitive 'softsign' \(known: .*add"):
        tape.apply("softsign", x)


def test_non_finite_theta_is_refused_naming_the_entry():
    with pytest.raises(ValueError, match=r"theta\['b'\] must be finite; entry \[1\] is nan"):
        grad(lambda xp, p: xp.sum(p["b"]))({"b": np.array([1.0, np.nan])})


def test_tape_namespace_provides_every_namespace_function():
    from diffsuite.namespace import NAMESPACE_FUNCTIONS
    assert all(callable(getattr(TapeNamespace, n, None)) for n in NAMESPACE_FUNCTIONS)


def test_a_record_drops_what_its_rules_do_not_read():
    """A hidden layer relu(x @ W + b): the product x @ W (add reads only shapes) and the pre-activation z
    (relu's VJP compares 0 with its output) are freed as soon as the model lets go of them."""
    import weakref

    tape = Tape(NumpyBackend())
    W, b = tape.inputs([np.ones((3, 2)), np.ones(2)])
    xw = np.ones((4, 3)) @ W
    z = xw + b
    h = TapeNamespace(tape).maximum(0.0, z)
    gone = [weakref.ref(xw.value), weakref.ref(z.value)]
    del xw, z
    assert [r() for r in gone] == [None, None]
    assert unpack_record(tape.records[-1])[2] is h.value  # relu's record keeps its output


def test_keep_all_tape_keeps_every_value_and_gives_the_same_gradient():
    B = NumpyBackend()
    grads = []
    for keep_all in (False, True):
        tape = Tape(B, keep_all=keep_all)
        (x,) = tape.inputs([np.array([0.5, -2.0, 3.0])])
        out = TapeNamespace(tape).sum(TapeNamespace(tape).tanh(x * x + 1.0))
        if keep_all:
            parts = [unpack_record(r) for r in tape.records]
            assert all(out is not None for _, _, out, _, _ in parts)
            assert all(s is not None for _, _, _, _, saved in parts for s in saved)
        grads.append(tape.backward(out, [x])[0][0])
    x = np.array([0.5, -2.0, 3.0])
    np.testing.assert_array_equal(grads[0], grads[1])
    # (tanh' as cosh^-2: 1 - tanh^2 itself loses 8 digits at tanh(10))
    np.testing.assert_allclose(grads[0], 2 * x / np.cosh(x * x + 1.0) ** 2, rtol=1e-14)
