"""Tables of attack results aggregated over attacks: the per-sample worst case, smallest distances,
dense curves and the agreement of fixed and minimal attacks.

These read the samples and attack tables that ``evaluate.py`` (the verified tensors of one attack
run) writes through the stages; they need pandas and numpy only, not torch, so the book's chapters
and ``compare``, ``scenarios`` and ``report`` use them without loading a model.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd


def white_box(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of white-box attacks."""
    return frame[frame["scenario"] == "white-box"]


def attack_runs(frame: pd.DataFrame) -> pd.Series:
    """A name per attack run: the attack, and for a transfer attack the CR it was crafted on."""
    transfer = frame["scenario"] == "transfer"
    if not transfer.any():
        return frame["attack"]
    source = frame.loc[transfer, "source_cr"]
    label = source.map({cr: f"{cr:g}" for cr in source.unique()})  # a dict maps a million rows at once
    return frame["attack"].where(~transfer, frame["attack"] + " from CR " + label.reindex(frame.index))


def worst_case_samples(samples: pd.DataFrame, eps_grid: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """Per checkpoint, norm, eps and sample: robust only if every attack of that norm that ran on
    it failed on it (the samples of every run of the checkpoint and norm, each once).
    ``eps_grid`` maps a norm to its epsilons (default: the epsilons its fixed attacks ran at; a norm
    with only minimal attacks needs its grid given, e.g. from the attack table's ``eps`` column)."""
    if not len(samples):  # no attack results (yet): a frame without the table's columns
        return pd.DataFrame(columns=["prune_id", "cr", "norm", "eps", "sample", "robust", "attacks"])
    parts = []
    needed = ["prune_id", "cr", "norm", "kind", "sample", "eps", "broken", "distance"]
    # grouping copies every column the frame holds (a fixed attack's rows need no distance)
    samples = samples[[c for c in needed if c in samples]].assign(run=attack_runs(samples))
    for (prune_id, cr, norm), group in samples.groupby(["prune_id", "cr", "norm"]):
        grid = np.asarray((eps_grid or {}).get(cast(str, norm)) or sorted(group["eps"].dropna().unique()), float)
        ids = np.unique(group["sample"].to_numpy())
        # robust[i, j]: sample ids[i] at budget grid[j]; a sample one run did not attack (transfer
        # runs attack fewer images) is not broken by that run
        robust = np.ones((len(ids), len(grid)), dtype=bool)
        for (run, kind), rows in group.groupby(["run", "kind"]):
            at = np.searchsorted(ids, rows["sample"].to_numpy())
            if kind == "minimal":
                np.logical_and.at(robust, at, rows["distance"].to_numpy(float)[:, None] > grid[None, :])
                continue
            # a verified example found inside a smaller ball also lies inside the larger one: at each
            # budget of the grid, a fixed run counts at the largest budget it ran that is not larger
            ran, broken = rows["eps"].to_numpy(float), rows["broken"].to_numpy(bool)
            budgets = np.unique(ran)
            pick = np.searchsorted(budgets, grid + 1e-12, side="right") - 1
            if (pick < 0).any():
                raise ValueError(
                    f"{run} ({norm}) ran at {budgets.tolist()}, nothing at or below {grid[pick < 0].min():g}: "
                    "a fixed attack has no result below its smallest budget"
                )
            for j, budget in enumerate(budgets[pick]):
                mine = ran == budget
                np.logical_and.at(robust[:, j], at[mine], ~broken[mine])
        names = "+".join(sorted(group["run"].unique()))
        parts.append(
            pd.DataFrame(
                {
                    "prune_id": prune_id,
                    "cr": cr,
                    "norm": norm,
                    "eps": np.repeat(grid, len(ids)),
                    "sample": np.tile(ids, len(grid)),
                    "robust": robust.T.ravel(),
                    "attacks": names,
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["prune_id", "cr", "norm", "eps", "sample", "robust", "attacks"])
    return pd.concat(parts, ignore_index=True)


def common_runs_only(samples: pd.DataFrame, attack: pd.DataFrame, by: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``samples`` and ``attack`` with, within each group of ``by`` (a model's columns without its
    seed: its seeds), only the attack runs every prune stage of the group faced.  A seed that ran
    more attacks would otherwise have a stronger worst case than the others, and their mean would
    mix two evaluations."""
    if not len(attack):
        return samples, attack
    runs = attack.assign(run=attack_runs(attack))
    keep = []
    for _, group in runs.groupby([k for k in by if k in runs], dropna=False):
        common = set.intersection(*(set(r["run"]) for _, r in group.groupby("prune_id")))
        keep.append(group[group["run"].isin(common)][["prune_id", "run"]].drop_duplicates())
    kept = pd.concat(keep, ignore_index=True)
    mark = lambda frame: frame.assign(run=attack_runs(frame)).merge(kept, on=["prune_id", "run"]).drop(columns="run")
    return mark(samples), mark(attack)


def fully_attacked_seeds(
    samples: pd.DataFrame, attack: pd.DataFrame, required: set[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``samples`` and ``attack`` of one model and method without the prune stages (seeds) that
    missed part of the default set: a seed attacked before the set grew (e.g. PGD_0-min where the
    others ran the L0 ensemble) would otherwise limit the worst case of every seed to its weaker
    attacks, and a method compared with others that faced the whole set would look more robust than
    it is.  ``required``: the minimal attacks a seed must have faced (e.g. those every method of
    the model faced); without it, a seed whose minimal attacks are a strict subset of another's."""
    if not len(attack):
        return samples, attack
    minimal = white_box(attack[attack["kind"] == "minimal"])
    runs = {pid: set(attack_runs(rows)) for pid, rows in minimal.groupby("prune_id")}
    if required is not None:
        weaker = {pid for pid, own in runs.items() if not required <= own}
    else:
        weaker = {pid for pid, own in runs.items() if any(own < other for other in runs.values())}
    if not weaker or weaker == set(runs):
        return samples, attack
    return samples[~samples["prune_id"].isin(weaker)], attack[~attack["prune_id"].isin(weaker)]


def eps_grids(attack: pd.DataFrame) -> dict[str, list[float]]:
    """Per norm, the budgets the attacks of ``attack`` (rows of the attack table) ran at: the grid a
    worst case over them is taken on."""
    if not len(attack):
        return {}
    return {cast(str, norm): sorted(rows["eps"].unique()) for norm, rows in attack.groupby("norm")}


def on_own_grids(worst_case, samples: pd.DataFrame, attack: pd.DataFrame) -> pd.DataFrame:
    """``worst_case(samples, grid)`` (``worst_case`` here, or ``scenarios.worst_case_samples``) for
    each prune stage's samples on the budgets of that stage's own attacks. Models attacked at
    different budgets (Fashion-MNIST's grid is not MNIST's) must not share one grid: a fixed attack
    has no result below its smallest budget, and a budget it never ran is no worst case over it."""
    parts = (
        [
            worst_case(rows, eps_grids(attack[attack["prune_id"] == prune_id]))
            for prune_id, rows in samples.groupby("prune_id", sort=True)
        ]
        if len(samples)
        else []
    )
    return pd.concat(parts, ignore_index=True) if parts else worst_case(samples.iloc[:0], {})


def worst_case(samples: pd.DataFrame, eps_grid: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """Per checkpoint and norm: robust accuracy at each eps when a sample counts as robust only if
    every attack of that norm failed on it (see ``worst_case_samples``)."""
    per_sample = worst_case_samples(samples, eps_grid)
    out = (
        per_sample.groupby(["prune_id", "cr", "norm", "eps", "attacks"], sort=False)["robust"]
        .agg(robust_acc="mean", n="size")
        .reset_index()
    )
    out["robust_acc"] = out["robust_acc"].astype(float)
    return out[["prune_id", "cr", "norm", "eps", "robust_acc", "n", "attacks"]]


def verified_distance(samples: pd.DataFrame) -> pd.Series:
    """Per samples row: the distance of its verified adversarial example (a success that passed
    verification), 0 where the clean sample is misclassified, inf where the attack found none."""
    ok = samples["success"].astype(bool) & samples["valid"].astype(bool)
    wrong = samples["clean_pred"] != samples["label"]
    return samples["distance"].where(ok, np.inf).where(~wrong, 0.0)


def min_distance(samples: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint, norm and sample: the smallest distance of a verified adversarial example over
    every attack of that norm (0 if the clean sample is misclassified, inf if no attack succeeded).
    Fixed attacks contribute the distances of their verified successes."""
    frame = samples.assign(distance=verified_distance(samples))
    # pandas-stubs type this as a Series; with as_index=False it is a DataFrame
    return frame.groupby(["prune_id", "cr", "norm", "sample"], as_index=False)["distance"].min()  # type: ignore[return-value]


def dense_curve(samples: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """Accuracy vs epsilon on a fine grid from minimal attacks' per-sample distances, per stage.
    Stages of one attack, norm and CR (e.g. seeds) share one grid, so their curves average point
    by point; columns ``stage_id``, ``seed``, ``attack``, ``norm``,
    ``cr``, ``eps``, ``robust_acc``, ``n``."""
    rows = []
    minimal = white_box(samples)
    minimal = minimal[minimal["kind"] == "minimal"]
    for (attack, norm, cr), runs in minimal.groupby(["attack", "norm", "cr"]):
        d_all = runs["distance"].to_numpy()
        finite = d_all[np.isfinite(d_all)]
        top = float(np.quantile(finite, 0.98)) if len(finite) else 1.0
        grid = np.linspace(0, top * 1.05, points)
        for (stage_id, seed), group in runs.groupby(["stage_id", "seed"]):
            d = group["distance"].to_numpy()
            for eps in grid:
                rows.append(
                    {
                        "stage_id": stage_id,
                        "seed": seed,
                        "attack": attack,
                        "norm": norm,
                        "cr": cr,
                        "eps": float(eps),
                        "robust_acc": float((d > eps).mean()),
                        "n": len(d),
                    }
                )
    return pd.DataFrame(rows)


def fixed_minimal_agreement(attack_rows: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Where fixed and minimal attacks of one norm ran on one checkpoint at the same epsilon, the
    norm's fixed result (the strongest fixed attack there) and each minimal attack's robust accuracy
    should agree within ``tolerance``: a large gap means one kind is weak.

    One row per (fixed attack, minimal attack, eps): ``gap`` is that pair's fixed minus minimal
    robust accuracy (positive: the fixed attack left more samples standing), so a deliberately weak
    fixed attack (the original's PGD presets) shows its gap; ``strongest`` marks the row of the
    strongest fixed attack, whose gap decides ``agree`` for the whole group.
    """
    keys = ["prune_id", "cr", "norm", "eps"]
    columns = [*keys, "fixed", "minimal", "fixed_acc", "minimal_acc", "gap", "strongest", "agree"]
    rows = white_box(attack_rows)
    per_attack = lambda kind: (
        rows[rows["kind"] == kind].groupby([*keys, "attack"], sort=True)["robust_acc"].first().reset_index()
    )
    fixed, minimal = per_attack("fixed"), per_attack("minimal")
    if not len(fixed) or not len(minimal):
        return pd.DataFrame(columns=columns)
    # the strongest fixed attack at each budget: the lowest robust accuracy, the first by name on a tie
    best = fixed.loc[fixed.groupby(keys, sort=False)["robust_acc"].idxmin()]
    fixed = fixed.merge(best.rename(columns={"attack": "best", "robust_acc": "best_acc"}), on=keys)
    pairs = fixed.rename(columns={"attack": "fixed", "robust_acc": "fixed_acc"}).merge(
        minimal.rename(columns={"attack": "minimal", "robust_acc": "minimal_acc"}), on=keys
    )
    pairs = pairs.assign(
        fixed_acc=pairs["fixed_acc"].astype(float),
        minimal_acc=pairs["minimal_acc"].astype(float),
        gap=pairs["fixed_acc"].astype(float) - pairs["minimal_acc"].astype(float),
        strongest=pairs["fixed"] == pairs["best"],
        agree=(pairs["best_acc"] - pairs["minimal_acc"]).abs() <= tolerance,
    )
    return pairs.sort_values([*keys, "minimal", "fixed"], kind="stable")[columns].reset_index(drop=True)


def minimal_curve(clean_ok: np.ndarray, distance: np.ndarray, grid) -> pd.DataFrame:
    """A minimal attack's robust accuracy at each budget of ``grid`` from its one run: the share of
    the samples that the model classifies correctly (``clean_ok``) and whose verified minimal
    distance exceeds the budget (``robust_acc``) or reaches it (``robust_acc_original_rule``, the
    original's rule; at budget 0 both are the clean accuracy).  Distances are compared in float32,
    as the attack stage measures them, and shares are exact integer counts over the samples, so the
    rows of a budget added later equal those the run would have written."""
    clean_ok = np.asarray(clean_ok, dtype=bool)
    distance = np.asarray(distance, dtype=np.float32)
    n = len(clean_ok)
    rows = []
    for eps in grid:
        e = np.float32(eps)
        rows.append(
            {
                "eps": float(eps),
                "robust_acc": int((clean_ok & (distance > e)).sum()) / n,
                "robust_acc_original_rule": int((clean_ok & (distance >= e)).sum()) / n
                if eps > 0
                else int(clean_ok.sum()) / n,
            }
        )
    return pd.DataFrame(rows, columns=["eps", "robust_acc", "robust_acc_original_rule"])
