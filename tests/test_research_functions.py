"""The ten research functions of docs/language.md, run from the document itself, each checked three ways:
reverse mode (numpy and torch backends), symbolic differentiation and the complex step must agree.
(docs/language.md's own examples pass the data as arguments; the symbolic build then makes them symbols.)"""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import diffsuite as ds
from diffsuite import pytree

ENGINE = "symengine" if importlib.util.find_spec("symengine") else "sympy"
DOC = Path(__file__).resolve().parents[1] / "docs" / "language.md"


def research_namespace():
    text = DOC.read_text()
    section = text[text.index("## Ten research functions"):]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


NS = research_namespace()
FUNCTIONS = NS["FUNCTIONS"]


def flat(tree):
    leaves, _, _ = pytree.flatten(tree)
    return np.concatenate([leaf.ravel() for leaf in leaves])


def test_the_document_has_ten_functions():
    assert len(FUNCTIONS) == 10


@pytest.mark.parametrize("f", list(FUNCTIONS), ids=lambda f: f.__name__)
def test_three_ways(f):
    params, x, y = FUNCTIONS[f], NS["X"], NS["Y"]

    def bound(xp, p):  # the data bound as constants: the symbolic build folds them (as symbols it is 10x slower)
        return f(xp, p, x, y)
    ref = flat(ds.get_differentiator("reverse").grad(bound)(params))
    assert np.all(np.isfinite(ref)) and np.any(ref != 0)
    others = {
        "reverse[torch]": ds.get_differentiator("reverse", backend="torch"),
        # SymEngine differentiates these 10-100x faster than SymPy (tests/test_ops_language.py covers engine="sympy")
        "symbolic": ds.get_differentiator("symbolic", metrics=False, engine=ENGINE),
        "complex_step": ds.get_differentiator("finite_diff", scheme="complex_step"),
    }
    for name, d in others.items():
        if name == "reverse[torch]":
            pytest.importorskip("torch")
        g = flat(d.grad(bound)(params))
        err = np.max(np.abs(g - ref)) / np.max(np.abs(ref))
        assert err < 1e-12, f"{f.__name__}: {name} differs from reverse mode by {err:.2e} (normwise)"
