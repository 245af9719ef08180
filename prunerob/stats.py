"""Confidence intervals for robust accuracies and for differences between them.

Every robust accuracy in the book is a share of ``n`` attacked test images (1000 by default), so it
carries sampling noise from the choice of images; where several seeds ran, also noise from
training.  These helpers put numbers on that noise:

* :func:`wilson_interval`: a share k/n (Wilson's score interval, sound near 0 and 1 where the
  normal approximation is not);
* :func:`seed_band`: a mean over training seeds of shares measured on the same ``n`` images: the
  seeds' spread (a t-interval: training noise) and the images' (Wilson at the mean share: sampling
  noise) are independent sources, so the band adds their half-widths in quadrature;
* :func:`paired_bootstrap`: the mean of per-sample differences (e.g. robust at CR c minus robust
  dense, on the same images), resampling images within each seed and, where there are several,
  seeds too (a two-level bootstrap).  Percentile intervals.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must lie strictly between 0 and 1")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(k, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes in n trials (arrays broadcast); returns (low, high)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(n <= 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError("need 0 <= k <= n and n > 0")
    z = _z(confidence)
    share = k / n
    denom = 1 + z**2 / n
    centre = (share + z**2 / (2 * n)) / denom
    half = z * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def seed_band(mean, sd, n_seeds, n_images=None, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Band around a mean over seeds (arrays broadcast): ``mean`` and ``sd`` (sample standard
    deviation over ``n_seeds`` seeds; ignored for one seed), ``n_images`` the images each seed was
    measured on (None: no sampling noise, e.g. a clean accuracy on the full test set).  Each side's
    half-width is the root sum of squares of the t-interval's half-width (Student's t with
    ``n_seeds - 1`` degrees of freedom) and that side of the Wilson interval at the mean; with one
    seed the band is the Wilson interval alone.  Returns (low, high), clipped to [0, 1]."""
    from scipy.stats import t as student_t

    mean = np.asarray(mean, dtype=float)
    sd = np.nan_to_num(np.asarray(sd, dtype=float))
    n_seeds = np.asarray(n_seeds, dtype=float)
    if np.any(n_seeds < 1) or np.any(mean < 0) or np.any(mean > 1):
        raise ValueError("need n_seeds >= 1 and means within [0, 1]")
    _z(confidence)  # validates
    several = n_seeds >= 2
    quantile = student_t.ppf(0.5 + confidence / 2, np.where(several, n_seeds - 1, 1))
    spread = np.where(several, quantile * sd / np.sqrt(n_seeds), 0.0)
    if n_images is None:
        below = above = np.zeros_like(mean)
    else:
        n_images = np.asarray(n_images, dtype=float)
        w_low, w_high = wilson_interval(mean * n_images, n_images, confidence)
        below, above = mean - w_low, w_high - mean
    low = mean - np.sqrt(spread**2 + below**2)
    high = mean + np.sqrt(spread**2 + above**2)
    return np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


def paired_bootstrap(
    a, b, groups=None, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Mean of ``a - b`` (paired, e.g. per image) with a percentile bootstrap interval.

    ``groups`` (e.g. the training seed of each pair): the estimate is the mean over groups of the
    per-group mean difference, and each bootstrap draw resamples groups with replacement, then
    pairs within each drawn group.  With one group (or ``groups=None``) this is the ordinary paired
    bootstrap over pairs.  Returns ``diff``, ``low``, ``high``, ``n`` (pairs) and ``n_groups``.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError("a and b must be non-empty 1-D arrays of the same length (paired values)")
    groups = np.zeros(len(a), dtype=int) if groups is None else np.asarray(groups)
    if groups.shape != a.shape:
        raise ValueError("groups must give one label per pair")
    _z(confidence)  # validates
    rng = np.random.default_rng(seed)
    diffs = [(a - b)[groups == g] for g in np.unique(groups)]
    # per group: n_boot bootstrap means over its pairs
    boot = np.stack([d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(1) for d in diffs])
    if len(diffs) == 1:
        draws = boot[0]
    else:  # resample groups, then use an independent within-group draw for each pick
        picks = rng.integers(0, len(diffs), size=(n_boot, len(diffs)))
        columns = rng.integers(0, n_boot, size=(n_boot, len(diffs)))
        draws = boot[picks, columns].mean(1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {
        "diff": float(np.mean([d.mean() for d in diffs])),
        "low": float(low),
        "high": float(high),
        "n": int(len(a)),
        "n_groups": len(diffs),
    }


def excludes_zero(low: float, high: float) -> bool:
    """An interval says there is a difference only when it lies wholly on one side of zero."""
    return bool(low > 0 or high < 0)
