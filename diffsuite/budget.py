"""Node and time budgets for expensive work (symbolic building, differentiation, CSE, the reference).

``run_budgeted(work, Budget(time_s=..., nodes=...))`` runs ``work(budget)`` and raises
``BudgetExceeded(stage, budget, progress)`` instead of hanging. The work names its stage with
``budget.enter("differentiate")``, reports progress with ``budget.note("12 of 40 parameters")`` and
checks sizes with ``budget.check_nodes(n, what)``.

How the time budget interrupts library code that never checks a clock:
- in the main thread (on POSIX): a SIGALRM timer whose handler raises a ``BaseException`` subclass,
  which SymPy's ``except Exception`` clauses cannot swallow; it becomes ``BudgetExceeded``;
- in any other thread (or when a timer is already running): the work runs in a forked worker
  process, killed at the deadline. Its result must be picklable. Without ``fork`` (Windows), or in
  a daemonic process, the time budget is only checked between steps (``enter``/``note`` call
  ``check_time``), so one long SymPy call can overrun it: a documented limitation.

``time_s=math.inf`` means no time limit, like None. The environment variable ``DIFFSUITE_TIME_BUDGET_SCALE``
(a positive number, default 1) multiplies every time budget: on a slow or shared machine (CI) a budget
meant to stop runaway work then does not stop work that is merely slow. The test suite sets it.
"""
from __future__ import annotations

import math
import multiprocessing
import numbers
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import BudgetExceeded


@dataclass
class Budget:
    """Limits (``time_s`` seconds for the whole work, ``nodes`` distinct expression nodes; None = no limit)
    and where the work has got to (``stage``, ``progress``), which every BudgetExceeded reports."""

    time_s: float | None = None
    nodes: int | None = None
    stage: str = "setup"
    progress: str = ""
    started: float = field(default_factory=time.monotonic)
    report: Callable[[str, str], None] | None = field(default=None, repr=False)

    def __post_init__(self):
        self.nodes = check_node_budget(self.nodes)
        self.time_s = check_time_budget(self.time_s)

    def enter(self, stage: str, progress: str = "") -> None:
        self.check_time()
        self.stage, self.progress = stage, progress
        self._send()

    def note(self, progress: str) -> None:
        self.check_time()
        self.progress = progress
        self._send()

    def _send(self) -> None:
        if self.report is not None:
            self.report(self.stage, self.progress)

    def check_nodes(self, n: int, what: str) -> None:
        if self.nodes is not None and n > self.nodes:
            raise BudgetExceeded(self.stage, f"{self.nodes} expression nodes", f"{what}: {n} nodes")

    def check_time(self) -> None:
        """A soft check between steps (the only one where neither SIGALRM nor fork is available)."""
        if self.time_s is not None and time.monotonic() - self.started > self.time_s:
            raise BudgetExceeded(self.stage, f"{self.time_s:g} s", self.progress or None)


def check_node_budget(nodes: object, name: str = "node_budget") -> int | None:
    """``nodes`` as a positive int or None; anything else (a bool, a float, 0, a negative) is a ValueError."""
    if nodes is None:
        return None
    if isinstance(nodes, bool) or not isinstance(nodes, numbers.Integral) or nodes <= 0:
        raise ValueError(f"{name} must be a positive whole number of expression nodes, or None for no limit; "
                         f"got {nodes!r}")
    return int(nodes)


def check_time_budget(seconds: object, name: str = "time_budget_s") -> float | None:
    """``seconds`` as a positive float (``math.inf`` allowed: no limit) or None; anything else is a ValueError."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds (math.inf or None: no limit); got {seconds!r}")
    return float(seconds)


def time_scale() -> float:
    """The factor ``DIFFSUITE_TIME_BUDGET_SCALE`` puts on every time budget (1 when unset)."""
    text = os.environ.get("DIFFSUITE_TIME_BUDGET_SCALE", "").strip()
    if not text:
        return 1.0
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"the environment variable DIFFSUITE_TIME_BUDGET_SCALE must be a positive number (a factor "
                         f"on every time budget); got {text!r}. Unset it, or set it to e.g. 10 on a slow machine.")
    return scale


class _TimeUp(BaseException):
    """Raised by the SIGALRM handler; a BaseException so that library code cannot catch it by accident."""


def run_budgeted(work: Callable[[Budget], Any], budget: Budget) -> Any:
    """``work(budget)`` under ``budget``'s time limit (see the module docstring for how it interrupts)."""
    budget.started = time.monotonic()
    budget.time_s = check_time_budget(budget.time_s)
    if budget.time_s is not None:
        budget.time_s *= time_scale()
    if budget.time_s is None or math.isinf(budget.time_s):  # no limit: no timer (setitimer(inf) overflows)
        budget.time_s = None
        return work(budget)
    if (threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
            and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)):
        return _run_with_alarm(work, budget)
    if "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon:
        return _run_in_worker(work, budget)  # (a daemonic process may not have children)
    return work(budget)  # soft limit only: see the module docstring


def _run_with_alarm(work, budget):
    armed = [True]

    def on_alarm(signum, frame):
        if armed[0]:  # a signal delivered after disarming must not escape
            raise _TimeUp()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, budget.time_s)
            return work(budget)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            armed[0] = False
    except _TimeUp:
        raise BudgetExceeded(budget.stage, f"{budget.time_s:g} s", budget.progress or None) from None
    finally:
        signal.signal(signal.SIGALRM, previous)


_IN_WORKER = ", in a worker process"


def _run_in_worker(work, budget):
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child():
        budget.report = lambda stage, progress: send.send(("progress", stage, progress))
        try:
            send.send(("done", work(budget)))
        except BudgetExceeded as e:
            send.send(("budget", e.stage, e.budget, e.progress))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            try:
                send.send(("error", e))
            except Exception:  # unpicklable exception
                send.send(("error", RuntimeError(f"{type(e).__name__}: {e}")))

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    send.close()
    deadline = budget.started + budget.time_s
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not receive.poll(remaining):
                raise BudgetExceeded(budget.stage, f"{budget.time_s:g} s", budget.progress or None, _IN_WORKER)
            try:
                msg = receive.recv()
            except EOFError:
                raise RuntimeError(f"the worker process for {budget.stage!r} died (exit code {proc.exitcode}) "
                                   "without a result; run it in the main thread to see why") from None
            if msg[0] == "progress":
                budget.stage, budget.progress = msg[1], msg[2]
            elif msg[0] == "done":
                return msg[1]
            elif msg[0] == "budget":  # the worker's own check between steps got there first
                raise BudgetExceeded(msg[1], msg[2], msg[3] or None, _IN_WORKER)
            else:
                raise msg[1]
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receive.close()
