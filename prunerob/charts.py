"""Altair chart builders: pure functions from tidy frames to interactive charts.

Every builder takes the frames ``results.collect`` returns and filters nothing silently: the caller
chooses the slice (data set, architecture, method, attack) and the chart shows all of it.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from prunerob import compare
from prunerob.catalog import eps_label

ACC_AXIS = alt.Axis(format=".0%", title="accuracy")

# The book's headline model and method: the chapters about "the CNN" show exactly these rows.
HEADLINE = {
    "dataset": "mnist",
    "arch": "cnn",
    "training": "standard",
    "structure": "unstructured",
    "scope": "global",
    "criterion": "magnitude",
}


def whole_tables() -> None:
    """A chapter's tables shown whole: every row and column, cells never cut with '...' (pandas cuts
    a table of over 60 rows to 10 by default)."""
    for option in ("display.max_rows", "display.max_columns", "display.max_colwidth"):
        pd.set_option(option, None)


def pick(frame: pd.DataFrame, **where) -> pd.DataFrame:
    """The rows of ``frame`` that match ``HEADLINE`` updated with ``where``; a value of None drops
    that key (``pick(prune, structure=None, scope=None, criterion=None)``: every method of the
    standard CNN on MNIST). An empty frame comes back unchanged; a non-empty one without a column
    the selection needs raises a KeyError naming it (a missing column must not select everything)."""
    keys = {k: v for k, v in {**HEADLINE, **where}.items() if v is not None}
    missing = [k for k in keys if k not in frame] if len(frame) else []
    if missing:
        raise KeyError(
            f"pick: the frame has no column {', '.join(map(repr, missing))} to select on; "
            f"pass {missing[0]}=None to select without it"
        )
    return compare.rows_of(frame, keys)


def middle_eps(frame: pd.DataFrame, column: str = "robust_acc") -> float:
    """The budget at which the dense model's (CR 1) ``column`` is nearest 50 %, where the lines of
    pruned models differ most: charts with an epsilon dropdown open on it. Without CR 1 rows, the
    nearest over every row (of eps > 0)."""
    robust = frame[frame["eps"] > 0]
    dense = robust[robust["cr"] == 1] if "cr" in robust else robust.iloc[:0]
    dense = (dense if len(dense) else robust).reset_index(drop=True)
    nearest = (dense[column] - 0.5).abs().idxmin()
    return float(dense.loc[nearest, "eps"])  # type: ignore[arg-type,index]  # pandas-stubs: .loc refuses idxmin's Hashable


def model_label(frame: pd.DataFrame) -> pd.Series:
    """'cnn on mnist'; a model not trained the standard way says how: 'cnn on mnist, PGD training
    (eps 0.1)', so that two trainings of one architecture never share a label."""
    if not len(frame):
        return pd.Series(dtype=str, index=frame.index)
    label = frame["arch"] + " on " + frame["dataset"]
    training = frame["training"]
    named = training.str.replace(r"^pgd\b", "PGD training", regex=True).str.replace(
        r"^standard\b", "standard training", regex=True
    )
    return label.where(training == "standard", label + ", " + named)


def _cr_axis() -> alt.X:
    return alt.X(
        "cr:Q",
        scale=alt.Scale(type="log", base=2),
        title="compression rate (CR, log scale)",
        axis=alt.Axis(values=[1, 2, 4, 8, 16, 32, 64, 128], format="d"),
    )


def _seed_tooltips(frame: pd.DataFrame) -> list:
    """Tooltips for a seed mean's band, where the frame has one (``low``, ``high``, ``n_seeds``)."""
    out = []
    if "low" in frame:
        out += [
            alt.Tooltip("low:Q", format=".3f", title="95% band low"),
            alt.Tooltip("high:Q", format=".3f", title="95% band high"),
        ]
    if "n_seeds" in frame:
        out.append(alt.Tooltip("n_seeds:Q", title="seeds"))
    return out


def _band(base: alt.Chart, pick: alt.Parameter, **encodings) -> alt.Chart:
    """The area between ``low`` and ``high`` (a seed mean's 95 % band), faded with the legend pick."""
    return base.mark_area(opacity=0.15).encode(
        y="low:Q", y2="high:Q", **encodings, opacity=alt.condition(pick, alt.value(0.18), alt.value(0.03))
    )


def robust_vs_cr(attack: pd.DataFrame, prune: pd.DataFrame, title: str = "") -> alt.Chart:
    """Robust accuracy vs compression rate, one line per epsilon, and clean test accuracy dashed.

    ``attack``: rows of one attack (or worst case) on one method (all CRs); ``prune``: that
    method's rows.  Where the rows are seed means (``compare.mean_over_seeds``,
    ``compare.prune_over_seeds``), their band ``low``/``high`` is drawn around each line.
    Click the legend to pick lines (shift-click for more); hover for numbers.
    """
    robust = attack[attack["eps"] > 0].copy()
    robust["series"] = [f"eps = {eps_label(e, n)}" for e, n in zip(robust["eps"], robust["norm"])]
    robust["order"] = robust["eps"]
    clean = prune.rename(columns={"clean_acc": "robust_acc"})
    clean = clean.assign(series="clean (full test set)", order=-1.0, n=None)
    cols = ["cr", "robust_acc", "series", "order", "sparsity", "n"]
    cols += [c for c in ("low", "high", "n_seeds") if c in robust and c in clean]
    frame = pd.concat([clean[cols], robust[cols]], ignore_index=True)
    series = list(dict.fromkeys(frame.sort_values("order")["series"]))
    pick = alt.selection_point(fields=["series"], bind="legend")
    base = alt.Chart(frame).encode(
        x=_cr_axis(),
        y=alt.Y("robust_acc:Q", axis=ACC_AXIS, scale=alt.Scale(domain=[0, 1])),
        color=alt.Color(
            "series:N",
            sort=series,
            title="line (click to select)",
            scale=alt.Scale(scheme="viridis"),
            legend=alt.Legend(symbolOpacity=1),
        ),
        strokeDash=alt.condition("datum.order < 0", alt.value([5, 3]), alt.value([1, 0])),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
        tooltip=[
            alt.Tooltip("series:N", title="line"),
            alt.Tooltip("cr:Q", title="CR"),
            alt.Tooltip("sparsity:Q", format=".4f", title="measured sparsity"),
            alt.Tooltip("robust_acc:Q", format=".3f", title="accuracy"),
            alt.Tooltip("n:Q", title="attacked samples"),
            *_seed_tooltips(frame),
        ],
    )
    chart = (base.mark_line(point=True) + base.mark_point(size=60, filled=True)).add_params(pick)
    if "low" in frame:
        chart = alt.layer(_band(base, pick, strokeDash=alt.value([1, 0])), chart)
    return chart.properties(width=520, height=320, title=title or "robust accuracy vs compression rate")


def method_label(frame: pd.DataFrame) -> pd.Series:
    """'global magnitude unstructured' etc.; '+ dense neurons' where structured pruning also pruned them."""
    label = frame["scope"] + " " + frame["criterion"] + " " + frame["structure"]
    return label.where(~frame["prune_dense_neurons"].astype(bool), label + " + dense neurons")


def _method_lines(frame: pd.DataFrame, y: str, y_axis: alt.Axis, title: str, extra_tooltip: list) -> alt.Chart:
    frame = frame.assign(method=method_label(frame)) if "method" not in frame else frame
    pick = alt.selection_point(fields=["method"], bind="legend")
    base = alt.Chart(frame).encode(
        x=_cr_axis(),
        y=alt.Y(f"{y}:Q", axis=y_axis, scale=alt.Scale(domain=[0, 1]) if y != "kept" else alt.Scale(type="log")),
        color=alt.Color(
            "method:N",
            title="method (click to select)",
            scale=alt.Scale(scheme="tableau20"),
            legend=alt.Legend(symbolOpacity=1),
        ),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
        tooltip=[
            alt.Tooltip("method:N"),
            alt.Tooltip("cr:Q", title="CR"),
            alt.Tooltip("kept:Q", format=".5f", title="measured kept fraction"),
            alt.Tooltip("clean_acc:Q", format=".4f", title="clean accuracy"),
            *extra_tooltip,
            *(_seed_tooltips(frame) if y == "clean_acc" else []),
        ],
    )
    lines = base.mark_line(point=True).add_params(pick)
    if y == "clean_acc" and "low" in frame:  # seed means: their band
        lines = alt.layer(_band(base, pick), lines)
    return lines.properties(width=520, height=320, title=title)


def clean_vs_cr(prune: pd.DataFrame, title: str = "") -> alt.Chart:
    """Clean test accuracy after pruning and fine-tuning vs CR, one line per pruning method (with
    the band of a seed mean where ``prune`` is ``compare.prune_over_seeds`` rows)."""
    return _method_lines(
        prune,
        "clean_acc",
        ACC_AXIS,
        title or "clean accuracy vs compression rate",
        [alt.Tooltip("layers_removed:Q", title="layers removed")],
    )


def kept_vs_cr(prune: pd.DataFrame, title: str = "") -> alt.LayerChart | alt.FacetChart:
    """Measured kept fraction of the prunable weights vs CR per method, with the target 1/CR dashed."""
    lines = _method_lines(
        prune,
        "kept",
        alt.Axis(title="kept fraction (log scale)", format="~g"),
        title or "kept fraction vs compression rate",
        [alt.Tooltip("n_kept:Q", title="weights kept")],
    )
    crs = sorted(prune["cr"].unique())
    target = (
        alt.Chart(pd.DataFrame({"cr": crs, "kept": [1 / c for c in crs]}))
        .mark_line(strokeDash=[5, 3], color="black")
        .encode(x="cr:Q", y="kept:Q")
    )
    return alt.layer(target, lines)


def acc_vs_eps(curves: pd.DataFrame, norm: str, title: str = "") -> alt.Chart:
    """Robust accuracy vs attack strength, one line per compression rate (from ``aggregate.dense_curve``
    or any rows with cr, eps, robust_acc; seed means with ``low``/``high`` get a band). Click the
    legend to pick compression rates."""
    frame = curves.assign(CR=[f"CR {c:g}" for c in curves["cr"]])
    order = [f"CR {c:g}" for c in sorted(curves["cr"].unique())]
    pick = alt.selection_point(fields=["CR"], bind="legend")
    x_title = {"Linf": "Linf epsilon", "L2": "L2 epsilon", "L0": "L0 epsilon (pixels)"}[norm]
    base = alt.Chart(frame).encode(
        x=alt.X("eps:Q", title=x_title),
        color=alt.Color(
            "CR:N",
            sort=order,
            scale=alt.Scale(scheme="plasma"),
            title="CR (click to select)",
            legend=alt.Legend(symbolOpacity=1),
        ),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
    )
    lines = (
        base.mark_line()
        .encode(
            y=alt.Y("robust_acc:Q", axis=ACC_AXIS, scale=alt.Scale(domain=[0, 1])),
            tooltip=[
                alt.Tooltip("CR:N"),
                alt.Tooltip("eps:Q", format=".4f"),
                alt.Tooltip("robust_acc:Q", format=".3f", title="robust accuracy"),
                *_seed_tooltips(frame),
            ],
        )
        .add_params(pick)
    )
    if "low" in frame:
        lines = alt.layer(_band(base, pick), lines)
    return lines.properties(width=520, height=300, title=title or f"robust accuracy vs {norm} epsilon")


def versus_original(ours: pd.DataFrame, original: pd.DataFrame, title: str = "") -> alt.Chart:
    """Robust accuracy vs CR, reproduced (solid) beside the original's mean over its runs (dashed),
    one colour per epsilon. ``ours`` and ``original``: rows of one attack with cr, eps, norm, robust_acc."""
    mine = ours[ours["eps"] > 0].groupby(["cr", "eps", "norm"], as_index=False)["robust_acc"].mean()
    theirs = (
        original[original["eps"] > 0]
        .groupby(["cr", "eps", "norm"], as_index=False)["robust_acc"]
        .agg(robust_acc="mean", low="min", high="max")
    )
    frame = pd.concat(
        [mine.assign(source="reproduced"), theirs.assign(source="original (mean of runs)")], ignore_index=True
    )
    frame["epsilon"] = [eps_label(e, n) for e, n in zip(frame["eps"], frame["norm"])]
    order = [eps_label(e, frame["norm"].iloc[0]) for e in sorted(frame["eps"].unique())]
    pick = alt.selection_point(fields=["epsilon"], bind="legend")
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=_cr_axis(),
            y=alt.Y("robust_acc:Q", axis=ACC_AXIS, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("epsilon:N", sort=order, scale=alt.Scale(scheme="viridis"), title="epsilon (click)"),
            strokeDash=alt.StrokeDash(
                "source:N",
                title="source",
                scale=alt.Scale(domain=["reproduced", "original (mean of runs)"], range=[[1, 0], [5, 3]]),
            ),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
            tooltip=[
                "source:N",
                "epsilon:N",
                alt.Tooltip("cr:Q", title="CR"),
                alt.Tooltip("robust_acc:Q", format=".3f"),
                alt.Tooltip("low:Q", format=".3f", title="original min"),
                alt.Tooltip("high:Q", format=".3f", title="original max"),
            ],
        )
        .add_params(pick)
        .properties(width=520, height=320, title=title or "reproduced vs original")
    )


def placeholder(text: str) -> alt.Chart:
    """A chart that says what is missing (a profile without results for a figure) instead of failing."""
    return (
        alt.Chart(pd.DataFrame({"text": [text]}))
        .mark_text(size=14)
        .encode(text="text:N")
        .properties(width=520, height=80)
    )


def _eps_picker(labels: list[str], name: str = "eps_pick", initial: str | None = None) -> alt.Parameter:
    """A dropdown over epsilon labels (in the given order), bound under the chart."""
    return alt.param(
        name=name,
        value=initial if initial is not None else labels[len(labels) // 2],
        bind=alt.binding_select(options=labels, name="epsilon "),
    )


def _with_eps_label(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    frame = frame.assign(epsilon=[eps_label(e, n) for e, n in zip(frame["eps"], frame["norm"])])
    order = list(dict.fromkeys(frame.sort_values("eps")["epsilon"]))
    return frame, order


def robust_vs_cr_by_eps(
    robust: pd.DataFrame, prune: pd.DataFrame | None = None, title: str = "", initial_eps: str | None = None
) -> alt.LayerChart | alt.FacetChart:
    """Robust accuracy vs CR, one line per pruning method, for the epsilon picked in a dropdown.

    ``robust``: rows of one norm with the method columns, ``cr``, ``eps``, ``robust_acc`` and, when
    present, ``low``/``high`` (an interval, drawn as a band).  ``prune`` (optional): the prune
    table; its clean accuracy is drawn dashed for each method.  Click a legend entry to highlight
    a method (shift-click for more); hover for numbers.
    """
    frame = robust[robust["eps"] > 0]
    frame = frame.assign(method=method_label(frame)) if "method" not in frame else frame
    frame, order = _with_eps_label(frame)
    if "low" not in frame:
        frame = frame.assign(low=frame["robust_acc"], high=frame["robust_acc"])
    cols = ["method", "cr", "eps", "epsilon", "robust_acc", "low", "high"] + [c for c in ("n", "n_seeds") if c in frame]
    frame = frame[cols]
    picker = _eps_picker(order, initial=initial_eps)
    pick = alt.selection_point(fields=["method"], bind="legend")
    color = alt.Color(
        "method:N",
        title="method (click to select)",
        scale=alt.Scale(scheme="tableau10"),
        legend=alt.Legend(symbolOpacity=1),
    )
    y = alt.Y("robust_acc:Q", axis=ACC_AXIS, scale=alt.Scale(domain=[0, 1]))
    tooltip = [
        alt.Tooltip("method:N"),
        alt.Tooltip("epsilon:N"),
        alt.Tooltip("cr:Q", title="CR"),
        alt.Tooltip("robust_acc:Q", format=".3f", title="robust accuracy"),
        alt.Tooltip("low:Q", format=".3f", title="interval low"),
        alt.Tooltip("high:Q", format=".3f", title="interval high"),
        *([alt.Tooltip("n_seeds:Q", title="seeds")] if "n_seeds" in frame else []),
    ]
    base = (
        alt.Chart(frame)
        .transform_filter(alt.datum.epsilon == picker)
        .encode(x=_cr_axis(), color=color, opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)))
    )
    band = base.mark_area(opacity=0.18).encode(
        y="low:Q", y2="high:Q", opacity=alt.condition(pick, alt.value(0.2), alt.value(0.03))
    )
    lines = base.mark_line(point=True).encode(y=y, tooltip=tooltip)
    layers = [band, lines.add_params(pick, picker)]
    if prune is not None and len(prune):
        clean = prune.assign(method=method_label(prune))
        clean = clean[clean["method"].isin(frame["method"])][["method", "cr", "clean_acc"]]
        layers.insert(
            0,
            alt.Chart(clean)
            .mark_line(strokeDash=[5, 3])
            .encode(
                x=_cr_axis(),
                y=alt.Y("clean_acc:Q", axis=ACC_AXIS, scale=alt.Scale(domain=[0, 1])),
                color=color,
                opacity=alt.condition(pick, alt.value(0.8), alt.value(0.1)),
                tooltip=[
                    alt.Tooltip("method:N"),
                    alt.Tooltip("cr:Q", title="CR"),
                    alt.Tooltip("clean_acc:Q", format=".4f", title="clean accuracy (full test set)"),
                ],
            ),
        )
    return alt.layer(*layers).properties(width=520, height=320, title=title or "robust accuracy vs compression rate")


def scenario_lines_chart(acc: pd.DataFrame, title: str = "", initial_eps: str | None = None) -> alt.VConcatChart:
    """Aggregated accuracy acc(p) = (1-p) clean + p robust against the adversarial share p, one line
    per CR, for the epsilon picked in a dropdown (``acc``: rows of ``scenarios.accuracy_over_p`` for
    one norm and one method, CR 1 included).  Below: acc(p) minus the dense model's acc(p), where
    the small gaps between the lines are visible.  Click the legend to highlight compression rates."""
    frame, order = _with_eps_label(acc[acc["eps"] > 0])
    frame = frame.assign(CR=[f"CR {c:g}" for c in frame["cr"]])[
        ["CR", "cr", "eps", "epsilon", "p", "acc", "clean", "robust"]
    ]
    dense = frame[frame["cr"] == frame["cr"].min()][["epsilon", "p", "acc"]].rename(columns={"acc": "dense_acc"})
    frame = frame.merge(dense, on=["epsilon", "p"], how="left")
    frame["gain"] = frame["acc"] - frame["dense_acc"]
    crs = [f"CR {c:g}" for c in sorted(frame["cr"].unique())]
    picker = _eps_picker(order, initial=initial_eps)
    pick = alt.selection_point(fields=["CR"], bind="legend")
    x = alt.X("p:Q", title="share of adversarial inputs p", axis=alt.Axis(format=".0%"))
    base = (
        alt.Chart(frame)
        .transform_filter(alt.datum.epsilon == picker)
        .encode(
            x=x,
            color=alt.Color("CR:N", sort=crs, scale=alt.Scale(scheme="plasma"), title="CR (click to select)"),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
            tooltip=[
                alt.Tooltip("CR:N"),
                alt.Tooltip("epsilon:N"),
                alt.Tooltip("p:Q", format=".2f"),
                alt.Tooltip("acc:Q", format=".4f", title="acc(p)"),
                alt.Tooltip("gain:Q", format="+.4f", title="minus dense acc(p)"),
                alt.Tooltip("clean:Q", format=".4f", title="clean (p = 0)"),
                alt.Tooltip("robust:Q", format=".3f", title="robust (p = 1)"),
            ],
        )
    )
    top = (
        base.mark_line(point=True)
        .encode(
            y=alt.Y(
                "acc:Q", axis=alt.Axis(format=".0%", title="aggregated accuracy acc(p)"), scale=alt.Scale(domain=[0, 1])
            )
        )
        .add_params(pick, picker)
        .properties(width=520, height=280, title=title or "accuracy vs adversarial share")
    )
    bottom = (
        base.mark_line(point=True)
        .encode(y=alt.Y("gain:Q", axis=alt.Axis(format="+.1%", title="acc(p) minus dense")))
        .properties(width=520, height=160)
    )
    return alt.vconcat(top, bottom)


def difference_vs_cr(
    diffs: pd.DataFrame, title: str = "", initial_eps: str | None = None
) -> alt.LayerChart | alt.FacetChart:
    """Robust accuracy of each pruned model minus the dense model's, with its interval, vs CR, one
    colour per method, for the epsilon picked in a dropdown (``diffs``: rows of
    ``scenarios.sweet_spots`` for one norm).  Filled points: the interval excludes 0."""
    frame = diffs.assign(method=method_label(diffs)) if "method" not in diffs else diffs
    frame, order = _with_eps_label(frame)
    frame = frame[["method", "cr", "eps", "epsilon", "dense", "pruned", "diff", "low", "high", "verdict"]]
    picker = _eps_picker(order, initial=initial_eps)
    pick = alt.selection_point(fields=["method"], bind="legend")
    base = (
        alt.Chart(frame)
        .transform_filter(alt.datum.epsilon == picker)
        .encode(
            x=_cr_axis(),
            color=alt.Color(
                "method:N",
                title="method (click to select)",
                scale=alt.Scale(scheme="tableau10"),
                legend=alt.Legend(labelLimit=420),
            ),  # labels name the model too
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
        )
    )
    y_axis = alt.Axis(format="+.0%", title="robust accuracy, pruned minus dense")
    bars = base.mark_rule(strokeWidth=2).encode(y=alt.Y("low:Q", axis=y_axis), y2="high:Q")
    points = base.mark_point(size=70).encode(
        y=alt.Y("diff:Q", axis=y_axis),
        fill=alt.condition(
            "datum.verdict != 'no clear difference'", alt.Color("method:N", legend=None), alt.value("white")
        ),
        tooltip=[
            alt.Tooltip("method:N"),
            alt.Tooltip("epsilon:N"),
            alt.Tooltip("cr:Q", title="CR"),
            alt.Tooltip("dense:Q", format=".3f", title="dense robust"),
            alt.Tooltip("pruned:Q", format=".3f", title="pruned robust"),
            alt.Tooltip("diff:Q", format="+.3f", title="difference"),
            alt.Tooltip("low:Q", format="+.3f", title="interval low"),
            alt.Tooltip("high:Q", format="+.3f", title="interval high"),
            alt.Tooltip("verdict:N"),
        ],
    )
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="gray", strokeDash=[4, 3]).encode(y="y:Q")
    return alt.layer(zero, bars, points.add_params(pick, picker)).properties(
        width=520, height=300, title=title or "pruned minus dense robust accuracy"
    )


def _method_picker(methods: list[str], name: str = "method_pick") -> alt.Parameter:
    """A dropdown over methods, 'all methods' first (the initial state, which static copies show)."""
    return alt.param(
        name=name, value="all methods", bind=alt.binding_select(options=["all methods", *methods], name="method ")
    )


def methods_vs_original(frame: pd.DataFrame, title: str = "") -> alt.HConcatChart:
    """Clean accuracy (left) and measured kept fraction of the prunable weights (right, log scale)
    vs CR per pruning method: ours solid, the original's dashed with its range over runs as a band
    (``frame``: rows of ``reference.methods_vs_original``). Pick a method in the dropdown or click
    the legend (shift-click for more); hover for numbers."""
    methods = sorted(frame["method"].unique())
    sources = list(dict.fromkeys(frame["source"]))
    picker = _method_picker(methods)
    pick = alt.selection_point(fields=["method"], bind="legend")
    color = alt.Color(
        "method:N",
        sort=methods,
        title="method (click to select)",
        scale=alt.Scale(scheme="tableau10"),
        legend=alt.Legend(symbolOpacity=1),
    )
    dash = alt.StrokeDash(
        "source:N",
        title="source",
        sort=sources,
        scale=alt.Scale(domain=sources, range=[[1, 0], [5, 3], [2, 2]][: len(sources)]),
    )
    tooltip = [
        alt.Tooltip("method:N"),
        alt.Tooltip("source:N"),
        alt.Tooltip("cr:Q", title="CR"),
        alt.Tooltip("clean_acc:Q", format=".4f", title="clean accuracy (mean)"),
        alt.Tooltip("clean_low:Q", format=".4f", title="clean accuracy min"),
        alt.Tooltip("clean_high:Q", format=".4f", title="clean accuracy max"),
        alt.Tooltip("n_kept:Q", format=",.0f", title="weights kept (mean)"),
        alt.Tooltip("n_kept_low:Q", format=",.0f", title="weights kept min"),
        alt.Tooltip("n_kept_high:Q", format=",.0f", title="weights kept max"),
        alt.Tooltip("kept:Q", format=".4f", title="kept fraction"),
        alt.Tooltip("n_runs:Q", title="runs"),
    ]
    base = (
        alt.Chart(frame)
        .transform_filter("method_pick == 'all methods' || datum.method == method_pick")
        .encode(x=_cr_axis(), color=color, opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)))
    )

    def panel(y: str, low: str, high: str, axis: alt.Axis, scale: alt.Scale, panel_title: str, with_params: bool):
        band = base.mark_area(opacity=0.15).encode(
            y=alt.Y(f"{low}:Q", axis=axis, scale=scale),
            y2=f"{high}:Q",
            opacity=alt.condition(pick, alt.value(0.18), alt.value(0.03)),
        )
        lines = base.mark_line(point=True).encode(
            y=alt.Y(f"{y}:Q", axis=axis, scale=scale), strokeDash=dash, tooltip=tooltip
        )
        if with_params:
            lines = lines.add_params(pick)
        return alt.layer(band, lines).properties(width=380, height=300, title=panel_title)

    left = panel(
        "clean_acc", "clean_low", "clean_high", ACC_AXIS, alt.Scale(domain=[0, 1]), "clean test accuracy", True
    )
    right = panel(
        "kept",
        "kept_low",
        "kept_high",
        alt.Axis(title="kept fraction of prunable weights (log scale)", format="~g"),
        alt.Scale(type="log"),
        "kept weights (measured)",
        False,
    )
    return (
        alt.hconcat(left, right)
        .add_params(picker)
        .properties(title=title or "clean accuracy and kept weights: reproduced vs original")
    )


def versus_original_by_eps(
    frame: pd.DataFrame, title: str = "", initial_eps: str | None = None
) -> alt.LayerChart | alt.FacetChart:
    """Robust accuracy vs CR for the epsilon picked in a dropdown, one line per source (ours and the
    original's, each named with its attack and the rule that turns distances into robustness);
    the original's lines are dashed, with their range over runs as a band (``frame``: rows of
    ``reference.robust_vs_original``). Click a legend entry to highlight a line; hover for numbers."""
    frame, order = _with_eps_label(frame[frame["eps"] > 0])
    sources = list(dict.fromkeys(frame.sort_values(["side", "source"], ascending=[False, True])["source"]))
    picker = _eps_picker(order, name="eps_orig", initial=initial_eps)
    pick = alt.selection_point(fields=["source"], bind="legend")
    color = alt.Color(
        "source:N",
        sort=sources,
        title="line (click to select)",
        scale=alt.Scale(scheme="category10"),
        legend=alt.Legend(labelLimit=520, orient="bottom", columns=1, symbolOpacity=1),
    )
    base = (
        alt.Chart(frame)
        .transform_filter(alt.datum.epsilon == picker)
        .encode(x=_cr_axis(), color=color, opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)))
    )
    y = alt.Y("robust_acc:Q", axis=ACC_AXIS, scale=alt.Scale(domain=[0, 1]))
    band = (
        base.transform_filter(alt.datum.side == "original")
        .mark_area(opacity=0.15)
        .encode(
            y=alt.Y("low:Q", axis=ACC_AXIS, scale=alt.Scale(domain=[0, 1])),
            y2="high:Q",
            opacity=alt.condition(pick, alt.value(0.18), alt.value(0.03)),
        )
    )
    lines = base.mark_line(point=True).encode(
        y=y,
        strokeDash=alt.condition("datum.side == 'original'", alt.value([5, 3]), alt.value([1, 0])),
        tooltip=[
            alt.Tooltip("source:N", title="line"),
            alt.Tooltip("epsilon:N"),
            alt.Tooltip("cr:Q", title="CR"),
            alt.Tooltip("robust_acc:Q", format=".3f", title="robust accuracy (mean)"),
            alt.Tooltip("low:Q", format=".3f", title="min over runs"),
            alt.Tooltip("high:Q", format=".3f", title="max over runs"),
            alt.Tooltip("n_runs:Q", title="runs"),
        ],
    )
    return alt.layer(band, lines.add_params(pick, picker)).properties(
        width=520, height=320, title=title or "robust accuracy vs CR: reproduced vs original"
    )


# scope x criterion: one colour each, the same in every panel (at most four lines per panel)
SCOPE_CRITERION = ["global magnitude", "local magnitude", "global random", "local random"]
SCOPE_CRITERION_COLOURS = ["#1f77b4", "#ff7f0e", "#7f7f7f", "#bcbd22"]


def methods_by_structure(
    curves: pd.DataFrame, prune: pd.DataFrame | None = None, title: str = "", initial_eps: str | None = None
) -> alt.HConcatChart:
    """Robust accuracy vs CR for every pruning method of one model and norm, one panel per structure
    (unstructured, kernel, filter; '+ dense neurons' where neurons were pruned too), one line per
    scope and criterion (solid: magnitude, dotted: random) with its band, at the budget picked in
    the dropdown; clean accuracy thin and dashed; a grey ring where the model collapsed to one class
    (``collapsed``), a red cross where an attack-failure indicator tripped. ``curves``: rows of
    ``report.method_robustness`` for one norm. Click a legend entry to highlight a line; hover for
    numbers."""
    frame = curves[curves["eps"] > 0]
    frame, order = _with_eps_label(frame)
    frame = frame.assign(panel=_panel_of(frame), line=frame["scope"] + " " + frame["criterion"])
    if "tripped" not in frame:
        frame = frame.assign(tripped=False, why="")
    if "collapsed" not in frame:
        frame = frame.assign(collapsed=False)
    cols = ["panel", "line", "method", "cr", "epsilon", "robust_acc", "low", "high", "n", "n_seeds", "attacks"]
    frame = frame[[*cols, "tripped", "why", "collapsed"]]
    picker = _eps_picker(order, name="eps_methods", initial=initial_eps)
    pick = alt.selection_point(fields=["line"], bind="legend")
    colour, dash = _scope_criterion_style(frame)
    y = alt.Y("robust_acc:Q", axis=alt.Axis(format=".0%", title="robust accuracy"), scale=alt.Scale(domain=[0, 1]))
    tooltip = [
        alt.Tooltip("method:N"),
        alt.Tooltip("epsilon:N", title="budget"),
        alt.Tooltip("cr:Q", title="CR"),
        alt.Tooltip("robust_acc:Q", format=".3f", title="robust accuracy"),
        alt.Tooltip("low:Q", format=".3f", title="95% band low"),
        alt.Tooltip("high:Q", format=".3f", title="95% band high"),
        alt.Tooltip("n_seeds:Q", title="seeds"),
        alt.Tooltip("n:Q", title="images per seed"),
        alt.Tooltip("attacks:N", title="worst case over"),
    ]
    clean = None
    if prune is not None and len(prune):
        c = prune.assign(
            panel=_panel_of(prune),
            line=prune["scope"] + " " + prune["criterion"],
            method=method_label(prune),
        )
        clean = c[c["method"].isin(set(frame["method"]))][["panel", "line", "method", "cr", "clean_acc"]]
    panels = []
    for i, panel in enumerate(sorted(frame["panel"].unique(), key=lambda p: (STRUCTURE_ORDER.get(p.split()[0], 9), p))):
        base = (
            alt.Chart(frame[frame["panel"] == panel])
            .transform_filter(alt.datum.epsilon == picker)
            .encode(x=_cr_axis(), color=colour, opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)))
        )
        band = base.mark_area(opacity=0.15).encode(
            y="low:Q", y2="high:Q", opacity=alt.condition(pick, alt.value(0.16), alt.value(0.02))
        )
        lines = base.mark_line(point=True, strokeWidth=2.5).encode(y=y, strokeDash=dash, tooltip=tooltip)
        layers = [band, lines.add_params(pick) if i == 0 else lines]
        if frame.loc[frame["panel"] == panel, "tripped"].any():  # an attack-failure indicator: never shown as plain
            layers.append(
                base.transform_filter(alt.datum.tripped)
                .mark_point(shape="cross", size=160, strokeWidth=2, color="#d62728")
                .encode(y=y, tooltip=[*tooltip, alt.Tooltip("why:N", title="attack-failure indicator")])
            )
        if frame.loc[frame["panel"] == panel, "collapsed"].any():  # one class for every image: no robustness
            layers.append(
                base.transform_filter(alt.datum.collapsed)
                .mark_point(shape="circle", size=260, filled=False, strokeWidth=1.5, color="#555555")
                .encode(y=y, tooltip=[*tooltip, alt.Tooltip("collapsed:N", title="one class for every image")])
            )
        if clean is not None:
            clean_tooltip = [
                alt.Tooltip("method:N"),
                alt.Tooltip("cr:Q", title="CR"),
                alt.Tooltip("clean_acc:Q", format=".4f", title="clean accuracy (full test set)"),
            ]
            layers.insert(
                0,
                alt.Chart(clean[clean["panel"] == panel])
                .mark_line(strokeDash=[6, 4], strokeWidth=1)
                .encode(
                    x=_cr_axis(),
                    y=y,
                    color=colour,
                    opacity=alt.condition(pick, alt.value(0.6), alt.value(0.08)),
                    tooltip=clean_tooltip,
                ),
            )
        panels.append(alt.layer(*layers).properties(width=250, height=260, title=panel))
    return (
        alt.hconcat(*panels)
        .add_params(picker)
        .properties(title=title or "robust accuracy vs compression rate, every pruning method")
        .configure_axis(labelFontSize=12, titleFontSize=12)
        .configure_title(fontSize=14)
    )


STRUCTURE_ORDER = {"unstructured": 0, "kernel": 1, "filter": 2}


def methods_beside_original(frame: pd.DataFrame, title: str = "", initial_eps: str | None = None) -> alt.HConcatChart:
    """Robust accuracy vs CR per pruning method, ours (solid, circles) beside the original's (dashed,
    triangles), one panel per structure, one colour per scope and criterion, at the budget picked in
    the dropdown; bands: ours' 95 % band, the original's range over runs. ``frame``: rows of
    ``reference.methods_robust_vs_original`` for one norm. Click a legend entry to highlight a
    method; hover for numbers and the attack behind each line."""
    frame, order = _with_eps_label(frame[frame["eps"] > 0])
    frame = frame.assign(panel=frame["structure"], line=frame["scope"] + " " + frame["criterion"])
    frame = frame[["panel", "line", "method", "source", "what", "cr", "epsilon", "robust_acc", "low", "high", "n_runs"]]
    picker = _eps_picker(order, name="eps_beside", initial=initial_eps)
    pick = alt.selection_point(fields=["line"], bind="legend")
    colour, _ = _scope_criterion_style(frame)
    sources = ["reproduced", "original"]
    study = alt.Legend(labelFontSize=12, titleFontSize=12, orient="bottom", labelLimit=0, titleLimit=0)
    # one legend for both channels (the same field and title): a dashed line with a triangle, a solid one with a circle
    dash = alt.StrokeDash(
        "source:N", title="study", scale=alt.Scale(domain=sources, range=[[1, 0], [6, 3]]), legend=study
    )
    shape = alt.Shape(
        "source:N", title="study", scale=alt.Scale(domain=sources, range=["circle", "triangle-up"]), legend=study
    )
    y = alt.Y("robust_acc:Q", axis=alt.Axis(format=".0%", title="robust accuracy"), scale=alt.Scale(domain=[0, 1]))
    tooltip = [
        alt.Tooltip("method:N"),
        alt.Tooltip("source:N", title="study"),
        alt.Tooltip("epsilon:N", title="budget"),
        alt.Tooltip("cr:Q", title="CR"),
        alt.Tooltip("robust_acc:Q", format=".3f", title="robust accuracy"),
        alt.Tooltip("low:Q", format=".3f", title="band low"),
        alt.Tooltip("high:Q", format=".3f", title="band high"),
        alt.Tooltip("n_runs:Q", title="runs (ours: seeds)"),
        alt.Tooltip("what:N", title="attack"),
    ]
    panels = []
    for i, panel in enumerate(sorted(frame["panel"].unique(), key=lambda p: STRUCTURE_ORDER.get(p, 9))):
        base = (
            alt.Chart(frame[frame["panel"] == panel])
            .transform_filter(alt.datum.epsilon == picker)
            .encode(x=_cr_axis(), color=colour, detail="source:N")
        )
        band = base.mark_area(opacity=0.1).encode(
            y="low:Q", y2="high:Q", opacity=alt.condition(pick, alt.value(0.12), alt.value(0.02))
        )
        lines = base.mark_line(strokeWidth=2.5).encode(
            y=y, strokeDash=dash, opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12))
        )
        points = base.mark_point(size=50, filled=True).encode(
            y=y, shape=shape, opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)), tooltip=tooltip
        )
        panels.append(
            alt.layer(band, lines.add_params(pick) if i == 0 else lines, points).properties(
                width=250, height=260, title=panel
            )
        )
    return (
        alt.hconcat(*panels)
        .add_params(picker)
        .properties(title=title or "robust accuracy vs compression rate: every method, ours beside the original's")
        .configure_axis(labelFontSize=12, titleFontSize=12)
        .configure_title(fontSize=14)
    )


def _scope_criterion_style(frame: pd.DataFrame) -> tuple[alt.Color, Any]:
    """One colour per scope and criterion (the same in every panel and chart), dotted for random."""
    colour = alt.Color(
        "line:N",
        title="scope and criterion (click to select)",
        sort=[line for line in SCOPE_CRITERION if line in set(frame["line"])],
        scale=alt.Scale(domain=SCOPE_CRITERION, range=SCOPE_CRITERION_COLOURS),
        legend=alt.Legend(
            symbolOpacity=1, labelFontSize=12, titleFontSize=12, orient="bottom", labelLimit=0, titleLimit=0
        ),
    )
    dash = alt.condition("indexof(datum.line, 'random') >= 0", alt.value([2, 2]), alt.value([1, 0]))
    return colour, dash


def _panel_of(frame: pd.DataFrame) -> pd.Series:
    return frame["structure"].where(~frame["prune_dense_neurons"].astype(bool), frame["structure"] + " + dense neurons")


def clean_by_structure(prune: pd.DataFrame, title: str = "") -> alt.HConcatChart:
    """Clean test accuracy vs CR for every pruning method of one model: one panel per structure, one
    line per scope and criterion (solid: magnitude, dotted: random), with the seeds' 95 % band where
    ``prune`` holds seed means (``compare.prune_over_seeds``). Click a legend entry to highlight a
    line; hover for numbers."""
    frame = prune.assign(
        panel=_panel_of(prune), line=prune["scope"] + " " + prune["criterion"], method=method_label(prune)
    )
    if "low" not in frame:
        frame = frame.assign(low=frame["clean_acc"], high=frame["clean_acc"])
    if "n_seeds" not in frame:
        frame = frame.assign(n_seeds=1)
    frame = frame[["panel", "line", "method", "cr", "clean_acc", "low", "high", "n_seeds", "kept"]]
    pick = alt.selection_point(fields=["line"], bind="legend")
    colour, dash = _scope_criterion_style(frame)
    y = alt.Y("clean_acc:Q", axis=alt.Axis(format=".0%", title="clean accuracy"), scale=alt.Scale(domain=[0, 1]))
    tooltip = [
        alt.Tooltip("method:N"),
        alt.Tooltip("cr:Q", title="CR"),
        alt.Tooltip("clean_acc:Q", format=".4f", title="clean accuracy (full test set)"),
        alt.Tooltip("low:Q", format=".4f", title="95% band low"),
        alt.Tooltip("high:Q", format=".4f", title="95% band high"),
        alt.Tooltip("n_seeds:Q", title="seeds"),
        alt.Tooltip("kept:Q", format=".5f", title="measured kept fraction"),
    ]
    panels = []
    order = sorted(frame["panel"].unique(), key=lambda p: (STRUCTURE_ORDER.get(p.split()[0], 9), p))
    for i, panel in enumerate(order):
        base = alt.Chart(frame[frame["panel"] == panel]).encode(
            x=_cr_axis(), color=colour, opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12))
        )
        band = base.mark_area(opacity=0.15).encode(
            y="low:Q", y2="high:Q", opacity=alt.condition(pick, alt.value(0.16), alt.value(0.02))
        )
        lines = base.mark_line(point=True, strokeWidth=2.5).encode(y=y, strokeDash=dash, tooltip=tooltip)
        panels.append(
            alt.layer(band, lines.add_params(pick) if i == 0 else lines).properties(width=250, height=240, title=panel)
        )
    return (
        alt.hconcat(*panels)
        .properties(title=title or "clean accuracy vs compression rate, every pruning method")
        .configure_axis(labelFontSize=12, titleFontSize=12)
        .configure_title(fontSize=14)
    )
