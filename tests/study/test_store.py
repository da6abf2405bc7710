"""The result store: durable appends, torn lines, the write lock, what counts as finished, temporaries."""
import json
import warnings
import os
import subprocess
import sys

import pytest

from diffsuite.study.store import RESULTS, ResultStore, StoreBusy, StoreWarning, read_cells


def test_append_is_on_disk_before_it_returns(tmp_path):
    with ResultStore(tmp_path) as store:
        store.append("a=1", [{"x": 1.5, "status": "ok"}])
        lines = (tmp_path / RESULTS).read_text().splitlines()  # read by another handle, store still open
        assert [json.loads(line)["cell"] for line in lines] == ["a=1"]
        store.append("a=2", [{"x": 2.5, "status": "ok"}, {"x": 3.5, "status": "ok"}])
    again = ResultStore(tmp_path)
    assert again.done == {"a=1", "a=2"}
    assert list(again.table()["x"]) == [1.5, 2.5, 3.5]


def test_a_torn_last_line_is_ignored_then_cut_off(tmp_path):
    with ResultStore(tmp_path) as store:
        store.append("a=1", [{"x": 1}])
    with open(tmp_path / RESULTS, "ab") as f:  # what kill -9 in the middle of a write leaves
        f.write(b'{"cell": "a=2", "rows": [{"x"')
    with pytest.warns(StoreWarning, match="its last line is incomplete .* and ignored: a run measures that cell again"):
        assert set(read_cells(tmp_path / RESULTS)) == {"a=1"}  # (said, no longer silent: a report rebuilt after a kill)
    with pytest.warns(StoreWarning, match="last line is incomplete"), ResultStore(tmp_path) as store:
        assert store.done == {"a=1"}
        store.append("a=2", [{"x": 2}])
    lines = (tmp_path / RESULTS).read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line)["cell"] for line in lines[:-1]] == ["a=1", "a=2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cut off by the writing run: nothing more to say
        assert set(read_cells(tmp_path / RESULTS)) == {"a=1", "a=2"}


def test_lines_that_are_not_cells_are_moved_aside_by_a_writing_run(tmp_path):
    """Kept in results.damaged.jsonl, not deleted; no longer warned about at every read once their cells are
    measured again (before: every later run and report repeated 'a run measures those cells again')."""
    with ResultStore(tmp_path) as store:
        store.append("a=1", [{"x": 1}])
    damaged = b'{"cell": "a=2", "rows": "abc"}\nnot json at all\n'
    with open(tmp_path / RESULTS, "ab") as f:
        f.write(damaged)
        f.write(b'{"cell": "a=3", "rows": [{"x": 3}]}\n')
    with pytest.warns(StoreWarning) as said:
        with ResultStore(tmp_path) as store:  # reading warns as before; opening to write moves the lines
            assert store.done == {"a=1", "a=3"}
            store.append("a=2", [{"x": 2}])
    assert [str(w.message).split(": ", 1)[1] for w in said] == [
        'lines 2, 3 are not a stored cell (not JSON, or "rows" not a list of objects) and skipped: a run measures '
        "those cells again",
        "lines 2, 3 were not a stored cell: moved to results.damaged.jsonl in the same folder; this run measures "
        "those cells again"]
    assert (tmp_path / "results.damaged.jsonl").read_bytes() == damaged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(read_cells(tmp_path / RESULTS)) == {"a=1", "a=2", "a=3"}


def test_cells_that_raised_are_not_finished(tmp_path):
    with ResultStore(tmp_path) as store:
        store.append("ok", [{"status": "ok"}])
        store.append("budget", [{"status": "budget", "cell_failed": False}])
        store.append("raised", [{"status": "error", "cell_failed": True}])
        store.append("row_error", [{"status": "ok"}, {"status": "error"}])  # one method failed inside a cell
        assert store.finished == {"ok", "budget", "row_error"}


def test_one_writer_at_a_time(tmp_path):
    with ResultStore(tmp_path):
        with pytest.raises(RuntimeError, match="another diffsuite process"):
            ResultStore(tmp_path).open()


def test_the_csv_is_derived_atomically(tmp_path):
    with ResultStore(tmp_path) as store:
        store.append("a=1", [{"x": 1, "status": "ok"}])
        path = store.write_table()
    assert path.read_text().splitlines() == ["cell,x,status", "a=1,1,ok"]
    assert not list(tmp_path.glob("*.tmp"))


def test_the_lock_has_one_holder_under_any_interleaving(tmp_path, monkeypatch):
    """The three-writer race: B opens the lock file, A releases (unlinking it), B locks the unlinked file, C
    locks a fresh one. Before, B and C both held "the" lock; now B notices and locks the file at the path."""
    from diffsuite.study import store as st
    path = tmp_path / st.LOCK
    a = st._acquire_lock(path)
    real_open, released = open, []

    def open_then_release_a(p, *args, **kw):  # B's open lands just before A's release
        fh = real_open(p, *args, **kw)
        if not released:
            released.append(True)
            st._release_lock(a)
        return fh

    monkeypatch.setattr(st, "open", open_then_release_a, raising=False)
    b = st._acquire_lock(path)
    monkeypatch.undo()
    assert os.path.samestat(os.fstat(b.fileno()), os.stat(path))  # B holds the file that is at the path
    with pytest.raises(StoreBusy, match="another diffsuite process is writing the results"):
        st._acquire_lock(path)  # C: refused while B holds the lock
    st._release_lock(b)
    c = st._acquire_lock(path)  # free again once B is done
    st._release_lock(c)
    assert not path.exists()  # no stray lock file among the results


def test_temporary_files_of_dead_processes_are_removed_on_the_next_run(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    stale = tmp_path / f"results.csv.{dead_pid}.tmp"
    live = tmp_path / f"results.csv.{os.getppid()}.tmp"  # our parent is alive: maybe still writing
    stale.write_text("half a table")
    live.write_text("being written")
    with ResultStore(tmp_path) as store:
        store.append("a=1", [{"x": 1}])
    assert not stale.exists() and live.exists()


def test_a_failed_atomic_write_leaves_no_temporary(tmp_path, monkeypatch):
    from diffsuite.study import store as st

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(st.os, "replace", refuse)
    with pytest.raises(PermissionError):
        st.write_atomic_text(tmp_path / "report.md", "text")
    assert not list(tmp_path.iterdir())


def test_a_line_whose_rows_are_not_a_list_of_rows_is_skipped_with_a_warning(tmp_path):
    with ResultStore(tmp_path) as store:
        store.append("a=1", [{"x": 1, "status": "ok"}])
    with open(tmp_path / RESULTS, "a") as f:
        f.write('{"cell": "a=2", "rows": "abc"}\n{"cell": "a=3", "rows": [1, 2]}\n')
    with pytest.warns(StoreWarning, match=r"lines 2, 3 are not a stored cell"):
        cells = read_cells(tmp_path / RESULTS)
    assert cells == {"a=1": [{"x": 1, "status": "ok"}]}  # a=2 and a=3 count as not done: measured again
    with pytest.warns(StoreWarning):
        assert list(ResultStore(tmp_path).table()["x"]) == [1]


def test_a_whole_cell_without_its_newline_is_kept(tmp_path):
    """Only the newline was lost (a kill between the line and its newline, or a file edited by hand): the cell is
    read, and a writing run gives it its newline instead of cutting it off (review: cell b was lost)."""
    with ResultStore(tmp_path) as store:
        store.append("a", [{"x": 1}])
    with open(tmp_path / RESULTS, "ab") as f:
        f.write(b'{"cell": "b", "rows": [{"x": 2}]}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing torn: nothing to warn about
        assert read_cells(tmp_path / RESULTS) == {"a": [{"x": 1}], "b": [{"x": 2}]}
        with ResultStore(tmp_path) as store:
            assert store.done == {"a", "b"}
            store.append("c", [{"x": 3}])
    assert [json.loads(line)["cell"] for line in (tmp_path / RESULTS).read_text().splitlines()] == ["a", "b", "c"]
    assert not (tmp_path / "results.damaged.jsonl").exists()


def test_a_torn_line_goes_to_the_damaged_file_when_cut_off(tmp_path):
    with ResultStore(tmp_path) as store:
        store.append("a", [{"x": 1}])
    with open(tmp_path / RESULTS, "ab") as f:
        f.write(b'{"cell": "b", "rows": [{"x"')
    with pytest.warns(StoreWarning, match="last line is incomplete"), ResultStore(tmp_path) as store:
        assert store.done == {"a"}
    assert (tmp_path / "results.damaged.jsonl").read_bytes() == b'{"cell": "b", "rows": [{"x"\n'
    assert (tmp_path / RESULTS).read_bytes().endswith(b'}]}\n')
