"""diffsuite's warnings name the user's line, whatever path of wrappers led to them (a fixed stacklevel named a
line inside the package for some paths, where a user can neither see nor filter it)."""
import warnings

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.differentiators.finite_diff import DomainWarning, KinkWarning
from diffsuite.errors import user_stacklevel


def relu_sum(xp, t):
    return xp.sum(xp.relu(t))


def sqrt_sum(xp, t):
    return xp.sum(xp.sqrt(t))


FD = ds.get_differentiator("finite_diff")
CALLS = {  # each raises its warning from a different depth inside the package
    "value_and_grad(f)": (KinkWarning, lambda: FD.value_and_grad(relu_sum)(np.array([0.0, 1.0]))),
    "grad(f)": (KinkWarning, lambda: FD.grad(relu_sum)(np.array([0.0, 1.0]))),
    "value_and_grad_fn(f)": (DomainWarning, lambda: FD.value_and_grad_fn(sqrt_sum)(np.array([0.0, 1.0]))),
    "jvp(f)": (KinkWarning, lambda: FD.jvp(relu_sum)(np.array([0.0, 1.0]), np.ones(2))),
    "jacobian(f)": (KinkWarning, lambda: FD.jacobian(lambda xp, t: xp.relu(t))(np.array([0.0, 1.0]))),
}


@pytest.mark.parametrize("path", list(CALLS))
def test_a_warning_names_this_file(path):
    category, call = CALLS[path]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    ours = [w for w in caught if issubclass(w.category, category)]
    assert ours, [str(w.message) for w in caught]
    assert all(w.filename == __file__ for w in ours), [(w.filename, w.lineno) for w in ours]


def test_user_stacklevel_counts_the_package_frames():
    """Called from outside the package it is 1: the calling function itself."""
    assert user_stacklevel() == 1
