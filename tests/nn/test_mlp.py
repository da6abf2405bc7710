"""MLP structure, parameters and the numpy forward pass."""
import numpy as np
import pytest

import diffsuite as ds


def test_shapes_names_and_layout():
    m = ds.MLP((3, 2, 1))
    assert m.shapes == {"W0": (3, 2), "b0": (2,), "W1": (2, 1), "b1": (1,)}
    assert m.n_params == 11
    names = m.param_names()
    assert names[:3] == ["W0[0, 0]", "W0[0, 1]", "W0[1, 0]"] and names[-1] == "b1[0]"
    assert m.layout["W1"] == (8, 10, (2, 1))


def test_maxout_layers_carry_k_pieces():
    m = ds.MLP((4, 3, 2), activation=ds.nn.Maxout(k=3))
    assert m.shapes["W0"] == (4, 9) and m.shapes["b0"] == (9,) and m.shapes["W1"] == (3, 2)


def test_init_is_deterministic_and_seeded():
    m = ds.MLP((5, 4, 3))
    np.testing.assert_array_equal(m.init(seed=3), m.init(seed=3))
    assert not np.array_equal(m.init(seed=3), m.init(seed=4))
    assert m.init(0).dtype == np.float64 and m.init(0).shape == (m.n_params,)


def test_pack_unpack_round_trip():
    m = ds.MLP((3, 4, 2))
    theta = m.init(1)
    np.testing.assert_array_equal(m.pack(m.unpack(theta)), theta)
    assert m.unpack(theta)["W0"].shape == (3, 4)


def test_forward_is_h_at_W_plus_b_layer_by_layer():
    m = ds.MLP((2, 2, 1), activation="tanh", output_activation="identity")
    p = {"W0": np.array([[1.0, -1.0], [0.5, 2.0]]), "b0": np.array([0.1, -0.2]),
         "W1": np.array([[3.0], [-1.0]]), "b1": np.array([0.5])}
    x = np.array([[0.3, -0.7], [1.0, 2.0]])
    expected = np.tanh(x @ p["W0"] + p["b0"]) @ p["W1"] + p["b1"]
    np.testing.assert_allclose(m.forward(m.pack(p), x), expected, rtol=1e-15)


@pytest.mark.parametrize("bad", [(3,), (3, 0, 1), (3, 2.5, 1), "abc", None])
def test_bad_layers_are_refused(bad):
    with pytest.raises(ValueError, match="layers=.*at least two positive ints"):
        ds.MLP(bad)


def test_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError, match="unknown activation 'relu6'; choose one of step, sigmoid, tanh, relu"):
        ds.MLP((2, 1), activation="relu6")


def test_wrong_theta_or_block_shapes_are_refused():
    m = ds.MLP((3, 2, 1))
    with pytest.raises(ValueError, match="flat vector of 11 parameters.*got shape \\(10,\\)"):
        m.forward(np.zeros(10), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="block W0 must have shape \\(3, 2\\); got \\(2, 3\\)"):
        m.pack({"W0": np.zeros((2, 3)), "b0": np.zeros(2), "W1": np.zeros((2, 1)), "b1": np.zeros(1)})
    with pytest.raises(ValueError, match="missing \\['b1'\\]"):
        m.pack({"W0": np.zeros((3, 2)), "b0": np.zeros(2), "W1": np.zeros((2, 1))})
    with pytest.raises(ValueError, match="inputs must have shape \\(batch, 3\\)"):
        m.forward(m.init(0), np.zeros((2, 4)))


def test_a_dict_of_blocks_as_theta_gets_the_pack_advice():
    """An Objective takes a flat theta; a dict of blocks was refused with 'convert with np.asarray', which fails."""
    model = ds.MLP(layers=(3, 2, 1))
    obj = ds.Objective(model, loss="quadratic", inputs=np.ones((2, 3)), targets=np.ones((2, 1)))
    blocks = model.unpack(model.init(0))
    for name in ("reverse", "forward", "symbolic", "finite_diff"):
        with pytest.raises(ValueError, match=r"got a dict of blocks \(W0, b0, W1, b1\)\. Use model\.pack"):
            ds.get_differentiator(name).value_and_grad(obj)(blocks)
    # the advice works: the packed vector is accepted
    assert ds.get_differentiator("reverse").value_and_grad(obj)(model.pack(blocks)).grad.shape == (model.n_params,)


@pytest.mark.parametrize("seed", ["a", -1, 1.5])
def test_a_bad_seed_is_named(seed):
    with pytest.raises(ValueError, match=f"seed must be a non-negative int .*; got {seed!r}"):
        ds.MLP(layers=(3, 2, 1)).init(seed)


def test_pack_names_only_what_is_wrong():
    model = ds.MLP(layers=(3, 2, 1))
    with pytest.raises(ValueError) as missing:
        model.pack({"W0": np.zeros((3, 2))})
    assert "missing ['b0', 'W1', 'b1']" in str(missing.value) and "unexpected" not in str(missing.value)
    with pytest.raises(ValueError) as extra:
        model.pack({**model.unpack(model.init(0)), "W9": 1.0})
    assert "unexpected ['W9']" in str(extra.value) and "missing" not in str(extra.value)
