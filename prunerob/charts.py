"""Altair chart builders: pure functions from tidy frames to interactive charts.

Every builder takes the frames ``results.collect`` returns and filters nothing silently: the caller
chooses the slice (data set, architecture, method, attack) and the chart shows all of it.
"""

from __future__ import annotations

from fractions import Fraction

import altair as alt
import pandas as pd

ACC_AXIS = alt.Axis(format=".0%", title="accuracy")


def eps_label(eps: float, norm: str) -> str:
    """Linf budgets read as k/255 (the convention of the literature); others as numbers."""
    if norm == "Linf" and eps > 0:
        frac = Fraction(eps * 255).limit_denominator(8)
        if abs(float(frac) - eps * 255) < 1e-6:
            return f"{frac}/255"
    return f"{eps:g}"


def _cr_axis() -> alt.X:
    return alt.X("cr:Q", scale=alt.Scale(type="log", base=2), title="compression rate (CR, log scale)",
                 axis=alt.Axis(values=[1, 2, 4, 8, 16, 32, 64, 128], format="d"))


def robust_vs_cr(attack: pd.DataFrame, prune: pd.DataFrame, title: str = "") -> alt.Chart:
    """Robust accuracy vs compression rate, one line per epsilon, and clean test accuracy dashed.

    ``attack``: rows of one attack on one prune stage (all CRs); ``prune``: that stage's rows.
    Click the legend to pick lines (shift-click for more); hover for numbers.
    """
    robust = attack[attack["eps"] > 0].copy()
    robust["series"] = [f"eps = {eps_label(e, n)}" for e, n in zip(robust["eps"], robust["norm"])]
    robust["order"] = robust["eps"]
    clean = prune[["cr", "clean_acc", "sparsity"]].rename(columns={"clean_acc": "robust_acc"})
    clean = clean.assign(series="clean (full test set)", order=-1.0, n=None)
    cols = ["cr", "robust_acc", "series", "order", "sparsity", "n"]
    frame = pd.concat([clean[cols], robust[cols]], ignore_index=True)
    series = list(dict.fromkeys(frame.sort_values("order")["series"]))
    pick = alt.selection_point(fields=["series"], bind="legend")
    base = alt.Chart(frame).encode(
        x=_cr_axis(),
        y=alt.Y("robust_acc:Q", axis=ACC_AXIS, scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("series:N", sort=series, title="line (click to select)",
                        scale=alt.Scale(scheme="viridis")),
        strokeDash=alt.condition("datum.order < 0", alt.value([5, 3]), alt.value([1, 0])),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
        tooltip=[alt.Tooltip("series:N", title="line"), alt.Tooltip("cr:Q", title="CR"),
                 alt.Tooltip("sparsity:Q", format=".4f", title="measured sparsity"),
                 alt.Tooltip("robust_acc:Q", format=".3f", title="accuracy"),
                 alt.Tooltip("n:Q", title="attacked samples")],
    )
    chart = (base.mark_line(point=True) + base.mark_point(size=60, filled=True)).add_params(pick)
    return chart.properties(width=520, height=320, title=title or "robust accuracy vs compression rate")
