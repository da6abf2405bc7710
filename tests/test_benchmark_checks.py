"""The benchmarks' checking and fitting functions, on fabricated inputs: nothing here times anything.

A benchmark must refuse to time a wrong contender (bench_symbolic, bench_reverse), derive its figures from what it
measured the way its columns say (bench_per_op's instructions per primitive: a slope, like its time), and time only
the path the engine takes (bench_theta_check).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """The benchmark modules, imported with benchmarks/ on sys.path; the environment (bench_symbolic sets BLAS
    thread variables when imported) and sys.path restored afterwards."""
    env, path = dict(os.environ), list(sys.path)
    sys.path.insert(0, str(BENCH))
    os.environ.pop("BENCH_REVERSE_ARGS", None)
    try:
        import bench_per_op
        import bench_reverse
        import bench_symbolic
        import bench_theta_check
        import handwritten
    finally:
        os.environ.clear()
        os.environ.update(env)
        sys.path[:] = path
    return dataclasses.make_dataclass("Bench", ["per_op", "reverse", "symbolic", "theta_check", "handwritten"])(
        bench_per_op, bench_reverse, bench_symbolic, bench_theta_check, handwritten)


# ----- bench_symbolic: every contender checked against an independent float64 gradient -----
def test_symbolic_check_passes_agreeing_contenders(bench):
    g = np.array([0.5, -2.0, 1e-3])
    results = {"kernel": (1.5, list(g)), "symbolic": (1.5, g * (1 + 1e-15)), "torch": (1.5 + 1e-16, g)}
    errors = bench.symbolic.check_contenders("net", results, (1.5, g), "hand")
    assert set(errors) == set(results) and max(errors.values()) < 1e-14


@pytest.mark.parametrize("name, result, says", [
    ("torch", (1.5, np.array([0.5, -2.0, 1e-3 + 1e-10])), "torch's gradient"),  # 5e-11 of max |g|
    ("kernel", (1.5, np.array([0.5, np.nan, 1e-3])), "kernel's gradient"),
    ("reverse", (1.5 * (1 + 1e-9), np.array([0.5, -2.0, 1e-3])), "reverse's value"),
    ("hand", (1.5, np.array([0.5, -2.0])), "hand's gradient"),  # wrong length
])
def test_symbolic_check_refuses_a_wrong_contender_by_name(bench, name, result, says):
    good = (1.5, np.array([0.5, -2.0, 1e-3]))
    with pytest.raises(SystemExit) as e:
        bench.symbolic.check_contenders("[3,2,1]", {"symbolic": good, name: result}, good, "the reference")
    assert says in str(e.value) and "[3,2,1]" in str(e.value) and "refuses" in str(e.value)


def test_symbolic_as_pair_reads_gradients_and_tuples(bench):
    from diffsuite.differentiators.base import Gradient

    v, g = bench.symbolic.as_pair(Gradient(2.0, np.array([1.0, 2.0]), {}))
    assert v == 2.0 and g.tolist() == [1.0, 2.0]
    v, g = bench.symbolic.as_pair((3, (0, 1.5)))  # the kernel's tuple, with an int where a derivative is 0
    assert v == 3.0 and g.dtype == np.float64 and g.tolist() == [0.0, 1.5]


# ----- bench_reverse: float32 against a float64 reference, with a tolerance float16 cannot meet -----
SMALL_F32 = dict(layers=(64, 32, 10), batch=16, activation="relu", output_activation="identity",
                 loss="cross_entropy", dtype="float32")


def _hand(bench, case, dtype):
    obj, theta, X, T = bench.reverse.make_problem(case)
    return bench.handwritten.HandwrittenMLP(case.layers, case.activation, case.output_activation, case.loss, X, T,
                                            dtype).value_and_grad(theta)


def test_float32_tolerance_is_grounded_in_float32_rounding(bench):
    br = bench.reverse
    f32 = next(c for c in br.CASES if c.dtype == "float32")
    tol = br.grad_tolerance(f32)
    # [784,512,512,10] b256: 4 eps32 sqrt(3 * 784); the old bound 10 (2 depth + 1) n eps32 was 6.6e-3
    assert tol == pytest.approx(4 * np.finfo(np.float32).eps * np.sqrt(3 * 784))
    assert 1e-5 < tol < 3e-5
    assert tol < np.finfo(np.float16).eps / 40  # float16's own rounding is far outside
    assert br.grad_tolerance(dataclasses.replace(f32, dtype="float64")) == 1e-10


def test_float32_contenders_are_checked_against_float64_and_float16_fails(bench):
    br = bench.reverse
    case = br.Case(**SMALL_F32)
    reference = br.reference_result(case)
    assert reference is not None and br.reference_result(dataclasses.replace(case, dtype="float64")) is None
    f32 = _hand(bench, case, "float32")
    assert br.check_results(case, {"hand": f32}, reference) < br.grad_tolerance(case) / 10
    f16 = _hand(bench, case, "float16")  # float16 arithmetic: refused, by name, by a wide margin
    with pytest.raises(SystemExit, match=r"engine's value .* differs from the float64 reference"):
        br.check_results(case, {"hand": f32, "engine": f16}, reference)
    with pytest.raises(SystemExit, match=r"engine disagrees with the float64 reference"):  # its gradient alone
        br.check_results(case, {"hand": f32, "engine": (reference[0], f16[1])}, reference)
    g16 = f16[1]
    err = np.max(np.abs(g16 - reference[1])) / np.max(np.abs(reference[1]))
    assert err > 30 * br.grad_tolerance(case)


def test_float32_reference_does_not_exempt_hand(bench):
    """With a float64 reference, the float32 hand-written result is a contender like the others."""
    br = bench.reverse
    case = br.Case(**SMALL_F32)
    v, g = br.reference_result(case)
    off = g.copy()
    off[np.argmax(np.abs(g))] *= 1 + 1e-3
    with pytest.raises(SystemExit, match=r"hand disagrees"):
        br.check_results(case, {"hand": (v, off), "engine": (v, g)}, (v, g))


def test_float64_contenders_are_checked_against_hand(bench):
    br = bench.reverse
    case = br.Case(**{**SMALL_F32, "dtype": "float64"})
    v, g = _hand(bench, case, "float64")
    ok = {"hand": (v, g), "engine": (v, g * (1 + 1e-13)), "hand_fwd": (v, None)}
    assert br.check_results(case, ok) <= 1e-12
    with pytest.raises(SystemExit, match=r"torch disagrees with hand"):
        br.check_results(case, {**ok, "torch": (v, g + 1e-8 * np.max(np.abs(g)))})
    with pytest.raises(SystemExit, match=r"engine_fwd's value"):
        br.check_results(case, {**ok, "engine_fwd": (v + 1e-6, None)})


def test_engine_fwd_has_a_ratio_and_hand_fwd_computes_no_gradient(bench, monkeypatch):
    br = bench.reverse
    assert ("engine_fwd/hand_fwd", "engine_fwd", "hand_fwd", "time") in br.RATIOS
    case = br.CASES[0]
    res = {"contenders": {n: {"seconds": s, "faults": [0, 0, 0], "peak_bytes": 1.0, "memory_method": "tracemalloc"}
                          for n, s in (("hand_fwd", [1.0, 2.0, 4.0]), ("engine_fwd", [3.0, 4.0, 10.0]))},
           "load": (0.0, 0.0), "max_rel_grad_diff": 0.0}
    row = br.summarise(case, 11, res)
    assert row["engine_fwd/hand_fwd"] == 2.5 and row["engine_fwd/hand_fwd_of_medians"] == 2.0
    # hand_fwd: the loss only, the same bits as value_and_grad's value, and no loss gradient computed
    for c in (case, br.Case(**SMALL_F32)):
        obj, theta, X, T = br.make_problem(c)
        hand = bench.handwritten.HandwrittenMLP(c.layers, c.activation, c.output_activation, c.loss, X, T, c.dtype)
        expected = hand.value_and_grad(theta)[0]
        loss = type(hand)._loss

        def no_gradient(self, out, grad=True):
            if grad:
                pytest.fail("value() computed the loss's gradient")
            return loss(self, out, grad=False)

        with monkeypatch.context() as m:
            m.setattr(type(hand), "_loss", no_gradient)
            assert hand.value(theta) == expected


# ----- bench_per_op: instructions per primitive as a slope, like the time column -----
def test_instruction_slope_excludes_each_calls_fixed_cost(bench):
    start, fixed, per_primitive, calls = 3_000_000_000, 230_000, 14_877, 20

    def count(L):  # a process: start-up and warm-up (the same at both lengths), then `calls` calls of length L
        return start + calls * (fixed + per_primitive * 2 * L)

    slope = bench.per_op.instruction_slope({128: count(128), 64: count(64)}, calls)
    assert slope == pytest.approx(per_primitive, rel=1e-12)
    assert (fixed + per_primitive * 256) / 256 > 1.05 * slope  # what dividing I(128) by 256 reported instead
    assert bench.per_op.COUNT_LENGTHS[0] < bench.per_op.COUNT_LENGTHS[1]


# ----- bench_theta_check: only the engine's large-net path -----
def test_theta_check_refuses_nets_where_the_engine_takes_another_path(bench, capsys):
    small = [i for i, c in enumerate(bench.reverse.CASES)
             if bench.reverse.make_problem(c)[0].n_params < bench.theta_check.MIN_PARAMS]
    assert small == [0]
    with pytest.raises(SystemExit) as e:
        bench.theta_check.main(["--net", "0", "--rounds", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "11 parameters" in err and "run_into" in err and "--net 1, 2, 3, 4" in err


def test_theta_check_threshold_is_the_engines(bench):
    from diffsuite.differentiators.reverse import SLOTS_FROM
    assert bench.theta_check.MIN_PARAMS == SLOTS_FROM  # the engine's own constant, not a copy of its value
