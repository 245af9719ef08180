"""The original beside the reproduction: per-CR summaries over runs, the rule every line uses, and
the charts that show both (prunerob.reference, prunerob.charts)."""

import pandas as pd
import pytest
from test_charts import _bound_params

from prunerob import charts, reference

SLICE = dict(dataset="mnist", arch="cnn", structure="unstructured", scope="global", criterion="magnitude")


def _ref_rows():
    """Two runs of the original: clean rows, Linf PGD, and L0 with both rules."""
    rows = []
    for run, shift in ((0, 0.0), (1, 0.1)):
        for cr in (1.0, 2.0):
            base = {
                **SLICE,
                "run": run,
                "cr": cr,
                "clean_acc": 0.99 - shift / 10,
                "n_prunable": 100,
                "n_kept": int(100 / cr) + run,
                "bounded": False,
            }
            rows.append(
                {**base, "attack": "clean", "norm": "", "eps": 0.0, "rule": "", "robust_acc": base["clean_acc"]}
            )
            rows.append(
                {**base, "attack": "linf_pgd", "norm": "Linf", "eps": 2 / 255, "rule": "", "robust_acc": 0.9 - shift}
            )
            for rule, acc in (("original", 0.6), ("threat_model", 0.5)):
                rows.append(
                    {**base, "attack": "l0_bb", "norm": "L0", "eps": 4.0, "rule": rule, "robust_acc": acc - shift}
                )
    return pd.DataFrame(rows)


def _ours():
    worst = pd.DataFrame(
        [
            {
                "prune_id": "p",
                "cr": cr,
                "norm": "L0",
                "eps": eps,
                "robust_acc": 0.4,
                "n": 10,
                "attacks": "l0_pgd+l0_pgd_min",
            }
            for cr in (1.0, 2.0)
            for eps in (4.0, 5.0)
        ]
    )
    attack = pd.DataFrame(
        [
            {
                "attack": name,
                "kind": kind,
                "norm": "L0",
                "cr": cr,
                "eps": 4.0,
                "robust_acc": 0.4,
                "robust_acc_original_rule": 0.55 if kind == "minimal" else 0.4,
            }
            for cr in (1.0, 2.0)
            for name, kind in (("l0_pgd", "fixed"), ("l0_pgd_min", "minimal"))
        ]
    )
    return worst, attack


def test_per_cr_gives_mean_and_range_over_runs():
    s = reference.per_cr(_ref_rows())
    pgd = s[(s["attack"] == "linf_pgd") & (s["cr"] == 1.0)].iloc[0]
    assert pgd["robust_acc"] == pytest.approx(0.85)
    assert (pgd["low"], pgd["high"], pgd["n_runs"]) == (pytest.approx(0.8), pytest.approx(0.9), 2)
    clean = s[(s["attack"] == "clean") & (s["cr"] == 2.0)].iloc[0]
    assert (clean["n_kept_low"], clean["n_kept_high"]) == (50, 51)
    assert clean["kept"] == pytest.approx(0.505)
    # the two L0 rules stay apart
    assert set(s[s["attack"] == "l0_bb"]["rule"]) == {"original", "threat_model"}
    assert len(reference.per_cr(pd.DataFrame())) == 0


def test_methods_vs_original_matches_methods_and_drops_dense_neuron_variants():
    prune = pd.DataFrame(
        [
            {**SLICE, "prune_dense_neurons": False, "cr": cr, "clean_acc": 0.98, "n_kept": 100 / cr, "n_prunable": 100}
            for cr in (1.0, 2.0)
        ]
        + [
            {
                **SLICE,
                "structure": "filter",
                "prune_dense_neurons": True,
                "cr": 1.0,
                "clean_acc": 0.9,
                "n_kept": 100,
                "n_prunable": 100,
            }
        ]
    )
    frame = reference.methods_vs_original(prune, reference.per_cr(_ref_rows()), ours_label="ours")
    assert set(frame["method"]) == {"global magnitude unstructured"}
    assert frame.groupby("source").size().to_dict() == {"ours": 2, "original (mean, range over runs)": 2}
    params = _bound_params(charts.methods_vs_original(frame).to_dict())
    picker = next(p for p in params if p["name"] == "method_pick")
    assert picker["bind"]["options"] == ["all methods", "global magnitude unstructured"]
    assert any(p.get("bind") == "legend" for p in params)


def test_robust_vs_original_names_the_rule_of_every_line_and_keeps_shared_eps():
    worst, attack = _ours()
    frame = reference.robust_vs_original(worst, attack, reference.per_cr(_ref_rows()), "L0", original_rule_minimal=True)
    assert set(frame["eps"]) == {4.0}  # 5 pixels: only ours ran it
    by_source = frame.groupby("source")["robust_acc"].first()
    theirs = {s: v for s, v in by_source.items() if s.startswith("original")}
    assert len(theirs) == 2 and all("d ≥ eps" in s or "d > eps" in s for s in theirs)
    assert [v for s, v in theirs.items() if "d ≥ eps" in s][0] == pytest.approx(0.55)
    assert [v for s, v in theirs.items() if "d > eps" in s][0] == pytest.approx(0.45)
    mine = {s: v for s, v in by_source.items() if s.startswith("reproduced")}
    assert mine == {
        "reproduced: worst case over l0_pgd + l0_pgd_min, d > eps robust (threat model)": 0.4,
        "reproduced: l0_pgd_min, d ≥ eps robust (the original's rule)": 0.55,
    }
    only_threat = reference.robust_vs_original(
        worst, attack, reference.per_cr(_ref_rows()), "L0", rules=("threat_model",)
    )
    assert not only_threat["source"].str.contains("original's rule").any()


def test_robust_vs_original_is_empty_for_a_norm_without_results():
    worst, attack = _ours()
    assert len(reference.robust_vs_original(worst.iloc[:0], attack.iloc[:0], reference.per_cr(_ref_rows()), "L0")) == 0
    assert len(reference.robust_vs_original(worst, attack, reference.per_cr(_ref_rows()), "L2")) == 0


def test_gaps_and_chart():
    worst, attack = _ours()
    frame = reference.robust_vs_original(worst, attack, reference.per_cr(_ref_rows()), "L0")
    ours = [s for s in frame["source"].unique() if s.startswith("reproduced")][0]
    theirs = [s for s in frame["source"].unique() if "d > eps" in s and s.startswith("original")][0]
    g = reference.gaps(frame, ours, theirs)
    assert len(g) == 2 and g["diff"].tolist() == pytest.approx([-0.05, -0.05])
    assert g["inside"].all()  # 0.4 lies in the original's range [0.4, 0.5]
    params = _bound_params(charts.versus_original_by_eps(frame).to_dict())
    assert any(p.get("bind") == "legend" for p in params)
    assert next(p for p in params if p["name"] == "eps_orig")["bind"]["options"] == ["4"]


def test_the_reference_summary_uses_the_first_five_complete_runs_and_keeps_collapsed_ones():
    """On the original's published CSVs: partial and extra re-runs are left out (CNN random local
    unstructured holds 71 rows: five complete runs, then re-runs), and a run whose model collapsed
    (the original skipped Brendel-Bethge) still counts, at its clean accuracy as an upper bound."""
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "shared" / "reference" / "merkle2021"
    if not source.exists():
        pytest.skip("the original's CSVs are not beside the checkout")
    ref = reference.summarize(source)
    rlu = ref[(ref["arch"] == "cnn") & (ref["criterion"] == "random") & (ref["structure"] == "unstructured")]
    assert rlu["runs_in_file"].iloc[0] == 12 and rlu["complete_runs_in_file"].iloc[0] == 8
    assert sorted(rlu["run"].unique()) == [0, 1, 2, 3, 4]
    clean64 = rlu[(rlu["attack"] == "clean") & (rlu["cr"] == 64)]["robust_acc"]
    assert len(clean64) == 5 and clean64.mean() == pytest.approx((0.113 + 0.249 + 0.345 + 0.113 + 0.363) / 5, abs=2e-3)
    summary = reference.per_cr(ref)
    assert set(summary["n_runs"]) == {5}
    collapsed = summary[
        (summary["arch"] == "cnn")
        & (summary["structure"] == "filter")
        & (summary["scope"] == "global")
        & (summary["attack"] == "l0_bb")
        & (summary["cr"] == 64)
    ]
    assert len(collapsed) and (collapsed["n_bounded"] > 0).all() and (collapsed["n_runs"] == 5).all()
    assert (collapsed["robust_acc"] <= collapsed["clean_acc"] + 1e-9).all()


def _method_curves():
    """report.method_robustness rows: two methods the original ran, one it did not (global random),
    one with dense neurons (left out: the original's structured pruning left dense layers dense)."""
    rows = []
    for structure, scope, criterion, neurons, acc in (
        ("unstructured", "global", "magnitude", False, 0.7),
        ("filter", "local", "magnitude", False, 0.3),
        ("unstructured", "global", "random", False, 0.1),
        ("filter", "local", "magnitude", True, 0.2),
    ):
        for cr in (1.0, 2.0, 4.0):
            for eps in (4.0, 5.0):
                rows.append(
                    {
                        "structure": structure,
                        "scope": scope,
                        "criterion": criterion,
                        "prune_dense_neurons": neurons,
                        "cr": cr,
                        "norm": "L0",
                        "eps": eps,
                        "robust_acc": acc,
                        "low": acc - 0.05,
                        "high": acc + 0.05,
                        "n": 10,
                        "n_seeds": 1,
                        "attacks": "l0_ensemble",
                    }
                )
    return pd.DataFrame(rows)


def _method_ref():
    rows = []
    for structure, scope, criterion, acc in (
        ("unstructured", "global", "magnitude", 0.5),
        ("filter", "local", "magnitude", 0.6),
    ):
        for run, shift in ((0, 0.0), (1, 0.1)):
            for cr in (1.0, 2.0):
                base = {
                    "dataset": "mnist",
                    "arch": "cnn",
                    "structure": structure,
                    "scope": scope,
                    "criterion": criterion,
                    "run": run,
                    "cr": cr,
                    "clean_acc": 0.99,
                    "n_prunable": 100,
                    "n_kept": 100 / cr,
                    "bounded": False,
                }
                rows.append({**base, "attack": "clean", "norm": "", "eps": 0.0, "rule": "", "robust_acc": 0.99})
                for rule, a in (("original", acc + 0.1), ("threat_model", acc)):
                    rows.append(
                        {**base, "attack": "l0_bb", "norm": "L0", "eps": 4.0, "rule": rule, "robust_acc": a - shift}
                    )
    return reference.per_cr(pd.DataFrame(rows))


def test_methods_beside_the_original_count_by_one_rule_on_shared_budgets():
    from prunerob import report

    frame = reference.methods_robust_vs_original(_method_curves(), _method_ref(), "L0")
    # the original's methods only, dense neurons left out, the budgets both ran, d > eps on both sides
    assert set(frame["method"]) == {"global magnitude unstructured", "local magnitude filter"}
    assert set(frame["eps"]) == {4.0}
    theirs = frame[frame["source"] == "original"]
    assert theirs["what"].str.contains("d > eps").all() and set(theirs["n_runs"]) == {2}
    assert theirs.set_index(["method", "cr"])["robust_acc"].to_dict() == pytest.approx(
        {("global magnitude unstructured", c): 0.45 for c in (1.0, 2.0)}
        | {("local magnitude filter", c): 0.55 for c in (1.0, 2.0)}
    )
    mine = frame[frame["source"] == "reproduced"]
    assert sorted(mine["cr"].unique()) == [1.0, 2.0, 4.0] and (mine["what"] == "worst case over l0_ensemble").all()
    found = report.beside_original(frame, 4.0)
    t = found["table"].set_index("method")
    # CR 2 is the only pruned CR both measured: ours 0.7 vs 0.45 (outside [0.4, 0.5]), 0.3 vs 0.55
    assert t.loc["global magnitude unstructured", "diff"] == pytest.approx(0.25)
    assert t.loc["local magnitude filter", "diff"] == pytest.approx(-0.25)
    assert t["crs"].tolist() == [1, 1] and t["inside"].sum() == 0
    assert found["best_original"] == "local magnitude filter" and found["best_ours"] == "global magnitude unstructured"
    assert "inside the original's range over runs at 0 of 2 points" in found["sentence"]
    assert "local magnitude filter (55.0 %)" in found["sentence"]
    one = report.beside_original(frame[frame["method"] == "local magnitude filter"], 4.0)["sentence"]
    assert "only local magnitude filter is measured by both" in one and "30.0 % here, 55.0 % in the original" in one
    assert len(reference.methods_robust_vs_original(_method_curves(), _method_ref(), "L2")) == 0
    # a method of ours whose model collapsed to one class at a pruned CR is not our most benign
    curves = _method_curves()
    curves["collapsed"] = (curves["structure"] == "unstructured") & (curves["cr"] == 2)
    fell = reference.methods_robust_vs_original(curves, _method_ref(), "L0")
    assert not fell.loc[fell["source"] == "original", "collapsed"].any()
    found = report.beside_original(fell, 4.0)
    assert found["best_ours"] == "local magnitude filter" and "ours agrees" in found["sentence"]
    assert "never collapse to one class: 1 do" in found["sentence"]
    params = _bound_params(charts.methods_beside_original(frame, initial_eps="4").to_dict())
    assert next(p for p in params if p["name"] == "eps_beside")["bind"]["options"] == ["4"]
    assert any(p.get("bind") == "legend" for p in params)


def test_clean_beside_original_counts_points_inside_the_runs_range_and_the_collapse_cr():
    rows = []
    for source, accs in (("ours", {1.0: 0.99, 2.0: 0.95, 64.0: 0.40}), ("orig", {1.0: 0.98, 2.0: 0.97, 64.0: 0.20})):
        for cr, acc in accs.items():
            rows.append(
                dict(method="global magnitude unstructured", cr=cr, source=source, clean_acc=acc,
                     clean_low=acc - 0.01, clean_high=acc + 0.01, n_kept=1000 / cr, n_kept_low=1000 / cr,
                     n_kept_high=1000 / cr, n_prunable=1000)
            )  # fmt: skip
    got = reference.clean_beside_original(pd.DataFrame(rows), "ours", conv_weights=40)
    g = got["glue"]
    # ours at CR 1 (0.99) is inside the original's [0.97, 0.99]; CR 2 (0.95) below; CR 64 (0.40) above
    assert (g["orig-clean-points"], g["orig-clean-inside"], g["orig-clean-below"], g["orig-clean-above"]) == (
        3,
        1,
        1,
        1,
    )
    assert g["orig-dense-ours"] == "99.00%" and g["orig-dense-range"] == "97.00% to 99.00%"
    assert got["collapse"].loc["global magnitude unstructured"].tolist() == ["64", "64"]
    assert g["orig-collapse-agree"] == 1 and g["orig-kept-same-max"] == "0"
    assert g["orig-dense-weights"] == "960" and g["orig-lr-ours-64"] == "(not in this profile)"


def test_the_beside_section_charts_each_norm_both_studies_measured_and_says_what_is_missing():
    from prunerob import report

    curves, ref = _method_curves(), _method_ref()
    section = report.beside_section(curves, ref, {"dataset": "mnist", "arch": "cnn"}, "ours beside theirs")
    frame = reference.methods_robust_vs_original(curves, ref, "L0")
    assert section["values"]["L0-text"] == report.beside_original(frame, 4.0)["sentence"]
    assert section["figures"]["L0"].to_dict()["title"] == "L0: ours beside theirs"
    assert section["figures"]["L2"] is None and section["values"]["L2-text"] == "not measured in this profile"
    # another architecture's reference rows are not this model's
    other = report.beside_section(curves, ref, {"dataset": "mnist", "arch": "mlp"}, "t")
    assert set(other["figures"].values()) == {None}
