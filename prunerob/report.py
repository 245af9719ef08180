"""The book's questions answered from the tables: frames and formatted numbers, one function per
question, unit-tested on small frames (``tests/test_report.py``). A chapter selects its rows, calls
one of these, and draws and glues what comes back.

Which pruning method keeps robustness (``method_robustness``, ``ranking``, ``method_findings``):
every method of one model faces each norm's default minimal attack on every checkpoint (one run
gives the whole curve), and a sample counts as robust at a budget only if every attack that ran on
that checkpoint failed on it, the fixed-budget checks of another family included where they ran
(CR 4, 16 and 64, and every CR of the headline method). A minimal attack can fail (FMN left most
samples of a heavily pruned MLP unbroken where APGD broke them): a number such an attack did not
earn must not stand, so every check that ran counts, and the points where an attack-failure
indicator tripped are marked (``failure_indicators``).
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, cast

import numpy as np
import pandas as pd

from prunerob import aggregate, catalog, charts, compare, reference, scenarios, spec

METHOD_KEYS = ["structure", "scope", "criterion", "prune_dense_neurons"]
DASH = "\u2013"  # a missing cell
NORMS = ("Linf", "L2", "L0")  # the order every chapter shows the norms in


def _num(value: Any) -> float:
    """A table cell as a float (pandas' stubs type a cell as anything)."""
    return float(value)


def pct(value: Any, digits: int = 1) -> str:
    """0.8312 -> '83.1 %'; a missing value -> an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value * 100:.{digits}f} %"


def points(value: Any, digits: int = 1) -> str:
    """A difference of accuracies in percentage points, signed: -0.031 -> '-3.1 points'."""
    return f"{value * 100:+.{digits}f} points"


def budget(eps: float, norm: str) -> str:
    """A budget as the charts write it: Linf as k/255, L0 in pixels, L2 as a number."""
    label = charts.eps_label(eps, norm)
    return f"{label} px" if norm == "L0" else label


def method_name(row) -> str:
    """'global magnitude unstructured' (charts.method_label for one row or a mapping)."""
    frame = pd.DataFrame([dict(row)])
    return str(charts.method_label(frame).iloc[0])


def methods(frame: pd.DataFrame, where: dict) -> dict[str, dict]:
    """label -> selection (``where`` plus the method's columns) for every pruning method with rows
    in ``frame`` that match ``where``, sorted by label."""
    rows = compare.rows_of(frame, where)
    if not len(rows):
        return {}
    keys = rows[METHOD_KEYS].drop_duplicates()
    out = {method_name(k): {**where, **k} for k in keys.to_dict("records")}
    return dict(sorted(out.items()))


def method_robustness(
    attack: pd.DataFrame, samples: pd.DataFrame, where: dict, confidence: float = 0.95
) -> pd.DataFrame:
    """Per pruning method of one model (``where``: e.g. dataset, arch, training), CR, norm and eps:
    robust accuracy as the per-sample worst case over every white-box attack run on that checkpoint
    (``attacks`` names them; where seeds differ, the runs every seed of the method faced, after
    ``aggregate.fully_attacked_seeds`` left out the seeds that missed part of the default set), the mean
    over seeds with a 95 % band (seeds and images; one seed: the Wilson interval), ``n`` images per
    seed, ``n_seeds``, and the method's columns. Empty when no method of the model was attacked."""
    cols = [
        "method",
        *METHOD_KEYS,
        "cr",
        "norm",
        "eps",
        "robust_acc",
        "low",
        "high",
        "n",
        "n_seeds",
        "attacks",
        "collapsed",
    ]
    attack, samples = with_shared_dense(compare.rows_of(attack, where), compare.rows_of(samples, where))
    picked = methods(attack, where)
    if not picked:
        return pd.DataFrame(columns=cols)
    parts = []
    required = _default_set(attack, picked)
    for label, sel in picked.items():  # one method at a time: no method limits another's attacks
        own_samples, own_attack = aggregate.fully_attacked_seeds(
            compare.rows_of(samples, sel), compare.rows_of(attack, sel), required
        )
        rows = compare.worst_case_by_model(own_attack, own_samples, {label: sel}, confidence)
        one_class = collapsed_checkpoints(own_samples).groupby("cr")["collapsed"].any()  # any seed
        rows["collapsed"] = rows["cr"].isin(one_class.index[one_class.astype(bool)])
        parts.append(rows.assign(**{k: sel[k] for k in METHOD_KEYS}))
    return pd.concat(parts, ignore_index=True)[cols]


COLLAPSED = "\u2205"  # a cell whose model gives one class to every image
COLLAPSE_SHARE = 0.99  # a checkpoint that gives one class to this share of its attacked images has collapsed


def collapsed_checkpoints(samples: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint (``prune_id``, ``cr``) of a samples table: ``top_share``, the share of its
    attacked images given its most frequent class, and ``collapsed``, that share at least
    ``COLLAPSE_SHARE``: a model that answers one class whatever the image. No perturbation changes a
    constant output, so its robust accuracy equals its clean accuracy at every budget (the share of
    that class among the images): a measured number, but no robustness."""
    cols = ["prune_id", "cr", "top_share", "collapsed"]
    if not len(samples) or "clean_pred" not in samples:  # a table cut to other columns says nothing of it
        return pd.DataFrame(columns=cols)
    images = samples.drop_duplicates(["prune_id", "cr", "sample"])
    top = images.groupby(["prune_id", "cr"])["clean_pred"].agg(lambda p: p.value_counts(normalize=True).iloc[0])
    out = top.rename("top_share").reset_index()
    out["collapsed"] = out["top_share"] >= COLLAPSE_SHARE
    return out[cols]


def _default_set(attack: pd.DataFrame, picked: dict[str, dict]) -> set[str]:
    """Like for like across methods: the minimal attacks every method of ``picked`` faced (on some
    seed) are the default set; a seed that missed part of it does not count."""
    minimal = aggregate.white_box(attack[attack["kind"] == "minimal"])
    return set.intersection(*(set(aggregate.attack_runs(compare.rows_of(minimal, sel))) for sel in picked.values()))


def left_out_seeds(attack: pd.DataFrame, samples: pd.DataFrame, where: dict) -> dict[str, list[int]]:
    """Per method of one model, the seeds :func:`method_robustness` leaves out because they did not
    face the whole default set (the minimal attacks every method faced); methods that lose none are
    absent."""
    attack, samples = with_shared_dense(compare.rows_of(attack, where), compare.rows_of(samples, where))
    picked = methods(attack, where)
    if not picked:
        return {}
    required = _default_set(attack, picked)
    out = {}
    for label, sel in picked.items():
        rows = compare.rows_of(attack, sel)
        _, kept = aggregate.fully_attacked_seeds(compare.rows_of(samples, sel), rows, required)
        gone = sorted(int(s) for s in set(rows["seed"]) - set(kept["seed"]))
        if gone:
            out[label] = gone
    return out


def with_shared_dense(attack: pd.DataFrame, samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CR 1 is the dense model, the same for every method pruned from it (one ``train_id``): a
    profile attacks it once (under one method) and every other method of that dense model reads
    those runs as its own CR 1. Returns ``attack`` and ``samples`` with the dense model's rows
    copied to every prune stage of the same ``train_id`` that has no CR 1 rows of that attack run."""
    if not len(attack) or "train_id" not in attack:
        return attack, samples
    run = lambda f: f["attack"] + "/" + f["preset"].astype(str) + "/" + f["scenario"]
    stages = attack.drop_duplicates("prune_id")[["prune_id", "train_id", *METHOD_KEYS]]
    dense_a = attack[attack["cr"] == 1].assign(run=run)
    dense_s = samples[samples["cr"] == 1].assign(run=run) if len(samples) else samples
    add_a, add_s = [], []
    for stage in stages.itertuples(index=False):
        have = set(dense_a.loc[dense_a["prune_id"] == stage.prune_id, "run"])
        donors = dense_a[(dense_a["train_id"] == stage.train_id) & ~dense_a["run"].isin(have)]
        for r, rows in donors.groupby("run"):
            donor = rows["prune_id"].iloc[0]
            relabel = {"prune_id": stage.prune_id, **{k: getattr(stage, k) for k in METHOD_KEYS}}
            add_a.append(rows[rows["prune_id"] == donor].assign(**relabel))
            if len(dense_s):
                add_s.append(dense_s[(dense_s["prune_id"] == donor) & (dense_s["run"] == r)].assign(**relabel))
    if not add_a:
        return attack, samples
    attack = pd.concat([attack, *(f.drop(columns="run") for f in add_a)], ignore_index=True)
    if add_s:
        samples = pd.concat([samples, *(f.drop(columns="run") for f in add_s)], ignore_index=True)
    return attack, samples


def dense_budget(curves: pd.DataFrame, norm: str) -> float:
    """The budget of ``norm`` at which the dense model (CR 1) is nearest 50 % robust: where pruned
    models differ most, and where the method comparison is read."""
    return charts.middle_eps(curves[curves["norm"] == norm])


def ranking(curves: pd.DataFrame, norm: str, eps: float) -> pd.DataFrame:
    """Robust accuracy of every method at one budget: one row per method, one column per CR, and
    ``mean CR 2-64`` (the mean over the pruned CRs, the ranking key), best first; a method whose
    model collapsed to one class at some pruned CR (``collapsed`` in ``curves``) after every method
    whose models did not, however high its mean: its flat line there is no robustness."""
    rows = curves[(curves["norm"] == norm) & np.isclose(curves["eps"], eps)]
    table = rows.pivot_table(index="method", columns="cr", values="robust_acc")
    pruned = [c for c in table.columns if _num(c) > 1]
    # a method not yet attacked at every pruned CR has no mean (an en dash): it is not ranked
    table["mean CR 2-64"] = table[pruned].mean(axis=1, skipna=False) if pruned else np.nan
    order = pd.DataFrame({"fell": _fell(collapsed_cells(rows, table.index)), "mean": table["mean CR 2-64"]})
    order = order.sort_values(["fell", "mean"], ascending=[True, False], na_position="last", kind="stable")
    return table.loc[order.index]


def _fell(cells: pd.DataFrame) -> pd.Series:
    """Per method of :func:`collapsed_cells`: whether its model collapsed at some pruned CR."""
    return cells.loc[:, [c for c in cells.columns if _num(c) > 1]].any(axis=1)


def collapsed_cells(curves: pd.DataFrame, index: pd.Index | None = None) -> pd.DataFrame:
    """Method x CR: True where that checkpoint collapsed to one class (``collapsed`` in ``curves``;
    all False without it), over the rows given (one budget's, as :func:`ranking` reads them)."""
    if "collapsed" in curves and len(curves):
        cells = curves.pivot_table(index="method", columns="cr", values="collapsed", aggfunc="any").astype(bool)
    else:
        cells = pd.DataFrame(False, index=pd.Index(curves["method"].unique(), name="method"), columns=[])
    return cells.reindex(index=index if index is not None else cells.index).isin([True])


MARK = "\u2020"  # a cell whose checkpoint tripped an attack-failure indicator


def formatted(
    table: pd.DataFrame, marks: pd.DataFrame | None = None, collapsed: pd.DataFrame | None = None
) -> pd.DataFrame:
    """A table of accuracies for reading: percentages, CR columns as 'CR 4', missing cells as an en
    dash; a cell True in ``marks`` (same index and columns) gets a dagger, one True in ``collapsed``
    (a model collapsed to one class) the empty-set sign."""
    out = table.map(pct)
    for cells, sign in ((marks, MARK), (collapsed, COLLAPSED)):
        if cells is not None:
            flagged = cells.reindex(index=table.index, columns=table.columns).isin([True]) & table.notna()
            out = out.where(~flagged, out + " " + sign)
    out.columns = [f"CR {c:g}" if isinstance(c, (int, float)) else str(c) for c in table.columns]
    out.index.name = table.index.name
    return out


def shown(table: pd.DataFrame) -> pd.DataFrame | None:
    """``table``, or None where it has no rows: as a cell's last expression, nothing is shown when
    there is nothing to show."""
    return table if len(table) else None


def distance_label(distance: float, norm: str) -> str:
    """A perturbation's size as the charts write budgets: Linf in 255ths (one decimal), L2 with two
    decimals, L0 in pixels; an en dash where it is not finite (no attack succeeded)."""
    if not math.isfinite(distance):
        return DASH
    if norm == "Linf":
        return f"{distance * 255:.1f}/255"
    return f"{distance:g} px" if norm == "L0" else f"{distance:.2f}"


def readable(table: pd.DataFrame, fmt: str | dict = "{:.3f}", caption: str | None = None):
    """A table styled for reading: compression rates as '4' (an index level or column level named
    ``cr``), budgets as the charts write them (a level named ``eps``, read with the ``norm`` level
    beside it: 2/255, 8 px, 1.5; renamed ``budget``), values with ``fmt`` (a format or one per
    column), missing cells as an en dash. The order of rows and columns is kept (numeric, as the
    pivot left it)."""

    def relabel(index: pd.Index) -> pd.Index:
        names = list(index.names)
        if isinstance(index, pd.MultiIndex):
            tuples = [list(t) for t in index]
        else:
            tuples = [[v] for v in index]
        for row in tuples:
            for i, name in enumerate(names):
                if name == "cr" and isinstance(row[i], (int, float, np.number)):
                    row[i] = f"{float(row[i]):g}"
                elif name == "eps" and "norm" in names and isinstance(row[i], (int, float, np.number)):
                    row[i] = budget(float(row[i]), str(row[names.index("norm")]))  # a label stays as it is
        names = ["CR" if n == "cr" else "budget" if n == "eps" and "norm" in names else n for n in names]
        if isinstance(index, pd.MultiIndex):
            return pd.MultiIndex.from_tuples([tuple(t) for t in tuples], names=names)
        return pd.Index([t[0] for t in tuples], name=names[0])

    out = table.copy()
    out.index = relabel(out.index)
    out.columns = relabel(out.columns)
    if isinstance(fmt, dict):
        fmt = {("CR" if k == "cr" else k): v for k, v in fmt.items() if k in table.columns}
    styler = out.style.format(fmt, na_rep=DASH)
    return styler.set_caption(caption) if caption else styler


def collapse_cr(prune: pd.DataFrame, method: str, threshold: float = 0.5) -> float | None:
    """The first CR at which ``method``'s clean accuracy (mean over seeds) falls below
    ``threshold``; None where it never does."""
    rows = prune[charts.method_label(prune) == method].sort_values("cr")
    below = rows[rows["clean_acc"] < threshold]
    return float(below["cr"].iloc[0]) if len(below) else None


def method_findings(curves: pd.DataFrame, norm: str, eps: float | None = None) -> dict:
    """The comparison at one budget (default: :func:`dense_budget`) in numbers and one sentence:
    ``eps``, ``best``/``worst`` (method labels by the mean over CR 2-64), ``best_mean``,
    ``worst_mean``, ``dense`` (robust accuracy at CR 1), ``spread`` (best minus worst mean), the
    ranking table, and ``sentence``."""
    eps = dense_budget(curves, norm) if eps is None else eps
    table = ranking(curves, norm, eps)
    dense_rows = curves[(curves["norm"] == norm) & np.isclose(curves["eps"], eps) & (curves["cr"] == 1)]
    dense = float(dense_rows["robust_acc"].mean()) if len(dense_rows) else float("nan")
    key = "mean CR 2-64"
    ranked = table[table[key].notna()]
    if not len(ranked):
        ranked = table
    rows = curves[(curves["norm"] == norm) & np.isclose(curves["eps"], eps)]
    cells = collapsed_cells(rows, table.index)
    fell_at = {
        m: min(_num(c) for c in cells.columns if _num(c) > 1 and cells.loc[m, c])
        for m in ranked.index
        if any(cells.loc[m, c] for c in cells.columns if _num(c) > 1)
    }
    steady = ranked.drop(index=list(fell_at)) if len(ranked) - len(fell_at) > 1 else ranked
    best, worst = steady.index[0], steady.index[-1]
    unranked = len(table) - len(ranked) if ranked is not table else 0
    if len(ranked) > 1:
        sentence = (
            f"at {norm} {budget(eps, norm)} (the dense model: {pct(dense)}), {best} keeps the most robust "
            f"accuracy over CR 2 to 64 ({pct(table.loc[best, key])} on average) and {worst} the least "
            f"({pct(table.loc[worst, key])})"
            + (f", of the {len(ranked)} methods attacked at every CR ({unranked} more are not yet)" if unranked else "")
        )
        if fell_at and steady is not ranked:
            firsts = sorted(set(fell_at.values()))
            others = "the other one collapses" if len(fell_at) == 1 else f"the other {len(fell_at)} collapse"
            sentence += (
                f"; ranked among the {len(steady)} methods whose models never collapse to one class: {others} "
                "from CR "
                + (", ".join(f"{c:g}" for c in firsts[:-1]) + " or " if len(firsts) > 1 else "")
                + f"{firsts[-1]:g} on, where the flat line is the share of that class among the images, not robustness ({COLLAPSED})"
            )
        elif fell_at:
            sentence += f"; {len(fell_at)} of them collapse to one class at some CR ({COLLAPSED}: no robustness there)"
    else:
        sentence = (
            f"at {norm} {budget(eps, norm)} (the dense model: {pct(dense)}), {best}, the only method attacked"
            f"{' at every CR so far' if unranked else ''}, keeps {pct(table.loc[best, key])} on average over CR 2 to 64"
        )
    marks = None
    if "tripped" in curves:
        rows = curves[(curves["norm"] == norm) & np.isclose(curves["eps"], eps)]
        marks = rows.pivot_table(index="method", columns="cr", values="tripped", aggfunc="any").astype(bool)
        if marks.to_numpy().any():
            sentence += (
                f" ({int(marks.to_numpy().sum())} of these cells rest on an attack that tripped a failure "
                f"indicator: marked {MARK})"
            )
    return {
        "marks": marks,
        "collapsed": cells,
        "eps": eps,
        "best": best,
        "worst": worst,
        "best_mean": float(table.loc[best, key]),
        "worst_mean": float(table.loc[worst, key]),
        "dense": dense,
        "spread": float(table.loc[best, key] - table.loc[worst, key]),
        "table": table,
        "sentence": sentence,
    }


def seeds_per_method(curves: pd.DataFrame) -> str:
    """How many seeds the methods' lines (:func:`method_robustness` rows) rest on, in words: "one
    seed", "3 seeds", or "one seed; 3 for global magnitude unstructured" where methods differ."""
    per = curves.groupby("method")["n_seeds"].max().astype(int)
    common = int(per.mode().min())
    others = {k: sorted(per[per == k].index) for k in sorted(set(per)) if k != common}
    return "; ".join(
        ["one seed" if common == 1 else f"{common} seeds", *(f"{k} for {', '.join(m)}" for k, m in others.items())]
    )


def method_answers(
    prune: pd.DataFrame,
    attack: pd.DataFrame,
    samples: pd.DataFrame,
    models: dict[str, dict],
    norms: tuple[str, ...] = ("Linf", "L2", "L0"),
) -> dict[str, str]:
    """The study's method question answered per model (``models``: a name, e.g. "CNN", to its
    columns), as the intro says it: ``methods`` (per model, per norm, the method that keeps the most
    robustness and the one that keeps the least, or that too few methods were attacked yet) and
    ``norms`` (per model, whether one method is best in every norm)."""
    said, best = [], {}
    for name, where in models.items():
        curves, n_all = method_robustness(attack, samples, where), len(methods(prune, where))
        n = curves["method"].nunique() if len(curves) else 0
        if n < 2:
            said.append(f"for the {name}, not yet measured ({n} of its {n_all} methods attacked)")
            continue
        found = {
            norm: method_findings(curves[curves["norm"] == norm], norm)
            for norm in norms
            if (curves["norm"] == norm).any()
        }
        best[name] = found
        said.append(
            f"for the {name} ({n} methods, {seeds_per_method(curves)}): "
            + "; ".join(f["sentence"] for f in found.values())
        )
    text = "; ".join(said)
    by_norm = []
    for name, found in best.items():
        winners = {f["best"] for f in found.values()}
        if len(found) == 1:
            by_norm.append(f"for the {name}, only {next(iter(found))} is measured so far")
        elif len(winners) == 1:
            by_norm.append(
                f"for the {name}, the same method keeps the most robustness in all "
                f"{ {2: 'two', 3: 'three'}.get(len(found), len(found)) } norms ({winners.pop()})"
            )
        else:
            by_norm.append(
                f"for the {name}, the best method differs by norm ("
                + ", ".join(f"{norm}: {f['best']}" for norm, f in found.items())
                + ")"
            )
    return {
        "methods": text[:1].upper() + text[1:],
        "norms": "; ".join(by_norm) or "not measured yet (no model has several methods attacked)",
    }


def clean_two_trainings(prune: pd.DataFrame, standard: str, adversarial: str, column: str = "training") -> str | None:
    """Clean test accuracy of a standard and an adversarially trained model under pruning, in one
    sentence: both at CR 1 with the difference, and at the largest CR both reach; None unless
    ``prune`` holds rows of both (``column`` tells them apart: ``standard`` and ``adversarial``)."""
    if not len(prune) or not {standard, adversarial} <= set(prune[column]):
        return None
    at = prune.pivot_table(index="cr", columns=column, values="clean_acc")
    top = at.dropna().index.max()  # the largest CR both reach
    std, adv = at[standard], at[adversarial]
    return (
        f"standard training reaches {std.loc[1]:.2%} on the test set and PGD training {adv.loc[1]:.2%} "
        f"({100 * (adv.loc[1] - std.loc[1]):+.2f} points for the adversarial training); at CR {top:g} they "
        f"keep {std.loc[top]:.2%} and {adv.loc[top]:.2%}"
    )


def minimal_gaps(rows: pd.DataFrame, agreement: pd.DataFrame | None = None) -> str:
    """How much each minimal attack overstates robustness against the strongest fixed attack of its
    norm, from one model's white-box attack rows, in a sentence: per norm and minimal attack, the
    largest excess of its robust accuracy over the fixed attack's in points, over the budgets and
    checkpoints where both ran, and where it was ("at most 0.0 points": never above it).
    ``agreement``: the rows' ``aggregate.fixed_minimal_agreement`` where the caller has it."""
    if agreement is None:
        agreement = aggregate.fixed_minimal_agreement(aggregate.white_box(rows)) if len(rows) else pd.DataFrame()
    if not len(agreement):
        return "no minimal attack ran beside a fixed one on this model"
    strongest = agreement[agreement["strongest"]]
    parts = []
    for norm in [n for n in NORMS if n in set(strongest["norm"])]:
        found = []
        for minimal, group in strongest[strongest["norm"] == norm].groupby("minimal", sort=True):
            excess = group["minimal_acc"] - group["fixed_acc"]
            top = group.iloc[int(np.argmax(excess.to_numpy()))]
            where = (
                f" (CR {top['cr']:g}, budget {charts.eps_label(top['eps'], norm)}: "
                f"{top['minimal_acc']:.1%} vs {top['fixed_acc']:.1%})"
                if excess.max() > 0
                else ""
            )
            found.append(
                f"{minimal} at most {100 * max(float(excess.max()), 0.0):.1f} points above "
                f"{' / '.join(sorted(set(group['fixed'])))} over {len(group)} budgets and checkpoints{where}"
            )
        parts.append(f"{norm}: " + "; ".join(found))
    return ". ".join(parts)


def attack_health(rows: pd.DataFrame) -> dict[str, Any]:
    """How far one model's attack results can be trusted, from its white-box attack rows: ``agree``
    ("k of n" budgets and checkpoints where the strongest fixed attack and a minimal attack agree
    within 5 points), ``gap`` (the largest such gap, in points), ``checks`` ("k of n" runs passing
    every sanity check), ``violations`` (adversarial examples that failed verification),
    ``disagree`` (the disagreements in a sentence, naming the weaker attack) and ``agreement`` (the
    rows' ``aggregate.fixed_minimal_agreement``, for :func:`minimal_gaps`)."""
    rows = aggregate.white_box(rows)
    if not len(rows):
        return {
            "agree": "none",
            "gap": "n/a",
            "checks": "none",
            "violations": 0,
            "disagree": "There is no disagreement.",
            "agreement": pd.DataFrame(),
        }
    agreement = aggregate.fixed_minimal_agreement(rows)
    strongest = agreement[agreement["strongest"]] if len(agreement) else agreement
    off = strongest[~strongest["agree"]] if len(strongest) else strongest
    parts = []
    weak_side = off.assign(weak=off["gap"].map(lambda g: "minimal" if g < 0 else "fixed")) if len(off) else off
    for (norm, weak_kind), group in weak_side.groupby(["norm", "weak"]) if len(off) else ():
        weak = sorted(set(group["minimal"] if weak_kind == "minimal" else group["fixed"]))
        strong = sorted(set(group["fixed"] if weak_kind == "minimal" else group["minimal"]))
        crs = ", ".join(f"{c:g}" for c in sorted(group["cr"].unique()))
        parts.append(
            f"{len(group)} in {norm} at budgets {group['eps'].min():g} to {group['eps'].max():g} (CR {crs}), where "
            f"{' and '.join(weak)} left up to {group['gap'].abs().max():.1%} more images standing than "
            f"{' and '.join(strong)}"
        )
    checks = rows.groupby("stage_id")["all_checks_passed"].first()
    return {
        "agree": f"{int(strongest['agree'].sum())} of {len(strongest)}" if len(strongest) else "none",
        "gap": f"{100 * strongest['gap'].abs().max():.1f} points" if len(strongest) else "n/a",
        "checks": f"{int(checks.sum())} of {len(checks)}",
        "violations": int(rows["violations"].sum()),
        "disagree": (
            "The disagreements: " + "; ".join(parts) + ". There the weaker attack is the one that fails on this "
            "model, and the per-sample worst case takes the stronger one's result, so the charts are not raised "
            "by it; the weak attack's own numbers would overstate robustness."
        )
        if parts
        else "There is no disagreement.",
        "agreement": agreement,
    }


def extra_attacks(per_seed: pd.DataFrame, samples: pd.DataFrame, attack: pd.DataFrame) -> str:
    """What the attacks only some seeds faced add, in a sentence: per norm, each such seed's worst
    case over all its attacks against its worst case over the attacks every seed faced
    (``per_seed``: :func:`compare.worst_case_per_seed` rows)."""
    alone = aggregate.on_own_grids(aggregate.worst_case, aggregate.white_box(samples), attack)
    gap = per_seed.merge(alone, on=["prune_id", "cr", "norm", "eps"], suffixes=("", "_all"))
    gap = gap[gap["attacks"] != gap["attacks_all"]]

    def extra(g: pd.DataFrame) -> str:
        return ", ".join(sorted(set(g["attacks_all"].iloc[0].split("+")) - set(g["attacks"].iloc[0].split("+"))))

    return (
        "; ".join(
            f"in {norm}, seed {', '.join(map(str, sorted(g['seed'].unique())))} also faced {extra(g)}, which would "
            f"lower its robust accuracy by at most {(g['robust_acc'] - g['robust_acc_all']).max() * 100:.1f} points "
            f"(by {(g['robust_acc'] - g['robust_acc_all']).mean() * 100:.1f} on average over its CRs and budgets)"
            for norm, g in gap.groupby("norm")
        )
        or "every seed faced the same attacks"
    )


class AttackBench(tuple[dict[str, Any], pd.DataFrame]):
    """``(numbers, table)`` of ``attack_bench``, unpacked as a pair, and ``checkpoints``: the
    per-checkpoint, per-norm frame of ``attack_bench_checkpoints``."""

    checkpoints: pd.DataFrame

    def __new__(cls, numbers: dict[str, Any], table: pd.DataFrame, checkpoints: pd.DataFrame) -> AttackBench:
        self = super().__new__(cls, (numbers, table))
        self.checkpoints = checkpoints
        return self


def attack_bench(blob: dict) -> AttackBench:
    """``benchmarks/attacks.json`` (``python -m prunerob bench attacks``) as the robustness chapter
    shows it: its numbers by glue name, and per norm the default set beside the original's, both
    from the first record that ran the two (the one record of a single-checkpoint run); and, as
    ``.checkpoints``, every record per norm (``attack_bench_checkpoints``).  ValueError where no
    record ran both the default and the original's set."""
    b = next((r for r in blob["records"] if "default" in r and "original" in r), None)
    if b is None:
        raise ValueError("no record of the benchmark ran both the default and the original's attack set")
    machine = blob["machine"]
    numbers = {
        "bench-n": b["n_samples"],
        "bench-machine": f"{machine['cpu_count']} CPU cores" + (f", {machine['cuda']}" if machine.get("cuda") else ""),
        "bench-default-s": f"{sum(v['seconds'] for v in b['default'].values()):.0f}",
        "bench-original-s": f"{sum(v['seconds'] for v in b['original'].values()):.0f}",
        "bench-speedup": f"{b['speedup']:.1f}",
        "bench-throughput": f"{b['throughput']['ratio']:.2f}",
        "bench-batch": b["throughput"]["batch_size"],
    }

    rows = []
    for norm in ("Linf", "L2", "L0"):
        d, o = b["default"][norm], b["original"][norm]
        rows.append(
            {
                "norm": norm,
                "default set": _bench_set_name(d),
                "original": _bench_set_name(o),
                "seconds (default)": round(d["seconds"], 1),
                "seconds (original)": round(o["seconds"], 1),
                "median distance (default)": distance_label(d["median_distance"], norm),
                "median distance (original)": distance_label(o["median_distance"], norm),
                "largest robust-accuracy excess": round(
                    max(d["robust_acc"][e] - o["robust_acc"][e] for e in d["robust_acc"]), 3
                ),
                "no weaker": all(b["no_weaker"][norm].values()),
            }
        )
    return AttackBench(numbers, pd.DataFrame(rows).set_index("norm"), attack_bench_checkpoints(blob))


def _bench_set_name(v: dict) -> str:
    return " + ".join(f"{a} ({p})" for a, p in zip(v["attacks"], v.get("presets", [""] * len(v["attacks"]))))


def attack_bench_checkpoints(blob: dict) -> pd.DataFrame:
    """Every record of ``benchmarks/attacks.json`` per norm, indexed by checkpoint and norm: the
    images, each set's seconds (NaN where the set did not run), the whole three-norm ``speedup``
    (the original's seconds over the default set's) and that norm's, and against the strongest set
    the default set's largest robust-accuracy excess, the budget where it is largest and whether it
    is at most 1 point (NaN / None where the strongest set did not run); the machine's 1-minute load
    average before and after the record (NaN where not recorded)."""
    rows = []
    for i, r in enumerate(blob["records"]):
        for norm in ("Linf", "L2", "L0"):
            if norm not in r.get("default", {}):
                continue
            seconds = {s: r[s][norm]["seconds"] if norm in r.get(s, {}) else math.nan for s in _BENCH_SETS}
            gap = r.get("default_vs_strongest", {}).get(norm)
            rows.append(
                {
                    "checkpoint": r.get("checkpoint", f"record {i}"),
                    "norm": norm,
                    "n": r["n_samples"],
                    **{f"seconds ({s})": round(v, 1) for s, v in seconds.items()},
                    "speedup": r.get("speedup", math.nan),
                    "speedup (norm)": seconds["original"] / seconds["default"],
                    "largest excess over strongest": math.nan if gap is None else gap["largest_excess"],
                    "at eps": math.nan if gap is None else float(gap["at_eps"]),
                    "within 1 point": None if gap is None else gap["within_1_point"],
                    "load before": (r.get("load_before") or [math.nan])[0],
                    "load after": (r.get("load_after") or [math.nan])[0],
                }
            )
    if not rows:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["checkpoint", "norm"]))
    return pd.DataFrame(rows).set_index(["checkpoint", "norm"])


_BENCH_SETS = ("default", "strongest", "original")


def per_cr_sentence(parts: list[tuple[float, str, Any]], lead: str) -> str:
    """Per-checkpoint phrases ``(cr, phrase, n_samples)`` in one sentence, largest CR first: "on N test
    images per checkpoint, <lead> <phrase>; <phrase>"; "not measured" without phrases."""
    if not parts:
        return "not measured"
    n = ", ".join(sorted({str(p[2]) for p in parts}, key=float))
    return f"on {n} test images per checkpoint, {lead} " + "; ".join(p[1] for p in sorted(parts, key=lambda p: -p[0]))


def set_strength(blob: dict, norm: str) -> dict[str, Any]:
    """The ``norm`` records of a default-vs-strongest benchmark (``bench attacks --sets
    default,strongest``, one checkpoint each, with its ``cr``): ``table`` (robust accuracy per CR and
    budget of the default set, the strongest set and each of the strongest set's attacks alone) and
    ``text`` (per CR, how many points the default set stands above the strongest at most, and where;
    which attack found the smallest distance most often).  Empty table and "not measured" without
    such records."""
    rows, parts = [], []
    for r in blob.get("records", []):
        d, s = r.get("default", {}).get(norm), r.get("strongest", {}).get(norm)
        if d is None or s is None:
            continue
        cr = float(r["cr"])
        presets = dict(zip(s["attacks"], s.get("presets", [])))
        for key, value in d["robust_acc"].items():
            if float(key) > 0:
                row = {"norm": norm, "cr": cr, "eps": float(key), "default set": value}
                row["strongest set"] = s["robust_acc"][key]
                row.update(
                    {f"{a} ({presets.get(a, '?')}) alone": acc[key] for a, acc in s.get("per_attack", {}).items()}
                )
                rows.append(row)
        gap = r["default_vs_strongest"][norm]  # bench writes it where both sets ran
        won = max(s.get("worst_from", {"?": 0.0}).items(), key=lambda kv: kv[1])
        parts.append(
            (cr, f"{100 * max(gap['largest_excess'], 0.0):.1f} points at CR {cr:g} "
             f"({distance_label(float(gap['at_eps']), norm)}; {won[0]} found the smallest distance, ties to the attack run first, for {won[1]:.0%} "
             "of the broken images)", r["n_samples"])
        )  # fmt: skip
    if not rows:
        return {"table": pd.DataFrame(), "text": "not measured"}
    text = per_cr_sentence(parts, f"the default {norm} set stands above the strongest {norm} set by at most")
    table = pd.DataFrame(rows).set_index(["norm", "cr", "eps"]).sort_index()
    return {"table": table, "text": text}


def convergence_strength(blob: dict, norm: str) -> str:
    """The ``norm`` records of ``bench convergence`` in a sentence: per CR, how far twice the steps of
    the default minimal attack moved its curve at most (points of robust accuracy, and where) and the
    share of the checked images whose distance they cut by over 5 %; "not measured" without records."""
    parts, what = [], ""
    for r in blob.get("records", []):
        got = r.get("norms", {}).get(norm)
        if got is None:
            continue
        what = f"{got['attack']} ({got['preset']})"
        eps, moved = max(got["moved_points"].items(), key=lambda kv: (kv[1], -float(kv[0])))
        where = f"{budget(float(eps), norm)}; " if moved > 0 else ""
        parts.append(
            (float(r["cr"]), f"{moved:.1f} points at CR {float(r['cr']):g} ({where}"
             f"{got['distances_cut']:.0%} of the distances cut)", r["n_samples"])
        )  # fmt: skip
    return per_cr_sentence(parts, f"twice the steps of {what} moved its curve by at most")


def clean_per_method(prune: pd.DataFrame) -> str | None:
    """One model's clean accuracy in a phrase: dense, then every method's at the largest CR
    ("dense 90.79%; at CR 64 global magnitude unstructured 90.47%, ..."); None without rows."""
    if not len(prune):
        return None
    at = prune.assign(method=charts.method_label(prune)).pivot_table(index="cr", columns="method", values="clean_acc")
    top = at.index.max()
    return f"dense {at.loc[1].iloc[0]:.2%}; at CR {top:g} " + ", ".join(f"{m} {v:.2%}" for m, v in at.loc[top].items())


def clean_extremes(prune: pd.DataFrame, model: str) -> str | None:
    """The dense ``model``'s clean accuracy and, at the largest CR, the methods that keep the most
    and the least of it; None without rows."""
    if not len(prune):
        return None
    dense = prune[prune["cr"] == 1]["clean_acc"].iloc[0]
    top = prune[prune["cr"] == prune["cr"].max()].assign(method=charts.method_label)
    best, worst = top.loc[top["clean_acc"].idxmax()], top.loc[top["clean_acc"].idxmin()]
    return (
        f"the dense {model} reaches {dense:.2%}; at CR {best['cr']:g} the best method ({best['method']}) keeps "
        f"{best['clean_acc']:.2%} and the worst ({worst['method']}) {worst['clean_acc']:.2%}"
    )


def coverage(curves: pd.DataFrame, attack: pd.DataFrame) -> str:
    """What the method comparison of one model rests on, computed: methods, CRs, seeds, images and
    attacks, e.g. '8 methods at CR 1-64, 1 seed (one seed: no seed band), 1000 images, attacks
    l0_ensemble, l2_ensemble, linf_fmn'."""
    if not len(curves):
        return "no method of this model was attacked"
    crs = sorted(curves["cr"].unique())
    seeds = curves.groupby("method")["n_seeds"].max()
    seed_text = (
        f"{int(seeds.min())} seed{'s' if seeds.min() > 1 else ''}"
        if seeds.min() == seeds.max()
        else f"{int(seeds.min())} to {int(seeds.max())} seeds (the most for {', '.join(seeds[seeds == seeds.max()].index)})"
    )
    if seeds.max() == 1:
        seed_text += " (one seed: the bands are the images' sampling noise only)"
    ran: dict[str, set] = {}
    # which attacks ran on a method: its pruned checkpoints (CR 1, the dense model, is every method's)
    pruned = curves[curves["cr"] > crs[0]] if len(crs) > 1 else curves
    for method, runs in zip(pruned["method"], pruned["attacks"]):
        for a in str(runs).split("+"):
            ran.setdefault(a.split("/")[0], set()).add(method)
    n = int(curves["n"].min())
    n_methods = pruned["method"].nunique()
    everywhere = sorted(a for a, on in ran.items() if len(on) == n_methods)
    some = sorted((a, len(on)) for a, on in ran.items() if len(on) < n_methods)
    attacks = (
        f"attacks {', '.join(everywhere)}"
        if not some
        else (
            f"attacks on every method: {', '.join(everywhere) or 'none'}; on some methods only: "
            + ", ".join(f"{a} ({k} of {n_methods})" for a, k in some)
        )
    )
    return (
        f"{n_methods} method{'s' if n_methods > 1 else ''} at CR {crs[0]:g} to {crs[-1]:g}, {seed_text}, "
        f"the first {n} test images, {attacks}"
    )


def coverage_by_model(attack: pd.DataFrame) -> str:
    """What a chapter's results rest on, per model (never one sentence for all), from its attack
    rows: 'cnn on mnist: 3 seeds, 1000 images; resnet8 on fashion_mnist: 1 seed (one seed), 500
    images'. Images: the attacked test images of each run (a range where runs differ)."""
    if not len(attack):
        return "no attack results"
    from prunerob.charts import model_label

    parts = []
    frame = attack.assign(_model=model_label(attack))
    for model, rows in sorted(frame.groupby("_model"), key=lambda item: str(item[0])):
        seeds = int(rows["seed"].nunique())
        low, high = int(rows["n"].min()), int(rows["n"].max())
        images = f"{low} images" if low == high else f"{low} to {high} images"
        seed_text = f"{seeds} seed{'s' if seeds > 1 else ''}" + (" (one seed)" if seeds == 1 else "")
        parts.append(f"{model}: {seed_text}, {images}")
    return "; ".join(parts)


# the family of each default and check attack: agreement only counts between different families
FAMILY = {
    "linf_fmn": "FMN",
    "linf_apgd": "APGD",
    "linf_pgd": "PGD",
    "l2_ensemble": "DDN + FMN",
    "l2_ddn": "DDN",
    "l2_apgd": "APGD",
    "l2_pgd": "PGD",
    "l0_ensemble": "sigma-zero + PGD_0",
    "l0_sigma_zero": "sigma-zero",
    "l0_pgd_min": "PGD_0",
    "l0_pgd": "PGD_0",
    "l0_onepixel": "one-pixel search",
    "l0_greedy": "one-pixel search, greedy",  # its first round is the one-pixel search
    "l0_bb": "Brendel-Bethge",
}


def cross_family(attack: pd.DataFrame, tolerance: float = 0.02) -> pd.DataFrame:
    """Where a fixed-budget check ran beside a minimal attack (same checkpoint, norm and budget):
    one row per norm and pair, with ``checks`` (cells compared), ``flagged`` (cells where the two
    differ by more than ``tolerance``), ``minimal_weaker`` (flagged cells where the check broke more
    samples: there the curve over-states robustness), the largest gap in points each way, and
    ``same_family`` (a pair that shares an algorithm, such as PGD_0 inside l0_ensemble, is weaker
    evidence of agreement)."""
    cols = ["norm", "minimal", "fixed", "same_family", "checks", "flagged", "minimal_weaker", "max_gap", "min_gap"]
    agree = aggregate.fixed_minimal_agreement(attack)
    if not len(agree):
        return pd.DataFrame(columns=cols)
    agree = agree[agree["eps"] > 0]
    rows = []
    for (norm, minimal, fixed), g in agree.groupby(["norm", "minimal", "fixed"]):
        fam_m, fam_f = FAMILY.get(str(minimal), str(minimal)), FAMILY.get(str(fixed), str(fixed))
        rows.append(
            {
                "norm": norm,
                "minimal": minimal,
                "fixed": fixed,
                "same_family": fam_f in fam_m,
                "checks": len(g),
                "flagged": int((g["gap"].abs() > tolerance).sum()),
                "minimal_weaker": int((g["gap"] < -tolerance).sum()),
                "max_gap": float(g["gap"].max()),
                "min_gap": float(g["gap"].min()),
            }
        )
    return pd.DataFrame(rows, columns=cols)


SEARCHES = ("l0_onepixel", "l0_greedy")  # the L0 searches without gradients


def search_gain(attack: pd.DataFrame, samples: pd.DataFrame, searches: tuple[str, ...] = SEARCHES) -> pd.DataFrame:
    """What the searches without gradients add to the L0 worst case: on every checkpoint one of
    ``searches`` ran on, the worst case over every white-box L0 attack against the worst case over
    the others (with the default ``searches``: the gradient attacks), per budget. One row per model (``arch``, ``training``) and
    budget ``eps`` with ``gain`` (the largest drop in robust accuracy there, a share), where
    (``method``, ``cr``), ``without`` and ``with`` there, and ``checkpoints`` (how many the searches
    ran on); budgets where they changed nothing included (gain 0)."""
    cols = ["arch", "training", "eps", "checkpoints", "gain", "method", "cr", "without", "with"]
    a = aggregate.white_box(attack[attack["norm"] == "L0"]) if len(attack) else attack
    s = aggregate.white_box(samples[samples["norm"] == "L0"]) if len(samples) else samples
    if not len(a) or not a["attack"].isin(searches).any():
        return pd.DataFrame(columns=cols)
    ran = a.loc[a["attack"].isin(searches), ["prune_id", "cr"]].drop_duplicates()
    a, s = a.merge(ran, on=["prune_id", "cr"]), s.merge(ran, on=["prune_id", "cr"])
    both = aggregate.on_own_grids(aggregate.worst_case, s, a)
    gradient = aggregate.on_own_grids(
        aggregate.worst_case, s[~s["attack"].isin(searches)], a[~a["attack"].isin(searches)]
    )
    keys = ["prune_id", "cr", "eps"]
    gap = gradient[keys + ["robust_acc"]].merge(both[keys + ["robust_acc"]], on=keys, suffixes=("_without", "_with"))
    gap = gap[gap["eps"] > 0]  # budget 0: the clean accuracy
    model = a.drop_duplicates("prune_id").set_index("prune_id")
    gap = gap.join(model[["arch", "training"]], on="prune_id")
    gap["method"] = charts.method_label(model.loc[gap["prune_id"]]).to_numpy()
    gap["gain"] = gap["robust_acc_without"] - gap["robust_acc_with"]
    rows = []
    for (arch, training, eps), g in gap.groupby(["arch", "training", "eps"]):
        top = g.sort_values("gain", kind="stable", ascending=False).iloc[0]  # the first of the largest
        rows.append(
            {
                "arch": arch,
                "training": training,
                "eps": _num(eps),
                "checkpoints": len(g[["prune_id", "cr"]].drop_duplicates()),
                "gain": float(top["gain"]),
                "method": top["method"],
                "cr": float(top["cr"]),
                "without": float(top["robust_acc_without"]),
                "with": float(top["robust_acc_with"]),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def search_gain_sentence(gains: pd.DataFrame, what: str = "the searches", pronoun: str = "them") -> str:
    """:func:`search_gain` rows in a sentence: per model, the largest drop over every budget.  ``what``
    names the attacks whose gain it is (``search_gain``'s ``searches``), ``pronoun`` refers to them."""
    if not len(gains):
        return f"None of {what} ran on these tables."
    top = gains.loc[gains.groupby(["arch", "training"])["gain"].idxmax()].sort_values("gain", ascending=False)
    parts = [
        f"{r.arch} by up to {r.gain * 100:.1f} points ({r.method}, CR {r.cr:g}, {budget(r.eps, 'L0')}: "
        f"{pct(r['with'])} robust with {pronoun}, {pct(r.without)} without; {r.checkpoints} checkpoints)"
        for _, r in top.iterrows()
    ]
    return f"With {what} in the worst case, the L0 robust accuracy fell: " + "; ".join(parts) + "."


def search_gain_table(gains: pd.DataFrame) -> pd.DataFrame:
    """:func:`search_gain` rows as a table: per model, the largest drop at each budget, in points,
    and where."""
    if not len(gains):
        return gains
    out = gains.assign(
        budget=[budget(e, "L0") for e in gains["eps"]],
        largest_drop=[f"{g * 100:.1f}" for g in gains["gain"]],
        at=[f"{m}, CR {c:g}" if g > 0 else DASH for m, c, g in zip(gains["method"], gains["cr"], gains["gain"])],
    )
    out = out.rename(columns={"largest_drop": "largest drop (points)", "at": "where"})
    return out.set_index(["arch", "training", "budget"])[["checkpoints", "largest drop (points)", "where"]]


def unattacked_methods(prune: pd.DataFrame, attack: pd.DataFrame, where: dict) -> list[str]:
    """The pruning methods of one model that were pruned but never attacked (in these tables)."""
    return sorted(set(methods(prune, where)) - set(methods(attack, where)))


HEADLINE_METHOD = "global magnitude unstructured"
TIE = 0.02  # mean robust accuracies closer than this are a tie (one seed: about the images' noise)


def original_claims(curves: pd.DataFrame, prune: pd.DataFrame, norm: str, eps: float | None = None) -> pd.DataFrame:
    """The original's findings tested on one model and norm at one budget (default: where the dense
    model is nearest 50 %): one row per claim with ``holds`` (True, False, or None where the tables
    cannot say) and ``evidence`` (the numbers). ``prune``: the model's prune rows (seed means)."""
    eps = dense_budget(curves, norm) if eps is None else eps
    table = ranking(curves, norm, eps)
    key = "mean CR 2-64"
    at = f"{norm} {budget(eps, norm)}"
    rows = []
    cells = collapsed_cells(curves[(curves["norm"] == norm) & np.isclose(curves["eps"], eps)], table.index)
    n_fell = int(_fell(cells).sum())
    fell = f" (the {n_fell} whose models collapse to one class ranked last)" if n_fell else ""
    if HEADLINE_METHOD in table.index and len(table) > 1:
        rank = int(list(table.index).index(HEADLINE_METHOD)) + 1
        behind = _num(table.iloc[0][key]) - _num(table.loc[HEADLINE_METHOD, key])
        tie = rank > 1 and behind <= TIE
        rows.append(
            {
                "claim": "global magnitude unstructured pruning is the most benign",
                "holds": None if tie else rank == 1,
                "evidence": f"at {at} it ranks {rank} of {len(table)} by the mean over CR 2-64{fell} "
                f"({pct(table.loc[HEADLINE_METHOD, key])}; best: {table.index[0]}, {pct(table.iloc[0][key])})"
                + (
                    f"; {behind * 100:.1f} points behind, within {TIE * 100:.0f}: a tie, not established" if tie else ""
                ),
            }
        )
    else:
        rows.append(
            {
                "claim": "global magnitude unstructured pruning is the most benign",
                "holds": None,
                "evidence": f"{len(table)} method(s) attacked at {at}: nothing to compare",
            }
        )
    labelled = prune.assign(method=charts.method_label(prune)) if len(prune) else prune.assign(method=[])
    collapse = {m: collapse_cr(prune, m) for m in labelled["method"].unique()} if len(prune) else {}
    by_structure: dict[str, float] = {}
    for m, cr in collapse.items():
        s = m.split()[2]
        by_structure[s] = min(by_structure.get(s, math.inf), cr if cr is not None else math.inf)
    if "filter" in by_structure and len(by_structure) > 1:
        first = min(by_structure.values())
        fmt = lambda v: f"CR {v:g}" if math.isfinite(v) else "never (to CR 64)"
        tied = sorted(s for s, v in by_structure.items() if s != "filter" and v == by_structure["filter"])
        evidence = "first CR with clean accuracy below 50 %: " + ", ".join(
            f"{s} {fmt(v)}" for s, v in sorted(by_structure.items())
        )
        holds: bool | None = by_structure["filter"] == first and math.isfinite(first)
        if holds and tied:  # collapsing at the same CR step as another structure is not first
            holds, evidence = None, f"{evidence}; filter ties with {' and '.join(tied)}: not established"
        rows.append({"claim": "filter pruning collapses first", "holds": holds, "evidence": evidence})
    if len(table):
        best = table.index[0]
        dense = float(table.iloc[0].get(1.0, np.nan))
        mild = [c for c in (2.0, 4.0) if c in table.columns]
        drops = {c: _num(table.loc[best, c]) - dense for c in mild}
        rows.append(
            {
                "claim": "moderate pruning (CR 2-4) keeps robustness",
                "holds": bool(drops) and all(d >= -0.02 for d in drops.values()),
                "evidence": f"{best} at {at}: dense {pct(dense)}, "
                + ", ".join(f"CR {c:g} {pct(table.loc[best, c])} ({points(d)})" for c, d in drops.items())
                + " (holds: no drop of more than 2 points)",
            }
        )
    return pd.DataFrame(rows, columns=["claim", "holds", "evidence"])


def replica_linf(attack: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Linf PGD-40 (the original's preset) against CR, global magnitude unstructured pruning on
    MNIST, four ways: the original's published runs, the original's CNN re-made here attacked as the
    original attacked it (softmax output handed to the attack as logits) and on its logits, and our
    CNN on its logits; long format for ``charts.versus_original_by_eps`` (``low``/``high``: the
    range over runs or seeds). ``summary``: ``reference.per_cr`` rows (the original's)."""
    cols = ["source", "side", "rule", "cr", "eps", "norm", "robust_acc", "low", "high", "n_runs"]
    method = {"dataset": "mnist", "structure": "unstructured", "scope": "global", "criterion": "magnitude"}
    pgd = compare.rows_of(attack, method) if len(attack) else attack
    pgd = pgd[(pgd["attack"] == "linf_pgd") & (pgd["eps"] > 0) & (pgd["scenario"] == "white-box")] if len(pgd) else pgd
    lines = {
        "original's CNN (replica), PGD on the softmax, as the original": ("cnn_original", "softmax"),
        "original's CNN (replica), PGD on the logits": ("cnn_original", "logits"),
        "our CNN, PGD on the logits": ("cnn", "logits"),
    }
    parts = []
    for source, (arch, output) in lines.items():
        rows = (
            pgd[(pgd["arch"] == arch) & (pgd["attack_output"] == output) & (pgd["training"] == "standard")]
            if len(pgd)
            else pgd
        )
        if len(rows):
            agg = rows.groupby(["cr", "eps", "norm"], as_index=False)["robust_acc"].agg(
                robust_acc="mean", low="min", high="max", n_runs="size"
            )
            parts.append(agg.assign(source=f"reproduced: {source}", side="reproduced", rule="d > eps"))
    theirs = compare.rows_of(summary, method) if len(summary) else summary
    theirs = theirs[(theirs["attack"] == "linf_pgd") & (theirs["eps"] > 0)] if len(theirs) else theirs
    if len(theirs) and "rule" in theirs:  # Linf has one rule: the rows of the first
        theirs = theirs[theirs["rule"] == theirs["rule"].iloc[0]]
    if len(theirs) and parts:
        shared = set(np.round(pd.concat(parts)["eps"] * 255, 3))
        theirs = theirs[(theirs["eps"] * 255).round(3).isin(shared)]
        cols_t = [c for c in ("cr", "eps", "norm", "robust_acc", "low", "high", "n_runs") if c in theirs]
        parts.append(
            theirs[cols_t].assign(source="original: published runs, PGD on the softmax", side="original", rule="")
        )
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def replica_sentence(frame: pd.DataFrame, eps: float, crs=(16.0, 32.0)) -> str:
    """The four Linf lines of :func:`replica_linf` read at one budget and a few CRs, in one sentence."""
    at = frame[np.isclose(frame["eps"], eps)]
    parts = []
    for cr in crs:
        rows = at[at["cr"] == cr]
        if len(rows):
            parts.append(
                f"at CR {cr:g}: "
                + "; ".join(f"{src.split(': ', 1)[1]} {pct(v)}" for src, v in zip(rows["source"], rows["robust_acc"]))
            )
    return f"Linf {budget(eps, 'Linf')}, " + (", ".join(parts) if parts else "no CR both sides ran")


def beside_original(frame: pd.DataFrame, eps: float) -> dict:
    """Ours beside the original's per method at one budget (rows of
    ``reference.methods_robust_vs_original`` for one norm): ``table`` (one row per method: the mean
    over CR 2-64 each study measured, ours minus theirs, and at how many CRs ours lies inside the
    original's range over runs), the most benign method of each study by that mean, and a sentence
    with the numbers. Only CRs both studies measured for a method count."""
    at = frame[np.isclose(frame["eps"].astype(float), eps) & (frame["cr"] > 1)]
    ours_fell = at[(at["source"] == "reproduced") & at["collapsed"].astype(bool)] if "collapsed" in at else at.iloc[:0]
    fell = set(ours_fell["method"])
    rows = []
    for method, g in at.groupby("method"):
        ours = g[g["source"] == "reproduced"].set_index("cr")
        theirs = g[g["source"] == "original"].set_index("cr")
        crs = sorted(set(ours.index) & set(theirs.index))
        if not crs:
            continue
        o, t = ours.loc[crs, "robust_acc"], theirs.loc[crs, "robust_acc"]
        inside = ((o >= theirs.loc[crs, "low"] - 1e-12) & (o <= theirs.loc[crs, "high"] + 1e-12)).sum()
        rows.append(
            {
                "method": method,
                "ours": o.mean(),
                "original": t.mean(),
                "diff": o.mean() - t.mean(),
                "inside": int(inside),
                "crs": len(crs),
            }
        )
    table = pd.DataFrame(rows, columns=["method", "ours", "original", "diff", "inside", "crs"])
    if not len(table):
        return {"table": table, "sentence": "no method both studies attacked at this budget"}
    norm = str(frame["norm"].iloc[0])
    steady = table[~table["method"].isin(fell)]
    steady = steady if len(steady) else table
    best_o = steady.iloc[int(np.argmax(steady["ours"].to_numpy()))]
    best_t = table.iloc[int(np.argmax(table["original"].to_numpy()))]
    agree = (
        f"ours lies inside the original's range over runs at {int(table['inside'].sum())} of "
        f"{int(table['crs'].sum())} points, and is {points(table['diff'].mean())} from it on average"
    )
    if len(table) == 1:
        sentence = (
            f"at {norm} {budget(eps, norm)}, only {best_t['method']} is measured by both so far: mean over CR 2{DASH}64 "
            f"{pct(best_o['ours'])} here, {pct(best_t['original'])} in the original; {agree}"
        )
    else:
        same = (
            "ours agrees"
            if best_o["method"] == best_t["method"]
            else f"ours: {best_o['method']} ({pct(best_o['ours'])})"
        ) + (
            f" (ours ranked among the methods whose models never collapse to one class: {len(fell & set(table['method']))} do)"
            if fell & set(table["method"])
            else ""
        )
        sentence = (
            f"at {norm} {budget(eps, norm)}, {len(table)} of the original's methods measured by both: the most benign "
            f"(mean over CR 2{DASH}64) in the original is {best_t['method']} ({pct(best_t['original'])}), {same}; "
            f"{agree}"
        )
    table = table.sort_values("original", ascending=False).reset_index(drop=True)
    return {"table": table, "best_ours": best_o["method"], "best_original": best_t["method"], "sentence": sentence}


def failure_indicators(attack: pd.DataFrame, samples: pd.DataFrame, checks: pd.DataFrame) -> pd.DataFrame:
    """Indicators of attack failure (after Pintor et al. 2022) per model, method, CR and norm, from
    the white-box runs of the tables: ``violations`` (candidates an attack reported that failed
    verification: outside the box or the budget; never credited), ``unbounded_failed`` (runs whose
    unbounded attack left more than 1 % of the samples standing: the attack, not the model, is then
    the limit), ``never_broken`` (share of correctly classified samples no minimal attack of the
    norm broke at any distance), ``sources`` (share of samples whose smallest distance came from
    each attack or ensemble component), ``not_converged`` (runs whose convergence check failed:
    twice the steps cut the distance of more than 1 of 50 samples by over 5 %, evaluate.
    convergence_check; recorded by runs made since 2026-12-04, NA before), ``curve_moved`` (budgets,
    over the cell's runs, at which twice the steps broke more than 1 of those 50 samples that the run
    counted robust: the robust accuracy read there would move; recorded since 2026-12-05, NA before),
    ``tripped`` and ``why``.  A cell trips on ``curve_moved``, and on ``not_converged`` only where its
    curve check did not run or failed too."""
    cols = [
        "method",
        "dataset",
        "arch",
        "training",
        "cr",
        "norm",
        "violations",
        "unbounded_failed",
        "never_broken",
        "sources",
        "not_converged",
        "curve_moved",
        "tripped",
        "why",
    ]
    attack, samples = aggregate.white_box(attack), aggregate.white_box(samples)
    if not len(attack):
        return pd.DataFrame(columns=cols)
    keys = ["dataset", "arch", "training", *METHOD_KEYS, "cr", "norm"]
    out = attack.groupby(keys, dropna=False).agg(violations=("violations", "sum")).reset_index()
    white = aggregate.white_box(checks) if len(checks) else checks
    for check, col, absent in (
        ("unbounded_breaks_all", "unbounded_failed", 0),
        (catalog.CONVERGENCE_CHECK, "not_converged", pd.NA),
        (catalog.CURVE_CHECK, "curve_moved", pd.NA),
    ):
        rows = white[white["check"] == check] if len(white) else white
        if len(rows):
            failed = rows.groupby(keys, dropna=False)["passed"].agg(lambda p: int((~p.astype(bool)).sum()))
            out = out.merge(failed.rename(col).reset_index(), on=keys, how="left")
        else:
            out[col] = absent
    out["unbounded_failed"] = out["unbounded_failed"].fillna(0).astype(int)
    for col in ("not_converged", "curve_moved"):
        out[col] = out[col].astype("Int64")  # NA: no run of the cell was checked
    minimal = samples[(samples["kind"] == "minimal")] if len(samples) else samples
    never: dict[tuple, list[float]] = {}
    sources: dict[tuple, str] = {}
    if len(minimal):
        src = minimal["source_attack"].fillna(minimal["attack"]) if "source_attack" in minimal else minimal["attack"]
        minimal = minimal.assign(src=src.where(src != minimal["attack"], minimal["attack"]))
        correct = minimal[minimal["clean_pred"] == minimal["label"]]
        for key, g in correct.groupby([*keys, "seed"], dropna=False):
            best = g.sort_values("distance").drop_duplicates("sample")
            k = key[:-1]
            never.setdefault(k, []).append(float(np.isinf(best["distance"]).mean()))
            share = best[np.isfinite(best["distance"])]["src"].value_counts(normalize=True)
            sources[k] = ", ".join(f"{name} {v:.0%}" for name, v in share.items())
    out["never_broken"] = [float(np.mean(never[k])) if k in never else np.nan for k in map(tuple, out[keys].values)]
    out["sources"] = [sources.get(k, "") for k in map(tuple, out[keys].values)]
    why = []
    for r in out.itertuples():
        w = []
        if r.violations:
            w.append(f"{int(_num(r.violations))} unverified candidate(s)")
        if r.unbounded_failed:
            w.append(f"unbounded attack left samples standing in {int(_num(r.unbounded_failed))} run(s)")
        if _num(r.never_broken) > 0.01:
            w.append(f"{r.never_broken:.1%} of the samples never broken")
        # distances still shrinking trip the result unless its curve check ran and held (one pixel
        # is over 5 % of most L0 distances: the curve check says whether a budget's count moves)
        unconverged = 0.0 if r.not_converged is pd.NA else _num(r.not_converged)
        moved = 0.0 if r.curve_moved is pd.NA else _num(r.curve_moved)
        if unconverged and (moved or r.curve_moved is pd.NA):
            w.append(f"twice the steps still cut distances in {int(unconverged)} run(s) (not converged)")
        if moved:
            w.append(f"twice the steps move the robust accuracy at {int(moved)} budget(s)")
        why.append("; ".join(w))
    out["why"] = why
    out["tripped"] = out["why"] != ""
    out["method"] = charts.method_label(out)
    return out[cols]


def mark_tripped(curves: pd.DataFrame, indicators: pd.DataFrame) -> pd.DataFrame:
    """``curves`` (:func:`method_robustness`) with ``tripped`` and ``why`` from
    :func:`failure_indicators`, per method, CR and norm (False and '' where nothing tripped)."""
    keys = ["method", "cr", "norm"]
    ind = (
        indicators.groupby(keys, as_index=False).agg(
            tripped=("tripped", "any"), why=("why", lambda w: "; ".join(x for x in w if x))
        )
        if len(indicators)
        else pd.DataFrame(columns=[*keys, "tripped", "why"])
    )
    out = curves.merge(ind, on=keys, how="left")
    out["tripped"] = out["tripped"].fillna(False).astype(bool)
    out["why"] = out["why"].fillna("")
    return out


def run_index(profiles: tuple[str, ...], runs_dir) -> pd.DataFrame:
    """One row per executed stage notebook of ``profiles`` (every run behind the book): its title
    (what it ran), kind, parameters in columns, the profiles that hold it and the page it is on
    (``href``, relative to the book's root); stages without a run record are left out."""
    from prunerob.profiles import expand, load_profile
    from prunerob.runs import run_title
    from prunerob.stages import training_label

    member: dict[str, list[str]] = {}
    stages = {}
    for name in profiles:
        for stage in expand(load_profile(name)):
            member.setdefault(stage.id, []).append(name)
            stages[stage.id] = stage
    rows = []
    for sid, stage in stages.items():
        if not (runs_dir / stage.kind / f"{sid}.ipynb").exists():
            continue
        p = stage.params()
        method = "" if stage.kind == "train" else method_name(p)
        rows.append(
            {
                "run": run_title(stage),
                "kind": stage.kind,
                "stage_id": sid,
                "dataset": p["dataset"],
                "arch": p["arch"],
                "training": training_label(stage),
                "seed": p["seed"],
                "method": method,
                "cr": "" if stage.kind != "attack" else f"{p['cr']:g}",
                "attack": p.get("attack", "") if stage.kind == "attack" else "",
                "profiles": ", ".join(member[sid]),
                "href": f"book/runs/{stage.kind}/{sid}.html",
            }
        )
    order = {"train": 0, "prune": 1, "attack": 2}
    out = pd.DataFrame(rows)
    if not len(out):
        return out
    sort_key: dict[Any, Any] = {"kind": lambda c: c.map(order), "cr": lambda c: pd.to_numeric(c, errors="coerce")}
    columns = ["kind", "dataset", "arch", "training", "seed", "method", "cr", "attack"]
    return out.sort_values(columns, key=lambda c: sort_key.get(c.name, lambda x: x)(c)).reset_index(drop=True)


def pruning_effect(worst: pd.DataFrame, norm: str, crs=(2.0, 4.0, 16.0, 64.0), eps: float | None = None) -> dict:
    """How pruning moves one model's robust accuracy in one norm at one budget (default: where the
    dense model is nearest 50 %): ``worst`` holds seed means with bands (``compare.worst_case_by_model``
    rows of one model). Returns ``eps``, ``dense``, ``changes`` (CR -> change in accuracy, or None
    where that CR is missing), ``uncertain`` (CRs whose band overlaps the dense model's: the sign of
    the change is not established) and ``sentence``."""
    w = worst[worst["norm"] == norm]
    eps = dense_budget(w, norm) if eps is None else eps
    at = w[np.isclose(w["eps"], eps)].set_index("cr")
    dense = at.loc[1.0]
    parts: list[str] = []
    changes: dict[float, float | None] = {}
    uncertain: list[float] = []
    for cr in crs:
        if cr not in at.index:
            changes[cr] = None
            continue
        row = at.loc[cr]
        change = float(row["robust_acc"] - dense["robust_acc"])
        changes[cr] = change
        overlap = row["low"] <= dense["high"] and row["high"] >= dense["low"]
        if overlap:
            uncertain.append(cr)
        parts.append(
            f"CR {cr:g} {pct(row['robust_acc'])} ({points(change)}"
            + ("; the bands overlap, so the sign is not established" if overlap else "")
            + ")"
        )
    seeds = int(w["n_seeds"].max()) if "n_seeds" in w else 1
    sentence = (
        f"{norm} at {budget(eps, norm)}: dense {pct(dense['robust_acc'])}, "
        + ", ".join(parts)
        + f" ({'mean over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}; worst case over "
        + str(dense.get("attacks", "")).replace("+", ", ")
        + ")"
    )
    return {
        "eps": eps,
        "dense": _num(dense["robust_acc"]),
        "changes": changes,
        "uncertain": uncertain,
        "sentence": sentence,
    }


ORIGINAL_SETTINGS = {  # how each norm is put beside the original (reference.robust_vs_original)
    "Linf": {"same_attack": "linf_pgd"},  # the original's attack run here too, and our worst case
    "L2": {"rules": ("original",)},  # continuous distances: both rules give the same numbers
    "L0": {"original_rule_minimal": True},  # pixel budgets: each rule on both sides
}


def _describe_gaps(g: pd.DataFrame) -> str:
    return (
        f"ours minus the original's mean is {g['diff'].mean():+.3f} on average over the {len(g)} "
        f"(compression rate, budget) points both ran (from {g['diff'].min():+.3f} to {g['diff'].max():+.3f}), "
        f"and ours lies inside the original's range over runs at {int(g['inside'].sum())} of them"
    )


def original_robust(worst: pd.DataFrame, attack: pd.DataFrame, summary: pd.DataFrame, profile: str) -> dict:
    """The headline method's robust accuracy beside the original's, per norm, as the original
    chapter states it.  ``worst``: ``compare.worst_case_per_seed`` rows; ``attack``: our attack rows
    of the headline slice; ``summary``: ``reference.per_cr`` rows of the original's matching model.

    Returns ``compared`` (norm -> ``reference.robust_vs_original`` frame, only norms with results
    on both sides), ``initial`` (norm -> the middle budget's label, the chart's first choice),
    ``glue`` (the chapter's sentences and numbers by glue name), ``gaps`` (ours minus theirs per
    pair of lines that count alike, CR in columns; None without results) and ``bb`` (the original's
    Brendel-Bethge L0 table by rule, shown while ours has no L0 results; else None)."""
    compared: dict[str, pd.DataFrame] = {}
    for norm, settings in ORIGINAL_SETTINGS.items():
        frame = reference.robust_vs_original(worst, attack, summary, norm, **settings)  # type: ignore[arg-type]
        if len(frame):
            compared[norm] = frame
    sources = {norm: list(f["source"].unique()) for norm, f in compared.items()}
    initial = {}
    for norm, frame in compared.items():
        labels = [charts.eps_label(e, n) for e, n in sorted(set(zip(frame["eps"], frame["norm"])))]
        initial[norm] = labels[len(labels) // 2]

    def gap(norm: str, ours_contains: str, theirs_contains: str) -> pd.DataFrame | None:
        pick = {
            side: next((s for s in sources.get(norm, []) if s.startswith(side) and text in s), None)
            for side, text in (("reproduced", ours_contains), ("original", theirs_contains))
        }
        if pick["reproduced"] and pick["original"]:
            return reference.gaps(compared[norm], pick["reproduced"], pick["original"])
        return None

    g_same, g_worst, g_l2 = gap("Linf", "alone", ""), gap("Linf", "worst case", ""), gap("L2", "worst case", "")
    glue: dict[str, object] = {
        "orig-linf-same": _describe_gaps(g_same)
        if g_same is not None
        else "there are no Linf PGD results to compare yet",
        "orig-linf-worst": f"{g_worst['diff'].mean():+.3f}" if g_worst is not None else "(no results)",
        "orig-l2": _describe_gaps(g_l2) if g_l2 is not None else "there are no L2 results to compare yet",
        "orig-l2-below": f"{int((g_l2['diff'] < 0).sum())} of {len(g_l2)}" if g_l2 is not None else "none",
    }
    # the original's two counting rules on its own distances: how far apart they are
    cw = summary[summary["attack"] == "l2_cw"].pivot_table(index=["cr", "eps"], columns="rule", values="robust_acc")
    glue["orig-l2-rule-gap"] = f"{(cw['original'] - cw['threat_model']).abs().max():.3f}"
    bb = summary[summary["attack"] == "l0_bb"]
    bb_dense = bb.pivot_table(index=["cr", "eps"], columns="rule", values="robust_acc").loc[1.0]
    at = float((bb_dense["original"] - bb_dense["threat_model"]).abs().idxmax())  # type: ignore[arg-type]  # the first largest gap
    glue["orig-l0-rule-eps"] = f"{at:g}"
    glue["orig-l0-rule-orig"] = f"{bb_dense['original'][at]:.1%}"
    glue["orig-l0-rule-threat"] = f"{bb_dense['threat_model'][at]:.1%}"
    glue["orig-l0-crs"] = ", ".join(f"{c:g}" for c in sorted(bb["cr"].unique()))
    if "L0" in compared:
        g_t, g_o = gap("L0", "worst case", "d > eps"), gap("L0", "d ≥ eps", "d ≥ eps")
        text = "Under the threat-model rule on both sides, " + _describe_gaps(g_t) + "." if g_t is not None else ""
        if g_o is not None:
            text += " Under the original's rule on both sides (our minimal attack alone), " + _describe_gaps(g_o) + "."
    else:
        text = (
            f"This study's L0 attacks have no results in profile {profile} yet, so the "
            "chart shows a placeholder for now; the original's numbers are in the table below."
        )
    glue["orig-l0"] = text

    tables = []
    for norm, frame in compared.items():
        rule_of = frame.groupby("source")["rule"].first()
        for ours in [s for s in sources[norm] if s.startswith("reproduced")]:
            for theirs in [s for s in sources[norm] if s.startswith("original")]:
                if norm == "L0" and rule_of[ours] != rule_of[theirs]:
                    continue  # like with like: one rule on both sides
                g = reference.gaps(frame, ours, theirs)
                tables.append(g.assign(budget=[budget(e, norm) for e in g["eps"]], pair=f"{ours} minus {theirs}"))
    gaps = None
    if tables:
        gaps = pd.concat(tables).pivot_table(index=["pair", "budget"], columns="cr", values="diff", sort=False)
        gaps.columns = [f"CR {c:g}" for c in gaps.columns]
    bb_table = None
    if "L0" not in compared:
        bb_table = bb.assign(rule=bb["rule"].map(reference.RULES)).pivot_table(
            index=["rule", "eps"], columns="cr", values="robust_acc"
        )
        bb_table.columns = [f"CR {c:g}" for c in bb_table.columns]
        index = cast(pd.MultiIndex, bb_table.index)
        bb_table.index = index.set_levels([f"{e:g} px" for e in index.levels[1]], level=1)
    missing = f"no {{}} attack results for {', '.join(charts.HEADLINE.values())} in profile {profile} yet"
    shown = {
        norm: charts.versus_original_by_eps(
            compared[norm], f"CNN on MNIST, {norm}: reproduced vs original", initial_eps=initial[norm]
        )
        if norm in compared
        else missing.format(norm)
        for norm in ORIGINAL_SETTINGS
    }
    return {"compared": compared, "initial": initial, "glue": glue, "gaps": gaps, "bb": bb_table, "figures": shown}


def original_setup(
    prune: pd.DataFrame, attack: pd.DataFrame, ref: pd.DataFrame, summary: pd.DataFrame, profile: str
) -> dict:
    """What the chapter on the original rests on, by glue name: our model, profile and seeds (from
    ``prune``), the original's runs per method (``ref``: its result rows) and result rows per CR
    (``summary``: ``reference.per_cr``), the methods we attacked and on how many images (``attack``),
    and the attack libraries' versions."""
    seeds = sorted(prune["seed"].unique())
    runs = ref.groupby(["structure", "scope", "criterion"])["run"].nunique()
    headline = charts.pick(attack)
    versions = attack.groupby("library")["library_version"].first() if len(attack) else pd.Series(dtype=str)
    return {
        "orig-model": "CNN on MNIST",
        "orig-profile": profile,
        "orig-seeds": ", ".join(str(s) for s in seeds),
        "orig-n-seeds": len(seeds),
        "orig-runs": f"{runs.min()}" if runs.min() == runs.max() else f"{runs.min()} to {runs.max()}",
        "orig-rows-max": int(summary[summary["attack"] == "clean"]["n_runs"].max()),
        "orig-attacked-methods": ", ".join(sorted(charts.method_label(attack).unique())) or "no method",
        "orig-n-images": int(headline["n"].max()) if len(headline) else 0,
        "orig-foolbox": versions.get("foolbox", "(not run)"),
        "orig-torchattacks": versions.get("torchattacks", "(not run)"),
    }


def side_by_side(mine: pd.DataFrame, theirs: pd.DataFrame, value: str, low: str, high: str, fmt: str) -> pd.DataFrame:
    """One column of ours beside the original's mean [min, max], per method (rows) and CR
    (columns, ours then theirs at each CR); ``mine``/``theirs`` as
    ``reference.clean_beside_original`` returns them (indexed by method and CR)."""
    t = cast(
        pd.DataFrame,
        pd.DataFrame(
            {
                "reproduced": mine[value].map(fmt.format),
                "original": [
                    f"{fmt.format(m)} [{fmt.format(lo)}, {fmt.format(hi)}]"
                    for m, lo, hi in zip(theirs[value], theirs[low], theirs[high])
                ],
            },
            index=mine.index,
        ).unstack("cr"),
    )
    t.columns = [f"{src} CR {cr:g}" for src, cr in cast(pd.MultiIndex, t.columns)]
    crs = sorted(mine.index.get_level_values("cr").unique())
    return t[[f"{src} CR {cr:g}" for cr in crs for src in ("reproduced", "original")]]


_NORM_ORDER = {norm: i for i, norm in enumerate(NORMS)}


def _norm_sorted(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.sort_values(by, key=lambda c: c.map(_NORM_ORDER) if c.name == "norm" else c)


def _p_ranges(rows: pd.DataFrame, what=lambda r: f"CR {r.candidate:g}") -> str:
    return "; ".join(f"{what(r)} for p in [{r.p_from:.3f}, {r.p_to:.3f}]" for r in rows.itertuples())


def _collapsed_models(samples: pd.DataFrame) -> set[tuple]:
    """(data set, model label, method label, CR) of every checkpoint :func:`collapsed_checkpoints`
    finds collapsed."""
    fell = collapsed_checkpoints(samples)
    fell = fell.loc[fell["collapsed"], ["prune_id", "cr"]]
    if not len(fell):
        return set()
    rows = samples.drop_duplicates(["prune_id", "cr"]).merge(fell, on=["prune_id", "cr"])
    return set(zip(rows["dataset"], charts.model_label(rows), charts.method_label(rows), rows["cr"]))


def scenario_study(attack: pd.DataFrame, prune: pd.DataFrame, samples: pd.DataFrame) -> dict[str, Any]:
    """The scenario chapter's answers: with a share p of adversarial inputs, which CR (and, per data
    set, which model and method) gives the best accuracy acc(p) = (1 - p) clean + p robust.

    Every attacked model counts, each on the budgets it was attacked at, its seeds on the attacks
    all of them faced and averaged.  Returns ``glue`` (the chapter's numbers by glue name), the
    headline model and method (``main_model``, ``main_method``; without headline results the one
    with the most), ``acc`` (its acc(p) lines, ``scenarios.accuracy_over_p``), ``initial`` (norm ->
    the budget label its chart opens on: where the dense model is nearest 50 % robust) and three
    tables: ``best`` (best CR by range of p, per model, method, norm and budget), ``detail`` (each
    range with its accuracies) and ``across`` (the best model, method and CR per data set). A
    checkpoint collapsed to one class is no candidate (``scen-collapsed`` names them)."""
    samples, attack = aggregate.common_runs_only(samples, attack, scenarios.METHOD_KEYS)
    worst = aggregate.on_own_grids(aggregate.worst_case, samples, attack)
    lines = scenarios.scenario_lines(worst, prune, samples)
    lines = lines.assign(method=charts.method_label(lines), model=charts.model_label(lines))
    headline = charts.pick(lines)
    keys = ["dataset", "model", "method", "cr", "norm", "eps"]
    lines = lines.groupby(keys, as_index=False)[["clean", "robust"]].mean()  # mean over seeds
    # a checkpoint that gives one class to every image (on any seed) is no classifier: no candidate,
    # though at budgets where every model is broken its class's share would top the envelope
    gone = _collapsed_models(samples)
    out = [k in gone for k in zip(lines["dataset"], lines["model"], lines["method"], lines["cr"])]
    left_out = lines.loc[out, ["model", "method", "cr"]].drop_duplicates()
    lines = lines.loc[[not o for o in out]].reset_index(drop=True)
    glue: dict[str, object] = {
        "scen-collapsed": (
            f"{len(left_out)} checkpoint(s) that give one class to every image are no candidates: "
            + "; ".join(
                f"{model}, {method} at CR {', '.join(f'{c:g}' for c in sorted(g['cr']))}"
                for (model, method), g in left_out.groupby(["model", "method"])
            )
            if len(left_out)
            else "no checkpoint gives one class to every image"
        ),
        "scen-models": "; ".join(sorted(lines["model"].unique())),
        "scen-n-models": int(lines["model"].nunique()),
        "scen-methods": ", ".join(sorted(lines["method"].unique())),
        "scen-coverage": coverage_by_model(attack),
    }
    # per model and method: which CR is best on which interval of p (ties: the higher CR)
    best = scenarios.best_ranges(lines, ["model", "method", "norm", "eps"], candidate="cr", prefer="cr")
    best["budget"] = [budget(e, n) for e, n in zip(best["eps"], best["norm"])]
    main_model, main_method = cast(
        tuple[str, str],
        tuple(headline[["model", "method"]].iloc[0])
        if len(headline)
        else lines.groupby(["model", "method"]).size().idxmax(),
    )
    main = lines[(lines["model"] == main_model) & (lines["method"] == main_method)]
    glue["scen-main"] = f"{main_method} pruning of {main_model}"
    clean = main.drop_duplicates("cr").set_index("cr")["clean"]
    mild = clean[clean.index <= 16]
    glue["scen-clean-spread"] = f"{100 * (mild.max() - mild.min()):.2f}"
    glue["scen-dense-clean"] = f"{clean.loc[clean.index.min()]:.2%}"
    initial = {}
    for norm in NORMS:
        dense = main[(main["norm"] == norm) & (main["cr"] == main["cr"].min())]
        if not len(dense):
            glue[f"scen-mid-{norm}"] = "no results"
            continue
        mid = dense[dense["eps"] == charts.middle_eps(dense, "robust")].iloc[0]
        initial[norm] = charts.eps_label(mid["eps"], norm)
        at_mid = best[
            (best["model"] == main_model)
            & (best["method"] == main_method)
            & (best["norm"] == norm)
            & (best["eps"] == mid["eps"])
        ]
        glue[f"scen-mid-{norm}"] = (
            f"at {budget(mid['eps'], norm)} (where the dense model is {mid['robust']:.0%} robust): {_p_ranges(at_mid)}"
        )
    # how often is the dense model best for some p, and for the adversarial end (p = 1)?
    last = best[best["p_to"] == 1]
    glue["scen-n-budgets"] = len(last)
    glue["scen-n-dense-at-1"] = int((last["candidate"] == 1).sum())
    glue["scen-n-dense-anywhere"] = int(
        best[best["candidate"] == 1].groupby(["model", "method", "norm", "eps"]).ngroups
    )

    keys = ["model", "method", "norm", "eps", "budget"]
    table = pd.DataFrame(
        [(*key, _p_ranges(rows)) for key, rows in best.groupby(keys, sort=False)],
        columns=[*keys, "best CR by range of p"],
    )
    table = _norm_sorted(table, ["model", "method", "norm", "eps"]).drop(columns="eps")
    detail = _norm_sorted(best, ["model", "method", "norm", "eps", "p_from"])
    detail = detail.assign(CR=detail["candidate"])[
        ["model", "method", "norm", "budget", "CR", "p_from", "p_to", "acc_from", "acc_to", "clean", "robust"]
    ]

    # across models and methods of one data set: which (model,) method and CR is best; the model is
    # named only where the data set has several attacked models
    pairs = lines[["dataset", "model", "method"]].drop_duplicates()
    several = lines["dataset"].map(pairs.groupby("dataset")["model"].nunique() > 1)
    choice = lines["method"].where(~several, lines["model"] + ", " + lines["method"])
    candidates = lines.assign(candidate=choice + " @ CR " + lines["cr"].map("{:g}".format))
    across = scenarios.best_ranges(candidates, ["dataset", "norm", "eps"], candidate="candidate", prefer="cr")
    across["budget"] = [budget(e, n) for e, n in zip(across["eps"], across["norm"])]
    keys = ["dataset", "norm", "eps", "budget"]
    across = pd.DataFrame(
        [(*key, _p_ranges(rows, lambda r: r.candidate)) for key, rows in across.groupby(keys, sort=False)],
        columns=[*keys, "best choice by range of p"],
    )
    across = (
        _norm_sorted(across, ["dataset", "norm", "eps"]).drop(columns="eps").rename(columns={"dataset": "data set"})
    )
    named = sorted(pairs["model"] + ", " + pairs["method"])
    glue["scen-across-text"] = (
        f"So far every data set has one attacked model and method ({', '.join(named)}), "
        "so the table below repeats the one above; it will compare them as soon as more are attacked."
        if (pairs.groupby("dataset").size() == 1).all()
        else f"So far {len(pairs)} (model, method) pairs have attack results: "
        f"{'; '.join(named)}. A model without results at a budget is no candidate there."
    )
    return {
        "glue": glue,
        "main_model": main_model,
        "main_method": main_method,
        "acc": scenarios.accuracy_over_p(main),
        "initial": initial,
        "best": table.set_index(["model", "method", "norm", "budget"]),
        "detail": detail.set_index(["model", "method", "norm", "budget"]),
        "across": across.set_index(["data set", "norm", "budget"]),
    }


def headline_robustness(
    attack: pd.DataFrame, prune: pd.DataFrame, samples: pd.DataFrame, checks: pd.DataFrame, model: dict | None = None
) -> dict:
    """The robustness chapter's numbers for one model and method (its rows of the attack, prune,
    samples and checks tables, every seed): ``worst`` (per CR, norm and budget, the mean over seeds
    of the per-sample worst case over the attacks every seed faced, with its band, ``attacks`` and
    the checkpoint's ``sparsity``), ``prune`` (the prune rows averaged over seeds), ``dense`` (each
    minimal attack's accuracy-vs-budget curve, mean over seeds), ``agreement``
    (``aggregate.fixed_minimal_agreement``), ``attacks`` (norm -> the attacks of its worst case, in
    words) and ``glue`` (the chapter's numbers by glue name)."""
    prune = compare.prune_over_seeds(prune)
    per_seed = compare.worst_case_per_seed(attack, samples, {"model": model or charts.HEADLINE})
    worst = compare.mean_over_seeds(per_seed, ["cr", "norm", "eps", "attacks"])
    worst = worst.merge(prune[["cr", "sparsity"]], on="cr")
    dense = aggregate.dense_curve(samples)
    dense = compare.mean_over_seeds(dense, ["attack", "norm", "cr", "eps"]) if len(dense) else dense
    agreement = aggregate.fixed_minimal_agreement(attack)
    seeds = sorted(per_seed["seed"].unique())
    decisive = agreement[agreement["strongest"]] if len(agreement) else agreement
    weak = agreement[~agreement["strongest"]] if len(agreement) else agreement
    glue = {
        "rob-seeds": f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))})",
        # what the attacks only some seeds faced add (negative: the extra attacks found more)
        "rob-extra-attacks": extra_attacks(per_seed, samples, attack),
        "rob-violations": int(attack["violations"].sum()),
        "rob-checks": f"{int(checks['passed'].sum())} of {len(checks)}",
        "rob-agree": f"{int(decisive['agree'].sum())} of {len(decisive)}" if len(decisive) else "no",
        "rob-weak-fixed": ", ".join(
            f"{a} by up to {g * 100:.0f} points" for a, g in weak.groupby("fixed")["gap"].max().items()
        )
        if len(weak)
        else "none",
    }
    return {
        "worst": worst,
        "prune": prune,
        "dense": dense,
        "agreement": agreement,
        "attacks": worst.groupby("norm")["attacks"].first().str.replace("+", ", "),
        "glue": glue,
    }


def robustness_figures(rob: dict, profile: str) -> dict[str, Any]:
    """The robustness chapter's charts from :func:`headline_robustness`: ``figures`` (``<norm>-cr``:
    the worst case against CR; ``<norm>-eps``: the first minimal attack's accuracy against budget
    per CR; a text saying what is missing in ``profile`` where there is no result) and ``only`` (the
    attack an ``-eps`` chart shows, for its re-make command)."""
    worst, prune, dense = rob["worst"], rob["prune"], rob["dense"]
    shown: dict[str, Any] = {}
    only: dict[str, dict] = {}
    for norm in NORMS:
        w = worst[worst["norm"] == norm]
        d = dense[dense["norm"] == norm] if len(dense) else dense
        if not len(w):
            shown[f"{norm}-cr"] = shown[f"{norm}-eps"] = f"no {norm} attack results in profile {profile}"
            continue
        shown[f"{norm}-cr"] = charts.robust_vs_cr(w, prune, f"{norm}: worst case over {rob['attacks'][norm]}")
        if not len(d):
            shown[f"{norm}-eps"] = f"no minimal {norm} attack in profile {profile}"
            continue
        first = d["attack"].iloc[0]
        title = f"{norm}: {first}, accuracy vs epsilon per CR"
        shown[f"{norm}-eps"] = charts.acc_vs_eps(d[d["attack"] == first], norm, title)
        only[f"{norm}-eps"] = {"attack": first}
    return {"figures": shown, "only": only}


def agreement_table(agreement: pd.DataFrame) -> pd.DataFrame:
    """``aggregate.fixed_minimal_agreement`` rows as a table: fixed minus minimal robust accuracy per
    norm, pair of attacks and budget (as the charts write it), CRs in columns."""
    t = agreement.assign(eps=[charts.eps_label(e, n) for e, n in zip(agreement["eps"], agreement["norm"])])
    t = t.pivot_table(index=["norm", "fixed", "minimal", "eps"], columns="cr", values="gap", sort=False)
    t.columns = [f"CR {c:g}" for c in t.columns]
    return t


def trainings_compared(
    groups: dict[int | None, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]],
    model: dict,
    trainings: dict[str, str],
    names: tuple[str, str] = ("standard model", "PGD-trained one"),
) -> dict[str, Any]:
    """Two trainings of one model and pruning method side by side (the adversarial chapter).

    ``groups``: fine-tuning epochs per pruning step (None: a single recipe) -> that recipe's attack,
    samples, prune and train rows; ``model``: the model's and method's column values but the
    training; ``trainings``: training value -> its label (standard first, then the adversarial one).
    A line is labelled '<training label>, <epochs> epochs per step' (the label alone for None).

    Returns ``worst`` (``compare.worst_case_by_model`` rows of every line, with ``budget``),
    ``prune`` (the two models' prune rows with ``method`` and ``budget``), ``attack`` and ``train``
    (every group's rows), ``contrast`` (norm -> (the budget of the first recipe that has both
    models, the sentences of ``compare.norm_comparison`` per recipe), or None without results) and
    ``clean`` (``clean_two_trainings`` per recipe in one sentence, or None)."""

    def label(training: str, budget: int | None) -> str:
        return trainings[training] if budget is None else f"{trainings[training]}, {budget} epochs per step"

    def per_recipe(text: str, budget: int | None) -> str:
        return text if budget is None else f"with up to {budget} fine-tuning epochs per step, {text}"

    worst_parts, prune_parts, attack_parts, train_parts = [], [], [], []
    for budget, (attack, samples, prune, train) in groups.items():
        models = {label(t, budget): dict(model, training=t) for t in trainings}
        tag = {} if budget is None else {"budget": budget}
        worst_parts.append(compare.worst_case_by_model(attack, samples, models).assign(**tag))
        prune_parts += [compare.rows_of(prune, where).assign(method=lab, **tag) for lab, where in models.items()]
        attack_parts.append(attack)
        train_parts.append(train.assign(**tag))
    worst = pd.concat([w for w in worst_parts if len(w)] or [worst_parts[0]], ignore_index=True)
    prune = pd.concat(prune_parts, ignore_index=True)
    standard, adversarial = trainings
    recipes = sorted(groups, key=lambda b: (b is None, b or 0))
    contrast: dict[str, tuple[float, str] | None] = {}
    for norm in NORMS:
        found = [
            (budget, compare.norm_comparison(worst, norm, label(standard, budget), label(adversarial, budget), names))
            for budget in recipes
        ]
        hits = [(budget, f) for budget, f in found if f is not None]
        contrast[norm] = (hits[0][1][0], "; ".join(per_recipe(f[1], b) for b, f in hits)) if hits else None
    clean = []
    for budget in recipes:
        rows = prune[prune["budget"] == budget] if budget is not None and len(prune) else prune
        text = clean_two_trainings(rows, standard, adversarial)
        if text:
            clean.append(per_recipe(text, budget))
    return {
        "worst": worst,
        "prune": prune,
        "attack": pd.concat(attack_parts, ignore_index=True),
        "train": pd.concat(train_parts, ignore_index=True),
        "contrast": contrast,
        "clean": "; ".join(clean) if clean else None,
    }


def method_study(
    attack: pd.DataFrame, samples: pd.DataFrame, prune: pd.DataFrame, indicators: pd.DataFrame, where: dict
) -> dict[str, Any]:
    """Every pruning method of one model (``where``: its column values) compared, per norm, as the
    methods chapter shows it: ``curves`` (``method_robustness``, results with a tripped failure
    indicator marked), ``prune`` (its prune rows averaged over seeds), ``coverage`` (what the
    comparison rests on, and the methods pruned but not attacked) and ``norms`` (norm -> ``curves``
    of the norm, ``eps`` (the budget of ``method_findings``), ``sentence``, ``table`` (formatted,
    with marks) and ``claims`` (``original_claims``); a norm without results is absent)."""
    curves = mark_tripped(method_robustness(attack, samples, where), indicators)
    rows = compare.prune_over_seeds(compare.rows_of(prune, where))
    missing = unattacked_methods(prune, attack, where)
    text = coverage(curves, attack)
    if missing:
        text += f"; pruned but not attacked in this profile: {len(missing)} method(s) ({', '.join(missing)})"
    gone = left_out_seeds(attack, samples, where)
    text += (
        "; left out, as they did not face the whole default set: "
        + "; ".join(f"seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))} of {m}" for m, s in gone.items())
        if gone
        else "; no seed left out (each faced the whole default set)"
    )
    norms = {}
    for norm in NORMS:
        c = curves[curves["norm"] == norm]
        if not len(c):
            continue
        found = method_findings(c, norm)
        norms[norm] = {
            "curves": c,
            "eps": found["eps"],
            "sentence": found["sentence"],
            "table": formatted(found["table"], found["marks"], found["collapsed"]),
            "claims": original_claims(c, rows, norm),
        }
    return {"curves": curves, "prune": rows, "coverage": text, "norms": norms}


def method_tables(study: dict[str, Any]) -> list:
    """What the methods chapter shows under a model's charts: per norm of :func:`method_study`, a
    caption and the table of every method's robust accuracy at the chart's opening budget."""
    from IPython.display import Markdown

    note = f"en dash: not measured; {COLLAPSED}: the model gives one class to every image; {MARK}: an indicator tripped"
    return [
        shown
        for norm, found in study["norms"].items()
        for shown in (
            Markdown(f"**{norm}**, robust accuracy per method at the chart's opening budget ({note})"),
            found["table"],
        )
    ]


def method_section(study: dict[str, Any], title: str, missing: str = "not measured in this profile") -> dict[str, Any]:
    """What the methods chapter shows of one :func:`method_study`: ``figures`` (norm -> every
    method's curves by structure, ``title`` after the norm, opening at the study's budget; None
    without results) and ``values`` (``coverage`` and ``<norm>-text``, ``missing`` where absent)."""
    shown: dict[str, Any] = {}
    values: dict[str, Any] = {"coverage": study["coverage"]}
    for norm in NORMS:
        found = study["norms"].get(norm)
        shown[norm] = (
            charts.methods_by_structure(
                found["curves"], study["prune"], f"{norm}: {title}", initial_eps=charts.eps_label(found["eps"], norm)
            )
            if found
            else None
        )
        values[f"{norm}-text"] = found["sentence"] if found else missing
    return {"figures": shown, "values": values}


def beside_section(curves: pd.DataFrame, summary: pd.DataFrame, where: dict, title: str) -> dict[str, Any]:
    """Ours beside the original's per method and norm (``curves``: :func:`method_robustness` rows of
    one model; ``summary``: ``reference.per_cr`` rows, narrowed to ``where``'s data set and
    architecture): ``figures`` (norm -> the chart, opening at the budget nearest the dense model's
    50 % point, or None where the two studies share nothing) and ``values`` (``<norm>-text``: the
    sentence of :func:`beside_original` at that budget)."""
    theirs = summary[(summary["dataset"] == where["dataset"]) & (summary["arch"] == where["arch"])]
    shown: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for norm in NORMS:
        beside = reference.methods_robust_vs_original(curves, theirs, norm)
        if not len(beside):
            shown[norm], values[f"{norm}-text"] = None, "not measured in this profile"
            continue
        at = nearest_budget(beside["eps"].unique(), dense_budget(curves, norm))
        start = charts.eps_label(at, norm)
        shown[norm] = charts.methods_beside_original(beside, f"{norm}: {title}", initial_eps=start)
        values[f"{norm}-text"] = beside_original(beside, at)["sentence"]
    return {"figures": shown, "values": values}


def replica_section(attack: pd.DataFrame, summary: pd.DataFrame, title: str) -> dict[str, Any]:
    """The original's CNN re-made beside ours and the original's runs in Linf PGD-40
    (:func:`replica_linf`): ``figure`` (opening at :func:`replica_budget`; None without results) and
    ``text`` (:func:`replica_sentence` there, or what is missing)."""
    replica = replica_linf(attack, summary)
    if not len(replica):
        return {"figure": None, "text": "No PGD-40 results for the replica in this profile yet"}
    at = replica_budget(replica)
    chart = charts.versus_original_by_eps(replica, title, initial_eps=charts.eps_label(at, "Linf"))
    return {"figure": chart, "text": replica_sentence(replica, at)}


def claims_table(studies: dict[str, dict]) -> pd.DataFrame:
    """The original's claims checked per model (``method_study`` results by model key) and norm:
    ``holds`` (yes, no, or an en dash where the data cannot tell) and its ``evidence``."""
    parts = [n["claims"].assign(model=m, norm=norm) for m, s in studies.items() for norm, n in s["norms"].items()]
    if not parts:
        return pd.DataFrame(columns=["holds", "evidence"])
    t = pd.concat(parts, ignore_index=True)
    t["holds"] = t["holds"].map({True: "yes", False: "no"}).fillna(DASH)
    return t.set_index(["model", "norm", "claim"])[["holds", "evidence"]]


def nearest_budget(budgets, target: float) -> float:
    """The budget of ``budgets`` nearest ``target`` (e.g. the dense model's 50 % point)."""
    return min(sorted(budgets), key=lambda e: abs(e - target))


def replica_budget(replica: pd.DataFrame) -> float:
    """The Linf budget :func:`replica_linf`'s chart opens on: 16/255 where it ran (the budget at
    which the original's faster collapse shows), else the middle one."""
    budgets = sorted(replica.loc[replica["eps"] > 0, "eps"].unique())
    return next((e for e in budgets if abs(e * 255 - 16) < 1e-6), budgets[len(budgets) // 2])


def cross_family_table(attack: pd.DataFrame, models: dict[str, dict]) -> pd.DataFrame:
    """:func:`cross_family` per model (key -> column values), with the largest gaps each way in
    points as one column."""
    cross = pd.concat([cross_family(compare.rows_of(attack, w)).assign(model=k) for k, w in models.items()])
    if not len(cross):
        return cross
    cross["largest gaps (points)"] = [
        f"{lo * 100:+.1f} / {hi * 100:+.1f}" for lo, hi in zip(cross["min_gap"], cross["max_gap"])
    ]
    return cross.set_index(["model", "norm", "minimal", "fixed"]).drop(columns=["min_gap", "max_gap"])


def indicator_summary(indicators: pd.DataFrame, archs) -> dict[str, Any]:
    """:func:`failure_indicators` rows of some architectures in words and tables: ``sentence`` (how
    many results tripped an indicator), ``tripped`` (those, with why) and ``sources`` (per
    architecture and norm, the most common split of the worst case among the attacks)."""
    shown = indicators[indicators["arch"].isin(list(archs))]
    tripped = shown[shown["tripped"]]
    sources = (
        shown[~shown["tripped"]]
        .groupby(["arch", "norm"])["sources"]
        .agg(lambda s: s.value_counts().index[0] if len(s) else "")
        .rename("most common split of the worst case (share of samples per attack)")
        .to_frame()
    )
    checked, curved = shown["not_converged"].notna(), shown["curve_moved"].notna()
    converged = (
        f" Convergence (twice the steps) was checked in {int(checked.sum())} of them, "
        f"{int((shown.loc[checked, 'not_converged'] > 0).sum())} not converged (distances still cut by over 5 %); "
        + (
            f"its effect on the curve in {int(curved.sum())}, {int((shown.loc[curved, 'curve_moved'] > 0).sum())} "
            "of which would move at a budget."
            if curved.any()
            else "its effect on the curve (per budget) was checked in none of them (runs made before 2026-12-05)."
        )
    )
    return {
        "sentence": f"**{len(tripped)} of {len(shown)}** (model, method, CR, norm) results tripped an indicator."
        + converged,
        "tripped": tripped.set_index(["arch", "method", "norm", "cr"])[["why"]],
        "sources": sources,
    }


def dead_gradients(attack: pd.DataFrame, records: list[dict] | None = None, floor: float = 0.01) -> dict[str, Any]:
    """``bench gradients`` records (default: ``benchmarks/gradients_cpu.json``) of the checkpoints in
    ``attack``, beside what FMN and APGD found on them in Linf: ``table`` (checkpoints where at least
    ``floor`` of the correctly classified images have an exactly zero input gradient, most first:
    that share, and FMN's and APGD's robust accuracy at the largest budget both ran) and
    ``sentence``.  Where every path from an image is dead, a minimal attack that starts at the image
    and follows the gradient does not move, and counts it robust; APGD's random start can move."""
    if records is None:
        import json

        from prunerob import results

        try:
            records = json.loads((results.ROOT / "benchmarks" / "gradients_cpu.json").read_text())["records"]
        except (OSError, ValueError, KeyError):
            records = []
    measured = pd.DataFrame(records)
    if len(measured):
        measured = measured[measured["checkpoint_sha"].isin(attack["checkpoint_sha"])]
    if not len(measured):
        return {"sentence": "No checkpoint of these tables has its gradients measured (`bench gradients`).",
                "table": pd.DataFrame()}  # fmt: skip
    measured = measured.assign(share=measured["correct_zero_gradient"] / measured["correct"].clip(lower=1))
    linf = attack[attack["norm"].eq("Linf") & attack["attack"].isin(["linf_fmn", "linf_apgd"])]
    both = linf.pivot_table(index=["checkpoint_sha", "eps"], columns="attack", values="robust_acc").dropna()
    top = both.reset_index().sort_values("eps").groupby("checkpoint_sha").last()
    rows = measured[measured["share"] >= floor].join(top, on="checkpoint_sha").sort_values("share", ascending=False)
    nothing = pd.Series(np.nan, index=rows.index)
    table = pd.DataFrame(
        {
            "model": charts.model_label(rows).to_numpy(),
            "method": charts.method_label(rows).to_numpy(),
            "CR": rows["cr"].map("{:g}".format).to_numpy(),
            "zero gradient (of the correct images)": [
                f"{pct(s)} ({z} of {c})"
                for s, z, c in zip(rows["share"], rows["correct_zero_gradient"], rows["correct"])
            ],
            "Linf budget": [budget(e, "Linf") if e == e else DASH for e in rows.get("eps", nothing)],
            "FMN robust": rows.get("linf_fmn", nothing).map(lambda v: pct(v) if v == v else DASH).to_numpy(),
            "APGD robust": rows.get("linf_apgd", nothing).map(lambda v: pct(v) if v == v else DASH).to_numpy(),
        }
    )
    if not len(rows):
        sentence = (f"On none of the {len(measured)} checkpoint{'s' * (len(measured) > 1)} measured does {pct(floor, 0)} "
                    "or more of the correctly classified images have an exactly zero input gradient.")  # fmt: skip
    else:
        first = table.iloc[0]
        sentence = (
            f"On {len(rows)} of the {len(measured)} checkpoints measured, {pct(floor, 0)} or more of the correctly "
            f"classified images have an exactly zero input gradient, most on the {first['model']}, {first['method']} "
            f"at CR {first['CR']}: {first['zero gradient (of the correct images)']}."
        )
        gap = (rows.get("linf_fmn", nothing) - rows.get("linf_apgd", nothing)).to_numpy()
        if np.isfinite(gap).any():
            r = table.iloc[int(np.nanargmax(gap))]
            sentence += (
                f" FMN, which starts at the image, is left furthest behind on the {r['method']} at CR {r['CR']} "
                f"({r['zero gradient (of the correct images)']}): it counted {r['FMN robust']} robust at "
                f"{r['Linf budget']}, APGD {r['APGD robust']}."
            )
        whole = table[rows["share"].to_numpy() == 1.0]
        if len(whole):
            sentence += (
                " Where every correct image has none ("
                + "; ".join(f"{w['method']} at CR {w['CR']}" for _, w in whole.iterrows())
                + "), no attack that follows the gradient moves from any of them."
            )
    return {"sentence": sentence, "table": table}


def highest_safe_cr(spots: pd.DataFrame) -> pd.DataFrame:
    """Per method, norm and budget of ``scenarios.sweet_spots`` rows: ``up_to``, the highest CR up
    to which no compression rate is clearly less robust than the dense model (1 when CR 2 already
    is)."""
    keep = []
    for (method, norm, eps), rows in spots.groupby(["method", "norm", "eps"]):
        rows = rows.sort_values("cr")
        lost = rows[rows["verdict"] == "less robust"]
        safe = rows[rows["cr"] < lost["cr"].min()] if len(lost) else rows
        keep.append({"method": method, "norm": norm, "eps": eps, "up_to": safe["cr"].max() if len(safe) else 1.0})
    return pd.DataFrame(keep, columns=["method", "norm", "eps", "up_to"])


SWEET_MARK = {"more robust": " ▲", "less robust": " ▼", "no clear difference": ""}


def sweet_spot_study(attack: pd.DataFrame, samples: pd.DataFrame, confidence: float = 0.95, **boot) -> dict[str, Any]:
    """Which pruned models are clearly more (or less) robust than their dense model: every attacked
    model, each on the budgets it was attacked at, its seeds on the attacks all of them faced
    (``scenarios.sweet_spots`` with ``boot``: n_boot, seed).  Returns ``spots`` (one row per model,
    method, CR, norm and budget with ``verdict``; ``method`` names the model too where several were
    attacked), ``glue`` (the chapter's numbers), ``table`` (pruned minus dense in points with ▲/▼,
    CRs in columns) and ``more`` (the clearly more robust ones with their intervals)."""
    samples, attack = aggregate.common_runs_only(samples, attack, scenarios.METHOD_KEYS)
    per_sample = aggregate.on_own_grids(scenarios.worst_case_samples, samples, attack)
    spots = scenarios.sweet_spots(per_sample, confidence=confidence, **boot)
    spots = spots.assign(model=charts.model_label(spots))
    several = spots["model"].nunique() > 1
    spots = spots.assign(method=(spots["model"] + ", " if several else "") + charts.method_label(spots))
    named = spots["method"].nunique() > 1  # name the method (with its model) only when several were attacked

    def describe(rows: pd.DataFrame) -> str:
        return (
            "; ".join(
                f"{r['norm']} at {budget(r['eps'], r['norm'])}, CR {r['cr']:g}{' (' + r['method'] + ')' if named else ''}: "
                f"{100 * r['diff']:+.1f} points [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"
                for r in rows.to_dict("records")
            )
            or "none"
        )

    counts = spots["verdict"].value_counts()
    # pairs where both models got every image right or every image wrong can never differ
    testable = spots[~((spots["dense"].isin([0.0, 1.0])) & (spots["pruned"] == spots["dense"]))]
    more = spots[spots["verdict"] == "more robust"].sort_values(["model", "norm", "eps", "cr"])
    glue: dict[str, object] = {
        "ss-models": "; ".join(sorted(charts.model_label(per_sample).unique())),
        "ss-methods": ", ".join(sorted(charts.method_label(spots).unique())),
        "ss-coverage": coverage_by_model(attack),
        "ss-n": len(spots),
        **{
            f"ss-n-{key}": int(counts.get(verdict, 0))
            for verdict, key in (("more robust", "more"), ("less robust", "less"), ("no clear difference", "unclear"))
        },
        "ss-n-testable": len(testable),
        "ss-expected-false": f"{(1 - confidence) * len(testable):.0f}",
        "ss-more-list": describe(more),
        "ss-best": describe(more.sort_values("low", ascending=False).head(1)),
    }
    keep = highest_safe_cr(spots)
    for norm in NORMS:
        k = keep[(keep["norm"] == norm) & (keep["eps"] > 0)]
        glue[f"ss-keep-{norm}"] = (
            "; ".join(
                (f"{method}: " if named else "")
                + ", ".join(f"CR {c:g} at {budget(e, norm)}" for e, c in zip(m["eps"], m["up_to"]))
                for method, m in k.groupby("method")
            )
            or "no results"
        )
    cells = spots.assign(
        budget=[budget(e, n) for e, n in zip(spots["eps"], spots["norm"])],
        cell=[f"{100 * d:+.1f}{SWEET_MARK[v]}" for d, v in zip(spots["diff"], spots["verdict"])],
    )
    cells = _norm_sorted(cells, ["method", "norm", "eps"])
    table = cells.pivot_table(
        index=["method", "norm", "budget"], columns="cr", values="cell", aggfunc="first", sort=False
    )
    table.columns = [f"CR {c:g}" for c in table.columns]
    shown = more.assign(budget=[budget(e, n) for e, n in zip(more["eps"], more["norm"])])
    shown = shown[["method", "norm", "budget", "cr", "dense", "pruned", "diff", "low", "high", "n", "n_seeds"]]
    return {
        "spots": spots,
        "glue": glue,
        "table": table.fillna(DASH),
        "more": shown.set_index(["method", "norm", "budget", "cr"]),
    }


def trainings_section(
    groups: dict[int | None, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]],
    model: dict,
    trainings: dict[str, str],
    title: str,
    missing: str = "not measured in this profile",
) -> dict[str, Any]:
    """One model's section of the adversarial chapter: :func:`trainings_compared` plus what the
    chapter shows of it. ``figures``: norm -> the standard-vs-adversarial chart (``title`` formatted
    with ``norm``), opening at the budget that contrasts the two, or None without both trainings;
    ``values``: the prose (``n`` images, ``clean-text``, ``<norm>-text``, ``missing`` where there is
    nothing, and the adversarial model's :func:`attack_health` as ``agree``, ``agree-gap``,
    ``checks``, ``violations``, ``disagree-text``, and its :func:`minimal_gaps` as ``minimal-gaps``); ``table``: :func:`lines_table` per method and CR."""
    compared = trainings_compared(groups, model, trainings)
    worst = compared["worst"]
    adversarial = compare.rows_of(compared["attack"], dict(model, training=list(trainings)[1]))
    health = attack_health(adversarial)
    values: dict[str, Any] = {
        "n": int(worst["n"].max()) if len(worst) else 0,
        "clean-text": compared["clean"] or missing,
        "agree": health["agree"],
        "agree-gap": health["gap"],
        "checks": health["checks"],
        "violations": health["violations"],
        "disagree-text": health["disagree"],
        "minimal-gaps": minimal_gaps(adversarial, health["agreement"]),
    }
    shown: dict[str, Any] = {}
    for norm, found in compared["contrast"].items():
        rows = worst[worst["norm"] == norm] if found else worst
        start = charts.eps_label(found[0], norm) if found else None
        shown[norm] = (
            charts.robust_vs_cr_by_eps(rows, None, title.format(norm=norm), initial_eps=start) if found else None
        )
        values[f"{norm}-text"] = found[1] if found else missing
    return dict(compared, figures=shown, values=values, table=lines_table(worst, ["method", "cr"]))


def dense_training(train: pd.DataFrame, training: str, **where: Any) -> dict[str, str]:
    """How the dense model of ``training`` (among train rows matching ``where``) was trained:
    ``epochs`` ("12 epochs"), ``device`` and ``text`` ("12 epochs in 5 minutes on cpu, to 99.10 %
    clean test accuracy"); "(not trained yet)" and "n/a" without such a row."""
    rows = compare.rows_of(train, dict(where, training=training)) if len(train) else train
    if not len(rows):
        return {"epochs": "(not trained yet)", "device": "n/a", "text": "(not trained yet)"}
    row = rows.iloc[0]
    epochs = f"{int(row['epochs'])} epochs"
    return {
        "epochs": epochs,
        "device": str(row["device"]),
        "text": f"{epochs} in {row['seconds'] / 60:.0f} minutes on {row['device']}, to {row['clean_acc']:.2%} clean test accuracy",
    }


def stages_status(stages: list, command: str) -> str:
    """Whether every stage of a model has its table: "All N stages of these two models have run." or
    how many (of which kinds) have not, and ``command``, the sweep that runs them."""
    from prunerob.results import PRIMARY_TABLE, stage_done

    todo = [st for st in stages if not stage_done(PRIMARY_TABLE[st.kind], st.id)]
    if not todo:
        return f"All {len(stages)} stages of these two models have run."
    kinds = ", ".join(sorted({st.kind for st in todo}))
    return (
        f"Of the {len(stages)} stages of these two models, {len(todo)} ({kinds}) are not in the tables this "
        f"book was built from yet; `{command}` runs them, and until then the charts below say what is missing."
    )


def transfer_section(attack: pd.DataFrame, samples: pd.DataFrame, profile: str) -> dict[str, Any]:
    """The transfer chapter from one model's attack and samples rows: per norm (Linf, L2; APGD) the
    white-box and both transfer views against CR (``figures``; a text saying what is missing), the
    sentence at the middle budget and the largest CR with the seeds it rests on (``values``:
    ``<norm>-text``), and how many images, transfer runs and verification failures (``n``,
    ``runs``, ``violations``)."""
    from prunerob import transfer as tr

    runs = attack[attack["scenario"] == "transfer"] if len(attack) else attack
    seeds = runs["seed"].nunique() if len(runs) else 0
    note = compare.seeds_text(seeds)
    shown: dict[str, Any] = {}
    values: dict[str, Any] = {
        "n": int(runs["n"].iloc[0]) if len(runs) else 0,
        "runs": int(runs["stage_id"].nunique()) if len(runs) else 0,
        "violations": int(runs["violations"].sum()) if len(runs) else 0,
    }
    for norm in ("Linf", "L2"):
        frame = tr.curves(samples, f"{norm.lower()}_apgd")
        if not len(runs) or not len(frame) or frame["method"].nunique() < 3:
            shown[norm], values[f"{norm}-text"] = (
                f"no {norm} transfer results in profile {profile}",
                "not measured in this profile",
            )
            continue
        eps = charts.middle_eps(frame)
        title = f"{norm}: white-box and transfer APGD"
        shown[norm] = charts.robust_vs_cr_by_eps(frame, None, title, initial_eps=charts.eps_label(eps, norm))
        at = frame[frame["eps"] == eps].pivot_table(index="cr", columns="method", values="robust_acc")
        top, white = float(at.index.max()), tr.LABELS["white"]
        dense, last = at.iloc[0], at.iloc[-1]  # CR 1 and the largest CR
        values[f"{norm}-text"] = (
            f"at {charts.eps_label(eps, norm)}, the dense model keeps {dense[white]:.1%} of the images under its "
            f"own attack; the CR {top:g} model keeps {last[white]:.1%} under a white-box attack and "
            f"{last[tr.LABELS['from_dense']]:.1%} against examples crafted on the dense model, and the dense "
            f"model keeps {last[tr.LABELS['to_dense']]:.1%} against examples crafted on the CR {top:g} model "
            f"({note})"
        )
    return {"figures": shown, "values": values}


def lines_table(worst: pd.DataFrame, columns="cr") -> pd.DataFrame:
    """Robust accuracy of ``compare.worst_case_by_model`` rows per norm and budget (rows) and
    ``columns`` (e.g. ["method", "cr"]); empty without rows. Budget 0 (clean) is left out."""
    if not len(worst):
        return pd.DataFrame()
    return worst[worst["eps"] > 0].pivot_table(index=["norm", "eps"], columns=columns, values="robust_acc")


def lines_coverage(worst: pd.DataFrame) -> dict[str, object]:
    """What ``compare.worst_case_by_model`` lines rest on: ``n`` (images per checkpoint), ``seeds``
    (per line, its seeds in words) and ``attacks`` (every attack behind any line)."""
    if not len(worst):
        return {"n": 0, "seeds": "no seeds", "attacks": "(none)"}
    seeds = worst.groupby("method")["n_seeds"].max()
    return {
        "n": int(worst["n"].max()),
        "seeds": "; ".join(
            f"the {m}'s lines are the mean over {n} seeds" if n > 1 else f"the {m} ran one seed"
            for m, n in seeds.items()
        ),
        "attacks": ", ".join(sorted(worst["attacks"].str.split("+").explode().unique())),
    }


def two_models_section(
    worst: pd.DataFrame, reference: str, other: str, title: str, missing: str = "not measured in this profile"
) -> dict[str, Any]:
    """Two models' lines (``compare.worst_case_by_model`` rows, labels ``reference`` and ``other``)
    per norm: ``figures`` (norm -> robust accuracy against CR per budget, opening at the budget of
    ``compare.norm_comparison``, ``title`` formatted with ``norm``; None without both models) and
    ``values`` (``<norm>-text``: the comparison's sentence, or ``missing``)."""
    shown: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for norm in NORMS:
        found = compare.norm_comparison(worst, norm, reference, other)
        rows = worst[worst["norm"] == norm] if found else worst
        start = charts.eps_label(found[0], norm) if found else None
        shown[norm] = (
            charts.robust_vs_cr_by_eps(rows, None, title.format(norm=norm), initial_eps=start) if found else None
        )
        values[f"{norm}-text"] = found[1] if found else missing
    return {"figures": shown, "values": values}


def one_model_chart(worst: pd.DataFrame, norm: str, label: str, title: str) -> Any:
    """One model's robust accuracy against CR per budget in ``norm`` (``compare.worst_case_by_model``
    rows of model ``label``), opening at the budget of ``compare.summary_at``; None without rows."""
    rows = worst[worst["norm"] == norm] if len(worst) else worst
    if not len(rows):
        return None
    start = charts.eps_label(compare.summary_at(worst, norm, label)[0], norm)
    return charts.robust_vs_cr_by_eps(rows, None, title, initial_eps=start)


def one_model_text(worst: pd.DataFrame, label: str) -> str | None:
    """One model's robust accuracy per norm at the budget ``compare.summary_at`` picks, at every
    CR, in one sentence ('Linf 8/255: 90.0% at CR 1, ...'); None without results."""
    texts = []
    for norm in NORMS:
        rows = worst[(worst["norm"] == norm) & (worst["eps"] > 0)] if len(worst) else worst
        if len(rows):
            eps, at = compare.summary_at(worst, norm, label)
            texts.append(
                f"{norm} {charts.eps_label(eps, norm)}{' pixels' if norm == 'L0' else ''}: "
                + ", ".join(f"{v:.1%} at CR {cr:g}" for cr, v in at[label].items())
            )
    if not texts:
        return None
    note = compare.seeds_note(worst, label, float(worst["cr"].max()))
    return "; ".join(texts) + (f" ({note})" if note else "")


def hours(seconds: float) -> str:
    """'2 h 5 min'."""
    minutes = seconds / 60
    return f"{minutes // 60:.0f} h {minutes % 60:.0f} min"


def from_nothing(sweeps: pd.DataFrame, profile: str, n_stages: int) -> str:
    """How long the profile took from nothing, from the sweep records: the last clean sweep that ran
    all ``n_stages`` stages, or, where the profile grew, the sum of the clean sweeps that each ran
    exactly what the ones before had not (a sweep of a slice, ``--only``, or with failures does not
    count)."""

    def how(row) -> str:
        return f"{row['workers']:.0f} local workers" if row["scheduler"] == "local" else "a Dask cluster"

    ours = (
        sweeps[
            (sweeps["profile"] == profile) & (sweeps["failed"] == 0) & (sweeps["blocked"] == 0) & (sweeps["only"] == "")
        ]
        if len(sweeps)
        else sweeps
    )
    complete = ours[(ours["skipped"] == 0) & (ours["done"] == n_stages)] if len(ours) else ours
    if len(complete):
        last = complete.sort_values("started_at").iloc[-1]
        return (
            f"{hours(last['seconds'])} for {last['done']} stages ({how(last)} on a machine with "
            f"{last['cpu_count']} cores, --device {last['device']}; started {last['started_at']}, code "
            f"{last['code_version']})"
        )
    parts = ours.sort_values("started_at") if len(ours) else ours
    if (
        len(parts)
        and parts["done"].sum() == n_stages
        and (parts["skipped"] == parts["done"].cumsum().shift(fill_value=0)).all()
    ):
        # the profile grew: its stages ran in several sweeps, each skipping exactly what the ones before had done
        return (
            f"{hours(parts['seconds'].sum())} for its {n_stages} stages, run in {len(parts)} sweeps as the profile grew ("
            + "; ".join(
                f"{hours(r['seconds'])} for {r['done']} stages, {how(r)} on {r['cpu_count']} cores, "
                f"started {r['started_at']}, code {r['code_version']}"
                for _, r in parts.iterrows()
            )
            + ")"
        )
    return f"none recorded yet for profile {profile}"


def versions_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per stage kind (``tables``: kind -> its rows), how many stages ran with each code, torch,
    attack library and device."""
    rows = []
    for kind, frame in tables.items():
        if len(frame):
            cols = [c for c in ("code_version", "torch_version", "library", "library_version", "device") if c in frame]
            rows.append(
                frame.groupby(cols, dropna=False).agg(stages=("stage_id", "nunique")).reset_index().assign(stage=kind)
            )
    if not rows:
        return pd.DataFrame()
    # a stage kind without an attack library (train, prune) shows an en dash there, not NaN
    return pd.concat(rows, ignore_index=True).fillna(DASH).set_index("stage")


def fingerprint_sentence(agreement: pd.DataFrame) -> str:
    """``results.fingerprint_agreement`` in one sentence."""
    fingerprinted = agreement["runs"] - agreement["unknown"]
    return (
        f"of {int(agreement['runs'].sum())} links from a result to its checkpoint, {int(fingerprinted.sum())} are "
        f"fingerprinted on both sides, and {int(agreement['same'].sum())} of those match "
        f"({int(agreement['different'].sum())} differ); the other {int(agreement['unknown'].sum())} were computed "
        "before tables recorded fingerprints, so no table can tell."
    )


def sweeps_table(sweeps: pd.DataFrame, profiles) -> pd.DataFrame | None:
    """The sweep records of some profiles, oldest first, minutes rounded; None without any."""
    shown = sweeps[sweeps["profile"].isin(list(profiles))] if len(sweeps) else sweeps
    if not len(shown):
        return None
    cols = ["profile", "started_at", "minutes", "done", "failed", "blocked", "skipped", "workers", "scheduler"]
    return (
        shown.assign(minutes=(shown["seconds"] / 60).round(1))[[*cols, "device", "cpu_count", "only", "code_version"]]
        .sort_values("started_at")
        .set_index(["profile", "started_at"])
    )


def per_method(frame: pd.DataFrame, values: str) -> pd.DataFrame:
    """Per model and method (rows), the mean over seeds of ``values`` per CR (columns 'CR 4')."""
    t = frame.pivot_table(index=["model", "method"], columns="cr", values=values, aggfunc="mean").sort_index()
    t.columns = [f"CR {c:g}" for c in t.columns]
    return t


def pruning_accuracy(prune: pd.DataFrame) -> dict[str, str]:
    """How exactly the pruning hit its targets, from prune rows (every model and method): the
    largest deviation of an unstructured method from round(W / CR) kept weights (in weights), of a
    global structured method from its unit count (in units), and global magnitude filter pruning's
    mean kept fraction of the weights at CR 64."""
    unstructured = prune[prune["structure"] == "unstructured"]
    off = ((unstructured["kept"] - unstructured["target_kept"]).abs() * unstructured["n_prunable"]).max()
    structured = prune[(prune["structure"] != "unstructured") & (prune["scope"] == "global") & prune["n_units"].notna()]
    unit_target = structured["n_units"] - ((1 - 1 / structured["cr"]) * structured["n_units"]).round()
    gf = charts.pick(prune, structure="filter", scope="global", criterion="magnitude")
    gf64 = gf.loc[gf["cr"] == 64, "kept"]
    return {
        "pruning-unstructured-max-dev": f"{off:.1f}",
        "pruning-units-max-dev": f"{(structured['n_units_kept'] - unit_target).abs().max():.0f}",
        "pruning-gf-kept-64": f"{gf64.mean():.1%}" if len(gf64) else "(no run)",
    }


def layers_removed(prune: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """:func:`per_method` of the layers each method removed entirely, the model labelled with its
    number of prunable layers (counted on the first CR's per-layer rows of one of its stages).
    ``prune`` carries ``model`` and ``method`` labels."""
    per_layer = layers[layers["layer"] != "total"].merge(prune[["stage_id", "cr", "model"]], on=["stage_id", "cr"])
    first = per_layer.groupby("model")["stage_id"].transform("min") == per_layer["stage_id"]
    n_layers = per_layer[first & (per_layer["cr"] == per_layer["cr"].min())].groupby("model")["layer"].nunique()
    removed = per_method(prune, "layers_removed")
    index = cast(pd.MultiIndex, removed.index)
    removed.index = index.set_levels([f"{m} (of {n_layers.get(m, '?')} layers)" for m in index.levels[0]], level=0)
    return removed


def cr_over_all_parameters(prune: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """:func:`per_method` of the compression rate over all parameters (dense layers, biases and
    every other parameter counted), from the per-layer table's totals."""
    totals = layers[layers["layer"] == "total"].merge(
        prune[["stage_id", "cr", "method", "model"]], on=["stage_id", "cr"]
    )
    return per_method(totals.assign(cr_all=totals["n_params"] / totals["n_params_kept"]), "cr_all")


def storage(prune: pd.DataFrame) -> pd.DataFrame:
    """Mean stored size in KiB per CR of one model's checkpoints: dense, values + indices (COO) and
    values + bitmask."""
    size = prune.groupby("cr")[["bytes_dense", "bytes_coo", "bytes_bitmask"]].mean() / 1024
    size.columns = ["dense", "values + indices", "values + bitmask"]
    size.index = [f"CR {c:g}" for c in size.index]
    return size.round(1)


def linf_slice(attack: pd.DataFrame, prune: pd.DataFrame, checks: pd.DataFrame) -> dict[str, Any]:
    """The Linf PGD-40 slice of one model and method (its attack, prune and checks rows): ``attack``
    (per CR and budget, the mean over the seeds PGD-40 attacked, with violations and sparsity),
    ``prune`` (those seeds' prune rows averaged), ``glue`` (the chapter's numbers) and ``table``
    (per CR: kept weights, clean accuracy, fine-tuning epochs and robust accuracy per budget)."""
    attack = attack[attack["attack"] == "linf_pgd"]
    # the seeds PGD-40 attacked (other seeds faced the minimal attacks only)
    seeds = sorted(attack["seed"].unique())
    prune = compare.prune_over_seeds(prune[prune["seed"].isin(seeds)])
    attack = (
        compare.mean_over_seeds(attack, ["cr", "norm", "eps", "attack"])
        .merge(attack.groupby("cr", as_index=False)["violations"].sum(), on="cr")
        .merge(prune[["cr", "sparsity"]], on="cr")
    )
    dense = prune[prune["cr"] == 1].iloc[0]
    budgets = attack[attack["eps"] > 0]["eps"].sort_values().unique()
    mid = budgets[len(budgets) // 2]
    at_mid = attack[attack["eps"] == mid].set_index("cr")["robust_acc"]
    glue: dict[str, object] = {
        "slice-seeds": f"seed {seeds[0]}" if len(seeds) == 1 else f"the mean over seeds {', '.join(map(str, seeds))}",
        "slice-n": int(attack["n"].iloc[0]),
        "slice-clean-cr1": f"{dense['clean_acc']:.2%}",
        "slice-max-cr": f"{prune['cr'].max():g}",
        "slice-clean-maxcr": f"{prune.set_index('cr')['clean_acc'].sort_index().iloc[-1]:.2%}",
        "slice-mid-eps": charts.eps_label(mid, "Linf"),
        "slice-mid-cr1": f"{at_mid.loc[1.0]:.1%}",
        "slice-mid-best-cr": f"{at_mid.idxmax():g}",
        "slice-mid-best": f"{at_mid.max():.1%}",
        "slice-violations": int(attack.drop_duplicates("cr")["violations"].sum()),
        "slice-checks-passed": f"{int(checks['passed'].sum())} of {len(checks)}",
    }
    wide = attack.assign(eps=[charts.eps_label(e, "Linf") for e in attack["eps"]]).pivot_table(
        index="cr", columns="eps", values="robust_acc", sort=False
    )
    wide = wide[[c for c in wide.columns if c != "0"]]
    table = prune.set_index("cr")[["kept", "n_kept", "clean_acc", "finetune_epochs"]].join(wide)
    table.index = pd.Index([f"{c:g}" for c in table.index], name="CR")
    return {"attack": attack, "prune": prune, "glue": glue, "table": table, "budgets": list(wide.columns)}


def gap_to_original(attack: pd.DataFrame, ref: pd.DataFrame) -> pd.Series:
    """|ours - the original's mean| per CR and budget where both ran (``attack``: our rows with
    ``robust_acc`` per CR and eps; ``ref``: the original's rows of the same attack)."""
    ours = attack[attack["eps"] > 0].groupby(["cr", "eps"])["robust_acc"].mean()
    return (ours - ref.groupby(["cr", "eps"])["robust_acc"].mean()).abs()


def datasets_table(ran) -> pd.DataFrame:
    """Every data set of the catalog with its static facts and whether the book's results hold it
    (``ran``: the (dataset, arch) pairs that were trained)."""
    return pd.DataFrame(
        [
            {
                "data set": d.name,
                "input shape (C, H, W)": str(d.input_shape),
                "classes": d.num_classes,
                "mean": ", ".join(f"{m:.4f}" for m in d.mean),
                "std": ", ".join(f"{s:.4f}" for s in d.std),
                "training recipe": "large (augmentation, longer patience)" if d.large else "small",
                "license": d.license,
                "in the book's results": "yes" if any(ds == d.name for ds, _ in ran) else "no",
            }
            for d in catalog.DATASETS.values()
        ]
    ).set_index("data set")


def _models_by_method(frame: pd.DataFrame) -> dict[tuple, str]:
    """(structure, scope, criterion) -> the models it ran on, e.g. 'cnn on mnist; mlp on mnist'."""
    if not len(frame):
        return {}
    frame = frame.assign(model=charts.model_label(frame))
    keys = ["structure", "scope", "criterion"]
    return {tuple(key): "; ".join(sorted(rows["model"].unique())) for key, rows in frame.groupby(keys)}


def methods_table(prune: pd.DataFrame, attack: pd.DataFrame, original: pd.DataFrame) -> pd.DataFrame:
    """Every pruning method of the catalog: whether the original ran it, and the models it pruned
    and attacked here."""
    keys = ["structure", "scope", "criterion"]
    theirs = set(map(tuple, original[keys].drop_duplicates().to_numpy())) if len(original) else set()
    pruned, attacked = _models_by_method(prune), _models_by_method(attack)
    return pd.DataFrame(
        [
            {
                "structure": s,
                "scope": sc,
                "criterion": c,
                "in the original": "yes" if (s, sc, c) in theirs else "no",
                "pruned here": pruned.get((s, sc, c), "no"),
                "attacked here": attacked.get((s, sc, c), "no"),
            }
            for s in catalog.STRUCTURES
            for sc in catalog.SCOPES
            for c in catalog.CRITERIA
        ]
    ).set_index(keys)


def attacks_table(used) -> pd.DataFrame:
    """Every attack of the catalog: norm, kind, library, presets, reference, whether the book's
    results use it (``used``: attack names) and what it is."""
    return pd.DataFrame(
        [
            {
                "attack": a.name,
                "norm": a.norm,
                "kind": a.kind,
                "library": a.library,
                "presets": ", ".join(a.presets),
                "reference": a.reference,
                "in the book's results": "yes" if a.name in used else "no",
                "what it is": a.description,
            }
            for a in catalog.ATTACKS.values()
        ]
    ).set_index("attack")


def presets_table() -> pd.DataFrame:
    """Every preset of every attack with its parameters; the first preset of an attack is its default."""

    def show(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return pd.DataFrame(
        [
            {
                "attack": a.name,
                "preset": preset,
                "default": "yes" if i == 0 else "",
                "parameters": ", ".join(f"{k} = {show(v)}" for k, v in params.items()),
            }
            for a in catalog.ATTACKS.values()
            for i, (preset, params) in enumerate(a.presets.items())
        ]
    ).set_index(["attack", "preset"])


def stage_defaults_table() -> pd.DataFrame:
    """Every parameter of an attack stage (and the stages upstream of it) with its default."""
    rows = []
    for stage_part, cls in spec.AttackStage.PARTS.items():
        for f in fields(cls):
            value = getattr(cls(), f.name)
            if f.name == "eps" and stage_part == "attack":  # each norm's grid, as the charts write budgets
                value = (
                    "; ".join(
                        f"{norm}{' (pixels)' if norm == 'L0' else ''}: "
                        + ", ".join(charts.eps_label(v, norm) for v in grid)
                        for norm, grid in spec.NORM_DEFAULT_EPS.items()
                    )
                    + " (the attack's norm's grid)"
                )
            elif isinstance(value, tuple):
                value = ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in value)
            rows.append({"part": stage_part, "parameter": f.name, "default": str(value) if value != "" else "(empty)"})
    return pd.DataFrame(rows).set_index(["part", "parameter"])


def attack_coverage_table(attack: pd.DataFrame) -> pd.DataFrame | None:
    """Per model, norm, attack and preset: the budgets, CRs, images and seeds of the results; None
    without attack results."""
    if not len(attack):
        return None
    return (
        attack.assign(model=charts.model_label(attack))
        .groupby(["model", "norm", "attack", "preset"])
        .agg(
            eps=(
                "eps",
                lambda e: ", ".join(
                    charts.eps_label(v, attack.loc[e.index[0], "norm"]) for v in sorted(e.unique()) if v > 0
                ),
            ),
            crs=("cr", lambda c: ", ".join(f"{v:g}" for v in sorted(c.unique()))),
            images=("n", "max"),
            seeds=("seed", "nunique"),
        )
    )
