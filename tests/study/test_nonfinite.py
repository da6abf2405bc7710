"""A gradient with NaN or inf entries is infinitely wrong: never scored as exact, never silently dropped."""
import math

import mpmath
import numpy as np
import pandas as pd
import pytest

from diffsuite.study.studies import accuracy
from diffsuite.study.common import rel_error
from diffsuite.study.store import ResultStore


def definition(g, r):
    """The oracle: max_i |g_i - r_i| / max_i |r_i|, and inf when any g_i is not a finite number."""
    g, r = [float(x) for x in g], [float(x) for x in r]
    if not all(math.isfinite(x) for x in g):
        return math.inf
    return max(abs(a - b) for a, b in zip(g, r)) / max(abs(b) for b in r)


MP = np.array([mpmath.mpf(1), mpmath.mpf(2)], dtype=object)
F64 = np.array([1.0, 2.0])


@pytest.mark.parametrize("g", [[1.0, np.nan], [np.nan, 2.0], [1.0, np.inf], [-np.inf, 2.0], [np.nan, np.nan]])
@pytest.mark.parametrize("ref", [MP, F64], ids=["mpmath", "float64"])
def test_a_nonfinite_gradient_has_infinite_error(g, ref):
    assert rel_error(g, ref) == definition(g, ref) == math.inf


@pytest.mark.parametrize("ref", [MP, F64], ids=["mpmath", "float64"])
def test_finite_gradients_follow_the_definition(ref):
    for g in ([1.0, 2.0], [1.5, 2.0], [1.0, 1.0], [0.0, 0.0]):
        assert rel_error(g, ref) == pytest.approx(definition(g, ref), rel=1e-15)


def test_an_infinite_error_is_stored_as_infinite_not_missing(tmp_path):
    with ResultStore(tmp_path) as s:
        s.append("c", [{"method": "m", "status": "ok", "rel_error": rel_error([1.0, np.nan], MP)}])
    assert ResultStore(tmp_path).table()["rel_error"].tolist() == [math.inf]


def _rows(errors):
    return pd.DataFrame([{"activation": "tanh", "loss": "mse", "reg": "none", "seed": i, "method": "reverse[numpy]",
                          "dtype": "float64", "status": "ok", "rel_error": e, "near_kink": False,
                          "problem_near_kink": False, "reference": "mpmath, 50 digits", "message": None}
                         for i, e in enumerate(errors)])


@pytest.mark.parametrize("bad", [math.inf, None], ids=["inf", "null (older stores)"])
def test_the_summary_counts_nonfinite_results_and_does_not_skip_them(bad):
    s = accuracy.summary_table(_rows([1e-16, 2e-16, bad])).iloc[0]
    assert s["non-finite"] == 1
    assert s["max error"] == math.inf  # not 2e-16: the non-finite result is not dropped
    assert s["median error"] == 2e-16


def test_the_report_names_the_method_with_nonfinite_gradients(tmp_path):
    rep = accuracy.report(_rows([1e-16, math.inf, math.inf]), {}, tmp_path)
    assert rep.findings["nonfinite_results"] == 2
    assert rep.findings["reverse_numpy_float64_max"] == math.inf
    text = " ".join(str(b.__dict__) for b in rep.blocks)
    assert "Non-finite gradients" in text and "`reverse[numpy]` (float64) on **2** of 3 problems" in text
