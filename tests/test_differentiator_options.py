"""Differentiator options are checked at construction: a flag is True or False (the string "no" is truthy and
was taken as True), and a dtype may be given as numpy's or torch's dtype of an accepted name."""
import numpy as np
import pytest

import diffsuite as ds

FLAGS = [("symbolic", "cse"), ("symbolic", "symbolic_data"), ("symbolic", "metrics"), ("reverse", "replay"),
         ("finite_diff", "kink_check"), ("finite_diff", "warn")]


@pytest.mark.parametrize("name,flag", FLAGS)
@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, 0.0])
def test_a_flag_that_is_not_a_bool_is_refused(name, flag, value):
    with pytest.raises(ValueError, match=f"{flag} must be True or False; got {value!r}"):
        ds.get_differentiator(name, **{flag: value})


@pytest.mark.parametrize("name,flag", FLAGS)
def test_a_numpy_bool_is_a_bool(name, flag):
    d = ds.get_differentiator(name, **{flag: np.bool_(False)})
    assert getattr(d, flag) is False


def test_cse_false_given_as_numpy_bool_compiles_without_cse():
    """The flag is read, not just accepted: the label and the stats show CSE off."""
    d = ds.get_differentiator("symbolic", cse=np.False_)
    assert d.label == "symbolic[sympy]"


@pytest.mark.parametrize("name", ["reverse", "forward", "finite_diff"])
@pytest.mark.parametrize("given,stored", [(np.float32, "float32"), (np.dtype("float64"), "float64"),
                                          ("float32", "float32"), (np.dtype(np.float32), "float32")])
def test_a_dtype_may_be_numpys(name, given, stored):
    assert ds.get_differentiator(name, dtype=given).dtype == stored


@pytest.mark.parametrize("name", ["reverse", "forward", "finite_diff"])
def test_a_dtype_may_be_torchs(name):
    torch = pytest.importorskip("torch")
    assert ds.get_differentiator(name, dtype=torch.float32).dtype == "float32"


@pytest.mark.parametrize("name", ["reverse", "forward", "finite_diff"])
@pytest.mark.parametrize("given", ["float16", np.float16, np.int64, True, "f8x"])
def test_other_dtypes_are_refused_with_the_choices(name, given):
    with pytest.raises(ValueError, match="dtype must be one of float64, float32"):
        ds.get_differentiator(name, dtype=given)


def test_a_float32_differentiator_given_numpys_dtype_computes_in_float32():
    """Oracle: d/dt sum(t^2) = 2t, exact in float32 for these values; the value is float32's sum."""
    g = ds.get_differentiator("reverse", dtype=np.float32).value_and_grad_fn(lambda xp, t: xp.sum(t * t))
    res = g(np.array([0.1, 3.0]))
    t32 = np.array([0.1, 3.0], dtype=np.float32)
    assert res.value == float(np.sum(t32 * t32))
    np.testing.assert_array_equal(res.grad, (2 * t32).astype(np.float64))


def test_symbolic_takes_numpys_float64():
    assert ds.get_differentiator("symbolic", dtype=np.float64).dtype == "float64"
    with pytest.raises(ValueError, match="float64 only"):
        ds.get_differentiator("symbolic", dtype=np.float32)


@pytest.mark.parametrize("name", ["reverse", "forward"])
@pytest.mark.parametrize("options,message", [
    ({"device": "cuda"}, "backend 'numpy' runs on device 'cpu' only; got device='cuda'"),
    ({"backend": "jax"}, "unknown backend 'jax'; choose one of numpy, torch"),
    ({"backend": "torch", "device": "tpu"}, "backend 'torch' runs on device 'cpu', 'cuda' or 'cuda:N'; got device='tpu'"),
])
def test_a_backend_and_device_are_checked_when_the_differentiator_is_made(name, options, message):
    """At construction, not at the first call (and without importing torch)."""
    with pytest.raises(ValueError, match=message):
        ds.get_differentiator(name, **options)


@pytest.mark.parametrize("name", ["reverse", "forward"])
@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
def test_torch_devices_are_accepted_at_construction(name, device):
    """Whether a GPU is there is known only once torch loads (at the first call): made here, not loaded."""
    assert ds.get_differentiator(name, backend="torch", device=device).device == device
