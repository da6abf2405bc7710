"""Every primitive's VJPs against central differences, driven by a table of specs.

The dot-product test: for a random direction v of input i and a random cotangent u of the output,
<u, J v> from central differences must equal <VJP_i(u), v>. A new op without a spec fails
``test_every_op_has_a_spec``.
"""
import numpy as np
import pytest

from diffsuite.differentiators.reverse.backends import NumpyBackend
from diffsuite.differentiators.reverse.ops import DROP, OPS, SHAPE, VALUE, defop
from op_specs import PRIMITIVE_EXTRA_SPECS, PRIMITIVE_SPECS, draw  # draw keeps inputs away from kinks and poles

# name -> (input shapes, static params, how to draw inputs). Shapes exercise broadcasting.
POSITIVE = "positive"
OP_SPECS = {
    "add": ([(3, 4), (4,)], {}, None),
    "sub": ([(3, 1), (1, 4)], {}, None),
    "mul": ([(2, 3, 4), (3, 1)], {}, None),
    "div": ([(3, 4), (3, 4)], {}, POSITIVE),
    "neg": ([(3, 4)], {}, None),
    "power": ([(3, 4)], {"p": 3}, None),
    "pow": ([(3, 4), (4,)], {}, POSITIVE),
    "exp": ([(3, 4)], {}, None),
    "log": ([(3, 4)], {}, POSITIVE),
    "tanh": ([(3, 4)], {}, None),
    "sigmoid": ([(3, 4)], {}, None),
    "abs": ([(3, 4)], {}, None),
    "step": ([(3, 4)], {}, None),
    "maximum": ([(3, 4), (4,)], {}, None),
    "minimum": ([(3, 4), (3, 1)], {}, None),
    "sum": ([(3, 4, 2)], {"axis": 1}, None),
    "mean": ([(3, 4)], {"axis": 0, "keepdims": True}, None),
    "logsumexp": ([(3, 4)], {"axis": -1}, None),
    "matmul": ([(3, 4), (4, 2)], {}, None),
    "reshape": ([(3, 4)], {"shape": (2, 6)}, None),
    "transpose": ([(3, 4)], {}, None),
    "getitem": ([(5, 4)], {"index": (slice(1, 4), slice(None, None, 2))}, None),
}
EXTRA_SPECS = [  # shapes the table's single entry does not cover
    ("matmul", [(4,), (4, 2)], {}, None),
    ("matmul", [(3, 4), (4,)], {}, None),
    ("matmul", [(4,), (4,)], {}, None),
    ("sum", [(3, 4)], {}, None),
    ("mean", [(3, 4)], {}, None),
    ("logsumexp", [(2, 3, 4)], {"axis": 1, "keepdims": True}, None),
    ("power", [(3,)], {"p": 2}, None),
    ("power", [(3,)], {"p": -1.5}, POSITIVE),
    ("power", [(3,)], {"p": 1}, None),
    ("logsumexp", [(3, 4)], {"axis": None}, None),
    ("getitem", [(5,)], {"index": np.array([0, 2, 2])}, None),  # a repeated index: contributions add
]
OP_SPECS.update(PRIMITIVE_SPECS)  # the numpy subset's primitives (tests/op_specs.py)
EXTRA_SPECS += PRIMITIVE_EXTRA_SPECS
B = NumpyBackend()


def check_vjps(name, shapes, params, domain, seed=0, eps=1e-6):
    op = OPS[name]
    rng = np.random.default_rng(seed)
    xs = [draw(s, domain, rng) for s in shapes]
    out = op.forward(B, *xs, **params)
    u = rng.normal(size=np.shape(out))
    for i, vjp in enumerate(op.vjps):
        v = rng.normal(size=shapes[i])

        def shifted(sign):
            moved = list(xs)
            moved[i] = xs[i] + sign * eps * v
            return op.forward(B, *moved, **params)

        numeric = np.sum(u * (shifted(+1) - shifted(-1))) / (2 * eps)
        analytic = 0.0 if vjp is None else np.sum(vjp(B, u, out, *xs, **params) * v)
        if vjp is not None:
            assert np.shape(vjp(B, u, out, *xs, **params)) == shapes[i], f"{name}: VJP {i} has the wrong shape"
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-7), f"{name}: VJP of input {i}"


def test_every_op_has_a_spec():
    missing = sorted(set(OPS) - set(OP_SPECS))
    assert not missing, f"ops without an entry in OP_SPECS (add one): {missing}"


@pytest.mark.parametrize("name", sorted(OP_SPECS))
def test_vjp_matches_central_differences(name):
    check_vjps(name, *OP_SPECS[name])


@pytest.mark.parametrize("name,shapes,params,domain", EXTRA_SPECS, ids=lambda p: str(p)[:20])
def test_vjp_matches_central_differences_more_shapes(name, shapes, params, domain):
    check_vjps(name, shapes, params, domain, seed=1)


def test_step_has_no_gradient_and_abs_has_zero_subgradient_at_zero():
    assert OPS["step"].vjps == (None,)
    g = OPS["abs"].vjps[0](B, np.ones(3), None, np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


def test_logsumexp_over_every_axis_and_power_zero_at_zero():
    """Review findings: logsumexp(axis=None) crashed in the VJP; x ** 0 gave 0 * inf = nan at x = 0."""
    import diffsuite as ds
    grad = ds.get_differentiator("reverse").grad
    x = np.array([[1.0, 2.0], [0.5, -1.0]])
    softmax = np.exp(x) / np.exp(x).sum()  # d/dx log(sum(exp(x))) over all entries
    np.testing.assert_allclose(grad(lambda xp, t: xp.logsumexp(t, axis=None))(x), softmax, rtol=1e-14)
    np.testing.assert_array_equal(grad(lambda xp, t: xp.sum(t ** 0))(np.array([0.0, 2.0])), [0.0, 0.0])
    np.testing.assert_array_equal(grad(lambda xp, t: xp.sum(t ** 1))(np.array([0.0, 2.0])), [1.0, 1.0])


# ----- residuals by declaration: a rule reads only what its op's ``saves`` declares -----
class Poison:
    """Stands in for a value a rule did not declare: any use at all raises."""

    def __init__(self, what):
        object.__setattr__(self, "what", what)

    def _refuse(self, *args, **kwargs):
        raise AssertionError(f"a rule read {object.__getattribute__(self, 'what')}, which its saves do not declare")

    def __getattr__(self, name):
        self._refuse()


for _dunder in ("add radd sub rsub mul rmul truediv rtruediv pow rpow matmul rmatmul neg pos abs lt le gt ge "
                "eq ne bool len iter getitem float int index array array_ufunc array_function").split():
    setattr(Poison, f"__{_dunder}__", Poison._refuse)
Poison.__hash__ = None


def declared_arguments(op, k, xs, out):
    """The arguments VJP ``k`` receives from a tape on which only input ``k`` is traced: declared values as
    they are, inputs declared by shape as their shape, everything else poisoned."""
    codes, keep_out = op.keep[1 << k]
    args = []
    for i, (x, code) in enumerate(zip(xs, codes)):
        if i != k and code != DROP:  # a constant the rule reads: kept as it is
            args.append(x)
        else:
            args.append(x if code == VALUE else np.shape(x) if code == SHAPE else Poison(f"input {i} of {op.name}"))
    return (out if keep_out else Poison(f"the output of {op.name}")), args


ALL_SPECS = [(name, *spec) for name, spec in OP_SPECS.items()] + EXTRA_SPECS


@pytest.mark.parametrize("name,shapes,params,domain", ALL_SPECS, ids=lambda p: str(p)[:20])
def test_every_rule_reads_only_what_it_declares(name, shapes, params, domain):
    """Each VJP (and ``into`` rule) run on exactly what the tape keeps for it: the result must be the one it
    gives with every value at hand, bit for bit; reading an undeclared value raises."""
    op = OPS[name]
    rng = np.random.default_rng(2)
    xs = [draw(s, domain, rng) for s in shapes]
    out = op.forward(B, *xs, **params)
    g = rng.normal(size=np.shape(out))
    for k, vjp in enumerate(op.vjps):
        if vjp is None:
            continue
        full = vjp(B, g, out, *xs, **params)
        kept_out, args = declared_arguments(op, k, xs, out)
        np.testing.assert_array_equal(vjp(B, g, kept_out, *args, **params), full, err_msg=f"{name}: VJP {k}")
        into = op.into[k] if k < len(op.into) else None
        if into is not None:
            dst = np.empty(shapes[k])
            assert into(B, dst, g, kept_out, *args, **params) is dst
            np.testing.assert_array_equal(dst, full, err_msg=f"{name}: into rule {k}")


def test_the_poison_catches_a_rule_that_reads_an_undeclared_value():
    with pytest.raises(AssertionError, match="which its saves do not declare"):
        OPS["exp"].vjps[0](B, np.ones(3), Poison("the output of exp"), np.ones(3))  # exp' reads out
    with pytest.raises(AssertionError, match="input 0"):
        np.exp(Poison("input 0"))


def test_defop_refuses_a_missing_or_malformed_declaration():
    with pytest.raises(TypeError, match="saves"):
        defop("tmp_no_saves", lambda B, x: x, lambda B, g, out, x: g)
    with pytest.raises(ValueError, match=r"one string per VJP \(2\)"):
        defop("tmp_count", lambda B, x, y: x, lambda B, g, out, x, y: g, None, saves=("x",))
    with pytest.raises(ValueError, match=r"saves names 'w'.*x, y, out"):
        defop("tmp_name", lambda B, x, y: x, lambda B, g, out, x, y: g, None, saves=("w", ""))
    assert not {"tmp_no_saves", "tmp_count", "tmp_name"} & set(OPS)


def test_what_a_record_keeps_follows_which_inputs_are_traced():
    # relu = maximum(0, z): only z is traced, its VJP compares 0 with the output: z itself is not kept
    assert OPS["maximum"].keep[0b10] == ((VALUE, SHAPE), True)
    # maximum(z, 0): only the x side runs, which compares the inputs
    assert OPS["maximum"].keep[0b01] == ((VALUE, VALUE), False)
    # targets * outputs with constant targets: the outputs' shape only
    assert OPS["mul"].keep[0b10] == ((VALUE, SHAPE), False)
    assert OPS["add"].keep[0b11] == ((SHAPE, SHAPE), False)
