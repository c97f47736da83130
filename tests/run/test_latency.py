"""The latency protocol with a fake clock (no timing in unit tests): rounds, medians, spreads, the lock."""

import fcntl

import pytest

from dpbert.run import latency
from dpbert.run.latency import measure, measure_interleaved, timing_lock


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(latency.time, "perf_counter", c)
    return c


def test_rounds_interleave_every_forward(clock):
    calls = []

    def fwd(name, cost):
        def forward(ex):
            calls.append((name, ex["i"]))
            clock.now += cost
        return forward

    examples = [{"i": i} for i in range(3)]
    base, point = measure_interleaved([fwd("base", 0.004), fwd("point", 0.002)], examples, warmup=2, repeats=3,
                                      device="cpu")
    warm, timed = calls[:4], calls[4:]
    assert warm == [("base", 0), ("base", 1), ("point", 0), ("point", 1)]
    # each round: every example run by every forward before the next example, the order rotating
    one_round = [("base", 0), ("point", 0), ("point", 1), ("base", 1), ("base", 2), ("point", 2)]
    assert timed == one_round * 3
    assert base.median_ms == pytest.approx(4.0) and point.median_ms == pytest.approx(2.0)
    assert base.spread == pytest.approx(0.0) and len(base.repeats_ms) == 3 and base.device == "cpu"


def test_a_burst_of_load_reaches_both_forwards_of_a_round(clock):
    """The machine runs 3x slower for 60 ms in the middle of round 2: base and point share the burst,
    so that round's speed-up stays ~2 (timed pass after pass, base alone would take it: ~3.3)."""

    def fwd(cost):
        def forward(_ex):
            clock.now += cost * (3.0 if 0.240 <= clock.now < 0.300 else 1.0)
        return forward

    base, point = measure_interleaved([fwd(0.004), fwd(0.002)], [{}] * 30, warmup=0, repeats=3, device="cpu")
    ratios = [b / p for b, p in zip(base.repeats_ms, point.repeats_ms)]
    assert ratios[0] == pytest.approx(2.0) and ratios[2] == pytest.approx(2.0)
    assert base.repeats_ms[1] > 1.1 * base.repeats_ms[0]  # the burst did land in round 2
    assert 1.8 < ratios[1] < 2.2


def test_median_and_spread_of_passes(clock):
    costs = iter([0.010, 0.010, 0.012, 0.012, 0.011, 0.011])  # 2 examples x 3 passes: 10, 12, 11 ms

    def forward(_ex):
        clock.now += next(costs)

    lat = measure(forward, [{}, {}], warmup=0, repeats=3, device="cpu")
    assert lat.repeats_ms == pytest.approx([10.0, 12.0, 11.0])
    assert lat.median_ms == pytest.approx(11.0) and lat.spread == pytest.approx(2.0 / 11.0)


def test_timing_lock_is_exclusive_between_jobs(tmp_path):
    path = tmp_path / "locks" / "timing.lock"
    with timing_lock(path):
        with open(path, "a") as other:  # another job's open file: it must wait
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(path, "a") as other:  # released when the block ends
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_UN)
    with timing_lock(None):  # a cluster: no lock, no file
        pass


def test_paired_speedup_cancels_a_slow_round():
    from dpbert.run.latency import Latency, paired_speedup

    # round 2 ran on a machine twice as slow: both passes of the round doubled
    base = Latency(10.0, 1.0, [10.0, 20.0, 10.0], 1, "cpu")
    point = Latency(5.0, 1.0, [5.0, 10.0, 5.0], 1, "cpu")
    speedup, spread = paired_speedup(base, point)
    assert speedup == 2.0 and spread == 0.0  # the medians' ratio would be exposed to the slow round
    speedup, spread = paired_speedup(base, Latency(5.0, 0.0, [5.0, 8.0, 4.0], 1, "cpu"))
    assert speedup == 2.5 and spread == pytest.approx((2.5 - 2.0) / 2.5)
