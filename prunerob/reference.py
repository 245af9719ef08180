"""The original study's published result tables, summarized into one small tidy table.

Merkle, Samsinger and Schöttle published their results as 36 CSV files (repository
``FlorianMerkle/network-pruning-and-robustness``, ``Pipelines/final-results/``); this module reads
them and writes ``book/results/reference/merkle2021.parquet``, which is committed so the book can
put the original numbers beside the reproduced ones (cite the paper when showing them).

    python -m prunerob reference --source ../shared/reference/merkle2021

Only complete runs enter (the first five of each file that reached every CR; see
:func:`summarize`), and a run whose model collapsed is not dropped.

Conversions (see the source's README): PGD columns hold attack *success rates*, so robust accuracy
is 1 minus them; C&W (L2) and Brendel-Bethge (L0) columns hold per-sample minimal distances, from
which robust accuracy at a budget is the share of samples whose distance is at least it (the rule
that reproduces the authors' figures, ``rule = "original"``) or greater than it (the usual threat
model, ``rule = "threat_model"``).
"""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from prunerob import results

MODELS = {
    "CNN": ("mnist", "cnn"),
    "ResNet8": ("cifar10", "resnet8"),
    "VGG": ("cifar10", "vgg11"),
    "ResNet": ("imagenette", "resnet18"),
}
STRUCTURES = {"unstructured": "unstructured", "structured-kernel": "kernel", "structured-filter": "filter"}
PGD_GRIDS = {  # x/255, by the code at the commit that produced each file
    "CNN": (2, 4, 8, 16, 32),
    "ResNet8": (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
    "VGG": (0.5, 1, 2, 4, 8, 16, 32),
    "ResNet": (0.125, 0.25, 0.5, 1, 2, 4),
}
L2_GRID = (0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
L0_GRID = (1, 2, 4, 8, 12, 16, 24, 32)
CITATION = "Merkle, Samsinger, Schöttle (2021), Pruning in the Face of Adversaries, arXiv:2108.08560"
FILE_NAME = re.compile(r"^(CNN|ResNet8|VGG|ResNet)-(magnitude|random)-(global|local)-(.+)\.csv$")


def reference_path() -> Path:
    """Fixed beside the code (not under $PRUNEROB_RESULTS): it is published data, not a result of ours."""
    return results.ROOT / "book" / "results" / "reference" / "merkle2021.parquet"


def _distances(cell: str) -> np.ndarray:
    """The per-sample distances: the first list inside a '([...], ...)' cell (empty if not run)."""
    match = re.match(r"\s*\(\s*\[([^\]]*)\]", cell or "")
    if not match or not match.group(1).strip():
        return np.array([])
    return np.array([float(v) for v in match.group(1).split(",")])


RUNS_PER_METHOD = 5  # the original's protocol: five runs of every method


def _runs(records: list[dict]) -> list[list[dict]]:
    """A file's rows split into runs: a run is a sequence of rows of one ``iteration`` whose CR grows
    (iteration numbers repeat across re-runs, so a new run starts wherever either changes)."""
    runs: list[list[dict]] = []
    previous = None
    for rec in records:
        key = (rec["iteration"], rec["_cr"])
        if previous is None or key[0] != previous[0] or key[1] <= previous[1]:
            runs.append([])
        runs[-1].append(rec)
        previous = key
    return runs


def summarize(source: Path) -> pd.DataFrame:
    """One row per run, CR, attack, epsilon and rule, from the original's **complete** runs only:
    the first :data:`RUNS_PER_METHOD` runs of a file that reached every CR of its schedule, in file
    order (later rows are partial or extra re-runs: CNN random local unstructured holds 71 rows, five
    complete runs first, then re-runs of another dense accuracy). ``runs_in_file`` and
    ``complete_runs_in_file`` say what was left out.  A run whose model collapsed counts: where the
    original skipped Brendel-Bethge (clean accuracy <= 0.4), its robust accuracy enters as its clean
    accuracy, an upper bound, flagged ``bounded``."""
    rows = []
    files = sorted(p for p in Path(source).glob("*.csv") if FILE_NAME.match(p.name))
    if not files:
        raise FileNotFoundError(f"no result files like CNN-magnitude-global-unstructured.csv in {source}")
    csv.field_size_limit(1 << 30)
    for path in files:
        match = FILE_NAME.match(path.name)
        assert match is not None  # the files were picked by this pattern
        model, criterion, scope, structure = match.groups()
        dataset, arch = MODELS[model]
        with open(path, newline="") as fh:
            records = [{**rec, "_cr": round(1 / (1 - float(rec["pruning_ratio"])))} for rec in csv.DictReader(fh)]
        schedule = {rec["_cr"] for rec in records}
        runs = _runs(records)
        complete = [run for run in runs if {rec["_cr"] for rec in run} == schedule]
        for run_index, run in enumerate(complete[:RUNS_PER_METHOD]):
            for rec in run:
                cr = rec["_cr"]
                base = {
                    "dataset": dataset,
                    "arch": arch,
                    "structure": STRUCTURES[structure],
                    "scope": scope,
                    "criterion": criterion,
                    "run": run_index,
                    "iteration": int(rec["iteration"]),
                    "cr": float(cr),
                    "clean_acc": float(rec["accuracy"]),
                    "n_prunable": int(rec["total_params"]),
                    "n_kept": int(rec["params_left"]),
                    "source": path.name,
                    "runs_in_file": len(runs),
                    "complete_runs_in_file": len(complete),
                    "bounded": False,
                }
                rows.append(
                    {
                        **base,
                        "attack": "clean",
                        "norm": "",
                        "eps": 0.0,
                        "rule": "",
                        "robust_acc": float(rec["accuracy"]),
                    }
                )
                success = ast.literal_eval(rec["pgd_linf"]) if rec["pgd_linf"].strip() else []
                for k, s in zip(PGD_GRIDS[model], success):
                    rows.append(
                        {
                            **base,
                            "attack": "linf_pgd",
                            "norm": "Linf",
                            "eps": k / 255,
                            "rule": "",
                            "robust_acc": 1 - float(s),
                        }
                    )
                for attack, norm, grid, cell in (
                    ("l2_cw", "L2", L2_GRID, rec["cw_l2"]),
                    ("l0_bb", "L0", L0_GRID, rec["bb_l0"]),
                ):
                    d = _distances(cell)
                    for eps in grid:
                        for rule, robust in (("original", d >= eps), ("threat_model", d > eps)):
                            value = float(robust.mean()) if len(d) else float(rec["accuracy"])
                            rows.append(
                                {
                                    **base,
                                    "attack": attack,
                                    "norm": norm,
                                    "eps": float(eps),
                                    "rule": rule,
                                    "robust_acc": value,
                                    "bounded": not len(d),
                                }
                            )
    frame = pd.DataFrame(rows)
    frame["citation"] = CITATION
    return frame


def write(source: Path) -> Path:
    frame = summarize(source)
    path = reference_path()
    return results.atomic_write_bytes(path, lambda p: frame.to_parquet(p, index=False))


def load() -> pd.DataFrame:
    """The committed summary (empty if it was never written)."""
    frame = results.read_table_file(reference_path())
    return frame if frame is not None else pd.DataFrame()


# --- The original beside the reproduction -------------------------------------------------------

METHOD_KEYS = ["dataset", "arch", "structure", "scope", "criterion"]
RULES = {  # how a per-sample minimal distance d becomes "robust at eps"
    "original": "d ≥ eps robust (the original's rule)",
    "threat_model": "d > eps robust (threat model)",
}
ATTACK_NAMES = {"linf_pgd": "Linf PGD-40", "l2_cw": "C&W L2", "l0_bb": "Brendel-Bethge L0"}


# Clean accuracy and kept weights over runs: the mean with its range (named aggregations for groupby.agg)
_CLEAN_AND_KEPT = {
    "clean_acc": ("clean_acc", "mean"),
    "clean_low": ("clean_acc", "min"),
    "clean_high": ("clean_acc", "max"),
    "n_kept": ("n_kept", "mean"),
    "n_kept_low": ("n_kept", "min"),
    "n_kept_high": ("n_kept", "max"),
    "n_prunable": ("n_prunable", "first"),
}


def _with_kept_fractions(frame: pd.DataFrame) -> pd.DataFrame:
    """``kept``, ``kept_low``, ``kept_high``: the kept weights as fractions of the prunable ones."""
    for col, src in (("kept", "n_kept"), ("kept_low", "n_kept_low"), ("kept_high", "n_kept_high")):
        frame[col] = frame[src] / frame["n_prunable"]
    return frame


def per_cr(ref: pd.DataFrame) -> pd.DataFrame:
    """The original's runs summarized per method, attack, epsilon, rule and CR: the mean of robust
    (or, for ``attack == "clean"``, clean) accuracy with its range over runs (``low``, ``high``), the
    same for clean accuracy and for the kept fraction of the prunable weights, ``n_runs`` (complete
    runs) and ``n_bounded`` (runs the original did not attack, entered at their clean accuracy)."""
    keys = [*METHOD_KEYS, "attack", "norm", "eps", "rule", "cr"]
    if not len(ref):
        return pd.DataFrame(
            columns=[
                *keys,
                "robust_acc",
                "low",
                "high",
                "clean_acc",
                "clean_low",
                "clean_high",
                "n_kept",
                "n_kept_low",
                "n_kept_high",
                "n_prunable",
                "kept",
                "kept_low",
                "kept_high",
                "n_runs",
                "n_bounded",
            ]
        )
    out = ref.groupby(keys, as_index=False, sort=True).agg(
        robust_acc=("robust_acc", "mean"),
        low=("robust_acc", "min"),
        high=("robust_acc", "max"),
        **_CLEAN_AND_KEPT,
        n_runs=("robust_acc", "size"),
        n_bounded=("bounded", "sum"),
    )
    return _with_kept_fractions(out)


def methods_vs_original(
    prune: pd.DataFrame,
    summary: pd.DataFrame,
    ours_label: str = "reproduced",
    original_label: str = "original (mean, range over runs)",
) -> pd.DataFrame:
    """Clean accuracy and kept weights per method and CR, ours beside the original's, long format
    (one row per method, CR and ``source``), for every method the original ran.

    ``prune``: our prune rows (seeds averaged; ``low``/``high`` are their range); ``summary``:
    :func:`per_cr` rows. Our structured runs with ``prune_dense_neurons`` are left out: the
    original's structured pruning left dense layers dense."""
    theirs = summary[summary["attack"] == "clean"]
    prune = prune[~prune["prune_dense_neurons"].astype(bool)]
    mine = prune.merge(theirs[METHOD_KEYS].drop_duplicates(), on=METHOD_KEYS)
    cols = ["method", *METHOD_KEYS, "cr"]
    mine = (
        mine.assign(method=_label(mine))
        .groupby(cols, as_index=False)
        .agg(**_CLEAN_AND_KEPT, n_runs=("clean_acc", "size"))
        .pipe(_with_kept_fractions)
    )
    theirs = theirs.assign(method=_label(theirs))
    keep = [
        *cols,
        "clean_acc",
        "clean_low",
        "clean_high",
        "n_kept",
        "n_kept_low",
        "n_kept_high",
        "n_prunable",
        "kept",
        "kept_low",
        "kept_high",
        "n_runs",
    ]
    return pd.concat(
        [mine[keep].assign(source=ours_label), theirs[keep].assign(source=original_label)], ignore_index=True
    )


def clean_beside_original(methods: pd.DataFrame, ours_label: str, conv_weights: int) -> dict:
    """The clean-accuracy and kept-weight comparison of :func:`methods_vs_original`'s rows, as the
    original chapter states it: ``mine`` and ``theirs`` (wide, indexed by method and CR), ``collapse``
    (per method, the first CR with clean accuracy below 50 %: "reproduced" and the original's) and ``glue`` (the
    chapter's numbers by glue name, formatted; "(not in this profile)" where the profile lacks a
    method).  ``conv_weights``: the CNN's convolution weights (global structured pruning acts on
    them only)."""
    wide = methods.pivot_table(
        index=["method", "cr"],
        columns="source",
        values=["clean_acc", "clean_low", "clean_high", "n_kept", "n_kept_low", "n_kept_high"],
    )
    theirs_label = next(s for s in methods["source"].unique() if s != ours_label)
    mine = cast(pd.DataFrame, wide.xs(ours_label, axis=1, level="source"))
    theirs = cast(pd.DataFrame, wide.xs(theirs_label, axis=1, level="source"))
    inside = (mine["clean_acc"] >= theirs["clean_low"] - 1e-12) & (mine["clean_acc"] <= theirs["clean_high"] + 1e-12)
    dense = wide.xs(1.0, level="cr")

    first = methods[methods["clean_acc"] < 0.5].groupby(["method", "source"])["cr"].min()
    keys = pd.MultiIndex.from_frame(methods[["method", "source"]].drop_duplicates())
    collapse = (
        first.reindex(keys)
        .map(lambda cr: "none up to 64" if pd.isna(cr) else f"{cr:g}")
        .unstack("source")
        .sort_index()[[ours_label, theirs_label]]
        .set_axis(["reproduced", "original (mean over runs)"], axis=1)
        .rename_axis("method")
    )
    n_prunable = int(methods["n_prunable"].iloc[0])
    # kept weights: every method but local random unstructured (the original's defect) hits the same counts
    same = [m for m in mine.index.get_level_values("method").unique() if m != "local random unstructured"]
    kept_gap = (mine["n_kept"] - theirs["n_kept"]).abs()

    def num(frame: pd.DataFrame, method: str, cr: float, column: str) -> float:
        try:
            return float(cast(float, frame.loc[(method, cr), column]))
        except KeyError:  # the profile lacks the method (e.g. smoke)
            return float("nan")

    lr, gk, gf = "local random unstructured", "global magnitude kernel", "global magnitude filter"
    values: list[tuple[str, float, str]] = [
        ("orig-lr-theirs-64", num(theirs, lr, 64.0, "n_kept"), ",.0f"),
        ("orig-lr-theirs-64-share", num(theirs, lr, 64.0, "n_kept") / n_prunable, ".2%"),
        ("orig-lr-ours-64", num(mine, lr, 64.0, "n_kept"), ",.0f"),
        ("orig-target-64", round(n_prunable / 64), ","),
        ("orig-lr-clean-64-ours", num(mine, lr, 64.0, "clean_acc"), ".1%"),
        ("orig-lr-clean-64-theirs", num(theirs, lr, 64.0, "clean_acc"), ".1%"),
        ("orig-conv-weights", conv_weights, ",.0f"),
        ("orig-dense-weights", n_prunable - conv_weights, ",.0f"),
        ("orig-gk-theirs-2-conv", (n_prunable - num(theirs, gk, 2.0, "n_kept")) / conv_weights, ".0%"),
        ("orig-gk-ours-2-conv", (n_prunable - num(mine, gk, 2.0, "n_kept")) / conv_weights, ".0%"),
        ("orig-gk-clean-2-ours", num(mine, gk, 2.0, "clean_acc"), ".1%"),
        ("orig-gk-clean-2-theirs", num(theirs, gk, 2.0, "clean_acc"), ".1%"),
        ("orig-gf-clean-2-ours", num(mine, gf, 2.0, "clean_acc"), ".1%"),
        ("orig-gf-clean-2-theirs", num(theirs, gf, 2.0, "clean_acc"), ".1%"),
    ]
    glue: dict[str, object] = {
        "orig-clean-points": len(mine),
        "orig-clean-inside": int(inside.sum()),
        "orig-clean-above": int((mine["clean_acc"] > theirs["clean_high"] + 1e-12).sum()),
        "orig-clean-below": int((mine["clean_acc"] < theirs["clean_low"] - 1e-12).sum()),
        "orig-dense-ours": f"{dense['clean_acc'][ours_label].mean():.2%}",
        "orig-dense-theirs": f"{dense['clean_acc'][theirs_label].mean():.2%}",
        "orig-dense-range": f"{dense['clean_low'][theirs_label].min():.2%} to "
        f"{dense['clean_high'][theirs_label].max():.2%}",
        "orig-collapse-agree": int((collapse.iloc[:, 0] == collapse.iloc[:, 1]).sum()),
        "orig-kept-same-max": f"{kept_gap.loc[same].max():,.0f}",
        "orig-kept-same-n": len(same),
        "orig-n-prunable": f"{n_prunable:,}",
        **{key: "(not in this profile)" if pd.isna(v) else format(v, spec) for key, v, spec in values},
    }
    return {"mine": mine, "theirs": theirs, "collapse": collapse, "glue": glue}


def _label(frame: pd.DataFrame) -> pd.Series:
    return frame["scope"] + " " + frame["criterion"] + " " + frame["structure"]


def _eps_key(eps: pd.Series) -> pd.Series:
    return eps.astype(float).round(9)


def robust_vs_original(
    worst: pd.DataFrame,
    attack: pd.DataFrame,
    summary: pd.DataFrame,
    norm: str,
    *,
    same_attack: str | None = None,
    rules: tuple[str, ...] = ("original", "threat_model"),
    original_rule_minimal: bool = False,
) -> pd.DataFrame:
    """Robust accuracy vs CR for one norm, the original's lines beside ours, long format with a
    ``source`` that names the attack and the rule every line uses.

    ``worst``: ``aggregate.worst_case`` rows (ours, threat model: a sample is robust at eps only if
    no attack of the norm found an example within eps); ``attack``: our attack table rows of the
    same slice (for ``same_attack``, our run of the original's attack, and, with
    ``original_rule_minimal``, our minimal attacks counted by the original's rule, d >= eps, from
    the column ``robust_acc_original_rule``); ``summary``: :func:`per_cr` rows of the matching
    slice. Only epsilons both studies ran are kept; ``low``/``high`` is the original's range over
    runs (ours: seeds). Empty when we have no result for the norm."""
    cols = ["source", "side", "rule", "cr", "eps", "norm", "robust_acc", "low", "high", "n_runs"]
    theirs = summary[(summary["norm"] == norm) & (summary["attack"] != "clean")]
    worst = worst[(worst["norm"] == norm) & (worst["eps"] > 0)] if len(worst) else worst
    if not len(worst) or not len(theirs):
        return pd.DataFrame(columns=cols)
    shared = set(_eps_key(worst["eps"])) & set(_eps_key(theirs["eps"]))
    parts = []

    def ours(rows: pd.DataFrame, source: str, rule: str, value: str = "robust_acc") -> None:
        rows = rows[_eps_key(rows["eps"]).isin(shared)]
        if not len(rows):
            return
        agg = rows.groupby(["cr", "eps", "norm"], as_index=False)[value].agg(
            robust_acc="mean", low="min", high="max", n_runs="size"
        )
        parts.append(agg.assign(source=source, side="reproduced", rule=rule))

    names = " + ".join(sorted(worst["attacks"].iloc[0].split("+"))) if "attacks" in worst else norm
    ours(worst, f"reproduced: worst case over {names}, {RULES['threat_model']}", "threat_model")
    mine = attack[(attack["norm"] == norm) & (attack["eps"] > 0)] if len(attack) else attack
    if same_attack is not None and len(mine):
        ours(mine[mine["attack"] == same_attack], f"reproduced: {same_attack} alone", "")
    if original_rule_minimal and len(mine):
        for name, rows in mine[mine["kind"] == "minimal"].groupby("attack"):
            ours(rows, f"reproduced: {name}, {RULES['original']}", "original", "robust_acc_original_rule")
    theirs = theirs[_eps_key(theirs["eps"]).isin(shared)]
    for rule, rows in theirs.groupby("rule", sort=False):
        if rule and rule not in rules:
            continue
        what = ATTACK_NAMES.get(rows["attack"].iloc[0], rows["attack"].iloc[0])
        runs = (
            f"mean of {int(rows['n_runs'].min())}-{int(rows['n_runs'].max())} runs"
            if rows["n_runs"].nunique() > 1
            else f"mean of {int(rows['n_runs'].iloc[0])} runs"
        )
        source = f"original: {what}, {RULES[cast(str, rule)]} ({runs})" if rule else f"original: {what} ({runs})"
        parts.append(
            rows[["cr", "eps", "norm", "robust_acc", "low", "high", "n_runs"]].assign(
                source=source, side="original", rule=rule
            )
        )
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


def methods_robust_vs_original(curves: pd.DataFrame, summary: pd.DataFrame, norm: str) -> pd.DataFrame:
    """Robust accuracy vs CR for every method the original ran, ours beside theirs, in one norm and
    at every budget both studies ran, counted by one rule: a sample is robust at eps when the attack
    found no example within eps (d > eps, the threat model's rule, where the original's minimal
    attacks give distances; its Linf PGD-40 is a fixed-budget attack, where the rule does not
    arise). Long format, one row per method, source, CR and eps, with ``low``/``high`` (ours: the
    band of ``report.method_robustness``; the original's: its range over complete runs), ``n_runs``
    (ours: seeds) and ``what`` (the attack behind the line).

    ``curves``: ``report.method_robustness`` rows of one model (structured methods that also pruned
    dense neurons are left out: the original's left dense layers dense); ``summary``:
    :func:`per_cr` rows of the original's matching model."""
    cols = [
        *METHOD_KEYS,
        "method",
        "source",
        "what",
        "cr",
        "eps",
        "norm",
        "robust_acc",
        "low",
        "high",
        "n_runs",
        "collapsed",
    ]
    theirs = summary[
        (summary["norm"] == norm) & (summary["attack"] != "clean") & summary["rule"].isin(["", "threat_model"])
    ]
    mine = curves[(curves["norm"] == norm) & (curves["eps"] > 0)] if len(curves) else curves
    if len(mine) and "prune_dense_neurons" in mine:
        mine = mine[~mine["prune_dense_neurons"].astype(bool)]
    if not len(mine) or not len(theirs):
        return pd.DataFrame(columns=cols)
    shared = set(_eps_key(mine["eps"])) & set(_eps_key(theirs["eps"]))
    methods = theirs[["structure", "scope", "criterion"]].drop_duplicates()
    mine = mine[_eps_key(mine["eps"]).isin(shared)].merge(methods, on=["structure", "scope", "criterion"])
    theirs = theirs[_eps_key(theirs["eps"]).isin(shared)]
    if not len(mine):
        return pd.DataFrame(columns=cols)
    what = ATTACK_NAMES.get(theirs["attack"].iloc[0], theirs["attack"].iloc[0])
    mine = mine.assign(
        dataset=theirs["dataset"].iloc[0],
        arch=theirs["arch"].iloc[0],
        source="reproduced",
        what="worst case over " + mine["attacks"].astype(str),
        n_runs=mine["n_seeds"],
        collapsed=mine["collapsed"].astype(bool) if "collapsed" in mine else False,
    )
    # the original's tables hold no per-image predictions: whether its models collapsed to one class is unknown
    theirs = theirs.assign(
        source="original", what=what + (f", {RULES['threat_model']}" if norm != "Linf" else ""), collapsed=False
    )
    out = pd.concat([mine, theirs], ignore_index=True)
    out["method"] = _label(out)
    return out[cols].sort_values(["structure", "scope", "criterion", "source", "eps", "cr"]).reset_index(drop=True)


def gaps(frame: pd.DataFrame, ours: str, original: str) -> pd.DataFrame:
    """Per CR and epsilon: one of our lines (source ``ours``) minus one of the original's (source
    ``original``) in a :func:`robust_vs_original` frame, and whether ours lies inside the original's
    range over runs. Only points both lines have."""
    a = frame[frame["source"] == ours][["cr", "eps", "norm", "robust_acc"]]
    b = frame[frame["source"] == original][["cr", "eps", "robust_acc", "low", "high", "n_runs"]]
    out = a.merge(b.rename(columns={"robust_acc": "original"}), on=["cr", "eps"]).rename(columns={"robust_acc": "ours"})
    out["diff"] = out["ours"] - out["original"]
    out["inside"] = (out["ours"] >= out["low"] - 1e-12) & (out["ours"] <= out["high"] + 1e-12)
    return out.sort_values(["eps", "cr"]).reset_index(drop=True)
