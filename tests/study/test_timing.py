"""The timing harness, driven by a fake clock (no test here depends on real time)."""
import pytest

from diffsuite.study import timing


class FakeClock:
    """perf_counter advancing only when the timed function runs: each call costs ``costs[i]`` seconds."""

    def __init__(self, costs):
        self.t, self.costs, self.calls = 0.0, list(costs), 0

    def __call__(self):
        return self.t

    def work(self):
        self.t += self.costs[min(self.calls, len(self.costs) - 1)]
        self.calls += 1


@pytest.fixture
def clock(monkeypatch):
    def make(costs):
        c = FakeClock(costs)
        monkeypatch.setattr(timing.time, "perf_counter", c)
        return c
    return make


def test_repeats_until_the_minimum_total_time_and_reports_the_median(clock):
    c = clock([9.0, 0.125])  # the warm-up call is slow (compilation) and must not be timed
    t = timing.measure(c.work, warmup=1, min_total_s=1.0, min_repeats=3)
    assert c.calls == 1 + 8  # 8 timed calls of 0.125 s (exact in binary) reach 1.0 s
    assert t.repeats == 8 and t.warmup == 1
    assert t.median == 0.125 and t.max == 0.125
    assert t.total == 1.0


def test_minimum_repeats_and_spread(clock):
    c = clock([1.0, 3.0, 2.0, 5.0, 4.0])
    t = timing.measure(c.work, warmup=0, min_total_s=0.0, min_repeats=5)
    assert t.repeats == 5
    assert (t.median, t.min, t.max) == (3.0, 1.0, 5.0)
    assert (t.q1, t.q3) == (2.0, 4.0)  # numpy's linear quartiles of 1..5
    assert t.as_row("grad") == {"grad_s": 3.0, "grad_q1_s": 2.0, "grad_q3_s": 4.0, "grad_min_s": 1.0,
                                "grad_repeats": 5}


def test_a_slow_call_stops_at_the_maximum_total(clock):
    c = clock([7.0])
    t = timing.measure(c.work, warmup=0, min_total_s=100.0, min_repeats=3, max_total_s=5.0)
    assert t.repeats == 1 and t.median == 7.0


def test_sync_runs_around_every_timed_call(clock):
    c = clock([0.5])
    events = []
    t = timing.measure(lambda: (events.append("call"), c.work()), warmup=1, min_total_s=1.0, min_repeats=1,
                       sync=lambda: events.append("sync"))
    assert t.repeats == 2
    # warm-up call + sync, then (sync, call, sync) per timed call: the clock never stops before the device
    assert events == ["call", "sync"] + ["sync", "call", "sync"] * 2


def test_setup_is_timed_once(clock):
    c = clock([2.5])
    out, seconds = timing.time_once(lambda: (c.work(), "built")[1])
    assert (out, seconds, c.calls) == ("built", 2.5, 1)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="min_repeats"):
        timing.measure(lambda: None, min_repeats=0)
