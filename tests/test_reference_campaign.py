"""The random campaign in CI size (docs/reference.md has the 1,000-problem run and its command).

200 problems: the certified reference must give the identical float64 as a fixed 200-digit mpmath
evaluation wherever 200 digits suffice (a refusal is allowed only for a cancellation beyond the cap, never
a wrong number). The exact methods must stay within 1e-13 normwise of it; today they do not on saturated
problems (the causes are in the xfail reasons), and the bound is kept rather than loosened.
"""
import numpy as np
import pandas as pd
import pytest

from diffsuite.reference import campaign

N_REFERENCE = 200   # about 6 s (the 200-digit check is half of it)
N_METHODS = 100     # reverse and complex step: about 2 s each
N_SYMBOLIC = 20     # of which those with at most 6 parameters: SymEngine's setup is the cost


@pytest.fixture(scope="module")
def reference_rows():
    return campaign.run(N_REFERENCE, seed=0, methods=())


def test_problems_cover_every_activation_loss_and_regulariser(reference_rows):
    from diffsuite.nn.activations import ACTIVATIONS
    assert set(reference_rows["activation"]) == set(ACTIVATIONS)
    assert set(reference_rows["loss"]) == set(campaign.LOSSES)
    assert set(reference_rows["reg"]) == set(campaign.REGULARISERS)
    assert reference_rows["scale"].max() > 50 and reference_rows["scale"].min() < 0.2
    assert (reference_rows["bits"] > 256).any()  # saturation occurs: some problems cancel hundreds of bits


def test_certified_reference_agrees_with_200_digits(reference_rows):
    ok = reference_rows[reference_rows["status"] == "ok"]
    refused = reference_rows[reference_rows["status"] != "ok"]
    assert len(ok) >= 0.97 * N_REFERENCE
    assert refused["error"].str.contains("cancellation deeper than").all()  # never an unexplained failure
    checkable = ok[ok["mp200_enough"].astype(bool)]
    assert len(checkable) >= 0.9 * N_REFERENCE
    assert checkable["agree_mp200"].astype(bool).all(), checkable[~checkable["agree_mp200"].astype(bool)]


def test_same_seed_same_problem():
    a, b = campaign.random_problem(7), campaign.random_problem(7)
    assert a[2] == b[2] and np.array_equal(a[1], b[1]) and np.array_equal(a[0].inputs, b[0].inputs)


def _errors(rows, method, n, max_params=None):
    """``method``'s normwise errors against the stored references of the first n certified problems."""
    ok = rows[(rows["status"] == "ok") & (rows["seed"] < n)]
    if max_params is not None:
        ok = ok[ok["n_params"] <= max_params]
    errs = {}
    for seed, ref in zip(ok["seed"], ok["ref"]):
        obj, theta, _ = campaign.random_problem(seed)
        errs[seed] = campaign.method_error(obj, theta, ref, method)[0]
    return pd.Series(errs, dtype=float)


def _xfail(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


REVERSE_CAUSE = ("reverse mode loses accuracy in saturation: tanh' as 1 - tanh^2 is 0 where the exact value is 1e-60 "
                 "(seed 13), sigmoid' as s (1 - s) is 0 where it is 2e-20 (seed 91); the stable VJP rules are the "
                 "language work of issue 12. And BCE of a sigmoid output that rounds to 1 is infinite in float64 "
                 "(seeds 55, 57, 58, 70, 89)")
SYMBOLIC_CAUSE = ("symbolic differentiation has the same saturation losses as reverse mode (1 - tanh^2 at seed 13); "
                  "the stable rules are the language work of issue 12")
COMPLEX_STEP_CAUSE = ("the complex step fails with a step activation in BCE (seed 70: error 1.6e20) and on BCE outputs "
                      "that round to 1 (seeds 55, 57, 58, 89: inf); the complex-step fixes are the finite-difference "
                      "work of issue 12")


@pytest.mark.parametrize("method, n, max_params", [
    pytest.param("reverse", N_METHODS, None, marks=_xfail(REVERSE_CAUSE)),
    pytest.param("symbolic", N_SYMBOLIC, 6, marks=_xfail(SYMBOLIC_CAUSE)),
    pytest.param("complex_step", N_METHODS, None, marks=_xfail(COMPLEX_STEP_CAUSE)),
])
def test_exact_methods_within_1e_13_normwise(reference_rows, method, n, max_params):
    if method == "symbolic":
        pytest.importorskip("symengine")
    errs = _errors(reference_rows, method, n, max_params)
    assert (errs <= campaign.TOLERANCE).all(), errs[errs > campaign.TOLERANCE]
