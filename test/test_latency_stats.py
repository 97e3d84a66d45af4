import math

import pytest

from ebgan_mdn_ros.control.latency_stats import LatencyStats, RateMeter


def test_percentiles_of_a_known_window():
    stats = LatencyStats(capacity=100)
    for micro in range(1, 101):          # 1 .. 100 us
        stats.add(micro * 1e-6)
    # linear interpolation over 100 sorted samples: p50 = 50.5 us, p99 = 99.01 us
    assert stats.percentile(50) == pytest.approx(50.5e-6)
    assert stats.percentile(99) == pytest.approx(99.01e-6)
    summary = stats.summary()
    assert summary["p50_us"] == pytest.approx(50.5)
    assert summary["p99_us"] == pytest.approx(99.01)
    assert summary["max_us"] == pytest.approx(100.0)
    assert summary["count"] == 100 and summary["window"] == 100


def test_ring_keeps_only_the_last_capacity_samples_but_counts_all():
    stats = LatencyStats(capacity=4, budget_s=2.5)
    for value in (10.0, 1.0, 2.0, 3.0, 4.0):   # 10 falls out of the window
        stats.add(value)
    assert sorted(stats.window().tolist()) == [1.0, 2.0, 3.0, 4.0]
    assert stats.window().tolist() == [1.0, 2.0, 3.0, 4.0]  # oldest first
    assert stats.percentile(100) == 4.0 and stats.percentile(0) == 1.0
    summary = stats.summary()
    assert summary["max_us"] == pytest.approx(4e6)        # window
    assert summary["worst_us"] == pytest.approx(10e6)     # whole run
    assert summary["count"] == 5
    assert summary["overruns"] == 3                       # 10, 3, 4 above 2.5 s
    assert stats.overruns(2.5) == 2                       # in the window: 3, 4


def test_bad_samples_are_rejected_not_stored():
    stats = LatencyStats(capacity=8)
    for value in (math.nan, math.inf, -1e-6, 5e-6):
        stats.add(value)
    assert stats.rejected == 3 and stats.count == 1 and stats.percentile(50) == 5e-6


def test_empty_stats_give_nan():
    stats = LatencyStats(capacity=8)
    assert math.isnan(stats.percentile(50))
    summary = stats.summary()
    assert math.isnan(summary["p99_us"]) and summary["count"] == 0
    with pytest.raises(ValueError):
        stats.percentile(101)
    with pytest.raises(ValueError):
        LatencyStats(capacity=0)


def test_rate_meter_over_a_full_and_a_partial_window():
    meter = RateMeter(window=5)
    assert math.isnan(meter.rate_hz())
    for i in range(3):
        meter.tick(i * 0.01)                # 2 intervals over 20 ms
    assert meter.rate_hz() == pytest.approx(100.0)
    for i in range(3, 20):
        meter.tick(i * 0.001 + 1.0)         # now 1 kHz; window holds the last 5 ticks
    assert meter.rate_hz() == pytest.approx(1000.0)
    assert meter.count == 20


def test_rate_meter_decays_when_ticks_stop():
    meter = RateMeter(window=11)
    for i in range(11):
        meter.tick(i * 0.1)                 # 10 Hz, newest at 1.0 s
    assert meter.rate_hz() == pytest.approx(10.0)
    assert meter.rate_hz(now_s=2.0) == pytest.approx(5.0)   # 10 intervals over 2 s
    assert meter.rate_hz(now_s=0.5) == pytest.approx(10.0)  # a "now" before the newest tick changes nothing
