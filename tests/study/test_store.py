"""The result store: durable appends, torn lines, the write lock, what counts as finished."""
import json

import pytest

from diffsuite.study.store import RESULTS, ResultStore, read_cells


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
    assert set(read_cells(tmp_path / RESULTS)) == {"a=1"}
    with ResultStore(tmp_path) as store:
        assert store.done == {"a=1"}
        store.append("a=2", [{"x": 2}])
    lines = (tmp_path / RESULTS).read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line)["cell"] for line in lines[:-1]] == ["a=1", "a=2"]


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
