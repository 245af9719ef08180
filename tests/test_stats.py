"""Confidence intervals: known values, and the paired bootstrap's behaviour on constructed data."""

import numpy as np
import pytest

from prunerob import stats


def test_wilson_matches_known_values():
    low, high = stats.wilson_interval(0, 10)
    assert low == pytest.approx(0, abs=1e-12) and high == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)
    low, high = stats.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    low, high = stats.wilson_interval([10, 950], [10, 1000])  # arrays broadcast
    assert high[0] == 1 and low[0] == pytest.approx(0.7225, abs=1e-4)
    assert low[1] < 0.95 < high[1] and high[1] - low[1] < 0.03


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)
    with pytest.raises(ValueError):
        stats.wilson_interval(1, 10, confidence=1.0)


def test_paired_bootstrap_degenerate_cases_are_exact():
    same = np.array([1, 0, 1, 1, 0] * 200)
    out = stats.paired_bootstrap(same, same)
    assert (out["diff"], out["low"], out["high"]) == (0, 0, 0)
    assert not stats.excludes_zero(out["low"], out["high"])
    out = stats.paired_bootstrap(np.ones(100), np.zeros(100))
    assert (out["diff"], out["low"], out["high"]) == (1, 1, 1)
    assert stats.excludes_zero(out["low"], out["high"]) and out["n"] == 100 and out["n_groups"] == 1


def test_paired_bootstrap_finds_a_real_difference_and_not_a_noisy_one():
    rng = np.random.default_rng(1)
    dense = rng.random(1000) < 0.5
    better = dense | (rng.random(1000) < 0.2)  # about 10 points more robust, on the same images
    out = stats.paired_bootstrap(better, dense)
    assert out["low"] > 0.05 and out["diff"] == pytest.approx((better.astype(float) - dense).mean())
    noise = rng.random(1000) < 0.5  # unrelated outcomes at the same rate
    out = stats.paired_bootstrap(noise, dense)
    assert out["low"] < 0 < out["high"]


def test_paired_bootstrap_over_seeds_averages_seeds_and_widens():
    rng = np.random.default_rng(2)
    # seed 0: pruning helps by 20 points; seed 1: it hurts by 20 -> no clear difference overall
    a = np.concatenate([np.ones(500), np.zeros(500)])
    b = np.concatenate([rng.random(500) < 0.8, rng.random(500) < 0.2]).astype(float)
    seeds = np.repeat([0, 1], 500)
    out = stats.paired_bootstrap(a, b, seeds)
    assert out["n_groups"] == 2
    per_seed = [(a - b)[seeds == s].mean() for s in (0, 1)]
    assert out["diff"] == pytest.approx(np.mean(per_seed))
    assert out["low"] < 0 < out["high"]
    pooled = stats.paired_bootstrap(a, b)  # ignoring seeds gives a narrower interval
    assert out["high"] - out["low"] > pooled["high"] - pooled["low"]


def test_paired_bootstrap_needs_pairs():
    with pytest.raises(ValueError):
        stats.paired_bootstrap(np.ones(3), np.ones(4))
