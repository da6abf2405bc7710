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
"""
from __future__ import annotations

import multiprocessing
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
            raise BudgetExceeded(self.stage, f"{self.time_s:g} s", self.progress)


class _TimeUp(BaseException):
    """Raised by the SIGALRM handler; a BaseException so that library code cannot catch it by accident."""


def run_budgeted(work: Callable[[Budget], Any], budget: Budget) -> Any:
    """``work(budget)`` under ``budget``'s time limit (see the module docstring for how it interrupts)."""
    budget.started = time.monotonic()
    if budget.time_s is None:
        return work(budget)
    if budget.time_s <= 0:
        raise BudgetExceeded(budget.stage, f"{budget.time_s:g} s", "nothing (the time budget is not positive)")
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
        raise BudgetExceeded(budget.stage, f"{budget.time_s:g} s", budget.progress or "nothing reported") from None
    finally:
        signal.signal(signal.SIGALRM, previous)


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
                raise BudgetExceeded(budget.stage, f"{budget.time_s:g} s",
                                     (budget.progress or "nothing reported") + " (in a worker process)")
            try:
                msg = receive.recv()
            except EOFError:
                raise RuntimeError(f"the worker process for {budget.stage!r} died (exit code {proc.exitcode}) "
                                   "without a result; run it in the main thread to see why") from None
            if msg[0] == "progress":
                budget.stage, budget.progress = msg[1], msg[2]
            elif msg[0] == "done":
                return msg[1]
            elif msg[0] == "budget":
                raise BudgetExceeded(msg[1], msg[2], msg[3])
            else:
                raise msg[1]
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receive.close()
