"""Gradient checks that passed wrong gradients (the eleventh session's review); each test failed before its fix.

The wrong gradients are made by hand: a user's own differentiator that wraps reverse mode and changes its result.
"""
from __future__ import annotations

import numpy as np
import pytest

import diffsuite as ds
from diffsuite.gradcheck.hessian import check_hessian
from diffsuite.testing import check_gradients


class Wrapped:
    """A user's differentiator named ``name``: reverse mode's gradient passed through ``change``."""

    def __init__(self, name, change):
        self.name, self.change, self.inner = name, change, ds.get_differentiator("reverse")

    def value_and_grad_fn(self, f):
        vg = self.inner.value_and_grad_fn(f)
        return lambda t, *a: (lambda r: type(r)(r.value, self.change(r.grad), r.stats))(vg(t, *a))

    def value_and_grad(self, f):
        return self.value_and_grad_fn(f)

    def grad(self, f):
        return lambda t, *a: self.value_and_grad_fn(f)(t, *a).grad


def test_a_cancelling_f_cannot_raise_the_tolerance_past_every_bug():
    # (sum(t^2) - 1)^2 at (0.6, 0.8): value and gradient 4 (sum t^2 - 1) t are both pure rounding (sum t^2 - 1 is
    # ~1e-17 against terms of 1); a tolerance of 32x that would pass a negated gradient. The check refuses to judge
    # instead of passing. (sum(t^2) - 1 itself is checked: its gradient 2t does not cancel.)
    with pytest.raises(ValueError, match="cannot check gradients"):
        check_gradients(lambda xp, t: (xp.sum(t ** 2) - 1.0) ** 2, np.array([0.6, 0.8]),
                        methods=[Wrapped("mygrad", lambda g: -g)])
    # a rtol given by the user is the user's call
    report = check_gradients(lambda xp, t: (xp.sum(t ** 2) - 1.0) ** 2, np.array([0.6, 0.8]),
                             methods=[Wrapped("mygrad", lambda g: -g)], rtol=1e-6)
    assert not report.passed


def test_a_users_method_named_like_the_reference_is_still_checked():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 10))
    f = lambda xp, t: xp.sum(xp.tanh(X @ xp.reshape(t[:70], (10, 7)) + t[70:]) ** 2)  # noqa: E731
    theta = 0.3 * rng.normal(size=77)  # 77 > 64 entries: reverse mode is the reference
    wrong = Wrapped("reverse", lambda g: np.concatenate([-g[:70], g[70:]]))
    report = check_gradients(f, theta, methods=[wrong, "central"])
    assert not report.passed
    assert [r.method.label for r in report.results] == ["reverse", "central"]


@pytest.mark.parametrize("name", ["backward", "central", "five_point", "richardson", "reverse"])
def test_a_users_method_gets_the_strict_tolerance_whatever_its_name(name):
    f = lambda xp, t: xp.sum(xp.sin(t))  # noqa: E731
    report = check_gradients(f, np.array([0.3, 0.5]), methods=[Wrapped(name, lambda g: g * 1.00005)],
                             reference=np.cos(np.array([0.3, 0.5])))
    assert not report.passed


def test_a_hessian_check_with_nothing_left_to_check_refuses():
    with pytest.raises(ValueError, match="nothing to check"):
        check_hessian(lambda xp, t: xp.sum(xp.sin(t) ** 2), np.linspace(0.1, 1.3, 13), methods=["reverse"])


def test_pythons_abs_keeps_the_complex_step_out():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 4)), rng.normal(size=6)
    f = lambda xp, t: xp.mean((X @ t - Y) ** 2) + 0.1 * xp.sum(abs(t))  # noqa: E731
    report = check_gradients(f, np.array([0.3, -0.2, 0.5, -0.7]))
    assert report.passed
    assert "complex_step" not in [r.method.label for r in report.results]


def test_an_empty_theta_is_not_a_passed_check():
    with pytest.raises(ValueError, match="no entries"):
        check_gradients(lambda xp, t: xp.sum(t), np.zeros(0))
