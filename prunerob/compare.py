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
