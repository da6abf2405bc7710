"""The accuracy baseline behind ``diffsuite check``: measure a grid, compare every cell with stored errors.

A cell is (model, activation, loss, dtype, device, method); its error is the gradient's normwise
relative error against the reference, ``max_i |g_i - ref_i| / max_i |ref_i|``, the worst over the
grid's seeds. The reference is the exact gradient (``diffsuite.reference``, certified in ball arithmetic) where
available, else reverse mode in float64; the baseline records which, stores each problem's reference
gradient (reused while the problem keeps its loss value) and a check always
measures like for like.

A cell *regresses* when ``error > factor * max(baseline, floor)``, where ``floor = FLOOR_EPS * eps(dtype)``
keeps cells at the rounding level (reverse mode: ~1e-16) from failing for a change in the last bits.
A cell that errors now but had a number in the baseline regresses too, and a cell that errors now and is not in
the baseline fails the check as well (``Comparison.broken``). Only a missing *optional* dependency
(``OPTIONAL_PACKAGES``: torch, symengine, ...; diffsuite's ``MissingDependency``) makes a cell "skipped" (not
measured); any other ImportError (a typo in diffsuite's own imports) is an error.

The grid: problems from the accuracy study's builder (``diffsuite.study.studies.accuracy.problem``: float32-exact
points, so one reference serves both dtypes) and its method labels. ``--quick`` is ``QUICK``, pinned here;
the full grid is the accuracy study's own (``diffsuite.study.studies.accuracy.Config()``).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

KEY = ("model", "activation", "loss", "dtype", "device", "method")
FORMAT = "diffsuite-accuracy-baseline"
VERSION = 1
METRIC = "max_i |g_i - ref_i| / max_i |ref_i|"
#: errors below FLOOR_EPS * eps(dtype) count as rounding-level; they are compared as if equal to it
FLOOR_EPS = 100
DEFAULT_FACTOR = 10.0


class BaselineError(ValueError):
    """A baseline file that is missing, unreadable or malformed; the message says how to fix it."""


# ----- the grid -----
@dataclass(frozen=True)
class Grid:
    """Which problems (``diffsuite.study.studies.accuracy.problem``) and methods (its labels) a check measures."""

    activations: tuple[str, ...]
    losses: tuple[str, ...]
    regs: tuple[str, ...]
    seeds: tuple[int, ...]
    hidden: tuple[int, ...]
    batch: int
    methods: tuple[str, ...]          # study labels: finite_diff[central], reverse[numpy], symbolic[cse], ...
    dtypes: tuple[str, ...] = ("float64", "float32")


#: The quick grid is pinned here, not taken from the accuracy study's quick mode, so that the committed
#: baseline does not move when the study's quick mode is tuned for its own purposes (figures, the demo).
QUICK = Grid(activations=("tanh", "relu"), losses=("quadratic", "cross_entropy"), regs=("none",), seeds=(0,),
             hidden=(3,), batch=4,
             methods=tuple(f"finite_diff[{s}]" for s in ("forward", "backward", "central", "five_point", "richardson",
                                                          "complex_step")) + ("reverse[numpy]", "reverse[torch-cpu]"))


def full_grid() -> Grid:
    """The accuracy study's own grid (``diffsuite.study.studies.accuracy.Config()``)."""
    from ..study.studies import accuracy
    c = accuracy.Config()
    return Grid(tuple(c.activations), tuple(c.losses), tuple(c.regs), tuple(c.seeds), tuple(c.hidden), c.batch,
                tuple(c.methods()), tuple(c.dtypes))


@dataclass
class Case:
    """One problem of the grid with the methods to run on it: (method label, dtype, device, make differentiator)."""

    key: dict                   # model, activation, loss
    seed: int
    objective: Any
    theta: np.ndarray
    methods: list[tuple[str, str, str, Callable[[], Any]]]


def with_devices(labels: tuple[str, ...], devices: tuple[str, ...]) -> tuple[str, ...]:
    """The torch backend's label once per device asked for (``reverse[torch-cpu]`` -> ``reverse[torch-cuda]``)."""
    out = []
    for label in labels:
        if label.startswith("reverse[torch-"):
            out += [f"reverse[torch-{d}]" for d in devices if f"reverse[torch-{d}]" not in out]
        elif label not in out:
            out.append(label)
    return tuple(out)


def grid_cases(grid: Grid, devices: tuple[str, ...] = ("cpu",)) -> Iterable[Case]:
    from ..study.studies import accuracy

    def factory(label, dtype):
        extra = {"warn": False} if label.startswith("finite_diff") else {}
        return lambda: accuracy.method(label, dtype=dtype, **extra)

    methods = [(label, dtype, accuracy.device(label), factory(label, dtype))
               for label in with_devices(grid.methods, devices) for dtype in grid.dtypes
               if not (label.startswith("symbolic") and dtype != "float64")]  # symbolic evaluates in float64 only
    for activation in grid.activations:
        for loss in grid.losses:
            for reg in grid.regs:
                for seed in grid.seeds:
                    p = accuracy.problem(hidden=grid.hidden, activation=activation, loss=loss, reg=reg,
                                         batch=grid.batch, seed=seed)
                    key = {"model": "MLP" + str(tuple(p.objective.model.layers)).replace(" ", ""),
                           "activation": activation, "loss": loss if reg == "none" else f"{loss}+{reg}"}
                    yield Case(key, seed, p.objective, p.theta, methods)


# ----- measuring -----
EXACT, REVERSE = "exact (certified, arb)", "reverse float64"
REFERENCES = (EXACT, REVERSE)
_LEGACY = {"exact (mpmath)": EXACT}  # what baselines written before the label was corrected say


def exact_available() -> bool:
    try:
        from ..reference import reference_gradient  # noqa: F401
    except ImportError:
        return False
    return True


def reference_for(obj: Any, theta: np.ndarray, dtype: str, reference: str) -> np.ndarray:
    """The reference gradient: exact at the point ``dtype`` sees, or reverse mode in float64."""
    if reference == EXACT:
        from ..reference import reference_gradient
        return np.asarray(reference_gradient(obj, theta, dtype=dtype).grad, dtype=np.float64)
    from ..differentiators import get_differentiator
    return get_differentiator("reverse").value_and_grad(obj)(theta).grad


def measure_grid(grid: Grid = QUICK, devices: tuple = ("cpu",), reference: str | None = None,
                 references: dict | None = None) -> tuple[list[dict], dict]:
    """One row per cell: the KEY fields, ``error`` (the worst over the grid's seeds; None unless ok) and
    ``status`` (ok, error, skipped, budget). Also returns ``{"reference", "references"}``.

    ``reference``: EXACT or REVERSE; None takes the exact one where ``diffsuite.reference`` exists.
    A comparison passes the baseline's own reference, so that errors are always compared like for like.
    ``references``: reference gradients stored with a baseline, by problem id (``{"value", "grad"}``):
    they are used instead of recomputing (the exact one takes seconds per problem), after checking
    that the problem still has the stored value; ``info["references"]`` has every one used.
    """
    from ..errors import BudgetExceeded
    reference = _LEGACY.get(reference, reference) or (EXACT if exact_available() else REVERSE)
    if reference not in REFERENCES:
        raise BaselineError(f"unknown reference {reference!r}; a baseline's reference is one of "
                            f"{', '.join(REFERENCES)}")
    stored, used = references or {}, {}
    merged: dict[tuple, dict] = {}
    for case in grid_cases(grid, devices):
        for label, dtype, device, make in case.methods:
            row = {**case.key, "dtype": dtype, "device": device, "method": label, "error": None, "status": "ok",
                   "message": ""}
            try:
                pid = problem_id(case)
                if pid not in used:
                    used[pid] = _reference(case, pid, stored.get(pid), reference)
                ref = np.asarray(used[pid]["grad"], dtype=np.float64)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # kinks and steps are part of what is measured
                    g = np.asarray(make().value_and_grad(case.objective)(case.theta).grad, dtype=np.float64)
                scale = float(np.max(np.abs(ref)))
                row["error"] = float(np.max(np.abs(g - ref))) / (scale if scale > 0 else 1.0)
                if not math.isfinite(row["error"]):
                    row["status"], row["message"] = "error", "non-finite gradient"
            except MalformedBaseline:
                raise  # the baseline file is wrong, not the method: exit 2, not a regression
            except ImportError as e:
                missing = optional_missing(e)
                if missing is not None:  # an optional backend (torch, symengine, ...) absent: not a regression
                    row["status"], row["message"] = "skipped", f"needs {missing}: {str(e).splitlines()[0]}"
                else:  # diffsuite's own import broken (a typo, a removed name): a failure, never "not measured"
                    row["status"], row["message"] = "error", f"{type(e).__name__}: {str(e).splitlines()[0]}"
            except BudgetExceeded as e:
                row["status"], row["message"] = "budget", str(e)
            except Exception as e:  # noqa: BLE001 - recorded, and a regression if the baseline had a number
                row["status"], row["message"] = "error", f"{type(e).__name__}: {e}"
            k = tuple(str(row[f]) for f in KEY)
            merged[k] = _worse(merged[k], row) if k in merged else row
    return list(merged.values()), {"reference": reference, "references": used}


#: import names of the optional dependencies (pyproject's extras) whose absence makes a cell "not measured":
#: a ModuleNotFoundError naming one of them (or diffsuite's MissingDependency) is skipped; any other ImportError
#: (a typo in diffsuite's own imports, a missing name, a required package) fails the check.
OPTIONAL_PACKAGES = frozenset({"torch", "symengine", "jax", "jaxlib", "autograd", "numdifftools", "sklearn", "dask",
                               "distributed", "cupy"})


def optional_missing(e: BaseException) -> str | None:
    """The optional package whose absence ``e`` reports, else None (then it is a failure, not a skip)."""
    from ..errors import MissingDependency
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, MissingDependency):
            return e.package
        if type(e) is ModuleNotFoundError and e.name and e.name.split(".")[0] in OPTIONAL_PACKAGES:
            return e.name.split(".")[0]
        e = e.__cause__ or e.__context__
    return None


def problem_id(case: Case) -> str:
    return f"{case.key['model']} {case.key['activation']} {case.key['loss']} seed={case.seed}"


def _reference(case: Case, pid: str, stored: dict | None, reference: str) -> dict:
    """``{"value", "grad"}``: the stored reference if the problem still has its value, else computed afresh."""
    value = case.objective.value(case.theta)
    if stored is not None and len(stored["grad"]) != case.theta.size:
        raise MalformedBaseline(f"the stored reference gradient of {pid} has {len(stored['grad'])} entries; the "
                                f"problem has {case.theta.size} parameters")
    if stored is not None:
        if not math.isclose(value, stored["value"], rel_tol=1e-12, abs_tol=1e-300):
            raise BaselineError(f"the problem {pid} changed since the baseline was written: its loss is {value!r}, "
                                f"the baseline's {stored['value']!r}; if that is intended, regenerate the baseline "
                                "with --update")
        return stored
    if reference == EXACT and not exact_available():
        raise BaselineError(f"the baseline has no stored reference for {pid} and diffsuite.reference is not "
                            "available here to compute the exact one")
    # the study's problems are float32-exact points: one reference (float64) serves both dtypes
    return {"value": value, "grad": [float(x) for x in reference_for(case.objective, case.theta, "float64", reference)]}


def _worse(a: dict, b: dict) -> dict:
    """Of two seeds' rows for one cell: a failure first, else the larger error."""
    rank = {"error": 0, "budget": 1, "skipped": 2, "ok": 3}
    if rank[a["status"]] != rank[b["status"]]:
        return a if rank[a["status"]] < rank[b["status"]] else b
    return b if a["status"] == "ok" and b["error"] > a["error"] else a


def cell_id(row: dict) -> str:
    return " ".join(str(row[k]) for k in KEY)


# ----- the file -----
class MalformedBaseline(BaselineError):
    """The baseline file cannot describe the grid measured here (e.g. a stored gradient of the wrong length)."""


def load_baseline(path: str | Path) -> dict:
    """The baseline as a dict with ``cells`` keyed by the KEY tuple; BaselineError saying what is wrong."""
    path = Path(path)
    fix = f"regenerate it with: diffsuite check --baseline {path} --update"
    if not path.exists():
        raise BaselineError(f"baseline file {path} does not exist. The committed baselines come with a source checkout "
                            "of diffsuite (its baselines/ folder): pass --baseline PATH to one; or record this "
                            f"installation's own with: diffsuite check --baseline {path} --update (add --quick for the "
                            "quick grid), against which later versions are then checked")
    if path.is_dir():
        raise BaselineError(f"baseline {path} is a folder; give the baseline's JSON file, e.g. "
                            f"{path / 'accuracy_quick.json'}")
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise BaselineError(f"cannot read the baseline file {path}: {e.strerror}; check its permissions") from None
    except UnicodeDecodeError as e:
        raise BaselineError(f"baseline file {path} is not text ({e}); {fix}") from None
    except json.JSONDecodeError as e:
        raise BaselineError(f"baseline file {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                            f"{fix}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BaselineError(f"baseline file {path} is not a diffsuite accuracy baseline (it needs \"format\": "
                            f"\"{FORMAT}\" at the top level); {fix}")
    if data.get("version") != VERSION:
        raise BaselineError(f"baseline file {path} has version {data.get('version')!r}; this diffsuite reads version "
                            f"{VERSION}; {fix}")
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise BaselineError(f"baseline file {path} needs a \"cells\" list; got {type(cells).__name__}; {fix}")
    keyed = {}
    for i, c in enumerate(cells):
        missing = [k for k in (*KEY, "error") if not isinstance(c, dict) or k not in c]
        if missing:
            raise BaselineError(f"baseline file {path}: cell #{i} lacks {', '.join(missing)} (every cell needs "
                                f"{', '.join(KEY)} and error); {fix}")
        err = c["error"]
        if err is not None and not (isinstance(err, (int, float)) and not isinstance(err, bool) and err >= 0
                                    and math.isfinite(err)):
            raise BaselineError(f"baseline file {path}: cell #{i} ({cell_id(c)}) has error {err!r}; it must be a "
                                f"finite number >= 0 or null; {fix}")
        k = tuple(str(c[f]) for f in KEY)
        if k in keyed:
            raise BaselineError(f"baseline file {path}: cell #{i} ({cell_id(c)}) appears twice; {fix}")
        keyed[k] = c
    refs = data.get("references", {})
    if not isinstance(refs, dict) or not all(
            isinstance(r, dict) and isinstance(r.get("value"), (int, float)) and isinstance(r.get("grad"), list)
            and all(isinstance(x, (int, float)) for x in r["grad"]) for r in refs.values()):
        raise BaselineError(f"baseline file {path}: \"references\" must map problem ids to {{\"value\": number, "
                            f"\"grad\": [numbers]}}; {fix}")
    return {**data, "cells": keyed, "references": refs}


def baseline_document(rows: list[dict], info: dict, grid_name: str) -> dict:
    """The baseline file's content: the cells measured (``ok``) and those carried over from the old baseline
    (``carried``, see ``carry_over``)."""
    from .. import __version__
    cells = sorted(({**{k: r[k] for k in KEY}, "error": r["error"]} for r in rows if r["status"] in ("ok", CARRIED)),
                   key=lambda c: tuple(str(c[k]) for k in KEY))
    return {"format": FORMAT, "version": VERSION, "grid": grid_name, "metric": METRIC,
            "reference": info["reference"], "references": dict(sorted(info["references"].items())),
            "written_by": f"diffsuite {__version__}, numpy {np.__version__}", "cells": cells}


CARRIED = "carried"  # the status of a cell --update keeps from the old baseline (not measured here)


def carry_over(old: dict | None, rows: list[dict], info: dict, grid_name: str,
               skipped_methods: dict[str, str] | None = None) -> tuple[list[dict], str]:
    """The old baseline's cells that this ``--update`` could not measure because something they need is not here,
    as rows with status ``carried`` (their old error), so that a baseline written on a machine without torch keeps
    torch's cells instead of silently losing them (and later checks checking them).

    Cells not measured here: rows ``skipped`` (a missing optional package), and the old baseline's cells of a
    method in ``skipped_methods`` (``{label: why}``: ``--device all`` without a GPU). Each is carried only while
    it still means the same: the old baseline is for the same grid and reference, and every problem of the cell
    still has the loss value the old baseline stored for it. Returns the carried rows and, when cells that could
    have been carried were not, why (else "")."""
    skipped_methods = skipped_methods or {}
    unmeasured = {tuple(str(r[f]) for f in KEY): r["message"] for r in rows if r["status"] == "skipped"}
    if old is not None:
        unmeasured.update({k: f"not measured here: {skipped_methods[c['method']]}" for k, c in old["cells"].items()
                           if c["method"] in skipped_methods and k not in unmeasured})
    candidates = {k: why for k, why in unmeasured.items() if old is not None and k in old["cells"]}
    if not candidates:
        return [], ""
    if old.get("grid") not in (None, grid_name):
        return [], f"the old baseline was written for the {old.get('grid')} grid"
    old_reference = _LEGACY.get(old.get("reference"), old.get("reference"))
    if old_reference != info["reference"]:
        return [], (f"the old baseline's errors are against another reference ({old_reference}; this run's: "
                    f"{info['reference']})")
    carried, changed = [], []
    for k, why in candidates.items():
        cell = old["cells"][k]
        if _same_problems(cell, old.get("references") or {}, info["references"]):
            carried.append({**{f: cell[f] for f in KEY}, "error": cell["error"], "status": CARRIED, "message": why})
        else:
            changed.append(cell_id(cell))
    why_not = (f"{len(changed)} cell(s) not carried over because their problem changed since the old baseline was "
               f"written (e.g. {changed[0]})" if changed else "")
    return carried, why_not


def _same_problems(cell: dict, old_refs: dict, new_refs: dict) -> bool:
    """Whether every problem of ``cell`` (its model, activation and loss, any seed) measured now has a reference in
    the old baseline with the same loss value: then its old error still describes it."""
    prefix = f"{cell['model']} {cell['activation']} {cell['loss']} seed="
    pids = [pid for pid in new_refs if pid.startswith(prefix)]
    return bool(pids) and all(pid in old_refs and math.isclose(new_refs[pid]["value"], old_refs[pid]["value"],
                                                                rel_tol=1e-12, abs_tol=1e-300) for pid in pids)


def require_writable(path: str | Path) -> None:
    """A BaselineError, before minutes of measuring, when --update could not write ``path``: a folder; an existing
    read-only file (``os.replace`` would replace it, ignoring its mode; checked by mode bits too, since root may
    write anything); a file where a folder of the path should be; or a folder that cannot be created or written
    (tried: the folder is created if missing, and a temporary file is written there and removed)."""
    path = Path(path)
    elsewhere = "or write the baseline elsewhere (--baseline FILE)"
    if path.is_dir():
        raise BaselineError(f"cannot write the baseline to {path}: it is a folder; give a file name, e.g. "
                            f"{path / 'accuracy_quick.json'}")
    if path.is_file() and (not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222):
        raise BaselineError(f"the baseline {path} is read-only; not replacing it. Make it writable (chmod u+w "
                            f"{path}) if you mean to update it, {elsewhere}")
    folder = path.parent
    for above in (folder, *folder.parents):  # the nearest part of the path that exists must be a folder
        if above.exists() or above.is_symlink():
            if not above.is_dir():
                raise BaselineError(f"cannot create the folder {folder} for the baseline {path}: {above} is a file, "
                                    f"not a folder (a file is in the way); move that file away, {elsewhere}")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BaselineError(f"cannot create the folder {folder} for the baseline {path}: {e.strerror or e}; "
                            f"{elsewhere}") from None
    probe = folder / f".{path.name}.{os.getpid()}.probe"
    try:
        f = open(probe, "xb")
    except OSError as e:
        raise BaselineError(f"cannot write the baseline {path}: the folder {folder} is not writable "
                            f"({e.strerror or e}); {elsewhere}") from None
    try:
        with f:
            f.write(b"{}")
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def write_baseline(path: str | Path, document: dict) -> Path:
    """Write atomically (a reader never sees half a file)."""
    path = Path(path)
    require_writable(path)  # (again: the folder may have changed while the grid was measured)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    head = {k: v for k, v in document.items() if k not in ("cells", "references")}
    lines = [json.dumps(head, indent=1)[:-2] + ',\n "references": {']  # one problem, one cell per line
    refs = list(document.get("references", {}).items())
    lines += [f" {json.dumps(k)}: {json.dumps(v)}" + ("," if i < len(refs) - 1 else "")
              for i, (k, v) in enumerate(refs)]
    lines += [' },', ' "cells": [']
    cells = document["cells"]
    lines += [" " + json.dumps(c) + ("," if i < len(cells) - 1 else "") for i, c in enumerate(cells)]
    try:
        tmp.write_text("\n".join(lines) + "\n ]\n}\n")
        os.replace(tmp, path)
    except OSError as e:
        raise BaselineError(f"cannot write the baseline {path}: {e.strerror}; write it somewhere you can write to "
                            "(--baseline FILE)") from None
    finally:  # no half-written temporary left behind, also on Ctrl-C (KeyboardInterrupt) during the write
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


# ----- the comparison -----
def floor(dtype: str) -> float:
    return FLOOR_EPS * float(np.finfo(np.float32 if dtype == "float32" else np.float64).eps)


@dataclass
class Comparison:
    regressions: list[dict]  # KEY fields + baseline, error, ratio, why
    improved: list[dict]
    new: list[dict]          # measured, not in the baseline (or in it without a figure: error null)
    unmeasured: list[dict]   # baseline cells not measured now: skipped (optional backend missing), or absent from
    #                          the grid measured (status "absent")
    n_compared: int
    broken: list[dict] = field(default_factory=list)  # cells that raise now and are not in the baseline

    @property
    def ok(self) -> bool:
        return not self.regressions and not self.broken


def compare(baseline: dict, rows: list[dict], factor: float = DEFAULT_FACTOR) -> Comparison:
    cells = baseline["cells"]
    regressions, improved, new, unmeasured, broken, n = [], [], [], [], [], 0
    measured = {tuple(str(r[f]) for f in KEY) for r in rows}
    # a baseline cell this grid does not produce at all (a device or method gone from it) is not measured either
    unmeasured += [{**dict(zip(KEY, k)), "status": "absent", "error": None, "message": "not in the grid measured here"}
                   for k in cells if k not in measured]
    for r in rows:
        k = tuple(str(r[f]) for f in KEY)
        base = cells.get(k)
        if base is None:
            if r["status"] == "ok":
                new.append(r)
            elif r["status"] == "error":  # raises now (e.g. a broken import): a failure whether recorded or not
                broken.append({**r, "baseline": math.nan, "ratio": math.inf, "why": f"error: {r['message']}"})
            continue
        if r["status"] == "skipped":
            unmeasured.append(r)
            continue
        b = base["error"]
        if b is None:  # the baseline has no figure for this cell: nothing to compare (it is not counted as compared)
            if r["status"] == "ok":
                new.append(r)
            elif r["status"] == "error":
                broken.append({**r, "baseline": math.nan, "ratio": math.inf, "why": f"error: {r['message']}"})
            continue
        n += 1
        if r["status"] != "ok":
            regressions.append({**r, "baseline": b, "ratio": math.inf, "why": f"{r['status']}: {r['message']}"})
            continue
        limit = factor * max(b, floor(r["dtype"]))
        ratio = r["error"] / max(b, floor(r["dtype"]))
        if r["error"] > limit:
            regressions.append({**r, "baseline": b, "ratio": ratio, "why": f"> {factor:g} x baseline"})
        elif r["error"] * factor < b and b > floor(r["dtype"]):
            improved.append({**r, "baseline": b, "ratio": ratio})
    return Comparison(regressions, improved, new, unmeasured, n, broken)


def format_table(entries: list[dict], with_why: bool = True) -> str:
    cols = [*KEY, "baseline", "now", "ratio"] + (["why"] if with_why else [])

    def fmt(e: dict, c: str) -> str:
        if c == "now":
            return "-" if e.get("error") is None else f"{e['error']:.3e}"
        if c == "baseline":
            return "-" if e.get("baseline") is None or math.isnan(e["baseline"]) else f"{e['baseline']:.3e}"
        if c == "ratio":
            return "inf" if e["ratio"] == math.inf else f"{e['ratio']:.3g}"
        return str(e[c])

    table = [cols] + [[fmt(e, c) for c in cols] for e in entries]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in table)
