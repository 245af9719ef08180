"""Compare models (trainings, architectures) under pruning: the same attacks, the same worst case.

Two models compare fairly only on the attacks both faced: the standard CNN on MNIST also ran the
original's weaker presets, which could only lower its per-sample worst case.  ``worst_case_by_model``
keeps the attack runs (attack and preset) every compared model has, takes the per-sample worst case
per norm, and labels each row with the model's name.  Where a model ran several seeds, the rows
are the mean over seeds with a band that holds both the seeds' spread and the images' sampling
noise; a seed that faced fewer attacks limits every seed to the attacks they all faced.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prunerob import aggregate, stats
from prunerob.catalog import eps_label


def rows_of(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    """The rows whose columns equal every value in ``where`` (an empty frame stays empty)."""
    if not len(frame):
        return frame
    missing = [k for k in where if k not in frame]
    if missing:
        raise KeyError(f"no column {', '.join(missing)} in the table; columns: {', '.join(frame.columns)}")
    keep = np.ones(len(frame), dtype=bool)
    for column, value in where.items():  # column by column: a frame-wide == copies every row
        keep &= (frame[column] == value).fillna(False).to_numpy(dtype=bool)
    return frame[keep]


def _runs(frame: pd.DataFrame) -> pd.Series:
    return frame["attack"] + "/" + frame["preset"].astype(str)


def _seed_of(samples: pd.DataFrame) -> pd.Series:
    """prune_id -> training seed."""
    return samples.drop_duplicates("prune_id").set_index("prune_id")["seed"]


def worst_case_per_seed(attack: pd.DataFrame, samples: pd.DataFrame, models: dict[str, dict]) -> pd.DataFrame:
    """Per model (label -> column values), seed, CR, norm and eps: robust accuracy, per-sample worst
    case over the white-box attack runs that every compared model *and every seed of it* faced
    (a mean over seeds compares like with like); columns ``method`` (the label), ``seed``,
    ``prune_id``, ``cr``, ``norm``, ``eps``, ``robust_acc``, ``n``, ``attacks``.  Empty when any
    model has no attack results."""
    cols = ["method", "seed", "prune_id", "cr", "norm", "eps", "robust_acc", "n", "attacks"]
    attack, samples = aggregate.white_box(attack), aggregate.white_box(samples)
    picked = {label: (rows_of(attack, where), rows_of(samples, where)) for label, where in models.items()}
    if not models or any(not len(a) or not len(s) for a, s in picked.values()):
        return pd.DataFrame(columns=cols)
    common = set.intersection(*(set(_runs(runs)) for a, _ in picked.values() for _, runs in a.groupby("prune_id")))
    parts = []
    for label, (a, s) in picked.items():
        a, s = a[_runs(a).isin(common)], s[_runs(s).isin(common)]
        worst = aggregate.worst_case(s, aggregate.eps_grids(a))
        parts.append(worst.assign(method=label, seed=worst["prune_id"].map(_seed_of(s))))
    return pd.concat(parts, ignore_index=True)[cols]


def mean_over_seeds(
    frame: pd.DataFrame, by: list[str], value: str = "robust_acc", n: str | None = "n", confidence: float = 0.95
) -> pd.DataFrame:
    """Per group of ``by``: the mean of ``value`` over the seeds (rows) in it, ``n_seeds``, the
    seeds' standard deviation ``seed_sd`` and a band ``low``/``high`` (:func:`stats.seed_band`:
    the seeds' t-interval and, with ``n`` (a column of images per seed), the Wilson interval of the
    images, added in quadrature).  ``n`` keeps the smallest count of a group."""
    if not len(frame):
        return pd.DataFrame(columns=[*by, value, *([n] if n else []), "n_seeds", "seed_sd", "low", "high"])
    spec = {value: (value, "mean"), "seed_sd": (value, "std"), "n_seeds": (value, "size")}
    if n:
        spec[n] = (n, "min")
    out = frame.groupby(by, as_index=False, dropna=False, sort=True).agg(**spec)
    out["low"], out["high"] = stats.seed_band(
        out[value], out["seed_sd"], out["n_seeds"], out[n] if n else None, confidence
    )
    return out


def worst_case_by_model(
    attack: pd.DataFrame, samples: pd.DataFrame, models: dict[str, dict], confidence: float = 0.95
) -> pd.DataFrame:
    """:func:`worst_case_per_seed`, averaged over seeds (:func:`mean_over_seeds`): per model, CR,
    norm and eps the mean robust accuracy, ``n`` (images per seed), ``n_seeds`` and a 95 % band
    ``low``/``high`` (seeds and images; with one seed, the Wilson interval over the images)."""
    cols = ["method", "cr", "norm", "eps", "robust_acc", "n", "n_seeds", "low", "high", "attacks"]
    per_seed = worst_case_per_seed(attack, samples, models)
    if not len(per_seed):
        return pd.DataFrame(columns=cols)
    return mean_over_seeds(per_seed, ["method", "cr", "norm", "eps", "attacks"], confidence=confidence)[cols]


# the prune table's columns that name a method (a seed mean groups by these and the CR)
PRUNE_KEYS = ["dataset", "arch", "training", "structure", "scope", "criterion", "schedule", "prune_dense_neurons"]


def prune_over_seeds(prune: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The prune table averaged over seeds: one row per method and CR with the mean ``clean_acc``
    (its band ``low``/``high``: the seeds' t-interval; the full test set adds no sampling noise
    worth drawing), ``n_seeds``, and the means of ``kept``, ``sparsity``, ``n_kept``,
    ``layers_removed``, ``finetune_epochs``; ``n_prunable`` of the first seed."""
    keys = [*PRUNE_KEYS, "cr"]
    if not len(prune):
        return prune.assign(n_seeds=pd.Series(dtype=int), low=pd.Series(dtype=float), high=pd.Series(dtype=float))
    out = mean_over_seeds(prune, keys, "clean_acc", None, confidence)
    means = prune.groupby(keys, as_index=False, dropna=False, sort=True).agg(
        **{c: (c, "mean") for c in ("kept", "sparsity", "n_kept", "layers_removed", "finetune_epochs")},
        n_prunable=("n_prunable", "first"),
    )
    return out.merge(means, on=keys, how="left")


def summary_at(worst: pd.DataFrame, norm: str, reference: str) -> tuple[float, pd.DataFrame]:
    """The budget of ``norm`` where model ``reference``'s dense robust accuracy is nearest 50 % (the
    lines differ most there) and the robust accuracy there per CR (rows) and model (columns)."""
    rows = worst[(worst["norm"] == norm) & (worst["eps"] > 0)]
    ref = rows[(rows["method"] == reference) & (rows["cr"] == 1)]
    nearest = (ref["robust_acc"] - 0.5).abs().idxmin()
    eps = float(ref.loc[nearest, "eps"])  # type: ignore[arg-type,index]  # pandas-stubs: .loc refuses idxmin's Hashable
    return eps, rows[rows["eps"] == eps].pivot_table(index="cr", columns="method", values="robust_acc")


def norm_comparison(
    worst: pd.DataFrame, norm: str, reference: str, other: str, names: tuple[str, str] | None = None
) -> tuple[float, str] | None:
    """One norm of a two-model comparison, for a chapter's text: the budget of ``summary_at`` and a
    sentence such as 'at Linf 8/255 the CNN keeps 94.0% of the images dense and 80.1% at CR 64; the
    MLP 60.2% dense and 38.0% at CR 64 (its best CR: 4, 65.8%)', at the largest CR both models
    reach.  ``names`` are the two models' names in the sentence (default: their labels).  None when
    the norm lacks rows of either model."""
    rows = worst[worst["norm"] == norm] if len(worst) else worst
    if not len(rows) or not {reference, other} <= set(rows["method"]):
        return None
    # only the two models: a third one in the frame must not cut the CRs both of them reach
    eps, at = summary_at(rows[rows["method"].isin([reference, other])], norm, reference)
    top = at.dropna().index.max()
    ref, oth = names or (reference, other)
    unit = " pixels" if norm == "L0" else ""
    note = {m: seeds_note(rows, m, top) for m in (reference, other)}
    return eps, (
        f"at {norm} {eps_label(eps, norm)}{unit} the {ref} keeps {at[reference].loc[1]:.1%} of the images "
        f"dense and {at[reference].loc[top]:.1%} at CR {top:g}{f' ({note[reference]})' if note[reference] else ''}; "
        f"the {oth} {at[other].loc[1]:.1%} dense and {at[other].loc[top]:.1%} at CR {top:g} "
        f"({note[other] + '; ' if note[other] else ''}its best CR: {at[other].idxmax():g}, {at[other].max():.1%})"
    )


def seeds_note(worst: pd.DataFrame, model: str, cr: float) -> str:
    """What a model's number at ``cr`` rests on (``worst_case_by_model`` rows): "one seed" or "mean
    over 3 seeds"; empty where the rows do not say (no ``n_seeds``)."""
    if "n_seeds" not in worst:
        return ""
    n = worst.loc[(worst["method"] == model) & (worst["cr"] == cr), "n_seeds"]
    if not len(n):
        return ""
    return seeds_text(int(n.max()))


def seeds_text(k: int) -> str:
    """'one seed' or 'mean over k seeds'."""
    return "one seed" if k == 1 else f"mean over {k} seeds"
