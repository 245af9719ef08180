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
from typing import Any

import numpy as np
import pandas as pd

from prunerob import charts, compare, evaluate

METHOD_KEYS = ["structure", "scope", "criterion", "prune_dense_neurons"]
STRUCTURES = ("unstructured", "kernel", "filter")
DASH = "\u2013"  # a missing cell


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
    (``attacks`` names them; where seeds differ, the runs every seed of the method faced), the mean
    over seeds with a 95 % band (seeds and images; one seed: the Wilson interval), ``n`` images per
    seed, ``n_seeds``, and the method's columns. Empty when no method of the model was attacked."""
    cols = ["method", *METHOD_KEYS, "cr", "norm", "eps", "robust_acc", "low", "high", "n", "n_seeds", "attacks"]
    attack, samples = with_shared_dense(compare.rows_of(attack, where), compare.rows_of(samples, where))
    picked = methods(attack, where)
    if not picked:
        return pd.DataFrame(columns=cols)
    parts = []
    for label, sel in picked.items():  # one method at a time: no method limits another's attacks
        rows = compare.worst_case_by_model(
            compare.rows_of(attack, sel), compare.rows_of(samples, sel), {label: sel}, confidence
        )
        parts.append(rows.assign(**{k: sel[k] for k in METHOD_KEYS}))
    return pd.concat(parts, ignore_index=True)[cols]


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
    ``mean CR 2-64`` (the mean over the pruned CRs, the ranking key), best first."""
    rows = curves[(curves["norm"] == norm) & np.isclose(curves["eps"], eps)]
    table = rows.pivot_table(index="method", columns="cr", values="robust_acc")
    pruned = [c for c in table.columns if _num(c) > 1]
    # a method not yet attacked at every pruned CR has no mean (an en dash): it is not ranked
    table["mean CR 2-64"] = table[pruned].mean(axis=1, skipna=False) if pruned else np.nan
    return table.sort_values("mean CR 2-64", ascending=False)


MARK = "\u2020"  # a cell whose checkpoint tripped an attack-failure indicator


def formatted(table: pd.DataFrame, marks: pd.DataFrame | None = None) -> pd.DataFrame:
    """A table of accuracies for reading: percentages, CR columns as 'CR 4', missing cells as an en
    dash; a cell True in ``marks`` (same index and columns) gets a dagger."""
    out = table.map(pct)
    if marks is not None:
        flagged = marks.reindex(index=table.index, columns=table.columns).fillna(False).astype(bool)
        out = out.where(~flagged, out + " " + MARK)
    out.columns = [f"CR {c:g}" if isinstance(c, (int, float)) else str(c) for c in table.columns]
    out.index.name = table.index.name
    return out


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
    best, worst = ranked.index[0], ranked.index[-1]
    unranked = len(table) - len(ranked) if ranked is not table else 0
    if len(ranked) > 1:
        sentence = (
            f"at {norm} {budget(eps, norm)} (the dense model: {pct(dense)}), {best} keeps the most robust "
            f"accuracy over CR 2 to 64 ({pct(table.loc[best, key])} on average) and {worst} the least "
            f"({pct(table.loc[worst, key])})"
            + (f", of the {len(ranked)} methods attacked at every CR ({unranked} more are not yet)" if unranked else "")
        )
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
        seeds = int(curves["n_seeds"].max())
        said.append(
            f"for the {name} ({n} methods, {'one seed' if seeds == 1 else f'up to {seeds} seeds'}): "
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


def attack_health(rows: pd.DataFrame) -> dict[str, Any]:
    """How far one model's attack results can be trusted, from its white-box attack rows: ``agree``
    ("k of n" budgets and checkpoints where the strongest fixed attack and a minimal attack agree
    within 5 points), ``gap`` (the largest such gap, in points), ``checks`` ("k of n" runs passing
    every sanity check), ``violations`` (adversarial examples that failed verification) and
    ``disagree`` (the disagreements in a sentence, naming the weaker attack)."""
    rows = evaluate.white_box(rows)
    if not len(rows):
        return {
            "agree": "none",
            "gap": "n/a",
            "checks": "none",
            "violations": 0,
            "disagree": "There is no disagreement.",
        }
    agreement = evaluate.fixed_minimal_agreement(rows)
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
    }


def extra_attacks(per_seed: pd.DataFrame, samples: pd.DataFrame, attack: pd.DataFrame) -> str:
    """What the attacks only some seeds faced add, in a sentence: per norm, each such seed's worst
    case over all its attacks against its worst case over the attacks every seed faced
    (``per_seed``: :func:`compare.worst_case_per_seed` rows)."""
    alone = evaluate.on_own_grids(evaluate.worst_case, evaluate.white_box(samples), attack)
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
        "bench-speedup": f"{b['speedup']:.0f}",
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
                "median distance (default)": d["median_distance"],
                "median distance (original)": o["median_distance"],
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
    agree = evaluate.fixed_minimal_agreement(attack)
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
    if HEADLINE_METHOD in table.index and len(table) > 1:
        rank = int(list(table.index).index(HEADLINE_METHOD)) + 1
        behind = _num(table.iloc[0][key]) - _num(table.loc[HEADLINE_METHOD, key])
        tie = rank > 1 and behind <= TIE
        rows.append(
            {
                "claim": "global magnitude unstructured pruning is the most benign",
                "holds": None if tie else rank == 1,
                "evidence": f"at {at} it ranks {rank} of {len(table)} by the mean over CR 2-64 "
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
        rows.append(
            {
                "claim": "filter pruning collapses first",
                "holds": by_structure["filter"] == first and math.isfinite(first),
                "evidence": "first CR with clean accuracy below 50 %: "
                + ", ".join(f"{s} {fmt(v)}" for s, v in sorted(by_structure.items())),
            }
        )
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
    best_o = table.iloc[int(np.argmax(table["ours"].to_numpy()))]
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
    each attack or ensemble component), ``tripped`` and ``why``. Incomplete optimisation (distances
    still shrinking in the last steps) is not recorded by the attacks and not indicated here."""
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
        "tripped",
        "why",
    ]
    attack, samples = evaluate.white_box(attack), evaluate.white_box(samples)
    if not len(attack):
        return pd.DataFrame(columns=cols)
    keys = ["dataset", "arch", "training", *METHOD_KEYS, "cr", "norm"]
    out = attack.groupby(keys, dropna=False).agg(violations=("violations", "sum")).reset_index()
    if len(checks):
        unb = evaluate.white_box(checks)
        unb = unb[unb["check"] == "unbounded_breaks_all"]
        failed = unb.groupby(keys, dropna=False)["passed"].agg(lambda p: int((~p.astype(bool)).sum()))
        out = out.merge(failed.rename("unbounded_failed").reset_index(), on=keys, how="left")
    else:
        out["unbounded_failed"] = 0
    out["unbounded_failed"] = out["unbounded_failed"].fillna(0).astype(int)
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
    from prunerob import sweep
    from prunerob.stages import training_label

    member: dict[str, list[str]] = {}
    stages = {}
    for name in profiles:
        for stage in sweep.expand(sweep.load_profile(name)):
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
                "run": sweep.run_title(stage),
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
