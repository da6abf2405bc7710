"""Study configurations as data: TOML files that set the fields of a study's ``Config``.

A configuration file names its study and sets any of the fields of that study's ``Config`` dataclass
(the grid: widths, depths, activations, losses, methods, steps, seeds, budgets, ...); a field left out
keeps its value from the *base* grid, ``full`` (``Config()``) unless ``base = "quick"``::

    study = "accuracy"          # required: the study this file configures
    base = "quick"              # optional: "full" (default) or "quick"
    activations = ["tanh", "relu", "elu"]
    seeds = [0, 1, 2, 3]

Every study ships two files, ``configs/<study>.quick.toml`` and ``configs/<study>.full.toml``
(``diffsuite list --config STUDY`` prints them): ``diffsuite run --quick`` runs the first, a plain run
the second, ``diffsuite run STUDY --config FILE`` a file of the user's. Keys are checked against the
dataclass: an unknown key is an error naming it and listing the valid ones, a value of the wrong type
an error naming the key, the type wanted and the value given, and a value the study cannot use (an unknown
activation, scheme, method or loss; a size, depth, width or count out of range) an error naming the key and
listing what is allowed: each study's ``validate(config)`` checks its values with the helpers below
(``names``, ``ints``, ``number``, ...), before any output folder is created or anything is measured. The configuration's hash (``meta.json``)
is the hash of the resulting dataclass, so a file that sets the same grid as ``--quick`` resumes its
results, and any change of grid starts afresh (the old results moved aside, as always).

``devices`` is not a key: ``--device`` sets it.
"""
from __future__ import annotations

import sys
import types
import typing
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import StudyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the same parser as a package (pip install tomli)
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

CONFIGS = Path(__file__).resolve().parent / "configs"
GRIDS = ("quick", "full")
RESERVED = ("study", "base")  # keys of the file that are not fields of Config
SET_BY_OPTIONS = ("devices",)  # fields the command line sets (--device)


def shipped_path(study: str, grid: str) -> Path:
    """``configs/<study>.<grid>.toml`` inside the package (``grid``: quick or full)."""
    return CONFIGS / f"{study}.{grid}.toml"


def base_config(module, grid: str):
    """The grid as the study's code defines it: ``Config()`` (full) or ``Config().quick()``."""
    config = module.Config()
    return config.quick() if grid == "quick" else config


def settable(config) -> list[str]:
    return [f.name for f in fields(config) if f.name not in SET_BY_OPTIONS]


def load(study: str, module, *, path: str | Path | None = None, quick: bool = False):
    """The ``Config`` a run measures: from ``path`` when given, else the shipped quick or full file (or, for a
    study that ships none, its code's grid)."""
    if path is None:
        shipped = shipped_path(study, "quick" if quick else "full")
        if not shipped.exists() or tomllib is None:  # the files equal the code's grids (a test checks)
            return validate(module, base_config(module, "quick" if quick else "full"), f"study {study}")
        path = shipped
    return from_mapping(study, module, read_toml(path), source=str(path))


def grid_of(path: str | Path) -> str:
    """The base grid a configuration file starts from: ``"quick"`` or ``"full"`` (its key ``base``), so that a
    file with ``base = "quick"`` is run, reported and stored like ``--quick``."""
    grid = read_toml(path).get("base", "full")
    return grid if grid in GRIDS else "full"  # a bad value is from_mapping's error, with its message


def validate(module, config, source: str):
    """``config`` after the study's own ``validate(config)`` (values in range, names known); a bad value is a
    StudyError naming ``source``, the key, what is allowed and what was given."""
    check = getattr(module, "validate", None)
    if check is not None:
        try:
            check(config)
        except (TypeError, ValueError) as e:
            raise StudyError(f"{source}: {e}") from None
    return config


def read_toml(path: str | Path) -> dict:
    if tomllib is None:  # pragma: no cover
        raise StudyError("reading a TOML configuration on Python 3.10 needs tomli: pip install tomli")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise StudyError(f"configuration file {path} does not exist; `diffsuite list --config STUDY` prints "
                         "a study's shipped configurations to start from") from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"configuration file {path} is not valid TOML: {e}") from None
    except OSError as e:  # a folder, no permission: reading --config failed (not writing --out, as the CLI's
        #                   generic OSError message would say)
        what = "it is a folder; give the TOML file" if Path(path).is_dir() else e.strerror or str(e)
        raise StudyError(f"cannot read the configuration file (--config) {path}: {what}; `diffsuite list --config "
                         "STUDY` prints a study's shipped configurations to start from") from None
    except UnicodeDecodeError as e:
        raise StudyError(f"configuration file {path} is not text (UTF-8): {e}") from None


def from_mapping(study: str, module, data: dict, source: str = "the configuration"):
    """Validate ``data`` (a parsed TOML document) against the study's ``Config`` and build it."""
    named = data.get("study")
    if named is None:
        raise StudyError(f"{source}: the key 'study' is missing; add study = \"{study}\" (the study it configures)")
    if named != study:
        raise StudyError(f"{source} configures study {named!r}, not {study!r}; run it as `diffsuite run {named} "
                         f"--config {source}`, or change its key study")
    grid = data.get("base", "full")
    if grid not in GRIDS:
        raise StudyError(f"{source}: base must be \"quick\" or \"full\" (the grid whose values the keys left out "
                         f"keep); got {grid!r}")
    config = base_config(module, grid)
    valid = settable(config)
    unknown = [k for k in data if k not in valid and k not in RESERVED]
    if unknown:
        also = " (--device sets devices)" if "devices" in unknown else ""
        raise StudyError(f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                         f"for study {study}{also}; the valid keys are {', '.join(RESERVED + tuple(valid))}")
    hints = typing.get_type_hints(type(config))
    values = {k: coerce(v, hints.get(k, Any), f"{source}: {k}") for k, v in data.items() if k not in RESERVED}
    try:
        config = replace(config, **values)
    except (TypeError, ValueError) as e:  # a Config that checks its fields in __post_init__
        raise StudyError(f"{source}: {e}") from None
    return validate(module, config, source)


def _name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` (from TOML) as the type ``hint`` names: lists become tuples, an int may stand for a float;
    anything else of the wrong type is a StudyError naming ``where``, the type wanted and the value."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return tuple(value) if isinstance(value, list) else value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return coerce(value, option, where)
            except StudyError as e:
                errors.append(str(e))
        raise StudyError(f"{where} must be {' or '.join(_name(a) for a in args if a is not type(None))}; "
                         f"got {value!r}")
    if origin is tuple:
        if not isinstance(value, list):
            raise StudyError(f"{where} must be a list (e.g. [{_example(args[0] if args else Any)}]); got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise StudyError(f"{where} must be a list of {len(args)} values; got {value!r}")
        return tuple(coerce(v, a, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args or [Any] * len(value), value)))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise StudyError(f"{where} must be true or false; got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise StudyError(f"{where} must be a whole number; got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise StudyError(f"{where} must be a number; got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise StudyError(f"{where} must be a string; got {value!r}")
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise StudyError(f"{where} has type {_name(hint)}, which a configuration file cannot set; got {value!r}")


def _example(hint) -> str:
    return {int: "1, 2", float: "0.5, 1.0", str: '"a", "b"', bool: "true, false"}.get(hint, "...")


# ----- values: the helpers each study's ``validate(config)`` uses (each raises StudyError naming the key) -----
def distinct(key: str, values) -> None:
    """No entry of a grid's list repeats: a repeated one would be measured and counted twice (or clash as a cell)."""
    seen = set()
    for i, v in enumerate(values):
        if v in seen:
            raise StudyError(f"{key} lists {_toml_value(v)} twice (entry {i} "
                             "repeats an earlier one); a grid measures each value once: remove the repeat")
        seen.add(v)


def names(key: str, values, valid, *, empty: bool = False, hint: str = "") -> None:
    """Every entry of ``values`` (a tuple, or one string) is one of ``valid``, none twice; at least one unless
    ``empty``."""
    values = (values,) if isinstance(values, str) else tuple(values)
    distinct(key, values)
    unknown = [v for v in values if v not in valid]
    if unknown:
        raise StudyError(f"{key}: unknown {', '.join(map(repr, unknown))}; the valid values are "
                         f"{', '.join(map(str, valid))}{hint}")
    if not values and not empty:
        raise StudyError(f"{key} is empty: it needs at least one of {', '.join(map(str, valid))}")


def ints(key: str, values, low: int, high: int | None = None, *, empty: bool = False, repeats: bool = False) -> None:
    """Every entry of ``values`` (a tuple, or one int) is a whole number in [low, high], none twice unless
    ``repeats`` (a network's widths may repeat; a grid's values may not)."""
    many = isinstance(values, (tuple, list))
    if many and not repeats:
        distinct(key, values)
    for i, v in enumerate(values if many else (values,)):
        where = f"{key}[{i}]" if many else key
        if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
            allowed = f"from {low} to {high}" if high is not None else f">= {low}"
            raise StudyError(f"{where} must be a whole number {allowed}; got {v!r}")
    if many and not values and not empty:
        raise StudyError(f"{key} is empty: it needs at least one whole number >= {low}")


def number(key: str, value, low: float = 0.0, high: float | None = None, *, open_low: bool = False,
           open_high: bool = False) -> None:
    """``value`` is a finite number in the interval (``open_low``/``open_high``: the end excluded)."""
    import math
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if open_low else value >= low)
          and (high is None or (value < high if open_high else value <= high)))
    if not ok:
        interval = (f"{'(' if open_low else '['}{low:g}, " + (f"{high:g}{')' if open_high else ']'}"
                                                            if high is not None else "inf)"))
        raise StudyError(f"{key} must be a number in {interval}; got {value!r}")


def interval(key: str, value, low: float, high: float) -> None:
    """``value`` is a pair [lo, hi] of finite numbers within [low, high], with lo <= hi."""
    lo, hi = value
    number(f"{key}[0]", lo, low, high)
    number(f"{key}[1]", hi, low, high)
    if hi < lo:
        raise StudyError(f"{key} is [low, high] with high >= low; got {_toml_value(list(value))}: swap them")


def layers(key: str, value, *, outputs: bool = True) -> None:
    """A network's widths, inputs first: at least two (with ``outputs``) positive whole numbers."""
    ints(key, value, 1, repeats=True)
    if outputs and len(value) < 2:
        raise StudyError(f"{key} needs at least two widths (inputs, ..., outputs); got {value!r}")


# ----- writing -----
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if v == v else "nan"
    if isinstance(v, str):
        import json
        return json.dumps(v)  # a TOML basic string for the names used here (JSON's escapes are TOML's)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if v is None:
        raise StudyError("a configuration value of None cannot be written to TOML; leave the key out instead")
    if is_dataclass(v):
        raise StudyError("nested dataclasses cannot be written to TOML")
    return _toml_value(str(v))


def to_toml(study: str, config, *, grid: str | None = None, question: str | None = None) -> str:
    """The TOML file that sets every field of ``config`` (``load`` of it gives ``config`` back)."""
    head = [f"# diffsuite study configuration: {study}" + (f", the {grid} grid" if grid else ""),
            *(f"# {line}" for line in _wrap(question or "")),
            f"# Every key is a field of the study's Config; a key left out keeps the base grid's value.",
            f"# Run it: diffsuite run {study} --config THIS_FILE.toml", "",
            f'study = "{study}"', f'base = "{grid or "full"}"']
    body = [f"{name} = {_toml_value(getattr(config, name))}" for name in settable(config)
            if getattr(config, name) is not None]
    return "\n".join(head + body) + "\n"


def _wrap(text: str, width: int = 100) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width - 2)


def write_shipped(studies=None) -> list[Path]:
    """(Re)write ``configs/<study>.{quick,full}.toml`` from each study's code, after changing a study's
    ``Config`` defaults or ``quick()`` (``tests/study/test_config.py`` fails until they agree)::

        python -c "from diffsuite.study.config import write_shipped; write_shipped(['accuracy'])"
    """
    from .studies import STUDIES, study_module
    CONFIGS.mkdir(exist_ok=True)
    written = []
    for name in studies or STUDIES:
        module = study_module(name)
        for grid in GRIDS:
            path = shipped_path(name, grid)
            path.write_text(to_toml(name, base_config(module, grid), grid=grid, question=module.QUESTION))
            written.append(path)
    return written

