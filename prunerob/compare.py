"""Compare models (trainings, architectures) under pruning: the same attacks, the same worst case.

Two models compare fairly only on the attacks both faced: the standard CNN on MNIST also ran the
original's weaker presets, which could only lower its per-sample worst case.  ``worst_case_by_model``
keeps the attack runs (attack and preset) every compared model has, takes the per-sample worst case
per norm, and labels each row with the model's name, with a 95 % Wilson interval over the images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prunerob import evaluate, stats


def rows_of(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    """The rows whose columns equal every value in ``where`` (an empty frame stays empty)."""
    if not len(frame):
        return frame
    missing = [k for k in where if k not in frame]
    if missing:
        raise KeyError(f"no column {', '.join(missing)} in the table; columns: {', '.join(frame.columns)}")
    return frame[(frame[list(where)] == pd.Series(where)).all(axis=1)]


def _runs(frame: pd.DataFrame) -> pd.Series:
    return frame["attack"] + "/" + frame["preset"].astype(str)


def worst_case_by_model(attack: pd.DataFrame, samples: pd.DataFrame, models: dict[str, dict]) -> pd.DataFrame:
    """Per model (label -> column values), CR, norm and eps: robust accuracy, per-sample worst case
    over the white-box attack runs that every model faced; columns ``method`` (the label), ``cr``,
    ``norm``, ``eps``, ``robust_acc``, ``n``, ``low``, ``high``, ``attacks``.  Empty when any model
    has no attack results."""
    attack, samples = evaluate.white_box(attack), evaluate.white_box(samples)
    picked = {label: (rows_of(attack, where), rows_of(samples, where)) for label, where in models.items()}
    if not models or any(not len(a) or not len(s) for a, s in picked.values()):
        return pd.DataFrame(columns=["method", "cr", "norm", "eps", "robust_acc", "n", "low", "high", "attacks"])
    common = set.intersection(*(set(_runs(a)) for a, _ in picked.values()))
    parts = []
    for label, (a, s) in picked.items():
        a, s = a[_runs(a).isin(common)], s[_runs(s).isin(common)]
        grids = {n: sorted(r["eps"].unique()) for n, r in a.groupby("norm")}
        worst = evaluate.worst_case(s, grids)
        parts.append(worst.assign(method=label))
    out = pd.concat(parts, ignore_index=True)
    low, high = stats.wilson_interval(np.round(out["robust_acc"] * out["n"]), out["n"])
    return out.assign(low=low, high=high)[["method", "cr", "norm", "eps", "robust_acc", "n", "low", "high", "attacks"]]


def summary_at(worst: pd.DataFrame, norm: str, reference: str) -> tuple[float, pd.DataFrame]:
    """The budget of ``norm`` where model ``reference``'s dense robust accuracy is nearest 50 % (the
    lines differ most there) and the robust accuracy there per CR (rows) and model (columns)."""
    rows = worst[(worst["norm"] == norm) & (worst["eps"] > 0)]
    ref = rows[(rows["method"] == reference) & (rows["cr"] == 1)]
    eps = float(ref.loc[(ref["robust_acc"] - 0.5).abs().idxmin(), "eps"])
    return eps, rows[rows["eps"] == eps].pivot_table(index="cr", columns="method", values="robust_acc")


def norm_comparison(worst: pd.DataFrame, norm: str, reference: str, other: str,
                    names: tuple[str, str] | None = None) -> tuple[float, str] | None:
    """One norm of a two-model comparison, for a chapter's text: the budget of ``summary_at`` and a
    sentence such as 'at Linf 8/255 the CNN keeps 94.0% of the images dense and 80.1% at CR 64; the
    MLP 60.2% dense and 38.0% at CR 64 (its best CR: 4, 65.8%)', at the largest CR both models
    reach.  ``names`` are the two models' names in the sentence (default: their labels).  None when
    the norm lacks rows of either model."""
    from prunerob.charts import eps_label

    rows = worst[worst["norm"] == norm] if len(worst) else worst
    if not len(rows) or not {reference, other} <= set(rows["method"]):
        return None
    eps, at = summary_at(worst, norm, reference)
    top = at.dropna().index.max()
    ref, oth = names or (reference, other)
    unit = " pixels" if norm == "L0" else ""
    return eps, (f"at {norm} {eps_label(eps, norm)}{unit} the {ref} keeps {at.loc[1, reference]:.1%} of the images "
                 f"dense and {at.loc[top, reference]:.1%} at CR {top:g}; the {oth} {at.loc[1, other]:.1%} dense and "
                 f"{at.loc[top, other]:.1%} at CR {top:g} (its best CR: {at[other].idxmax():g}, "
                 f"{at[other].max():.1%})")
