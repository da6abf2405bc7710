"""The result store: one JSON line per finished cell, appended and fsynced at once.

``results.jsonl`` is the only file measurements are written to. Each line is one cell,
``{"cell": <stable id>, "rows": [<tidy row>, ...]}``, written with a single ``write`` of the whole
line, flushed and fsynced before the next cell starts. So:

- a study interrupted anywhere (Ctrl-C, ``kill -9``, power loss) loses at most the cell in flight;
- the only damage a kill can do is a last line without its newline; reading ignores it and the next
  ``open`` for writing cuts it off, so the file is always a sequence of complete cells;
- a rerun reads the cell ids already present and measures only the others (``done``).

The tidy table (``table()``, a pandas DataFrame with one row per measurement) and ``results.csv``
are derived from the lines; the CSV is written to a temporary file and renamed into place, so a
reader never sees half of it. One process writes a store at a time (an advisory lock says so).
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..errors import StudyError, user_stacklevel
from .status import needs_rerun

RESULTS = "results.jsonl"
TABLE = "results.csv"
LOCK = ".lock"
MAX_MESSAGE = 300  # characters of an error message kept in a row


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (set, tuple)):
        return list(x)
    if isinstance(x, Path):
        return str(x)
    return str(x)


def dumps(obj: Any, sort_keys: bool = False) -> str:
    """JSON with numpy scalars converted; NaN and inf kept (Python's json reads them back). Key order is
    kept by default, so a row's columns stay in the order it was built: the cell's parameters first."""
    return json.dumps(obj, default=_jsonable, sort_keys=sort_keys, allow_nan=True)


class StoreError(StudyError):
    """The results folder cannot be used: busy (another writer holds it) or not writable. One line: what, where,
    what to do."""


def read_cells(path: Path) -> dict[str, list[dict]]:
    """``{cell id: rows}`` from a results file: its lines, and a last line without its newline only if it is a
    whole cell (a torn one, cut by a kill mid-write, is ignored with a warning).

    A line that is not a cell (not JSON, no ``cell``, or ``rows`` not a list of objects, e.g. edited by hand)
    is skipped with a warning naming its line number: that cell counts as not done and is measured again."""
    path = Path(path)
    if not path.exists():
        return {}
    data = path.read_bytes()
    cells, bad = _parse(data)
    tail = data.rsplit(b"\n", 1)[-1]
    if tail.strip() and _cell(tail) is None:
        warnings.warn(f"{path}: its last line is incomplete (a run stopped while writing it) and ignored: a run "
                      "measures that cell again", StoreWarning, stacklevel=user_stacklevel())
    if bad:
        warnings.warn(f"{path}: line{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad[:10]))} "
                      f"{'are' if len(bad) > 1 else 'is'} not a stored cell (not JSON, or \"rows\" not a list of "
                      "objects) and skipped: a run measures those cells again", StoreWarning,
                      stacklevel=user_stacklevel())
    return cells


def _cell(line: bytes) -> tuple[str, list[dict]] | None:
    """(cell id, rows) of one stored line, or None where it is not a cell (not JSON, no ``cell``, bad ``rows``)."""
    try:
        rec = json.loads(line)
        rows = rec["rows"]
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            return str(rec["cell"]), rows
    except (ValueError, KeyError, TypeError):
        pass
    return None


def _parse(data: bytes) -> tuple[dict[str, list[dict]], list[int]]:
    """(cells, the numbers of the complete lines that are not cells), from a file's bytes. A last line without its
    newline counts only as a whole cell (a torn one is neither a cell nor a bad line: see ``read_cells``)."""
    cells: dict[str, list[dict]] = {}
    bad = []
    *lines, tail = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        found = _cell(line)
        if found is None:
            bad.append(number)  # unreadable line: that cell counts as not done and is measured again
        else:
            cells[found[0]] = found[1]
    found = _cell(tail) if tail.strip() else None
    if found is not None:
        cells[found[0]] = found[1]
    return cells, bad


#: where a writing run moves the lines of results.jsonl that are not cells (kept, not deleted)
DAMAGED = "results.damaged.jsonl"


def _append_durably(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class StoreWarning(UserWarning):
    """A results file holds lines that are not cells (edited or damaged); they are skipped."""


class ResultStore:
    """The results of one study in ``directory``: ``append(cell_id, rows)``, ``done``, ``table()``."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self.path = self.directory / RESULTS
        self._cells = read_cells(self.path)
        self._fh = None
        self._lock = None

    # ----- reading -----
    @property
    def done(self) -> set[str]:
        return set(self._cells)

    @property
    def finished(self) -> set[str]:
        """Cells that need no rerun: stored, not failed as a whole (``cell_failed``) and with no row ``unavailable``
        for a package that is installed now (``status.needs_rerun``)."""
        return {cid for cid, rows in self._cells.items() if not needs_rerun(rows)}

    def cells(self) -> dict[str, list[dict]]:
        return dict(self._cells)

    def table(self) -> pd.DataFrame:
        """One row per measurement, in the order cells finished; column ``cell`` names the cell."""
        rows = [{"cell": cid, **row} for cid, rs in self._cells.items() for row in rs]
        return pd.DataFrame(rows)

    # ----- writing -----
    def open(self) -> "ResultStore":
        """Take the write lock, remove temporary files that killed processes left, repair a torn last line;
        then ``append`` may be called. ``StoreError`` (one line) when the folder is busy or not writable."""
        make_folder(self.directory, inside=True)
        self._lock = _acquire_lock(self.directory / LOCK)
        remove_stale_temporaries(self.directory)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):  # a kill mid-write
                keep = data.rfind(b"\n") + 1
                tail = data[keep:]
                if _cell(tail) is not None:  # a whole cell without its newline: give it one
                    with open(self.path, "ab") as f:
                        f.write(b"\n")
                        f.flush()
                        os.fsync(f.fileno())
                    data += b"\n"
                else:  # a torn line: kept in the damaged file, then cut off
                    if tail.strip():
                        _append_durably(self.directory / DAMAGED, tail + b"\n")
                    with open(self.path, "r+b") as f:
                        f.truncate(keep)
                        f.flush()
                        os.fsync(f.fileno())
                    data = data[:keep]
            self._set_aside_damaged(data)
        self._fh = open(self.path, "ab")
        return self

    def _set_aside_damaged(self, data: bytes) -> None:
        """Lines that are not cells (edited or damaged) are appended to ``results.damaged.jsonl`` and removed from
        ``results.jsonl`` (the rest rewritten atomically): kept, and no longer warned about at every later read,
        after their cells have been measured again."""
        _, bad = _parse(data)
        if not bad:
            return
        lines = data.split(b"\n")
        damaged = set(bad)
        # (a crash between this append and the rewrite below leaves the lines in both files: repeated, not lost)
        _append_durably(self.directory / DAMAGED, b"".join(lines[i - 1] + b"\n" for i in bad))
        kept = b"".join(line + b"\n" for i, line in enumerate(lines[:-1], 1) if i not in damaged)
        tmp = _tmp(self.path)
        with open(tmp, "wb") as f:
            f.write(kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        warnings.warn(f"{self.path}: line{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad[:10]))} "
                      f"{'were' if len(bad) > 1 else 'was'} not a stored cell: moved to {DAMAGED} in the same "
                      "folder; this run measures those cells again", StoreWarning, stacklevel=user_stacklevel())

    def append(self, cell_id: str, rows: Iterable[dict]) -> None:
        """Write one finished cell durably (one line, flushed and fsynced) before returning."""
        if self._fh is None:
            raise RuntimeError("ResultStore.append needs open() first (it takes the write lock)")
        rows = [_clean_row(r) for r in rows]
        line = (dumps({"cell": cell_id, "rows": rows}) + "\n").encode()
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._cells[cell_id] = json.loads(line)["rows"]

    def move_aside(self, tag: str, companions: tuple[str, ...] = ()) -> list[Path]:
        """Rename ``results.jsonl`` to ``results.<tag>.jsonl`` in the same folder, and each existing file
        named in ``companions`` (e.g. ``meta.json``) to ``<stem>.<tag>.<suffix>``, then go on with an empty
        store. A backup is never overwritten: ``.<tag>.1``, ``.<tag>.2``, ... when one exists already.
        Returns the backups written, results first.

        Used when a study's configuration changed: the results already written are kept, not deleted."""
        sources = [self.path] + [self.directory / c for c in companions]

        def named(src: Path, n: int) -> Path:
            return src.with_name(f"{src.stem}.{tag}{'' if n == 0 else f'.{n}'}{src.suffix}")

        n = 0
        while any(named(src, n).exists() for src in sources):
            n += 1
        reopen = self._fh is not None
        if reopen:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        moved = []
        for src in sources:
            if src.exists():
                os.replace(src, named(src, n))
                moved.append(named(src, n))
        if reopen:
            self._fh = open(self.path, "ab")
        self._cells = {}
        return moved

    def clear(self) -> None:
        """Forget every result (used when a study's configuration changed)."""
        if self._fh is not None:
            self._fh.truncate(0)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        elif self.path.exists():
            self.path.unlink()
        self._cells = {}

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._lock is not None:
            _release_lock(self._lock)
            self._lock = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def write_table(self) -> Path:
        """Derive ``results.csv`` from the lines, atomically (temporary file, then rename)."""
        return write_atomic_csv(self.table(), self.directory / TABLE)


_ROOT = str(Path(__file__).resolve().parents[2]) + os.sep
_PREFIX = sys.prefix + os.sep


def scrub(text: str) -> str:
    """A message without this machine's paths (the source tree and the environment become relative)."""
    return text.replace(_ROOT, "").replace(_PREFIX, "<env>" + os.sep)


def _clean_row(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, str):
            v = scrub(v)
            if k == "message" and len(v) > MAX_MESSAGE:
                v = v[:MAX_MESSAGE - 3] + "..."
        if isinstance(v, float) and math.isnan(v):
            v = None
        out[str(k)] = v
    return out


def _tmp(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per process: no two writers share one


_TEMPORARY = re.compile(r".+\.(\d+)\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete ``<name>.<pid>.tmp`` files in ``directory`` whose process is gone (a kill between writing and
    renaming leaves one); a live process's temporary is left alone. Returns the files removed."""
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for f in entries:
        m = _TEMPORARY.fullmatch(f.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                f.unlink()
                removed.append(f)
            except OSError:
                pass
    return removed


def make_folder(directory: Path, option: str = "--out", *, inside: bool = False) -> Path:
    """``directory`` created if missing, or a ``StoreError`` saying what is wrong there and what to do (a file
    in the way, no permission, a read-only file system). ``inside``: ``directory`` is a folder diffsuite makes
    inside the one ``option`` named (a study's), so a file there is moved, not ``option`` changed."""
    directory = Path(directory)
    for parent in (directory, *directory.parents):
        if parent.exists() and not parent.is_dir():
            fix = (f"give {option} a folder (it is created if missing)" if parent == directory and not inside
                   else f"move or remove the file {parent}, or give {option} another folder")
            raise StoreError(f"cannot use {directory} for results: {parent} is a file, not a folder; {fix}")
        if parent.exists():
            break
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the results folder {directory}: {e.strerror or e}; give {option} a folder "
                         "you can write to") from None
    return directory


def environment_error(e: OSError, option: str = "--out") -> StoreError:
    """An ``OSError`` from writing results or reports as one line: what failed, where, what to do."""
    where = e.filename or "the results folder"
    hint = {errno.EACCES: "you may not write there", errno.EPERM: "you may not write there",
            errno.EROFS: "the file system is read-only", errno.ENOSPC: "the disk is full"}.get(e.errno, "")
    return StoreError(f"cannot write {where}: {e.strerror or e}{f' ({hint})' if hint else ''}; give {option} a "
                      "folder you can write to")


def write_atomic_csv(df: pd.DataFrame, path: Path) -> Path:
    return write_atomic_text(path, df.to_csv(index=False, lineterminator="\n"))


def write_atomic_text(path: Path, text: str | bytes) -> Path:
    """Write to ``<path>.<pid>.tmp``, fsync, rename into place: a reader sees the old file or the new one. A kill
    in between leaves the temporary, which the next ``ResultStore.open`` removes; an error removes it at once."""
    path = Path(path)
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return path


class StoreBusy(StoreError, RuntimeError):
    """Another process holds the results folder's write lock."""


def _acquire_lock(path: Path):
    """An exclusive advisory lock on ``path``, held by the returned open file.

    The lock file is removed on release (no stray file among the results) while still locked, so a waiting
    process may have opened the old, now unlinked, file: after locking, the holder checks that the file it
    locked is still the one at ``path`` and otherwise tries again. So exactly one process holds the lock of
    ``path`` under any interleaving of open, lock, unlink and close."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory lock, single-writer by convention
        return open(path, "a")
    while True:
        try:
            fh = open(path, "a")
        except OSError as e:
            raise environment_error(e) from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise StoreBusy(f"another diffsuite process is writing the results in {path.parent}; wait for it to "
                            "finish (or stop it), or give this run another --out folder") from None
        try:
            same = os.path.samestat(os.fstat(fh.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fh
        fh.close()  # we locked a file its holder unlinked on release: lock the one at the path now


def _release_lock(fh) -> None:
    try:
        os.unlink(fh.name)  # while still locked: see _acquire_lock
    except OSError:
        pass
    fh.close()
