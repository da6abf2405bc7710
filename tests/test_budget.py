"""Budgets stop work that never checks a clock, even work that swallows every Exception."""
import threading
import time

import pytest

from diffsuite.budget import Budget, run_budgeted
from diffsuite.errors import BudgetExceeded


def stubborn(budget):
    """A loop that catches every Exception, as library code sometimes does: only a BaseException gets out."""
    budget.enter("spinning", "forever")
    while True:
        try:
            sum(range(1000))
        except Exception:  # noqa: BLE001 - the point of the test
            pass


HANG = 60.0  # seconds: an elapsed-time ceiling only a hang reaches (the budgets below stop endless work)


def test_alarm_interrupts_code_that_swallows_exceptions(real_time_budgets):
    t = time.perf_counter()
    with pytest.raises(BudgetExceeded) as info:
        run_budgeted(stubborn, Budget(time_s=0.3))
    assert time.perf_counter() - t < HANG
    assert (info.value.stage, info.value.budget, info.value.progress) == ("spinning", "0.3 s", "forever")


def test_worker_process_stops_it_from_a_thread(real_time_budgets):
    out = {}

    def run():
        t = time.perf_counter()
        try:
            run_budgeted(stubborn, Budget(time_s=0.5))
        except BudgetExceeded as e:
            out["error"] = e
        out["elapsed"] = time.perf_counter() - t

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(HANG)
    assert out["error"].stage == "spinning" and out["elapsed"] < HANG


def test_results_errors_and_node_budgets_come_back():
    assert run_budgeted(lambda b: 42, Budget(time_s=5)) == 42
    with pytest.raises(ZeroDivisionError):
        run_budgeted(lambda b: 1 / 0, Budget(time_s=5))
    with pytest.raises(BudgetExceeded, match="10 expression nodes"):
        run_budgeted(lambda b: b.check_nodes(11, "the loss"), Budget(time_s=5, nodes=10))
    out = {}
    thread = threading.Thread(target=lambda: out.update(v=run_budgeted(lambda b: [1, 2], Budget(time_s=5))))
    thread.start()
    thread.join(20)
    assert out["v"] == [1, 2]


def test_no_alarm_is_left_behind():
    import signal
    before = signal.getsignal(signal.SIGALRM)
    run_budgeted(lambda b: None, Budget(time_s=0.2))
    time.sleep(0.3)  # an alarm left armed would fire here and fail the test
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def silent(budget):
    """Work that never reports a finished step."""
    while True:
        sum(range(1000))


def test_a_stage_with_no_finished_step_says_so(real_time_budgets):
    with pytest.raises(BudgetExceeded) as info:
        run_budgeted(silent, Budget(time_s=0.2))
    assert "(before its first step finished" in str(info.value) and "nothing reported" not in str(info.value)
    assert info.value.progress == ""


def test_the_worker_path_words_it_the_same_way(real_time_budgets):
    out = {}
    thread = threading.Thread(target=lambda: out.update(e=pytest.raises(BudgetExceeded, run_budgeted, silent,
                                                                        Budget(time_s=0.3)).value))
    thread.start()
    thread.join(HANG)
    assert "(before its first step finished, in a worker process)" in str(out["e"])


def test_progress_reads_as_how_far_it_got():
    assert "(got as far as layer 2, in a worker process)" in str(BudgetExceeded("build", "1 s", "layer 2",
                                                                               ", in a worker process"))
    assert str(BudgetExceeded("build", "1 s")).startswith("build exceeded its budget of 1 s; raise the budget")
