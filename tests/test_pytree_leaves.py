"""pytree.flatten's leaves: a float64 copy of every numeric leaf, and errors that name the leaf and entry. The float
array path is a fast path of its own (thirteenth session), so it is checked against the same contract as the rest."""
import re

import numpy as np
import pytest

from diffsuite import pytree


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
@pytest.mark.parametrize("shape", [(), (3,), (2, 2)])
def test_float_leaves_become_float64_copies(dtype, shape):
    given = np.full(shape, 0.5, dtype=dtype)
    (leaf,), _, names = pytree.flatten({"w": given})
    assert leaf.dtype == np.float64 and leaf.shape == shape and names == ["w"]
    assert np.all(leaf == 0.5)  # 0.5 is exact in every float type
    leaf[...] = 7.0  # the leaf is the differentiator's own: the caller's array is untouched
    assert np.all(given == 0.5)


@pytest.mark.parametrize("value, entry", [(np.float64(np.nan), []), (np.array(np.inf), []),
                                          (np.array([1.0, 2.0, -np.inf]), [2]),
                                          (np.array([[1.0, 2.0], [np.nan, 0.0]], dtype=np.float32), [1, 0])])
def test_non_finite_float_leaves_are_named_with_the_entry(value, entry):
    with pytest.raises(ValueError, match=re.escape(f"theta['a'][1] must be finite; entry {entry} is")):
        pytree.flatten({"a": [np.zeros(2), value]})


def test_other_numbers_still_go_through_the_full_conversion():
    (ints, flt, boolean), _, _ = pytree.flatten([np.array([1, 2]), 3.0, np.array(True)])
    assert ints.dtype == flt.dtype == boolean.dtype == np.float64
    assert ints.tolist() == [1.0, 2.0] and float(flt) == 3.0 and float(boolean) == 1.0
    with pytest.raises(ValueError, match="must be real"):
        pytree.flatten([np.array([1 + 2j])])
    with pytest.raises(ValueError, match=r"theta\[0\] must be finite"):
        pytree.flatten([float("nan")])
