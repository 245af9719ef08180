"""Adversarial scenarios and sweet spots, computed from the tidy tables.

* Scenario: a share ``p`` of the inputs is adversarial (with budget eps), the rest clean.  A model's
  accuracy is then ``acc(p) = (1 - p) * clean + p * robust`` {cite}`merkle2021`.  For each budget,
  :func:`best_ranges` finds which candidate (a CR, or a method at a CR) gives the highest acc(p)
  on which interval of p: the upper envelope of straight lines, found exactly.
* Sweet spot: a pruned model that is *more* robust than the dense one it was pruned from, at some
  norm and eps.  :func:`sweet_spots` pairs each pruned model's per-image worst-case outcomes with
  the dense model's on the same images (and seed) and gives a bootstrap interval of the difference.

Robustness is always the worst case over the attacks of a norm, per image, as in
``aggregate.worst_case``: an image counts as robust at eps only if every attack of that norm failed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prunerob import aggregate, stats

# the columns that say which pruned model a row belongs to (besides its CR)
MODEL_KEYS = [
    "dataset",
    "arch",
    "seed",
    "training",
    "structure",
    "scope",
    "criterion",
    "schedule",
    "prune_dense_neurons",
]
# the same, without the seed: the groups a seed-averaged result is reported for
METHOD_KEYS = [k for k in MODEL_KEYS if k != "seed"]


def worst_case_samples(samples: pd.DataFrame, eps_grid: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """Per image: robust (True/False) at each eps of each norm, worst case over that norm's attacks.

    One row per (prune stage, CR, norm, eps, sample), with the model columns of ``MODEL_KEYS``.
    Averaging ``robust`` over samples gives exactly ``aggregate.worst_case``'s robust accuracy.
    """
    if not len(samples):
        return pd.DataFrame(columns=["prune_id", *MODEL_KEYS, "cr", "norm", "eps", "sample", "robust"])
    per_sample = aggregate.worst_case_samples(samples, eps_grid).drop(columns="attacks")
    meta = samples[["prune_id", *MODEL_KEYS]].drop_duplicates("prune_id")
    return per_sample.merge(meta, on="prune_id", how="left")


def scenario_lines(worst: pd.DataFrame, prune: pd.DataFrame, samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Robust accuracy (``worst``: rows of ``aggregate.worst_case``) beside the clean accuracy of the
    same checkpoint, one row per (model, CR, norm, eps) with ``clean`` and ``robust``; eps 0 is left
    out (it is the clean accuracy).  With ``samples`` (the per-sample rows the worst case came from),
    ``clean`` is the accuracy on the very images attacked, per checkpoint and norm, so that acc(p)
    mixes two numbers measured on one set of images; without, the prune table's accuracy on the full
    test set.  ``clean_full`` is always the latter."""
    full = prune.rename(columns={"stage_id": "prune_id", "clean_acc": "clean_full"})
    lines = worst[worst["eps"] > 0].merge(full[["prune_id", "cr", "clean_full", *MODEL_KEYS]], on=["prune_id", "cr"])
    if samples is None:
        lines = lines.assign(clean=lines["clean_full"])
    else:
        seen = samples.drop_duplicates(["prune_id", "cr", "norm", "sample"])
        right = (seen["clean_pred"] == seen["label"]).rename("clean")
        clean = right.groupby([seen["prune_id"], seen["cr"], seen["norm"]]).mean().reset_index()
        lines = lines.merge(clean, on=["prune_id", "cr", "norm"], how="left")
    return lines.rename(columns={"robust_acc": "robust"})


def accuracy_over_p(lines: pd.DataFrame, ps=None) -> pd.DataFrame:
    """acc(p) = (1 - p) clean + p robust for each row of ``lines`` and each p (default 0, 0.05, ..., 1)."""
    ps = np.linspace(0, 1, 21) if ps is None else np.asarray(ps, dtype=float)
    out = lines.loc[lines.index.repeat(len(ps))].reset_index(drop=True)
    out["p"] = np.tile(ps, len(lines))
    out["acc"] = (1 - out["p"]) * out["clean"] + out["p"] * out["robust"]
    return out


def _envelope(clean: np.ndarray, robust: np.ndarray, tol: float) -> list[tuple[float, float, int]]:
    """Intervals of p in [0, 1] on which line i is highest: [(p_from, p_to, i)], merged.
    Lines within ``tol`` of the best count as tied; the tie goes to the lowest index."""
    slope = robust - clean
    points = {0.0, 1.0}
    for i in range(len(clean)):
        for j in range(i + 1, len(clean)):
            if slope[i] != slope[j]:
                p = (clean[j] - clean[i]) / (slope[i] - slope[j])
                if 0 < p < 1:
                    points.add(float(p))
    cuts = sorted(points)
    spans: list[tuple[float, float, int]] = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        values = clean + (a + b) / 2 * slope
        best = int(np.flatnonzero(values >= values.max() - tol)[0])
        if spans and spans[-1][2] == best:
            spans[-1] = (spans[-1][0], b, best)
        else:
            spans.append((a, b, best))
    return spans


def best_ranges(
    lines: pd.DataFrame,
    group: list[str],
    candidate: str = "cr",
    prefer: str = "cr",
    descending: bool = True,
    tol: float = 1e-9,
) -> pd.DataFrame:
    """For each group (e.g. norm and eps), the candidate with the highest acc(p), interval by interval.

    ``lines``: one row per candidate and group with ``clean`` and ``robust``.  Ties (within ``tol``)
    go to the first candidate in ``prefer`` order (default: the highest CR, i.e. the smaller model
    at equal accuracy).  Returns rows: group columns, ``candidate``, ``p_from``, ``p_to``,
    ``acc_from``, ``acc_to`` (acc at the interval's ends), ``clean``, ``robust``.
    """
    rows = []
    for key, frame in lines.groupby(group, sort=True):
        frame = frame.sort_values(prefer, ascending=not descending, kind="stable")
        clean, robust = frame["clean"].to_numpy(float), frame["robust"].to_numpy(float)
        for a, b, i in _envelope(clean, robust, tol):
            row = dict(zip(group, key if isinstance(key, tuple) else (key,)))
            row.update(
                {
                    "candidate": frame[candidate].iloc[i],
                    "p_from": a,
                    "p_to": b,
                    "acc_from": (1 - a) * clean[i] + a * robust[i],
                    "acc_to": (1 - b) * clean[i] + b * robust[i],
                    "clean": clean[i],
                    "robust": robust[i],
                }
            )
            rows.append(row)
    return pd.DataFrame(rows)


def sweet_spots(
    per_sample: pd.DataFrame, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Robust accuracy of every pruned model (CR > 1) minus the dense model's (CR 1 of the same
    method and seed), per norm and eps > 0, with a paired bootstrap interval over images (and over
    seeds where there are several).

    ``per_sample``: rows of :func:`worst_case_samples`.  Returns one row per method, norm, eps and
    CR with ``dense``, ``pruned`` (robust accuracies, mean over seeds), ``diff``, ``low``, ``high``,
    ``n`` (image pairs), ``n_seeds`` and ``verdict``: 'more robust' or 'less robust' where the
    interval excludes 0, else 'no clear difference'.
    """
    keys = [k for k in METHOD_KEYS if k in per_sample]
    frame = per_sample[per_sample["eps"] > 0]
    rows = []
    for key, group in frame.groupby([*keys, "norm", "eps"], dropna=False, sort=True):
        dense = group[group["cr"] == 1][["seed", "sample", "robust"]]
        if not len(dense):
            continue
        for cr, pruned in group[group["cr"] > 1].groupby("cr"):
            pairs = pruned[["seed", "sample", "robust"]].merge(
                dense, on=["seed", "sample"], suffixes=("_pruned", "_dense")
            )
            if not len(pairs):
                continue
            ci = stats.paired_bootstrap(
                pairs["robust_pruned"].to_numpy(float),
                pairs["robust_dense"].to_numpy(float),
                pairs["seed"].to_numpy(),
                n_boot=n_boot,
                confidence=confidence,
                seed=seed,
            )
            by_seed = pairs.groupby("seed")[["robust_pruned", "robust_dense"]].mean().mean()
            verdict = "more robust" if ci["low"] > 0 else "less robust" if ci["high"] < 0 else "no clear difference"
            rows.append(
                {
                    **dict(zip([*keys, "norm", "eps"], key)),
                    "cr": cr,
                    "dense": float(by_seed["robust_dense"]),
                    "pruned": float(by_seed["robust_pruned"]),
                    "diff": ci["diff"],
                    "low": ci["low"],
                    "high": ci["high"],
                    "n": ci["n"],
                    "n_seeds": ci["n_groups"],
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)


def robust_with_ci(per_sample: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Robust accuracy per model (mean over seeds), CR, norm and eps with a band that holds the
    seeds' spread and the images' sampling noise (``compare.mean_over_seeds``); ``n``: images per
    seed, ``n_seeds``."""
    from prunerob import compare

    keys = [k for k in METHOD_KEYS if k in per_sample]
    per_seed = per_sample.groupby([*keys, "seed", "cr", "norm", "eps"], dropna=False, as_index=False).agg(
        robust_acc=("robust", "mean"), n=("robust", "size")
    )
    return compare.mean_over_seeds(per_seed, [*keys, "cr", "norm", "eps"], confidence=confidence)
