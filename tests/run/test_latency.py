"""The latency protocol with a fake clock (no timing in unit tests): rounds, medians, spreads, the lock."""

import fcntl

import pytest
import torch

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


# ---------------------------------------------------------------- latency.precision

def _autocast_state(calls, clock):
    def forward(ex):
        clock.now += 0.001
        calls.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
    return forward


def test_fp32_times_outside_any_autocast(clock, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("fp32 entered torch.autocast")

    monkeypatch.setattr(torch, "autocast", refuse)
    calls = []
    measure_interleaved([_autocast_state(calls, clock)] * 2, [{"i": 0}], warmup=1, repeats=2, device="cpu")
    measure(_autocast_state(calls, clock), [{"i": 0}], warmup=1, repeats=2, device="cpu", precision="fp32")
    assert len(calls) == 9 and not any(on for on, _ in calls)


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_every_forward_of_the_rounds_runs_in_the_same_autocast(clock, precision, dtype):
    base, point = [], []
    measure_interleaved([_autocast_state(base, clock), _autocast_state(point, clock)], [{"i": 0}, {"i": 1}], warmup=2,
                        repeats=3, device="cpu", precision=precision)
    assert len(base) == len(point) == 2 + 3 * 2  # warm-up and every timed call of both forwards
    assert set(base) == set(point) == {(True, dtype)}
    assert not torch.is_autocast_enabled("cpu")  # left on leaving


def test_an_unknown_latency_precision_is_refused_before_timing(clock):
    calls = []
    with pytest.raises(ValueError, match="latency.precision: int8"):
        measure(_autocast_state(calls, clock), [{"i": 0}], warmup=1, repeats=1, device="cpu", precision="int8")
    assert calls == []


def test_latency_settings_take_the_precision():
    from dpbert.run.sweep import LatencySettings

    assert LatencySettings.from_config({"device": "cpu"}).precision == "fp32"
    assert LatencySettings.from_config({"device": "cpu", "precision": "bf16"}).precision == "bf16"


def test_a_job_refuses_a_bad_precision_before_it_trains(monkeypatch):
    from dpbert.run import job

    monkeypatch.setattr(job, "load_prepared", lambda path: pytest.fail("the job went on to load its data"))
    kwargs = {"task": "SST-2", "method": "bert", "seed": 1, "method_params": {}, "model": {}, "profile": "demo",
              "data_path": "missing.pt", "base_dir": None, "model_out": "m", "sweep_out": "s",
              "predictions_out": "p", "phases_out": "ph", "timing_lock_path": None, "log": None}
    with pytest.raises(ValueError, match="`latency.precision: bf16` asks for autocast on device 'mps'"):
        job.run_method(training={"device": "cpu", "precision": "bf16"},
                       latency={"device": "mps", "precision": "bf16"}, **kwargs)
    with pytest.raises(ValueError, match="`training.precision: fp8`"):
        job.run_method(training={"device": "cpu", "precision": "fp8"}, latency={"device": "cpu"}, **kwargs)
