"""The reference's random campaign: is the certified reference right, and how close do the exact methods get?

``random_problem(seed)`` draws one small problem reproducibly: every activation, loss and
regulariser, 1-3 inputs and outputs, 0-2 hidden layers of 1-3 units, 1-3 samples, and parameters
of scale 10^U(-1, 2) (up to 100, so that tanh, sigmoid and the losses saturate). ``check(seed)``
compares on it:

- the certified reference (arb) with an mpmath evaluation of the same program at a fixed 200
  digits: they must give the identical float64 everywhere (``agree``), unless the problem cancels
  more than 200 digits (``bits`` > 665), where the fixed evaluation is the one that cannot know;
- reverse mode (numpy), symbolic (SymEngine) and the complex step with the reference: the normwise
  relative error max_i |g_i - r_i| / max_i |r_i| (``err_<method>``; NaN where the method refused). Problems
  whose loss evaluated in float64 (``value_float64``) is inf or nan are counted apart: no float64 method can
  be compared there (there were 45 in 1,000, binary cross-entropy of a sigmoid output rounded to 0 or 1, before
  ``Objective`` evaluated that loss from the logits; none of problems 0-999 has one now).

``run(n, seed)`` checks problems ``seed, seed + 1, ..., seed + n - 1`` and returns a pandas DataFrame.
Command (writes a CSV and prints the summary the docs quote)::

    python -m diffsuite.reference.campaign --n 1000 --seed 0 --out campaign.csv
    python -m diffsuite.reference.campaign --n 200 --fallback     # the mpmath fallback against arb
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..argtypes import whole_number
from ..nn.activations import ACTIVATIONS
from ..nn.losses import BinaryCrossEntropy
from ..objective import Objective
from ..nn.mlp import MLP

LOSSES = ("quadratic", "binary_cross_entropy", "bce_from_logits", "cross_entropy", "hinge")
REGULARISERS = {"none": (0.0, 0.0), "l1": (0.01, 0.0), "l2": (0.0, 0.02), "l1+l2": (0.01, 0.02)}
METHODS = ("reverse", "symbolic", "complex_step")
TOLERANCE = 1e-13  # normwise relative error the exact methods must reach (issue: "Done when")
MP_DIGITS = 200


def random_problem(seed: int) -> tuple[Objective, np.ndarray, dict]:
    """(objective, theta, description) of problem ``seed``; the same seed gives the same problem everywhere."""
    rng = np.random.default_rng([seed, 12])  # (the 12: this campaign's stream, apart from other uses of seed)
    activation = str(rng.choice(sorted(ACTIVATIONS)))
    loss = str(rng.choice(LOSSES))
    reg = str(rng.choice(sorted(REGULARISERS)))
    n_in = int(rng.integers(1, 4))
    n_out = int(rng.integers(2, 4)) if loss == "cross_entropy" else int(rng.integers(1, 4))
    hidden = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(0, 3)))]
    if activation == "maxout":
        hidden = [2 * h for h in hidden]  # k = 2 pieces of h units each
    batch = int(rng.integers(1, 4))
    options = {"maxout": {"k": 2}, "leaky_relu": {"slope": 0.1}, "elu": {"alpha": 0.7}}.get(activation, {})
    act = ACTIVATIONS[activation](**options)
    out_act = {"binary_cross_entropy": "sigmoid"}.get(loss, "identity")
    if loss == "quadratic":
        out_act = str(rng.choice(["identity", "sigmoid", "tanh"]))
    model = MLP((n_in, *hidden, n_out), activation=act, output_activation=out_act)
    x = rng.normal(size=(batch, n_in))
    if loss == "cross_entropy":
        targets: Any = rng.integers(0, n_out, size=batch)
    elif loss == "hinge":
        targets = rng.choice([-1.0, 1.0], size=(batch, n_out))
    elif loss in ("binary_cross_entropy", "bce_from_logits"):
        targets = rng.choice([0.0, 1.0, 0.3], size=(batch, n_out))
    else:
        targets = rng.normal(size=(batch, n_out))
    loss_fn = BinaryCrossEntropy(from_logits=True) if loss == "bce_from_logits" else loss
    l1, l2 = REGULARISERS[reg]
    obj = Objective(model, loss_fn, x, targets, l1=l1, l2=l2)
    scale = 10.0 ** rng.uniform(-1, 2)
    theta = rng.normal(size=model.n_params) * scale
    desc = {"seed": seed, "activation": activation, "loss": loss, "reg": reg, "layers": str(model.layers),
            "batch": batch, "scale": scale, "n_params": model.n_params}
    return obj, theta, desc


def normwise(g: np.ndarray, ref: np.ndarray) -> float:
    """max_i |g_i - r_i| / max_i |r_i| (0 when both are zero)."""
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    err = float(np.max(np.abs(np.asarray(g, dtype=np.float64) - ref))) if ref.size else 0.0
    return err / scale if scale > 0 else err


def _mp_fixed(compiled, digits: int) -> list[float]:
    """The program evaluated once in mpmath at ``digits`` significant digits, rounded to float64."""
    from fractions import Fraction

    from .engine import _outputs
    from .mp import MpArithmetic, to_float
    from .program import UNDECIDED, Run
    A = MpArithmetic(int(digits * 3.3220) + 1)
    run = Run(compiled.program, A, [A.from_float(v) for v in compiled.values], [Fraction(v) for v in compiled.values])
    return [float("nan") if v is UNDECIDED else to_float(A.zero() if v is None else v) for v in _outputs(compiled, run)]


def check(seed: int, methods: tuple[str, ...] = METHODS) -> dict:
    """One problem: the reference, its 200-digit check and every method's normwise error (see the module)."""
    from ..budget import Budget
    from .engine import certify_arb, compile_problem
    obj, theta, row = random_problem(seed)
    t = time.perf_counter()
    try:
        compiled = compile_problem(obj, theta, (), "float64", "adjoint", Budget())
        out, cert = certify_arb(compiled)
    except ValueError as e:  # NotCertified: recorded, never hidden
        row.update(status="not_certified", error=str(e)[:200], ref_s=time.perf_counter() - t)
        return row
    row["ref_s"] = time.perf_counter() - t
    ref = np.array([r for r, _ in out[1:]])
    with np.errstate(all="ignore"):
        value64 = obj.value(theta)
    row.update(status="ok", bits=cert.bits, max_radius=cert.max_radius, value=out[0][0], value_float64=value64, ref=ref)
    mp = _mp_fixed(compiled, MP_DIGITS)
    row["agree_mp200"] = bool([r for r, _ in out] == mp)
    row["mp200_enough"] = cert.bits <= int(MP_DIGITS * 3.3220)
    for m in methods:
        err, why = method_error(obj, theta, ref, m)
        row[f"err_{m}"] = err
        if why:
            row[f"why_{m}"] = why
    return row


def method_error(obj: Objective, theta: np.ndarray, ref: np.ndarray, method: str) -> tuple[float, str | None]:
    """(normwise error of ``method``'s gradient against ``ref``, why it refused or None); a non-finite gradient
    entry is an error of inf."""
    from ..differentiators import get_differentiator
    name, opts = {"reverse": ("reverse", {}), "symbolic": ("symbolic", {"engine": "symengine"}),
                  "complex_step": ("finite_diff", {"scheme": "complex_step", "warn": False})}[method]
    try:
        with np.errstate(all="ignore"):
            g = get_differentiator(name, **opts).value_and_grad(obj)(theta).grad
    except Exception as e:  # noqa: BLE001 - a refusal is a result, recorded with its reason
        return float("nan"), f"{type(e).__name__}: {str(e)[:120]}"
    return (normwise(g, ref) if np.all(np.isfinite(g)) else float("inf")), None


def rows(n: int, seed: int = 0, methods: tuple[str, ...] = METHODS) -> Iterator[dict]:
    """The rows of problems seed .. seed + n - 1, one at a time (``run`` collects them)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown))}; the campaign's methods are "
                         f"{', '.join(METHODS)}")
    for s in range(seed, seed + n):
        yield check(s, methods)


def run(n: int, seed: int = 0, methods: tuple[str, ...] = METHODS):
    """Problems seed .. seed + n - 1, one row each (pandas DataFrame)."""
    import pandas as pd
    return pd.DataFrame(list(rows(n, seed, methods)))


def write_csv(done: list[dict], path: str | Path) -> None:
    """The rows (without the reference gradients) as CSV, atomically: a temporary file in the same folder renamed
    over ``path``, so an interrupted or failed write never leaves half a CSV in place of a good one."""
    import pandas as pd
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pd.DataFrame(done).drop(columns=["ref"], errors="ignore").to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:  # no temporary left behind, also on a second Ctrl-C during the write
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def fallback_check(n: int, seed: int = 0) -> str:
    """The mpmath fallback against the certified reference on problems seed .. seed + n - 1: identical, different
    (must be 0) or refused."""
    from . import reference_gradient
    same = different = refused = 0
    for s in range(seed, seed + n):
        obj, theta, _ = random_problem(s)
        try:
            a = reference_gradient(obj, theta)
        except ValueError:
            continue
        try:
            b = reference_gradient(obj, theta, arithmetic="mpmath")
        except ValueError:
            refused += 1
            continue
        if np.array_equal(a.grad, b.grad) and a.value == b.value:
            same += 1
        else:
            different += 1
    return (f"mpmath fallback on the {same + different + refused} certified problems: identical float64 {same}, "
            f"different {different}, refused {refused}")


def summary(df) -> str:
    """The lines the docs quote: problems, certification, 200-digit agreement, each method against 1e-13."""
    ok = df[df["status"] == "ok"]
    lines = [f"problems: {len(df)}; certified: {len(ok)}; not certified: {len(df) - len(ok)}"]
    if ok.empty:
        return lines[0]
    ok = ok.astype({"agree_mp200": bool, "mp200_enough": bool})
    lines += [
             f"precision used: median {int(ok['bits'].median())} bits, max {int(ok['bits'].max())} bits; "
             f"reference time: median {df['ref_s'].median() * 1e3:.0f} ms, max {df['ref_s'].max():.2f} s"]
    enough = ok[ok["mp200_enough"]]
    lines.append(f"identical float64 to a 200-digit mpmath evaluation: {int(enough['agree_mp200'].sum())} of "
                 f"{len(enough)} (the {len(ok) - len(enough)} others cancel more than 200 digits; there "
                 f"{int(ok[~ok['mp200_enough']]['agree_mp200'].sum())} agree anyway)")
    finite = np.isfinite(ok["value_float64"].astype(float))
    lines.append(f"problems whose float64 loss is inf or nan (left out of the 1e-13 bound): {int((~finite).sum())}")
    for m in METHODS:
        col = f"err_{m}"
        if col not in ok:
            continue
        errs = ok[col][finite]
        bad = errs[errs > TOLERANCE]
        refused = int(errs.isna().sum())
        lines.append(f"{m}: normwise error vs the certified reference <= {TOLERANCE:g} on "
                     f"{int((errs <= TOLERANCE).sum())} of {len(errs)} with a finite float64 loss; above on "
                     f"{len(bad)}" + (f" (max {bad.max():.1e}; seeds {', '.join(map(str, ok['seed'][bad.index]))})" if len(bad) else "")
                     + f"; refused {refused}")
    return "\n".join(lines)


def _methods(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {', '.join(unknown)} in {text!r}; give a "
                                         f"comma-separated subset of {','.join(METHODS)}")
    return chosen


def _check_out(p: argparse.ArgumentParser, out: str) -> None:
    """Refuse, before any problem is run, an --out the rows could not be written to."""
    path = Path(out)
    folder = path.parent
    if path.is_dir():
        p.error(f"argument --out: {out} is a folder; give a CSV file name, e.g. {path / 'campaign.csv'}")
    if not folder.is_dir():
        p.error(f"argument --out: the folder {folder} of {out} does not exist; create it first (mkdir -p {folder}) "
                "or give a file in an existing folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        p.error(f"argument --out: cannot write {out} (the file or its folder {folder} is not writable); give a file "
                "in a folder you can write to")


def main(argv: list[str] | None = None) -> None:
    prog = "python -m diffsuite.reference.campaign"
    p = argparse.ArgumentParser(prog=prog, description="Random campaign of the certified reference (docs/reference.md).")
    p.add_argument("--n", type=whole_number(1), default=200, help="number of problems, at least 1 (default 200)")
    p.add_argument("--seed", type=whole_number(0), default=0, help="first problem's seed, at least 0 (default 0)")
    p.add_argument("--methods", type=_methods, default=METHODS,
                   help=f"comma-separated subset of {','.join(METHODS)} (default all; '' for the reference only)")
    p.add_argument("--out", default=None, help="CSV file for the rows (default: none); its folder must exist")
    p.add_argument("--fallback", action="store_true", help="instead: the mpmath fallback against the certified result")
    args = p.parse_args(argv)
    if args.out and args.fallback:
        p.error("argument --out: --fallback writes no rows; drop --out, or drop --fallback to run the campaign")
    if args.out:
        _check_out(p, args.out)
    t = time.perf_counter()
    if args.fallback:
        try:
            print(fallback_check(args.n, args.seed))
        except KeyboardInterrupt:
            print(f"{prog}: interrupted; the fallback check writes nothing", file=sys.stderr)
            raise SystemExit(130) from None
        print(f"wall time: {time.perf_counter() - t:.1f} s")
        return
    done: list[dict] = []
    try:
        for row in rows(args.n, args.seed, args.methods):
            done.append(row)
    except KeyboardInterrupt:
        if args.out and done:
            write_csv(done, args.out)
            saved = f"the {len(done)} rows done (seeds {args.seed}-{args.seed + len(done) - 1}) written to {args.out}"
        else:
            saved = "nothing written" + ("" if args.out else " (no --out)")
        print(f"{prog}: interrupted after {len(done)} of {args.n} problems; {saved}", file=sys.stderr)
        raise SystemExit(130) from None
    if args.out:
        write_csv(done, args.out)
    import pandas as pd
    print(summary(pd.DataFrame(done)))
    print(f"wall time: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
