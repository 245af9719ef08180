"""The report layer on small frames whose answers are known by construction."""

import re

import numpy as np
import pandas as pd
import pytest

from prunerob import charts, reference, report

MODEL = {"dataset": "mnist", "arch": "mlp", "training": "standard"}
N = 10  # images per checkpoint


def _method(structure, scope, criterion, neurons=False):
    return {"structure": structure, "scope": scope, "criterion": criterion, "prune_dense_neurons": neurons}


def _tables(distances: dict, fixed_at: dict | None = None, seeds=(0,)):
    """Attack and samples tables: ``distances[(method key, cr)]`` is an array of N minimal L2
    distances (one run of l2_ddn); ``fixed_at[(method key, cr)]``: samples an l2_apgd check at eps 1
    broke there."""
    attack_rows, sample_rows = [], []
    for seed in seeds:
        for (key, cr), dist in distances.items():
            method = _method(*key)
            prune_id = f"prune-{'-'.join(map(str, key))}-{seed}"
            common = {
                **MODEL,
                **method,
                "seed": seed,
                "prune_id": prune_id,
                "cr": cr,
                "norm": "L2",
                "scenario": "white-box",
                "source_cr": 0.0,
            }
            for eps in (0.0, 1.0, 2.0):
                attack_rows.append(
                    {
                        **common,
                        "attack": "l2_ddn",
                        "preset": "default",
                        "kind": "minimal",
                        "eps": eps,
                        "robust_acc": float((np.asarray(dist) > eps).mean()),
                    }
                )
            for i, d in enumerate(dist):
                sample_rows.append(
                    {
                        **common,
                        "attack": "l2_ddn",
                        "preset": "default",
                        "kind": "minimal",
                        "eps": np.nan,
                        "sample": i,
                        "distance": d,
                        "broken": np.nan,
                    }
                )
            if fixed_at and (key, cr) in fixed_at:  # a fixed check on the same grid, eps 0 included
                for eps in (0.0, 1.0, 2.0):
                    broke = set() if eps == 0 else fixed_at[(key, cr)]
                    attack_rows.append(
                        {
                            **common,
                            "attack": "l2_apgd",
                            "preset": "default",
                            "kind": "fixed",
                            "eps": eps,
                            "robust_acc": 1 - len(broke) / N,
                        }
                    )
                    for i in range(N):
                        sample_rows.append(
                            {
                                **common,
                                "attack": "l2_apgd",
                                "preset": "default",
                                "kind": "fixed",
                                "eps": eps,
                                "sample": i,
                                "distance": np.nan,
                                "broken": i in broke,
                            }
                        )
    return pd.DataFrame(attack_rows), pd.DataFrame(sample_rows)


GM = ("unstructured", "global", "magnitude")
LR = ("unstructured", "local", "random")
FILTER = ("filter", "global", "magnitude", True)


def _grid():
    rng = np.random.default_rng(0)
    d = {}
    for cr in (1, 2, 4):
        d[(GM, cr)] = np.full(N, 1.5)  # robust at eps 1 throughout
        d[(LR, cr)] = np.full(N, 1.5) if cr == 1 else np.r_[np.full(N - 2 * cr, 1.5), np.full(2 * cr, 0.5)]
        d[(FILTER, cr)] = np.full(N, 1.5) if cr == 1 else rng.choice([0.0, 0.5], N)
    return d


def test_methods_lists_every_method_of_the_model_by_label():
    attack, _ = _tables(_grid())
    got = report.methods(attack, MODEL)
    assert list(got) == sorted(got)
    assert set(got) == {
        "global magnitude unstructured",
        "local random unstructured",
        "global magnitude filter + dense neurons",
    }
    assert got["local random unstructured"]["scope"] == "local" and got["local random unstructured"]["arch"] == "mlp"


def test_a_check_that_ran_on_some_crs_counts_where_it_ran():
    # APGD at CR 4 of global magnitude broke samples 0-4, which the minimal attack left standing: a
    # robust accuracy the minimal attack did not earn must not stand there
    attack, samples = _tables(_grid(), fixed_at={(GM, 4): set(range(5))})
    curves = report.method_robustness(attack, samples, MODEL)
    gm = curves[(curves["method"] == "global magnitude unstructured") & (curves["eps"] == 1.0)].set_index("cr")
    assert gm["robust_acc"].to_dict() == {1: 1.0, 2: 1.0, 4: 0.5}
    assert gm.loc[4, "attacks"] == "l2_apgd+l2_ddn" and gm.loc[2, "attacks"] == "l2_ddn"
    other = curves[curves["method"] == "local random unstructured"]
    assert set(other["attacks"]) == {"l2_ddn"}


def test_method_robustness_counts_distances_above_the_budget_and_carries_the_method_columns():
    attack, samples = _tables(_grid())
    curves = report.method_robustness(attack, samples, MODEL)
    lr = curves[(curves["method"] == "local random unstructured") & (curves["eps"] == 1.0)].set_index("cr")
    assert lr["robust_acc"].to_dict() == {1: 1.0, 2: pytest.approx(0.6), 4: pytest.approx(0.2)}
    assert (lr["structure"] == "unstructured").all() and (lr["n"] == N).all() and (lr["n_seeds"] == 1).all()
    assert (curves["low"] <= curves["robust_acc"] + 1e-12).all() and (
        curves["high"] >= curves["robust_acc"] - 1e-12
    ).all()


def test_two_seeds_give_their_mean_and_a_wider_band():
    grid = _grid()
    attack, samples = _tables(grid, seeds=(0, 1))
    # seed 1's local random model at CR 2 is weaker: 4 robust of 10 instead of 6
    mask = (samples["seed"] == 1) & (samples["cr"] == 2) & (samples["scope"] == "local")
    samples.loc[mask & samples["sample"].isin([0, 1]), "distance"] = 0.5
    curves = report.method_robustness(attack, samples, MODEL)
    row = curves[(curves["method"] == "local random unstructured") & (curves["eps"] == 1.0) & (curves["cr"] == 2)]
    assert row["robust_acc"].item() == pytest.approx(0.5) and row["n_seeds"].item() == 2


def test_ranking_and_findings_name_the_best_and_worst_method_with_their_numbers():
    attack, samples = _tables(_grid())
    curves = report.method_robustness(attack, samples, MODEL)
    table = report.ranking(curves, "L2", 1.0)
    assert list(table.index) == [
        "global magnitude unstructured",
        "local random unstructured",
        "global magnitude filter + dense neurons",
    ]
    assert table.loc["local random unstructured", "mean CR 2-64"] == pytest.approx(0.4)
    found = report.method_findings(curves, "L2", 1.0)
    assert found["best"] == "global magnitude unstructured" and found["best_mean"] == 1.0
    assert found["dense"] == 1.0 and found["spread"] == pytest.approx(1.0 - found["worst_mean"])
    assert "global magnitude unstructured" in found["sentence"] and "100.0 %" in found["sentence"]


def test_a_method_not_yet_attacked_at_every_cr_is_not_ranked_and_the_sentence_says_so():
    attack, samples = _tables(_grid())
    curves = report.method_robustness(attack, samples, MODEL)
    partial = curves[~((curves["method"] == "global magnitude unstructured") & (curves["cr"] == 2))]
    table = report.ranking(partial, "L2", 1.0)
    assert pd.isna(table.loc["global magnitude unstructured", "mean CR 2-64"])
    found = report.method_findings(partial, "L2", 1.0)
    assert found["best"] == "local random unstructured" and found["worst"] != "global magnitude unstructured"
    assert "(1 more are not yet)" in found["sentence"] and "(–)" not in found["sentence"]


def test_a_method_whose_model_collapsed_to_one_class_is_ranked_after_the_others_and_marked():
    """A checkpoint that gives one class to every image keeps "robust" the images of that class at
    every budget (no perturbation changes a constant output): a measured number, but no robustness.
    Global magnitude filter pruning collapses at CR 2 and 4 here, and its flat 50 % beats local
    random unstructured's mean of 40 %; it is ranked after it, named, and its cells are marked."""
    grid = _grid()
    for cr in (2, 4):  # every image given class 1; half the images are of class 1 and stay unbroken
        grid[(FILTER, cr)] = np.r_[np.full(N // 2, np.inf), np.zeros(N - N // 2)]
    attack, samples = _tables(grid)
    samples["clean_pred"] = samples["sample"] % 10
    one_class = (samples["structure"] == "filter") & samples["cr"].isin([2, 4])
    samples.loc[one_class, "clean_pred"] = 1
    fell = report.collapsed_checkpoints(samples)
    assert set(fell.loc[fell["collapsed"], "cr"]) == {2, 4} and fell["collapsed"].sum() == 2
    assert fell.loc[~fell["collapsed"], "top_share"].max() == pytest.approx(0.1)
    curves = report.method_robustness(attack, samples, MODEL)
    filt = curves[curves["method"] == "global magnitude filter + dense neurons"].groupby("cr")["collapsed"].all()
    assert filt.to_dict() == {1: False, 2: True, 4: True}
    assert not curves.loc[curves["method"] != "global magnitude filter + dense neurons", "collapsed"].any()
    table = report.ranking(curves, "L2", 1.0)
    assert table.loc["global magnitude filter + dense neurons", "mean CR 2-64"] == pytest.approx(0.5)
    assert list(table.index) == [
        "global magnitude unstructured",
        "local random unstructured",
        "global magnitude filter + dense neurons",
    ]
    found = report.method_findings(curves, "L2", 1.0)
    assert found["best"] == "global magnitude unstructured" and found["worst"] == "local random unstructured"
    assert "the other one collapses from CR 2 on" in found["sentence"]
    out = report.formatted(found["table"], found["marks"], found["collapsed"])
    row = out.loc["global magnitude filter + dense neurons"]
    assert row["CR 2"] == row["CR 4"] == f"50.0 % {report.COLLAPSED}" and report.COLLAPSED not in row["CR 1"]
    assert (
        not out.drop(index="global magnitude filter + dense neurons").map(lambda c: report.COLLAPSED in c).any().any()
    )
    # the chart rings the collapsed points, in the filter panel only
    spec = charts.methods_by_structure(curves[curves["norm"] == "L2"], None, "t", initial_eps="1").to_dict()
    panels = {p["title"]: str(p) for p in spec["hconcat"]}
    assert "one class for every image" in panels["filter + dense neurons"]
    assert "one class for every image" not in panels["unstructured"]
    # without the per-image predictions nothing is called collapsed and the mean alone ranks
    plain = report.method_robustness(attack, samples.drop(columns="clean_pred"), MODEL)
    assert list(report.ranking(plain, "L2", 1.0).index)[1] == "global magnitude filter + dense neurons"


def test_dense_budget_is_where_the_dense_model_is_nearest_half():
    curves = pd.DataFrame(
        {"norm": "L2", "cr": [1, 1, 1, 2], "eps": [0.5, 1.0, 2.0, 1.0], "robust_acc": [0.9, 0.55, 0.1, 0.5]}
    )
    assert report.dense_budget(curves, "L2") == 1.0


def test_formatted_tables_read_as_percentages_with_dashes_for_missing_cells():
    table = pd.DataFrame({1.0: [0.9, np.nan], 4.0: [0.5, 0.25], "mean CR 2-64": [0.5, 0.25]}, index=["a", "b"])
    out = report.formatted(table)
    assert list(out.columns) == ["CR 1", "CR 4", "mean CR 2-64"]
    assert out.loc["a", "CR 1"] == "90.0 %" and out.loc["b", "CR 1"] == report.DASH
    assert not out.isin(["nan", "NaN"]).any().any()


def test_budgets_and_points_are_written_as_the_charts_write_them():
    assert report.budget(8 / 255, "Linf") == "8/255"
    assert report.budget(4, "L0") == "4 px"
    assert report.budget(1.5, "L2") == "1.5"
    assert report.points(-0.031) == "-3.1 points"


def test_coverage_says_one_seed_and_the_images_and_attacks():
    attack, samples = _tables(_grid())
    curves = report.method_robustness(attack, samples, MODEL)
    text = report.coverage(curves, attack)
    assert "3 methods" in text and "1 seed" in text and "one seed" in text and f"first {N} test images" in text
    assert "l2_ddn" in text and "some methods only" not in text
    assert report.coverage(curves.iloc[:0], attack) == "no method of this model was attacked"
    # an attack that ran on some methods only is named with how many: no method is claimed to face it
    first = curves["method"].iloc[0]
    extra = curves.assign(attacks=curves["attacks"].where(curves["method"] != first, curves["attacks"] + "+l2_apgd"))
    partial = report.coverage(extra, attack)
    assert "attacks on every method: l2_ddn" in partial and "on some methods only: l2_apgd (1 of 3)" in partial


def test_collapse_cr_is_the_first_cr_below_half():
    prune = pd.DataFrame({**_method(*GM), "cr": [1, 2, 4, 8], "clean_acc": [0.99, 0.9, 0.3, 0.1]})
    assert report.collapse_cr(prune, "global magnitude unstructured") == 4
    assert report.collapse_cr(prune.assign(clean_acc=0.99), "global magnitude unstructured") is None


def test_the_chart_has_a_panel_per_structure_and_at_most_four_lines_each():
    attack, samples = _tables(_grid())
    curves = report.method_robustness(attack, samples, MODEL)
    prune = curves[["method", *report.METHOD_KEYS, "cr"]].drop_duplicates().assign(clean_acc=0.98)
    spec = charts.methods_by_structure(curves[curves["norm"] == "L2"], prune, "t", initial_eps="1").to_dict()
    titles = [p["title"] for p in spec["hconcat"]]
    assert titles == ["unstructured", "filter + dense neurons"]
    picker = next(p for p in spec["params"] if p["name"] == "eps_methods")
    assert picker["bind"]["input"] == "select" and picker["value"] == "1"
    for panel in spec["hconcat"]:
        names = set(re.findall(r"'name': '(data-[0-9a-f]+)'", str(panel)))
        lines = {row["line"] for name in names for row in spec["datasets"][name] if "robust_acc" in row}
        assert 1 <= len(lines) <= 4, lines


def test_cross_family_flags_cells_where_the_check_broke_more_than_the_minimal_attack():
    rows = []
    for cr, fixed_acc in ((4, 0.50), (16, 0.60)):
        for attack, kind, acc in (("l2_ensemble", "minimal", 0.55), ("l2_apgd", "fixed", fixed_acc)):
            rows.append(
                {
                    "prune_id": "p",
                    "cr": cr,
                    "norm": "L2",
                    "eps": 1.0,
                    "attack": attack,
                    "kind": kind,
                    "robust_acc": acc,
                    "scenario": "white-box",
                }
            )
    out = report.cross_family(pd.DataFrame(rows)).set_index("fixed")
    assert out.loc["l2_apgd", "checks"] == 2 and out.loc["l2_apgd", "flagged"] == 2
    assert out.loc["l2_apgd", "minimal_weaker"] == 1  # at CR 4 APGD left 5 points fewer standing
    assert out.loc["l2_apgd", "min_gap"] == pytest.approx(-0.05) and not out.loc["l2_apgd", "same_family"]


def test_original_claims_are_tested_with_their_numbers():
    attack, samples = _tables(_grid())
    curves = report.method_robustness(attack, samples, MODEL)
    prune = pd.DataFrame(
        [{**_method(*GM), "cr": c, "clean_acc": 0.98} for c in (1, 2, 4)]
        + [{**_method(*FILTER), "cr": c, "clean_acc": a} for c, a in ((1, 0.98), (2, 0.4), (4, 0.1))]
    )
    claims = report.original_claims(curves, prune, "L2", 1.0).set_index("claim")
    assert claims.loc["global magnitude unstructured pruning is the most benign", "holds"] == True  # noqa: E712
    assert claims.loc["filter pruning collapses first", "holds"] == True  # noqa: E712
    assert "filter CR 2" in claims.loc["filter pruning collapses first", "evidence"]
    # a kernel method falling below 50 % at the same CR step ties with filter pruning: not "first"
    kernel = pd.DataFrame(
        [{**_method(*FILTER), "structure": "kernel", "cr": c, "clean_acc": a} for c, a in ((1, 0.98), (2, 0.3))]
    )
    tie = report.original_claims(curves, pd.concat([prune, kernel]), "L2", 1.0).set_index("claim")
    assert tie.loc["filter pruning collapses first", "holds"] is None
    assert "filter ties with kernel" in tie.loc["filter pruning collapses first", "evidence"]
    assert claims.loc["moderate pruning (CR 2-4) keeps robustness", "holds"] == True  # noqa: E712
    one = report.original_claims(curves[curves["method"] == "local random unstructured"], prune.iloc[:0], "L2", 1.0)
    assert one.set_index("claim").loc["global magnitude unstructured pruning is the most benign", "holds"] is None


def test_unattacked_methods_are_named():
    attack, _ = _tables(_grid())
    prune = pd.DataFrame([{**MODEL, **_method(*k), "cr": 1} for k in (GM, LR, FILTER, ("kernel", "local", "random"))])
    assert report.unattacked_methods(prune, attack, MODEL) == ["local random kernel"]


def test_the_replica_lines_sit_beside_the_original_at_shared_budgets():
    base = {
        "dataset": "mnist",
        "structure": "unstructured",
        "scope": "global",
        "criterion": "magnitude",
        "training": "standard",
        "attack": "linf_pgd",
        "norm": "Linf",
        "scenario": "white-box",
    }
    rows = []
    for arch, output, acc in (
        ("cnn_original", "softmax", 0.3),
        ("cnn_original", "logits", 0.5),
        ("cnn", "logits", 0.7),
    ):
        for cr in (1.0, 16.0):
            rows.append({**base, "arch": arch, "attack_output": output, "cr": cr, "eps": 16 / 255, "robust_acc": acc})
    summary = pd.DataFrame(
        [
            {
                **{k: base[k] for k in ("dataset", "structure", "scope", "criterion", "attack", "norm")},
                "cr": 16.0,
                "eps": e,
                "rule": "original",
                "robust_acc": 0.43,
                "low": 0.4,
                "high": 0.5,
                "n_runs": 5,
            }
            for e in (16 / 255, 64 / 255)
        ]
    )
    frame = report.replica_linf(pd.DataFrame(rows), summary)
    assert frame["source"].nunique() == 4
    assert set(frame.loc[frame["side"] == "original", "eps"]) == {16 / 255}  # only budgets ours ran
    text = report.replica_sentence(frame, 16 / 255, crs=(16.0,))
    assert "16/255" in text and "43.0 %" in text and "30.0 %" in text and "70.0 %" in text
    section = report.replica_section(pd.DataFrame(rows), summary, "the replica")
    assert section["text"] == report.replica_sentence(frame, 16 / 255)  # opens at 16/255
    assert "the replica" in str(section["figure"].to_dict())
    empty = report.replica_section(pd.DataFrame(rows).iloc[:0], summary, "t")
    assert empty["figure"] is None and empty["text"].startswith("No PGD-40 results for the replica")


def test_original_setup_states_our_seeds_the_originals_runs_and_the_attack_libraries():
    prune = pd.DataFrame({"seed": [0, 0, 2, 1]})
    ref = pd.DataFrame(
        {
            "structure": ["unstructured"] * 3 + ["filter"] * 2,
            "scope": "global",
            "criterion": "magnitude",
            "run": [0, 1, 2, 0, 1],
        }
    )
    summary = pd.DataFrame({"attack": ["clean", "clean", "l2_cw"], "n_runs": [5, 71, 9]})
    attack = pd.DataFrame(
        {
            **charts.HEADLINE,
            "prune_dense_neurons": False,
            "n": [1000, 500],
            "library": ["foolbox", "prunerob"],
            "library_version": ["3.3.4", "0.1"],
        }
    )
    got = report.original_setup(prune, attack, ref, summary, "cpu")
    assert (got["orig-seeds"], got["orig-n-seeds"], got["orig-profile"]) == ("0, 1, 2", 3, "cpu")
    assert got["orig-runs"] == "2 to 3" and got["orig-rows-max"] == 71
    assert got["orig-attacked-methods"] == "global magnitude unstructured" and got["orig-n-images"] == 1000
    assert got["orig-foolbox"] == "3.3.4" and got["orig-torchattacks"] == "(not run)"


def _indicator_tables():
    base = {**MODEL, **_method(*GM), "seed": 0, "prune_id": "p", "norm": "L0", "scenario": "white-box"}
    attack = pd.DataFrame(
        [
            {**base, "cr": cr, "attack": "l0_ensemble", "kind": "minimal", "eps": 4.0, "violations": v}
            for cr, v in ((1, 0), (4, 2))
        ]
    )
    checks = pd.DataFrame(
        [
            {**base, "cr": cr, "attack": "l0_ensemble", "check": check, "passed": cr == 1}
            for cr in (1, 4)
            for check in ("unbounded_breaks_all", "converged_at_twice_the_steps")
        ]
        # the curve check: one row per budget; at CR 4 two of its three budgets moved
        + [
            {
                **base,
                "cr": cr,
                "attack": "l0_ensemble",
                "check": "curve_holds_at_twice_the_steps",
                "eps": eps,
                "passed": cr == 1 or eps == 8.0,
            }
            for cr in (1, 4)
            for eps in (2.0, 4.0, 8.0)
        ]  # fmt: skip
    )
    rows = []
    for cr in (1, 4):
        for i in range(10):
            d = np.inf if (cr == 4 and i < 3) else 2.0 + i
            src = "l0_sigma_zero" if i % 2 else "l0_pgd_min"
            rows.append(
                {
                    **base,
                    "cr": cr,
                    "attack": "l0_ensemble",
                    "kind": "minimal",
                    "sample": i,
                    "label": 1,
                    "clean_pred": 1 if i < 9 else 0,
                    "distance": 0.0 if i == 9 else d,
                    "source_attack": "misclassified" if i == 9 else src,
                }
            )
    return attack, pd.DataFrame(rows), checks


def test_failure_indicators_trip_on_unverified_candidates_a_failed_unbounded_run_and_unbroken_samples():
    attack, samples, checks = _indicator_tables()
    ind = report.failure_indicators(attack, samples, checks).set_index("cr")
    assert not ind.loc[1, "tripped"] and ind.loc[1, "why"] == ""
    assert ind.loc[1, "never_broken"] == 0.0
    assert "l0_pgd_min 56%" in ind.loc[1, "sources"] and "l0_sigma_zero 44%" in ind.loc[1, "sources"]
    assert ind.loc[4, "tripped"] and ind.loc[4, "violations"] == 2 and ind.loc[4, "unbounded_failed"] == 1
    assert ind.loc[4, "never_broken"] == pytest.approx(3 / 9)  # the misclassified sample does not count
    assert "33.3% of the samples never broken" in ind.loc[4, "why"]
    assert ind.loc[1, "not_converged"] == 0 and ind.loc[4, "not_converged"] == 1
    assert "not converged" in ind.loc[4, "why"] and "not converged" not in ind.loc[1, "why"]
    assert ind.loc[1, "curve_moved"] == 0 and ind.loc[4, "curve_moved"] == 2
    assert "move the robust accuracy at 2 budget(s)" in ind.loc[4, "why"] and "move" not in ind.loc[1, "why"]
    # distances cut while every budget's count held: recorded, not tripped on (no other indicator at CR 1)
    held = checks.assign(passed=checks["passed"] | (checks["check"] == "curve_holds_at_twice_the_steps"))
    held.loc[(held["cr"] == 1) & (held["check"] == "converged_at_twice_the_steps"), "passed"] = False
    alone = report.failure_indicators(attack, samples, held).set_index("cr").loc[1]
    assert alone["not_converged"] == 1 and alone["curve_moved"] == 0 and not alone["tripped"]
    no_check = checks[~checks["check"].str.contains("twice_the_steps")]  # runs made before the checks
    older = report.failure_indicators(attack, samples, no_check)
    assert older["not_converged"].isna().all() and older["curve_moved"].isna().all()


def test_a_tripped_point_is_marked_in_the_chart():
    attack, samples = _tables(_grid())
    curves = report.method_robustness(attack, samples, MODEL)
    ind = pd.DataFrame([{"method": "local random unstructured", "cr": 4, "norm": "L2", "tripped": True, "why": "x"}])
    marked = report.mark_tripped(curves, ind)
    assert marked["tripped"].sum() == (curves["method"].eq("local random unstructured") & curves["cr"].eq(4)).sum()
    spec = charts.methods_by_structure(marked[marked["norm"] == "L2"], None, "t", initial_eps="1").to_dict()
    assert "cross" in str(spec["hconcat"][0]) and "attack-failure indicator" in str(spec["hconcat"][0])
    assert "cross" not in str(spec["hconcat"][1])


def test_run_titles_say_what_ran_and_retitling_is_idempotent(tmp_path):
    import nbformat

    from prunerob import runs
    from prunerob.spec import AttackStage

    stage = AttackStage.from_params(
        dataset="mnist",
        arch="mlp",
        seed=0,
        structure="filter",
        prune_dense_neurons=True,
        scope="local",
        criterion="random",
        crs=[1, 2, 4],
        cr=4,
        attack="l2_ensemble",
        preset="fast",
        eps=[0.5, 1.0],
    )
    title = runs.run_title(stage)
    assert title == "l2_ensemble (fast) on mlp / mnist, seed 0, local random filter + dense neurons, CR 4"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Attack stage: one attack\n\ntext")])
    assert runs.set_run_title(nb, stage) and not runs.set_run_title(nb, stage)
    heading, note, text = nb.cells[0].source.split("\n\n")
    assert heading == f"# {title} ({stage.id})" and text == "text"
    assert note.startswith(f"{runs.RERUN_NOTE} `{runs.rerun_command(stage)}`")


def test_a_runs_command_runs_that_very_stage_again():
    """The command on each run page, parsed as the CLI parses it, gives the same stage (its id)."""
    import shlex

    from prunerob import cli, profiles, runs
    from prunerob.spec import stage_from_params

    stages = profiles.expand(profiles.load_profile("cpu"))
    for kind in ("train", "prune", "attack"):
        for stage in [s for s in stages if s.kind == kind][:40]:
            words = shlex.split(runs.rerun_command(stage))
            assert words[:5] == [".venv/bin/python", "-m", "prunerob", "stage", kind]
            params = dict(cli._param(v) for flag, v in zip(words[5::2], words[6::2]) if flag == "-p")
            assert stage_from_params(kind, params).id == stage.id, runs.rerun_command(stage)


def test_pruning_effect_reports_changes_and_says_when_the_sign_is_uncertain():
    worst = pd.DataFrame(
        {
            "norm": "Linf",
            "eps": 8 / 255,
            "cr": [1.0, 2.0, 4.0, 64.0],
            "robust_acc": [0.50, 0.49, 0.45, 0.20],
            "low": [0.47, 0.46, 0.43, 0.18],
            "high": [0.53, 0.52, 0.46, 0.22],
            "n_seeds": 3,
            "attacks": "linf_apgd+linf_fmn",
        }
    )
    found = report.pruning_effect(worst, "Linf", crs=(2.0, 4.0, 16.0, 64.0))
    assert found["eps"] == 8 / 255 and found["dense"] == 0.5
    assert found["changes"][16.0] is None and found["changes"][64.0] == pytest.approx(-0.30)
    assert found["uncertain"] == [2.0]
    text = found["sentence"]
    assert "8/255" in text and "CR 2 49.0 % (-1.0 points; the bands overlap" in text
    assert "CR 4 45.0 % (-5.0 points)" in text and "mean over 3 seeds" in text and "linf_apgd, linf_fmn" in text


def test_the_dense_model_attacked_once_is_every_methods_cr_1():
    grid = {k: v for k, v in _grid().items() if k[1] != 1 or k[0] == GM}  # CR 1 attacked under GM only
    attack, samples = _tables(grid)
    attack, samples = attack.assign(train_id="train-a"), samples.assign(train_id="train-a")
    curves = report.method_robustness(attack, samples, MODEL)
    at1 = curves[(curves["cr"] == 1) & (curves["eps"] == 1.0)].set_index("method")["robust_acc"]
    assert len(at1) == 3 and (at1 == 1.0).all()
    lr = curves[(curves["method"] == "local random unstructured") & (curves["eps"] == 1.0)].set_index("cr")
    assert lr["robust_acc"].to_dict() == {1: 1.0, 2: pytest.approx(0.6), 4: pytest.approx(0.2)}
    # another dense model (another seed) lends nothing
    other = attack.assign(train_id="train-b")
    a2, _ = report.with_shared_dense(pd.concat([attack[attack["cr"] == 1], other[other["cr"] > 1]]), samples)
    assert set(a2.loc[a2["cr"] == 1, "scope"]) == {"global"}


def test_a_tripped_cell_is_marked_in_the_table_and_said_in_the_sentence():
    attack, samples = _tables(_grid())
    curves = report.method_robustness(attack, samples, MODEL)
    ind = pd.DataFrame([{"method": "local random unstructured", "cr": 4, "norm": "L2", "tripped": True, "why": "x"}])
    found = report.method_findings(report.mark_tripped(curves, ind), "L2", 1.0)
    out = report.formatted(found["table"], found["marks"])
    assert out.loc["local random unstructured", "CR 4"] == "20.0 % " + report.MARK
    assert out.loc["local random unstructured", "CR 2"] == "60.0 %"
    assert "1 of these cells rest on an attack that tripped" in found["sentence"]


def test_a_method_within_two_points_of_the_best_is_a_tie_not_a_verdict():
    table_rows = []
    for method, acc in (("local magnitude unstructured", 0.50), ("global magnitude unstructured", 0.49)):
        for cr in (1.0, 2.0, 4.0):
            table_rows.append(
                {"method": method, "norm": "L2", "eps": 1.0, "cr": cr, "robust_acc": 0.6 if cr == 1 else acc}
            )
    claims = report.original_claims(pd.DataFrame(table_rows), pd.DataFrame(columns=["cr"]), "L2", 1.0)
    row = claims.set_index("claim").loc["global magnitude unstructured pruning is the most benign"]
    assert row["holds"] is None and "a tie" in row["evidence"]


def test_one_attacked_method_is_described_as_the_only_one():
    attack, samples = _tables({k: v for k, v in _grid().items() if k[0] == GM})
    curves = report.method_robustness(attack, samples, MODEL)
    found = report.method_findings(curves, "L2", 1.0)
    assert "the only method attacked" in found["sentence"] and "the least" not in found["sentence"]
    assert report.coverage(curves, attack).startswith("1 method at CR 1 to 4")


def test_coverage_by_model_states_seeds_and_images_per_model():
    rows = pd.DataFrame(
        {
            "dataset": ["mnist"] * 4 + ["fashion_mnist"],
            "arch": ["cnn"] * 3 + ["mlp", "resnet8"],
            "training": ["standard"] * 5,
            "seed": [0, 1, 2, 0, 0],
            "n": [1000, 1000, 1000, 1000, 500],
        }
    )
    assert report.coverage_by_model(rows) == (
        "cnn on mnist: 3 seeds, 1000 images; mlp on mnist: 1 seed (one seed), 1000 images; "
        "resnet8 on fashion_mnist: 1 seed (one seed), 500 images"
    )
    mixed = rows.assign(n=[1000, 500, 1000, 1000, 500])
    assert report.coverage_by_model(mixed).startswith("cnn on mnist: 3 seeds, 500 to 1000 images;")
    assert report.coverage_by_model(rows.iloc[:0]) == "no attack results"


def test_readable_tables_label_crs_and_budgets_as_the_charts_do_and_show_missing_cells_as_a_dash():
    rows = [
        {"norm": n, "eps": e, "method": m, "cr": cr, "robust_acc": 0.5 + cr / 1000}
        for n, e in (("L0", 4.0), ("L2", 0.5), ("L2", 1.0), ("Linf", 8 / 255))
        for m in ("a", "b")
        for cr in (1.0, 2.0, 16.0)
        if not (m == "b" and cr == 16.0 and n == "L0")  # one missing cell
    ]
    table = pd.DataFrame(rows).pivot_table(index=["norm", "eps"], columns=["method", "cr"], values="robust_acc")
    html = report.readable(table, caption="robust accuracy").to_html()
    out = report.readable(table).data
    assert out.index.names == ["norm", "budget"] and out.columns.names == ["method", "CR"]
    assert out.index.tolist() == [("L0", "4 px"), ("L2", "0.5"), ("L2", "1"), ("Linf", "8/255")]  # numeric order
    assert out.columns.tolist() == [("a", "1"), ("a", "2"), ("a", "16"), ("b", "1"), ("b", "2"), ("b", "16")]
    assert "0.516" in html and report.DASH in html and "nan" not in html.lower() and "robust accuracy" in html
    assert "1.000000" not in html and "0.031373" not in html
    flat = report.readable(
        pd.DataFrame({"kept": [1.0, 0.5]}, index=pd.Index([1.0, 2.0], name="cr")), {"kept": "{:.4f}"}
    )
    assert flat.data.index.tolist() == ["1", "2"] and "0.5000" in flat.to_html()


def test_seeds_per_method_names_the_methods_that_ran_more_seeds_than_most():
    curves = pd.DataFrame(
        {"method": ["a", "a", "b", "c", "d"], "n_seeds": [3, 3, 1, 1, 3]},
    )
    assert report.seeds_per_method(curves) == "one seed; 3 for a, d"
    assert report.seeds_per_method(curves[curves["method"] == "b"]) == "one seed"
    assert report.seeds_per_method(curves.assign(n_seeds=3)) == "3 seeds"


def test_method_answers_name_the_best_method_per_model_and_say_what_is_not_measured():
    attack, samples = _tables(_grid())
    other = {**MODEL, "arch": "cnn"}  # no rows: not measured
    answers = report.method_answers(attack, attack, samples, {"MLP": MODEL, "CNN": other})
    assert answers["methods"].startswith("For the MLP (3 methods, one seed): at L2 1 ")
    assert "global magnitude unstructured keeps the most robust accuracy" in answers["methods"]
    assert "for the CNN, not yet measured (0 of its 0 methods attacked)" in answers["methods"]
    assert answers["norms"] == "for the MLP, only L2 is measured so far"
    both = pd.concat([attack, attack.assign(norm="Linf")]), pd.concat([samples, samples.assign(norm="Linf")])
    assert report.method_answers(attack, *both, {"MLP": MODEL})["norms"] == (
        "for the MLP, the same method keeps the most robustness in all two norms (global magnitude unstructured)"
    )
    none = report.method_answers(attack, attack, samples, {"CNN": other})
    assert none["norms"] == "not measured yet (no model has several methods attacked)"


def test_clean_two_trainings_compares_both_at_cr_1_and_at_the_largest_cr_both_reach():
    prune = pd.DataFrame(
        {
            "training": ["standard"] * 3 + ["pgd"] * 2,
            "cr": [1.0, 4.0, 16.0, 1.0, 4.0],
            "clean_acc": [0.99, 0.98, 0.90, 0.97, 0.96],
        }
    )
    assert report.clean_two_trainings(prune, "standard", "pgd") == (
        "standard training reaches 99.00% on the test set and PGD training 97.00% (-2.00 points for the "
        "adversarial training); at CR 4 they keep 98.00% and 96.00%"
    )
    assert report.clean_two_trainings(prune[prune["training"] == "pgd"], "standard", "pgd") is None


def test_attack_health_counts_agreement_checks_and_names_the_weaker_attack():
    def row(attack, kind, eps, acc, stage, passed=True):
        return dict(scenario="white-box", prune_id="p", cr=4.0, norm="L2", kind=kind, eps=eps, attack=attack,
                    robust_acc=acc, stage_id=stage, all_checks_passed=passed, violations=0)  # fmt: skip

    rows = pd.DataFrame(
        [
            row("l2_apgd", "fixed", 1.0, 0.40, "a"),
            row("l2_ddn", "minimal", 1.0, 0.42, "b", passed=False),
            row("l2_apgd", "fixed", 2.0, 0.10, "a"),
            row("l2_ddn", "minimal", 2.0, 0.30, "b", passed=False),
        ]
    )
    health = report.attack_health(rows)
    assert health["agree"] == "1 of 2" and health["gap"] == "20.0 points"
    assert health["checks"] == "1 of 2" and health["violations"] == 0
    assert (
        "1 in L2 at budgets 2 to 2 (CR 4), where l2_ddn left up to 20.0% more images standing than l2_apgd"
        in (health["disagree"])
    )
    assert report.attack_health(rows.iloc[:0])["agree"] == "none"


def test_tables_write_sizes_and_defaults_as_the_charts_do():
    assert report.distance_label(0.0966, "Linf") == "24.6/255" and report.distance_label(1.2408, "L2") == "1.24"
    assert report.distance_label(4.0, "L0") == "4 px" and report.distance_label(float("inf"), "L2") == report.DASH
    defaults = report.stage_defaults_table()
    eps = defaults.loc[("attack", "eps"), "default"]
    assert eps.startswith("Linf: 2/255, 4/255") and "L0 (pixels): 1, 2, 4" in eps and "L2: 0.5, 1" in eps
    versions = report.versions_table(
        {"train": pd.DataFrame({"stage_id": ["t"], "code_version": ["c"], "torch_version": ["2"], "device": ["cpu"]}),
         "attack": pd.DataFrame({"stage_id": ["a"], "code_version": ["c"], "torch_version": ["2"], "device": ["cpu"],
                                 "library": ["foolbox"], "library_version": ["3.3"]})})  # fmt: skip
    assert versions.loc["train", "library"] == report.DASH and not versions.isna().any().any()


def test_set_strength_reads_the_default_against_the_strongest_set_per_checkpoint():
    def record(cr, default, strongest, won):
        return {
            "checkpoint": "x.pt",
            "cr": cr,
            "n_samples": 300,
            "default": {"L0": {"robust_acc": {"0.0": 1.0, "4.0": default}}},
            "strongest": {"L0": {"attacks": ["l0_bb", "l0_sigma_zero"], "presets": ["original", "strong"],
                                 "robust_acc": {"0.0": 1.0, "4.0": strongest},
                                 "per_attack": {"l0_bb": {"0.0": 1.0, "4.0": 0.6}, "l0_sigma_zero": {"0.0": 1.0, "4.0": strongest}},
                                 "worst_from": won}},
            "default_vs_strongest": {"L0": {"largest_excess": default - strongest, "at_eps": 4.0}},
        }  # fmt: skip

    blob = {
        "records": [
            record(1, 0.80, 0.79, {"l0_bb": 0.6, "l0_sigma_zero": 0.4}),
            record(64, 0.46, 0.34, {"l0_sigma_zero": 0.7, "l0_bb": 0.3}),
        ]
    }
    out = report.set_strength(blob, "L0")
    assert out["text"].startswith("on 300 test images per checkpoint, the default L0 set stands above the strongest")
    assert (
        "by at most 12.0 points at CR 64 (4 px; l0_sigma_zero found the smallest distance, ties to the attack run first, for 70% of"
        in out["text"]
    )
    assert "; 1.0 points at CR 1 (4 px; l0_bb found" in out["text"]
    row = out["table"].loc[("L0", 64.0, 4.0)]
    assert (
        row["default set"] == 0.46
        and row["l0_sigma_zero (strong) alone"] == 0.34
        and row["l0_bb (original) alone"] == 0.6
    )
    assert report.set_strength({"records": []}, "L0")["text"] == "not measured"
    assert report.set_strength(blob, "Linf")["text"] == "not measured"


def test_minimal_gaps_says_how_far_each_minimal_attack_stands_above_the_strongest_fixed_one():
    def row(attack, kind, norm, eps, acc, cr=4.0):
        return dict(scenario="white-box", prune_id=f"p{cr:g}", cr=cr, norm=norm, kind=kind, eps=eps, attack=attack,
                    robust_acc=acc, stage_id=f"{attack}{cr:g}", all_checks_passed=True, violations=0)  # fmt: skip

    rows = pd.DataFrame(
        [
            row("l2_apgd", "fixed", "L2", 1.0, 0.40),
            row("l2_ddn", "minimal", "L2", 1.0, 0.46),  # 6 points above APGD
            row("l2_ensemble", "minimal", "L2", 1.0, 0.39),  # below it: never above
            row("l2_apgd", "fixed", "L2", 1.0, 0.30, cr=16.0),
            row("l2_ddn", "minimal", "L2", 1.0, 0.52, cr=16.0),  # 22 points: the largest
            row("l2_ensemble", "minimal", "L2", 1.0, 0.31, cr=16.0),
            row("linf_apgd", "fixed", "Linf", 8 / 255, 0.5),
            row("linf_fmn", "minimal", "Linf", 8 / 255, 0.5),
        ]
    )
    text = report.minimal_gaps(rows)
    assert text.startswith("Linf: linf_fmn at most 0.0 points above linf_apgd over 1 budgets and checkpoints. L2: ")
    assert (
        "l2_ddn at most 22.0 points above l2_apgd over 2 budgets and checkpoints (CR 16, budget 1: 52.0% vs 30.0%)"
        in text
    )
    assert "l2_ensemble at most 1.0 points above l2_apgd over 2 budgets and checkpoints (CR 16" in text
    assert report.minimal_gaps(rows[rows["kind"] == "fixed"]).startswith("no minimal attack ran beside")


def test_attack_bench_reads_the_committed_benchmark_per_norm():
    import json

    from prunerob import results

    blob = json.loads((results.ROOT / "benchmarks" / "attacks.json").read_text())
    numbers, table = report.attack_bench(blob)
    record = blob["records"][0]
    assert list(table.index) == ["Linf", "L2", "L0"]
    assert numbers["bench-default-s"] == f"{sum(v['seconds'] for v in record['default'].values()):.0f}"
    assert numbers["bench-n"] == record["n_samples"] and numbers["bench-speedup"] == f"{record['speedup']:.1f}"
    assert table.loc["L2", "seconds (original)"] == round(record["original"]["L2"]["seconds"], 1)


def test_clean_phrases_name_the_dense_model_and_each_method_at_the_largest_cr():
    prune = pd.DataFrame(
        {
            "structure": ["unstructured"] * 4 + ["filter"] * 2,
            "scope": ["global"] * 6,
            "criterion": ["magnitude"] * 6,
            "prune_dense_neurons": [False] * 6,
            "cr": [1.0, 64.0, 1.0, 64.0, 1.0, 64.0],
            "clean_acc": [0.98, 0.97, 0.98, 0.97, 0.98, 0.50],
        }
    ).drop_duplicates(["structure", "cr"])
    assert report.clean_per_method(prune) == (
        "dense 98.00%; at CR 64 global magnitude filter 50.00%, global magnitude unstructured 97.00%"
    )
    assert report.clean_extremes(prune, "MLP") == (
        "the dense MLP reaches 98.00%; at CR 64 the best method (global magnitude unstructured) keeps 97.00% "
        "and the worst (global magnitude filter) 50.00%"
    )
    assert report.clean_per_method(prune.iloc[:0]) is None and report.clean_extremes(prune.iloc[:0], "MLP") is None


def _original_summary():
    """The original's per-CR summary for one method: Linf PGD at 0.1, C&W L2 and Brendel-Bethge L0
    under both counting rules, two CRs, five runs each."""
    rows = []
    for cr in (1.0, 2.0):
        rows.append({"attack": "linf_pgd", "norm": "Linf", "eps": 0.1, "rule": "", "cr": cr, "robust_acc": 0.5})
        for rule, value in (("original", 0.6), ("threat_model", 0.55)):
            rows.append({"attack": "l2_cw", "norm": "L2", "eps": 1.0, "rule": rule, "cr": cr, "robust_acc": value})
        for eps in (2.0, 4.0):  # the original's rule counts more samples robust, most at 2 px
            for rule, value in (("original", 0.9), ("threat_model", 0.7 if eps == 2.0 else 0.85)):
                rows.append({"attack": "l0_bb", "norm": "L0", "eps": eps, "rule": rule, "cr": cr, "robust_acc": value})
    frame = pd.DataFrame(rows)
    return frame.assign(low=frame["robust_acc"] - 0.05, high=frame["robust_acc"] + 0.05, n_runs=5)


def test_original_robust_compares_like_with_like_and_says_so():
    summary = _original_summary()
    worst = pd.DataFrame(
        [
            {"cr": cr, "norm": norm, "eps": eps, "robust_acc": acc, "attacks": atk, "seed": 0}
            for cr in (1.0, 2.0)
            for norm, eps, acc, atk in (("Linf", 0.1, 0.52, "linf_fmn+linf_apgd"), ("L2", 1.0, 0.4, "l2_ddn"))
        ]
    )
    attack = pd.DataFrame(
        [
            {"cr": cr, "norm": "Linf", "eps": 0.1, "attack": "linf_pgd", "kind": "fixed", "robust_acc": 0.6}
            for cr in (1.0, 2.0)
        ]
    ).assign(robust_acc_original_rule=np.nan)
    out = report.original_robust(worst, attack, summary, "cpu")
    assert set(out["compared"]) == {"Linf", "L2"}  # no L0 results of ours: no L0 frame
    g = out["glue"]
    # Linf: our PGD alone is 0.6 vs their 0.5 at both CRs (outside their range [0.45, 0.55])
    assert g["orig-linf-same"].startswith("ours minus the original's mean is +0.100 on average over the 2 ")
    assert g["orig-linf-same"].endswith("inside the original's range over runs at 0 of them")
    assert g["orig-linf-worst"] == "+0.020"
    # L2 compares with the original's own rule only (C&W at 0.6): 0.4 - 0.6 at both CRs
    assert "-0.200 on average" in g["orig-l2"] and g["orig-l2-below"] == "2 of 2"
    assert g["orig-l2-rule-gap"] == "0.050"
    # the dense model's largest gap between the original's two L0 rules: 0.9 vs 0.7 at 2 px
    assert (g["orig-l0-rule-eps"], g["orig-l0-rule-orig"], g["orig-l0-rule-threat"]) == ("2", "90.0%", "70.0%")
    assert g["orig-l0-crs"] == "1, 2" and "no results in profile cpu yet" in g["orig-l0"]
    assert out["bb"] is not None and list(out["bb"].columns) == ["CR 1", "CR 2"]
    assert out["bb"].loc[(reference.RULES["threat_model"], "2 px"), "CR 2"] == pytest.approx(0.7)
    gaps = out["gaps"]
    pair = next(p for p in gaps.index.get_level_values("pair") if "linf_pgd alone" in p)
    assert gaps.xs(pair, level="pair")["CR 2"].iloc[0] == pytest.approx(0.1)
    assert out["initial"] == {"Linf": charts.eps_label(0.1, "Linf"), "L2": "1"}


def test_original_robust_counts_l0_by_one_rule_on_both_sides():
    summary = _original_summary()
    worst = pd.DataFrame(
        [
            {"cr": 1.0, "norm": "L0", "eps": eps, "robust_acc": 0.6, "attacks": "l0_pgd_min", "seed": 0}
            for eps in (2.0, 4.0)
        ]
    )
    attack = pd.DataFrame(
        [
            {"cr": 1.0, "norm": "L0", "eps": eps, "attack": "l0_pgd_min", "kind": "minimal", "robust_acc": 0.6}
            for eps in (2.0, 4.0)
        ]
    ).assign(robust_acc_original_rule=0.8)
    out = report.original_robust(worst, attack, summary, "cpu")
    assert out["bb"] is None and set(out["compared"]) == {"L0"}
    pairs = set(out["gaps"].index.get_level_values("pair"))
    # ours by d > eps only against theirs by d > eps, ours by d >= eps only against theirs by d >= eps
    assert all(("d ≥ eps" in p.split(" minus ")[0]) == ("d ≥ eps" in p.split(" minus ")[1]) for p in pairs)
    assert len(pairs) == 2
    text = out["glue"]["orig-l0"]
    assert text.startswith("Under the threat-model rule on both sides, ours minus the original's mean is -0.175")
    assert (
        "Under the original's rule on both sides (our minimal attack alone), ours minus the original's mean is -0.100"
        in text
    )


def test_side_by_side_puts_ours_then_the_originals_range_at_each_cr():
    index = pd.MultiIndex.from_tuples([("m", 1.0), ("m", 2.0)], names=["method", "cr"])
    mine = pd.DataFrame({"clean_acc": [0.99, 0.98]}, index=index)
    theirs = pd.DataFrame(
        {"clean_acc": [0.97, 0.96], "clean_low": [0.9, 0.91], "clean_high": [0.99, 0.995]}, index=index
    )
    t = report.side_by_side(mine, theirs, "clean_acc", "clean_low", "clean_high", "{:.2f}")
    assert list(t.columns) == ["reproduced CR 1", "original CR 1", "reproduced CR 2", "original CR 2"]
    assert t.loc["m"].tolist() == ["0.99", "0.97 [0.90, 0.99]", "0.98", "0.96 [0.91, 0.99]"]


def test_scenario_study_names_the_best_cr_per_share_of_attacks():
    grid = {k: v for k, v in _grid().items() if k[0] != FILTER}
    attack, samples = _tables(grid)
    attack = attack.assign(n=N)
    samples = samples.assign(label=samples["sample"] % 10, clean_pred=samples["sample"] % 10)  # all right
    prune = (
        attack.drop_duplicates(["prune_id", "cr"])
        .rename(columns={"prune_id": "stage_id"})
        .assign(clean_acc=0.99, schedule="one-shot")
    )
    study = report.scenario_study(attack, prune, samples)
    g = study["glue"]
    assert g["scen-main"] == "global magnitude unstructured pruning of mlp on mnist" and g["scen-n-models"] == 1
    # clean accuracy of the attacked images (all right), not the prune table's 0.99
    assert g["scen-dense-clean"] == "100.00%" and g["scen-clean-spread"] == "0.00"
    # global magnitude: robust at L2 1 at every CR, so the tie goes to the smallest model, for every p
    assert g["scen-mid-L2"] == "at 1 (where the dense model is 100% robust): CR 4 for p in [0.000, 1.000]"
    assert g["scen-mid-Linf"] == g["scen-mid-L0"] == "no results" and set(study["initial"]) == {"L2"}
    best = study["best"]["best CR by range of p"]
    # local random loses robustness with CR (100 %, 60 %, 20 % at L2 1): the dense model wins for p > 0
    assert best.loc[("mlp on mnist", "local random unstructured", "L2", "1")] == "CR 1 for p in [0.000, 1.000]"
    # at L2 2 nothing is robust anywhere: a tie, the smallest model
    assert best.loc[("mlp on mnist", "local random unstructured", "L2", "2")] == "CR 4 for p in [0.000, 1.000]"
    assert (g["scen-n-budgets"], g["scen-n-dense-at-1"], g["scen-n-dense-anywhere"]) == (4, 1, 1)
    across = study["across"]["best choice by range of p"]
    assert across.loc[("mnist", "L2", "1")] == "global magnitude unstructured @ CR 4 for p in [0.000, 1.000]"
    acc = study["acc"]
    assert set(acc["cr"]) == {1, 2, 4} and set(acc["norm"]) == {"L2"}


def test_a_checkpoint_collapsed_to_one_class_is_no_scenario_candidate():
    """At L2 2 no model of local random pruning keeps an image, so the tie goes to the smallest
    model, CR 4; once CR 4 gives class 1 to every image (its images of class 1 unbroken: a constant
    output), it would top the envelope for an adversarial stream but is left out, CR 2 wins, and
    the glue names it."""
    grid = {k: v for k, v in _grid().items() if k[0] != FILTER}
    grid[(LR, 4)] = np.where(np.arange(N) % 10 == 1, np.inf, 0.0)
    attack, samples = _tables(grid)
    attack = attack.assign(n=N)
    samples = samples.assign(label=samples["sample"] % 10, clean_pred=samples["sample"] % 10)
    one_class = (samples["scope"] == "local") & (samples["cr"] == 4)
    samples.loc[one_class, "clean_pred"] = 1
    prune = (
        attack.drop_duplicates(["prune_id", "cr"])
        .rename(columns={"prune_id": "stage_id"})
        .assign(clean_acc=0.99, schedule="one-shot")
    )
    study = report.scenario_study(attack, prune, samples)
    best = study["best"]["best CR by range of p"]
    assert best.loc[("mlp on mnist", "local random unstructured", "L2", "2")] == "CR 2 for p in [0.000, 1.000]"
    assert "CR 4" not in " ".join(best.loc[("mlp on mnist", "local random unstructured")])
    assert study["glue"]["scen-collapsed"].startswith("1 checkpoint(s)")
    assert "mlp on mnist, local random unstructured at CR 4" in study["glue"]["scen-collapsed"]
    across = study["across"]["best choice by range of p"]
    assert "local random unstructured @ CR 4" not in " ".join(across)


def _headline_tables(fixed_at=None, seeds=(0,)):
    """Attack, samples and prune rows of global magnitude unstructured pruning (L2, CR 1, 2, 4)."""
    attack, samples = _tables({k: v for k, v in _grid().items() if k[0] == GM}, fixed_at=fixed_at, seeds=seeds)
    attack = attack.assign(n=N, violations=0)
    run = lambda f: f["prune_id"] + "/" + f["attack"] + "/" + f["cr"].astype(str)  # noqa: E731
    attack, samples = attack.assign(stage_id=run), samples.assign(stage_id=run)
    prune = attack.drop_duplicates(["prune_id", "cr"]).assign(
        clean_acc=0.99,
        kept=lambda f: 1 / f["cr"],
        sparsity=lambda f: 1 - 1 / f["cr"],
        n_kept=lambda f: 100 / f["cr"],
        layers_removed=0,
        finetune_epochs=1,
        n_prunable=100,
        schedule="one-shot",
    )
    return attack, samples, prune


def test_headline_robustness_averages_seeds_and_reports_attack_agreement():
    # two seeds, one method; at CR 4 APGD broke samples 0-4 that DDN left standing at L2 1
    attack, samples, prune = _headline_tables(
        fixed_at={(GM, cr): set(range(5)) if cr == 4 else set() for cr in (1, 2, 4)}, seeds=(0, 1)
    )
    checks = pd.DataFrame({"passed": [True, True, False]})
    model = {**MODEL, **_method(*GM)}
    rob = report.headline_robustness(attack, prune, samples, checks, model)
    worst = rob["worst"][rob["worst"]["eps"] == 1.0].set_index("cr")
    assert worst["robust_acc"].to_dict() == {1: 1.0, 2: 1.0, 4: 0.5}  # the worst case over both attacks
    assert (worst["n_seeds"] == 2).all() and worst.loc[4, "sparsity"] == pytest.approx(0.75)
    assert rob["attacks"]["L2"] == "l2_apgd, l2_ddn"
    g = rob["glue"]
    assert g["rob-seeds"] == "2 seeds (0, 1)" and g["rob-checks"] == "2 of 3" and g["rob-violations"] == 0
    # fixed vs minimal per checkpoint and budget: at L2 1 they disagree at CR 4 only
    decisive = rob["agreement"][rob["agreement"]["strongest"]]
    assert g["rob-agree"] == f"{int(decisive['agree'].sum())} of {len(decisive)}" and not decisive["agree"].all()
    at_1 = decisive[decisive["eps"] == 1.0]
    assert set(at_1.loc[~at_1["agree"], "cr"]) == {4}
    table = report.agreement_table(rob["agreement"])
    assert table.loc[("L2", "l2_apgd", "l2_ddn", "1"), "CR 4"] == pytest.approx(-0.5)


def test_trainings_compared_puts_two_trainings_side_by_side_per_recipe():
    gm = {k: v for k, v in _grid().items() if k[0] == GM}
    std_attack, std_samples = _tables(gm)
    weak = {k: (v if k[1] == 1 else np.r_[np.full(N // 2, 1.5), np.full(N - N // 2, 0.5)]) for k, v in gm.items()}
    pgd_attack, pgd_samples = (f.assign(training="pgd (eps 0.1)") for f in _tables(weak))
    attack = pd.concat([std_attack, pgd_attack], ignore_index=True).assign(n=N)
    samples = pd.concat([std_samples, pgd_samples], ignore_index=True)
    prune = attack.drop_duplicates(["training", "cr"]).assign(
        clean_acc=lambda f: np.where(f["training"] == "standard", 0.99, 0.98) - f["cr"] / 1000
    )
    train = pd.DataFrame({"training": ["standard", "pgd (eps 0.1)"], "epochs": [10, 20]})
    labels = {"standard": "standard training", "pgd (eps 0.1)": "PGD training (eps 0.1)"}
    got = report.trainings_compared(
        {3: (attack, samples, prune, train)}, {**MODEL, **_method(*GM)} | {"training": None}, labels
    )
    assert set(got["worst"]["method"]) == {
        "standard training, 3 epochs per step",
        "PGD training (eps 0.1), 3 epochs per step",
    }
    assert (got["worst"]["budget"] == 3).all() and (got["train"]["budget"] == 3).all()
    assert got["contrast"]["Linf"] is None and got["contrast"]["L0"] is None
    eps, text = got["contrast"]["L2"]
    # the budget where the standard (reference) model's dense line is nearest 50 %, here the first
    assert (eps, text) == (
        1.0,
        "with up to 3 fine-tuning epochs per step, at L2 1 the standard model keeps 100.0% of the images dense "
        "and 100.0% at CR 4 (one seed); the PGD-trained one 100.0% dense and 50.0% at CR 4 (one seed; its best "
        "CR: 1, 100.0%)",
    )
    assert got["clean"] == (
        "with up to 3 fine-tuning epochs per step, standard training reaches 98.90% on the test set and PGD "
        "training 97.90% (-1.00 points for the adversarial training); at CR 4 they keep 98.60% and 97.60%"
    )


def test_method_study_gives_each_norm_its_sentence_table_and_claims_and_names_unattacked_methods():
    attack, samples = _tables(_grid())
    attack = attack.assign(n=N)
    prune = pd.DataFrame(
        [
            {**MODEL, **_method(*k), "seed": 0, "schedule": "one-shot", "cr": c, "clean_acc": 0.98}
            for k in (GM, LR, FILTER, ("kernel", "local", "random"))
            for c in (1, 2, 4)
        ]
    ).assign(kept=1.0, sparsity=0.0, n_kept=1, layers_removed=0, finetune_epochs=1, n_prunable=1)
    ind = pd.DataFrame([{"method": "local random unstructured", "cr": 4, "norm": "L2", "tripped": True, "why": "x"}])
    study = report.method_study(attack, samples, prune, ind, MODEL)
    assert set(study["norms"]) == {"L2"}  # only L2 was attacked
    l2 = study["norms"]["L2"]
    assert l2["sentence"] == report.method_findings(l2["curves"], "L2")["sentence"]
    assert report.MARK in l2["table"].to_string()  # the tripped cell is marked
    caption, table = report.method_tables(study)  # one norm: its caption, then its table
    assert caption.data.startswith("**L2**") and report.COLLAPSED in caption.data and table is l2["table"]
    assert "pruned but not attacked in this profile: 1 method(s) (local random kernel)" in study["coverage"]
    assert study["coverage"].endswith("; no seed left out (each faced the whole default set)")
    assert set(study["prune"]["cr"]) == {1, 2, 4} and (study["prune"]["n_seeds"] == 1).all()
    claims = report.claims_table({"mlp": study})
    assert claims.index.names == ["model", "norm", "claim"] and set(claims["holds"]) <= {"yes", "no", report.DASH}
    assert claims.loc[("mlp", "L2", "filter pruning collapses first"), "holds"] == "no"  # nothing collapses
    assert not len(report.claims_table({"mlp": {**study, "norms": {}}}))


def test_budget_pickers_take_the_nearest_and_the_replicas_16_of_255():
    assert report.nearest_budget([0.5, 1.0, 2.0], 1.2) == 1.0
    replica = pd.DataFrame({"eps": [0.0, 8 / 255, 16 / 255, 32 / 255]})
    assert report.replica_budget(replica) == pytest.approx(16 / 255)
    assert report.replica_budget(pd.DataFrame({"eps": [0.0, 0.1, 0.2, 0.3]})) == pytest.approx(0.2)


def test_cross_family_table_and_indicator_summary_per_model():
    attack, samples, checks = _indicator_tables()
    ind = report.failure_indicators(attack, samples, checks)
    health = report.indicator_summary(ind, ["mlp"])
    assert health["sentence"] == (
        "**1 of 2** (model, method, CR, norm) results tripped an indicator. "
        "Convergence (twice the steps) was checked in 2 of them, 1 not converged (distances still cut by over "
        "5 %); its effect on the curve in 2, 1 of which would move at a budget."
    )
    assert list(health["tripped"].index.get_level_values("cr")) == [4]
    older = report.failure_indicators(attack, samples, checks[checks["check"] != "curve_holds_at_twice_the_steps"])
    assert report.indicator_summary(older, ["mlp"])["sentence"].endswith(
        "its effect on the curve (per budget) was checked in none of them (runs made before 2026-12-05)."
    )
    assert "l0_pgd_min 56%" in health["sources"].iloc[0, 0]
    rows = [
        {"prune_id": "p", "cr": 4, "norm": "L2", "eps": 1.0, "attack": a, "kind": k, "robust_acc": acc}
        for a, k, acc in (("l2_ensemble", "minimal", 0.55), ("l2_apgd", "fixed", 0.5))
    ]
    frame = pd.DataFrame(rows).assign(scenario="white-box", **MODEL)
    table = report.cross_family_table(frame, {"mlp": MODEL, "cnn": {**MODEL, "arch": "cnn"}})
    assert list(table.index) == [("mlp", "L2", "l2_ensemble", "l2_apgd")]
    assert table.iloc[0]["largest gaps (points)"] == "-5.0 / -5.0"


def test_highest_safe_cr_stops_below_the_first_clearly_less_robust_cr():
    spots = pd.DataFrame(
        [
            {"method": "m", "norm": "L2", "eps": 1.0, "cr": cr, "verdict": v}
            for cr, v in (
                (2, "no clear difference"),
                (4, "more robust"),
                (8, "less robust"),
                (16, "no clear difference"),
            )
        ]
        + [{"method": "m", "norm": "L2", "eps": 2.0, "cr": 2, "verdict": "less robust"}]
        + [{"method": "m", "norm": "L0", "eps": 4.0, "cr": cr, "verdict": "no clear difference"} for cr in (2, 4)]
    )
    keep = report.highest_safe_cr(spots).set_index(["norm", "eps"])["up_to"]
    assert keep.to_dict() == {("L0", 4.0): 4, ("L2", 1.0): 4, ("L2", 2.0): 1.0}


def test_sweet_spot_study_counts_verdicts_and_names_the_clearly_more_robust():
    more = ("kernel", "local", "magnitude")
    grid = {k: v for k, v in _grid().items() if k[0] != FILTER}
    grid.update({(more, cr): np.full(N, 0.5 if cr == 1 else 1.5) for cr in (1, 2, 4)})  # pruning helps at L2 1
    attack, samples = _tables(grid)
    attack = attack.assign(n=N, schedule="one-shot")
    samples = samples.assign(schedule="one-shot", label=0, clean_pred=0)
    study = report.sweet_spot_study(attack, samples, 0.95, n_boot=200, seed=0)
    g = study["glue"]
    assert (g["ss-n"], g["ss-n-more"], g["ss-n-less"], g["ss-n-unclear"]) == (12, 2, 2, 8)
    assert g["ss-more-list"].startswith("L2 at 1, CR 2 (local magnitude kernel): +100.0 points [")
    assert g["ss-keep-L2"].startswith("global magnitude unstructured: CR 4 at 1, CR 4 at 2; local magnitude kernel:")
    assert "local random unstructured: CR 1 at 1, CR 4 at 2" in g["ss-keep-L2"] and g["ss-keep-L0"] == "no results"
    table = study["table"]
    assert table.loc[("local random unstructured", "L2", "1"), "CR 4"] == "-80.0 ▼"
    assert table.loc[("local magnitude kernel", "L2", "1"), "CR 2"] == "+100.0 ▲"
    assert list(study["more"].index.get_level_values("cr")) == [2, 4]


def _lines():
    """compare.worst_case_by_model-like rows: two models, Linf at 4/255 and 8/255, CR 1 and 4."""
    rows = []
    for method, seeds, attacks in (("CNN", 3, "linf_apgd+linf_fmn"), ("MLP", 1, "linf_fmn")):
        for cr in (1, 4):
            for eps, acc in ((0.0, 0.99), (4 / 255, 0.8), (8 / 255, 0.45 if cr == 1 else 0.3)):
                rows.append(
                    {
                        "method": method,
                        "cr": cr,
                        "norm": "Linf",
                        "eps": eps,
                        "robust_acc": acc - (0.1 if method == "MLP" else 0),
                        "n": 1000 if method == "CNN" else 500,
                        "n_seeds": seeds,
                        "attacks": attacks,
                    }
                )
    return pd.DataFrame(rows)


def test_lines_table_coverage_and_one_model_text():
    worst = _lines()
    table = report.lines_table(worst, ["method", "cr"])
    assert list(table.index) == [("Linf", 4 / 255), ("Linf", 8 / 255)]  # no clean row
    assert table.loc[("Linf", 8 / 255), ("MLP", 4)] == pytest.approx(0.2)
    assert not len(report.lines_table(worst.iloc[:0]))
    cov = report.lines_coverage(worst)
    assert cov == {
        "n": 1000,
        "seeds": "the CNN's lines are the mean over 3 seeds; the MLP ran one seed",
        "attacks": "linf_apgd, linf_fmn",
    }
    assert report.lines_coverage(worst.iloc[:0])["attacks"] == "(none)"
    cnn = worst[worst["method"] == "CNN"]
    # the budget where the dense CNN is nearest 50 %: 8/255 (45 %)
    assert report.one_model_text(cnn, "CNN") == "Linf 8/255: 45.0% at CR 1, 30.0% at CR 4 (mean over 3 seeds)"
    assert report.one_model_text(cnn.iloc[:0], "CNN") is None


def _sweep_record(started, done, skipped=0, seconds=3600.0, only="", failed=0, profile="cpu"):
    return {
        "profile": profile,
        "started_at": started,
        "done": done,
        "skipped": skipped,
        "failed": failed,
        "blocked": 0,
        "only": only,
        "seconds": seconds,
        "workers": 2,
        "scheduler": "local",
        "cpu_count": 2,
        "device": "cpu",
        "code_version": "abc",
    }


def test_from_nothing_takes_a_complete_sweep_or_the_sum_of_sweeps_that_grew_the_profile():
    assert report.hours(3 * 3600 + 5 * 60) == "3 h 5 min"
    one = pd.DataFrame([_sweep_record("2026-01-01", 10, seconds=7200.0)])
    assert report.from_nothing(one, "cpu", 10).startswith(
        "2 h 0 min for 10 stages (2 local workers on a machine with 2 cores"
    )
    grew = pd.DataFrame(
        [
            _sweep_record("2026-01-01", 6, seconds=1800.0),
            _sweep_record("2026-01-02", 4, skipped=6, seconds=1200.0),
            _sweep_record("2026-01-03", 2, only="arch=mlp"),  # a slice does not count
        ]
    )
    assert report.from_nothing(grew, "cpu", 10).startswith("0 h 50 min for its 10 stages, run in 2 sweeps")
    # a sweep that re-ran what an earlier one had done does not add up to "from nothing"
    rerun = pd.DataFrame([_sweep_record("2026-01-01", 6), _sweep_record("2026-01-02", 4, skipped=2)])
    assert report.from_nothing(rerun, "cpu", 10) == "none recorded yet for profile cpu"
    table = report.sweeps_table(grew, ["cpu"])
    assert list(table["minutes"]) == [30.0, 20.0, 60.0] and report.sweeps_table(grew, ["full"]) is None


def test_versions_table_and_fingerprint_sentence():
    train = pd.DataFrame({"stage_id": ["t1", "t2"], "code_version": ["a", "b"], "torch_version": "2", "device": "cpu"})
    table = report.versions_table({"train": train, "prune": train.iloc[:0]})
    assert list(table.index) == ["train", "train"] and list(table["stages"]) == [1, 1]
    agreement = pd.DataFrame({"runs": [5, 3], "unknown": [1, 0], "same": [4, 2], "different": [0, 1]})
    assert report.fingerprint_sentence(agreement).startswith(
        "of 8 links from a result to its checkpoint, 7 are fingerprinted on both sides, and 6 of those match (1 differ)"
    )


def _prune_rows():
    """Prune rows of one model: global magnitude unstructured and global magnitude filter, CR 1-4, two seeds."""
    rows = []
    for seed in (0, 1):
        for structure in ("unstructured", "filter"):
            for cr in (1, 2, 4):
                rows.append(
                    {
                        **MODEL,
                        "structure": structure,
                        "scope": "global",
                        "criterion": "magnitude",
                        "prune_dense_neurons": False,
                        "schedule": "one-shot",
                        "seed": seed,
                        "stage_id": f"prune-{structure}-{seed}",
                        "cr": cr,
                        "clean_acc": 0.99 - cr / 100 - seed / 1000,
                        "kept": 1 / cr + (0.001 if structure == "unstructured" and cr == 4 else 0),
                        "target_kept": 1 / cr,
                        "n_prunable": 1000,
                        "n_units": 10.0 if structure == "filter" else np.nan,
                        "n_units_kept": {1: 10, 2: 5, 4: 2}[cr] if structure == "filter" else np.nan,
                        "layers_removed": 1 if cr == 4 and structure == "filter" else 0,
                        "sparsity": 1 - 1 / cr,
                        "n_kept": 1000 / cr,
                        "finetune_epochs": 2,
                        "bytes_dense": 4096,
                        "bytes_coo": 8192 / cr,
                        "bytes_bitmask": 4096 / cr + 128,
                    }
                )
    frame = pd.DataFrame(rows)
    return frame.assign(method=charts.method_label(frame), model=charts.model_label(frame))


def test_pruning_tables_per_method_and_how_exactly_the_targets_were_hit():
    prune = _prune_rows()
    acc = report.pruning_accuracy(prune)
    # one weight off at CR 4 (0.001 of 1000); filter CR 4 keeps 2 of 10 units where round(10 - 7.5) = 2 is due
    assert acc == {
        "pruning-unstructured-max-dev": "1.0",
        "pruning-units-max-dev": "0",
        "pruning-gf-kept-64": "(no run)",
    }
    t = report.per_method(prune, "clean_acc")
    assert list(t.columns) == ["CR 1", "CR 2", "CR 4"]
    assert t.loc[("mlp on mnist", "global magnitude unstructured"), "CR 2"] == pytest.approx(0.9695)  # mean over seeds
    layers = pd.DataFrame(
        [
            {"stage_id": sid, "cr": cr, "layer": layer, "n_params": 1100, "n_params_kept": 100 + 1000 / cr}
            for sid in ("prune-unstructured-0", "prune-filter-0")
            for cr in (1, 2, 4)
            for layer in ("fc1", "fc2", "total")
        ]
    )
    removed = report.layers_removed(prune[prune["seed"] == 0], layers)
    assert removed.index.levels[0].tolist() == ["mlp on mnist (of 2 layers)"]
    assert removed.loc[("mlp on mnist (of 2 layers)", "global magnitude filter"), "CR 4"] == 1
    cr_all = report.cr_over_all_parameters(prune[prune["seed"] == 0], layers)
    assert cr_all.loc[("mlp on mnist", "global magnitude filter"), "CR 4"] == pytest.approx(1100 / 350)
    size = report.storage(prune[prune["structure"] == "unstructured"])
    assert size.loc["CR 4"].tolist() == [4.0, 2.0, 1.1]


def test_linf_slice_averages_the_seeds_pgd_attacked_and_tables_every_cr():
    prune = _prune_rows()
    prune = prune[prune["structure"] == "unstructured"]
    attack = pd.DataFrame(
        [
            {
                "attack": "linf_pgd",
                "seed": 0,
                "cr": cr,
                "norm": "Linf",
                "eps": eps,
                "robust_acc": {0.0: 0.99, 8 / 255: 0.8, 16 / 255: 0.5 + cr / 100, 32 / 255: 0.1}[eps],
                "n": 1000,
                "violations": 0,
            }
            for cr in (1, 2, 4)
            for eps in (0.0, 8 / 255, 16 / 255, 32 / 255)
        ]
    )
    checks = pd.DataFrame({"passed": [True, True]})
    pgd = report.linf_slice(attack, prune, checks)
    g = pgd["glue"]
    assert g["slice-seeds"] == "seed 0" and g["slice-n"] == 1000 and g["slice-clean-cr1"] == "98.00%"
    assert (g["slice-mid-eps"], g["slice-mid-cr1"], g["slice-mid-best-cr"], g["slice-mid-best"]) == (
        "16/255",
        "51.0%",
        "4",
        "54.0%",
    )
    assert g["slice-checks-passed"] == "2 of 2" and g["slice-max-cr"] == "4"
    assert list(pgd["table"].index) == ["1", "2", "4"] and pgd["budgets"] == ["8/255", "16/255", "32/255"]
    ref = pd.DataFrame({"cr": [1, 1], "eps": [16 / 255, 16 / 255], "robust_acc": [0.4, 0.5]})
    gap = report.gap_to_original(pgd["attack"], ref).dropna()
    assert gap.to_dict() == {(1, 16 / 255): pytest.approx(0.06)}


def test_setup_tables_list_the_catalog_and_mark_what_ran():
    from prunerob import catalog

    ds = report.datasets_table({("mnist", "cnn")})
    assert list(ds.index) == list(catalog.DATASETS) and ds.loc["mnist", "in the book's results"] == "yes"
    assert ds.loc["cifar10", "in the book's results"] == "no" and ds.loc["mnist", "classes"] == 10
    attack, _ = _tables(_grid())
    prune = attack.drop_duplicates(["structure", "scope", "criterion"])
    original = pd.DataFrame([_method(*GM)])
    methods = report.methods_table(prune, attack.iloc[:0], original)
    assert len(methods) == len(catalog.STRUCTURES) * len(catalog.SCOPES) * len(catalog.CRITERIA)
    row = methods.loc[GM]
    assert (row["in the original"], row["pruned here"], row["attacked here"]) == ("yes", "mlp on mnist", "no")
    assert methods.loc[("kernel", "local", "random"), "pruned here"] == "no"
    attacks_t = report.attacks_table({"l2_ddn"})
    assert set(attacks_t.index) == set(catalog.ATTACKS) and attacks_t.loc["l2_ddn", "in the book's results"] == "yes"
    presets = report.presets_table()
    defaults = presets[presets["default"] == "yes"].index.get_level_values("attack")
    assert sorted(defaults) == sorted(catalog.ATTACKS)  # one default (the first preset) per attack
    stage = report.stage_defaults_table()
    assert {"data", "model", "train", "prune", "attack"} <= set(stage.index.get_level_values("part"))
    cover = report.attack_coverage_table(attack.assign(n=N))
    assert cover.loc[("mlp on mnist", "L2", "l2_ddn", "default"), "eps"] == "1, 2"
    assert cover.loc[("mlp on mnist", "L2", "l2_ddn", "default"), "crs"] == "1, 2, 4"
    assert report.attack_coverage_table(attack.iloc[:0]) is None


def _bench_record(checkpoint, default_acc, strongest_acc, seconds, sets=("default", "strongest", "original")):
    """A record of ``bench attacks`` per checkpoint (the new format): per set and norm seconds and
    robust accuracy at eps 0 and 2."""
    from prunerob import bench

    record = {"checkpoint": checkpoint, "n_samples": 1000, "throughput": {"ratio": 0.9, "batch_size": 500}}
    accs = {"default": default_acc, "strongest": strongest_acc, "original": strongest_acc}
    for s in sets:
        record[s] = {
            norm: {
                "attacks": [f"{norm.lower()}_x"],
                "presets": ["strong"],
                "seconds": seconds[s],
                "robust_acc": {"0.0": 1.0, "2.0": accs[s]},
                "median_distance": 1.0,
                "checks_passed": True,
            }
            for norm in ("Linf", "L2", "L0")
        }
    if "original" in sets:
        record["speedup"] = 3 * seconds["original"] / (3 * seconds["default"])
        record["no_weaker"] = {n: {"robust_acc": True, "median_distance": True} for n in ("Linf", "L2", "L0")}
    if "strongest" in sets:
        gap = bench.default_vs_strongest(record["default"]["L0"]["robust_acc"], record["strongest"]["L0"]["robust_acc"])
        record["default_vs_strongest"] = {n: gap for n in ("Linf", "L2", "L0")}
    record["load_before"], record["load_after"] = [0.5, 0.4, 0.3], [2.1, 1.0, 0.5]
    return record


def test_attack_bench_reads_records_per_checkpoint_with_the_strongest_set():
    blob = {
        "machine": {"cpu_count": 2, "cuda": None},
        "records": [
            _bench_record("dense.pt", 0.53, 0.52, {"default": 10.0, "strongest": 500.0, "original": 250.0}),
            _bench_record("cr16.pt", 0.60, 0.55, {"default": 20.0, "strongest": 600.0, "original": 300.0}),
            _bench_record("cr64.pt", 0.7, 0.7, {"default": 5.0, "strongest": 50.0}, sets=("default", "strongest")),
        ],
    }
    result = report.attack_bench(blob)
    numbers, table = result  # unpacked as the robustness chapter does
    assert numbers["bench-speedup"] == "25.0" and numbers["bench-default-s"] == "30" and numbers["bench-n"] == 1000
    assert list(table.index) == ["Linf", "L2", "L0"] and table.loc["L0", "seconds (original)"] == 250.0
    per = result.checkpoints
    assert list(per.index.get_level_values("checkpoint").unique()) == ["dense.pt", "cr16.pt", "cr64.pt"]
    assert len(per) == 9
    dense, cr16, cr64 = per.loc[("dense.pt", "L2")], per.loc[("cr16.pt", "L0")], per.loc[("cr64.pt", "Linf")]
    assert dense["largest excess over strongest"] == pytest.approx(0.01) and dense["within 1 point"]
    assert dense["at eps"] == 2.0 and dense["speedup"] == 25.0 and dense["speedup (norm)"] == 25.0
    assert cr16["largest excess over strongest"] == pytest.approx(0.05) and not cr16["within 1 point"]
    assert cr16["seconds (strongest)"] == 600.0 and cr16["load before"] == 0.5 and cr16["load after"] == 2.1
    assert np.isnan(cr64["speedup"]) and np.isnan(cr64["seconds (original)"]) and cr64["within 1 point"]
    assert report.attack_bench_checkpoints(blob).equals(per)
    # without any record of the original's set there is no chapter table, but the records still read
    only = {**blob, "records": blob["records"][2:]}
    with pytest.raises(ValueError, match="original"):
        report.attack_bench(only)
    assert len(report.attack_bench_checkpoints(only)) == 3


def test_attack_bench_reads_the_old_single_record_format_per_checkpoint_too():
    import json

    from prunerob import results

    blob = json.loads((results.ROOT / "benchmarks" / "attacks.json").read_text())
    per = report.attack_bench(blob).checkpoints
    assert list(per.index.get_level_values("norm")) == ["Linf", "L2", "L0"]
    assert per["speedup"].iloc[0] == blob["records"][0]["speedup"]
    assert per["largest excess over strongest"].isna().all() and per["seconds (strongest)"].isna().all()


def test_a_seed_that_missed_part_of_the_default_set_does_not_weaken_its_methods_line():
    # seed 0 faced l2_ddn and a stronger l2_fmn (half the distances); seed 1 l2_ddn only: the
    # method's line must not fall back to l2_ddn alone (the attacks both seeds faced)
    attack, samples = _tables({k: v for k, v in _grid().items() if k[0] == GM}, seeds=(0, 1))
    seed0_a, seed0_s = attack[attack["seed"] == 0], samples[samples["seed"] == 0]
    fmn_a = seed0_a.assign(attack="l2_fmn", robust_acc=0.0)  # 0.75 <= every budget but 0
    fmn_a.loc[fmn_a["eps"] == 0, "robust_acc"] = 1.0
    fmn_s = seed0_s.assign(attack="l2_fmn", distance=seed0_s["distance"] / 2)
    attack, samples = pd.concat([attack, fmn_a], ignore_index=True), pd.concat([samples, fmn_s], ignore_index=True)
    curves = report.method_robustness(attack, samples, MODEL)
    at_1 = curves[curves["eps"] == 1.0]
    assert (at_1["n_seeds"] == 1).all() and set(at_1["attacks"]) == {"l2_ddn+l2_fmn"}
    assert (at_1["robust_acc"] == 0.0).all()  # the stronger attack's result, not l2_ddn's 100 %
    assert report.left_out_seeds(attack, samples, MODEL) == {"global magnitude unstructured": [1]}
    # with the same attacks on both seeds, both seeds count
    both = report.method_robustness(attack[attack["attack"] == "l2_ddn"], samples[samples["attack"] == "l2_ddn"], MODEL)
    assert (both["n_seeds"] == 2).all()


def test_a_seed_that_faced_the_attacks_every_method_faced_counts_even_if_another_seed_faced_more():
    # global magnitude: seed 0 faced l2_ddn and l2_fmn, seed 1 l2_ddn; local random faced l2_ddn:
    # the default set (what every method faced) is l2_ddn, so both seeds of global magnitude count
    grid = {k: v for k, v in _grid().items() if k[0] in (GM, LR)}
    attack, samples = _tables(grid, seeds=(0, 1))
    extra = (attack["seed"] == 0) & (attack["structure"] == "unstructured") & (attack["scope"] == "global")
    extra_s = (samples["seed"] == 0) & (samples["scope"] == "global")
    attack = pd.concat([attack, attack[extra].assign(attack="l2_fmn")], ignore_index=True)
    samples = pd.concat([samples, samples[extra_s].assign(attack="l2_fmn")], ignore_index=True)
    curves = report.method_robustness(attack, samples, MODEL)
    gm = curves[curves["method"] == "global magnitude unstructured"]
    assert (gm["n_seeds"] == 2).all() and set(gm["attacks"]) == {"l2_ddn"}
    assert report.left_out_seeds(attack, samples, MODEL) == {}


def _two_trainings():
    gm = {k: v for k, v in _grid().items() if k[0] == GM}
    std_attack, std_samples = _tables(gm)
    weak = {k: (v if k[1] == 1 else np.r_[np.full(N // 2, 1.5), np.full(N - N // 2, 0.5)]) for k, v in gm.items()}
    pgd_attack, pgd_samples = (f.assign(training="pgd (eps 0.1)") for f in _tables(weak))
    attack = pd.concat([std_attack, pgd_attack], ignore_index=True).assign(n=N, violations=0)
    attack = attack.assign(stage_id=attack["training"] + attack["cr"].astype(str), all_checks_passed=True)
    samples = pd.concat([std_samples, pgd_samples], ignore_index=True)
    prune = attack.drop_duplicates(["training", "cr"]).assign(clean_acc=0.98)
    train = pd.DataFrame(
        {
            "training": ["standard", "pgd (eps 0.1)"],
            "arch": "mlp",
            "epochs": [10, 20],
            "seconds": [60.0, 300.0],
            "device": "cpu",
            "clean_acc": [0.99, 0.975],
        }
    )
    return attack, samples, prune, train


def test_the_trainings_section_charts_the_norms_both_trainings_faced_and_glues_the_prose():
    attack, samples, prune, train = _two_trainings()
    labels = {"standard": "standard training", "pgd (eps 0.1)": "PGD training (eps 0.1)"}
    model = {**MODEL, **_method(*GM)} | {"training": None}
    groups = {3: (attack, samples, prune, train)}
    section = report.trainings_section(groups, model, labels, "{norm}: two trainings", missing="nothing yet")
    compared = report.trainings_compared(groups, model, labels)
    values = section["values"]
    assert values["L2-text"] == compared["contrast"]["L2"][1] and values["clean-text"] == compared["clean"]
    assert values["Linf-text"] == values["L0-text"] == "nothing yet" and values["n"] == N
    assert section["figures"]["Linf"] is None and section["figures"]["L0"] is None
    chart = section["figures"]["L2"].to_dict()
    assert chart["title"] == "L2: two trainings"
    assert '"value": "1"' in str(chart).replace("'", '"')  # opens at the contrast's budget, L2 1
    health = report.attack_health(compare_rows(attack, dict(model, training="pgd (eps 0.1)")))
    assert (values["agree"], values["checks"], values["violations"]) == (
        health["agree"],
        health["checks"],
        health["violations"],
    )
    assert values["checks"] == "3 of 3"
    assert set(section["table"].columns.get_level_values(0)) == set(compared["worst"]["method"])


def compare_rows(frame, where):
    from prunerob import compare

    return compare.rows_of(frame, where)


def test_dense_training_says_how_long_where_and_how_well_or_that_it_is_missing():
    *_, train = _two_trainings()
    got = report.dense_training(train, "pgd (eps 0.1)", arch="mlp")
    assert got == {
        "epochs": "20 epochs",
        "device": "cpu",
        "text": "20 epochs in 5 minutes on cpu, to 97.50% clean test accuracy",
    }
    assert report.dense_training(train, "pgd (eps 0.1)", arch="cnn")["text"] == "(not trained yet)"
    assert report.dense_training(train.iloc[:0], "standard")["device"] == "n/a"


def test_stages_status_counts_the_stages_without_a_table(monkeypatch):
    from types import SimpleNamespace

    from prunerob import results

    stages = [SimpleNamespace(kind=k, id=f"{k}-{i}") for i, k in enumerate(("train", "prune", "attack", "attack"))]
    done = {"train-0", "prune-1"}
    monkeypatch.setattr(results, "stage_done", lambda table, sid: sid in done)
    text = report.stages_status(stages, "python -m prunerob sweep --only arch=resnet8")
    assert text.startswith("Of the 4 stages of these two models, 2 (attack) are not in the tables")
    assert "`python -m prunerob sweep --only arch=resnet8` runs them" in text
    done |= {"attack-2", "attack-3"}
    assert report.stages_status(stages, "x") == "All 4 stages of these two models have run."


def test_the_method_section_charts_every_attacked_norm_and_glues_its_sentence():
    attack, samples = _tables(_grid())
    attack = attack.assign(n=N)
    prune = pd.DataFrame(
        [
            {**MODEL, **_method(*k), "seed": 0, "schedule": "one-shot", "cr": c, "clean_acc": 0.98}
            for k in (GM, LR, FILTER)
            for c in (1, 2, 4)
        ]
    ).assign(kept=1.0, sparsity=0.0, n_kept=1, layers_removed=0, finetune_epochs=1, n_prunable=1)
    study = report.method_study(attack, samples, prune, pd.DataFrame(columns=["method", "cr", "norm"]), MODEL)
    section = report.method_section(study, "every method of mlp")
    assert section["values"]["coverage"] == study["coverage"]
    assert section["values"]["L2-text"] == study["norms"]["L2"]["sentence"]
    assert section["values"]["L0-text"] == "not measured in this profile" and section["figures"]["L0"] is None
    assert "L2: every method of mlp" in str(section["figures"]["L2"].to_dict())


def test_robustness_figures_say_what_is_missing_per_norm():
    attack, samples, prune = _headline_tables()
    rob = report.headline_robustness(
        attack, prune, samples, pd.DataFrame({"passed": [True]}), {**MODEL, **_method(*GM)}
    )
    shown = report.robustness_figures(rob, "cpu")
    assert shown["figures"]["Linf-cr"] == shown["figures"]["Linf-eps"] == "no Linf attack results in profile cpu"
    assert not isinstance(shown["figures"]["L2-cr"], str) and not isinstance(shown["figures"]["L2-eps"], str)
    assert shown["only"] == {"L2-eps": {"attack": "l2_ddn"}}


def test_two_models_section_and_one_model_chart_open_where_the_reference_is_nearest_half():
    from prunerob import compare

    attack, samples = _tables({k: v for k, v in _grid().items() if k[0] in (GM, LR)})
    models = {"A": {**MODEL, **_method(*GM)}, "B": {**MODEL, **_method(*LR)}}
    worst = compare.worst_case_by_model(attack.assign(n=N), samples, models)
    both = report.two_models_section(worst, "A", "B", "{norm}: A and B")
    assert both["values"]["L2-text"] == compare.norm_comparison(worst, "L2", "A", "B")[1]
    assert both["figures"]["Linf"] is None and both["values"]["Linf-text"] == "not measured in this profile"
    assert "L2: A and B" in str(both["figures"]["L2"].to_dict())
    assert report.one_model_chart(worst, "L0", "A", "t") is None
    assert report.one_model_chart(worst[worst["method"] == "A"], "L2", "A", "L2 of A") is not None


def test_convergence_strength_names_the_largest_shift_per_cr_and_where():
    def record(cr, moved, cut):
        got = {"attack": "l0_ensemble", "preset": "steps6000", "moved_points": moved, "distances_cut": cut}
        return {"cr": cr, "n_samples": 200, "norms": {"L0": got}}

    blob = {"records": [record(1, {"2.0": 0.0, "4.0": 0.5}, 0.04), record(64, {"2.0": 1.5, "4.0": 1.5}, 0.2),
                        record(16, {"2.0": 0.0, "4.0": 0.0}, 0.0)]}  # fmt: skip
    assert report.convergence_strength(blob, "L0") == (
        "on 200 test images per checkpoint, twice the steps of l0_ensemble (steps6000) moved its curve by at "
        "most 1.5 points at CR 64 (2 px; 20% of the distances cut); 0.0 points at CR 16 (0% of the distances "
        "cut); 0.5 points at CR 1 (4 px; 4% of the distances cut)"
    )
    assert report.convergence_strength(blob, "L2") == "not measured"


def test_search_gain_is_what_the_searches_without_gradients_take_off_the_l0_worst_case():
    """On a checkpoint where sigma-zero's ensemble found distances (2, 3, inf, 8) (robust iff d > eps)
    and the greedy search (1, 2, 2, inf): at 1 px the search breaks sample 0, at 2 px samples 1 and 2
    (sample 0 the ensemble broke too), at 4 and 8 px sample 2 (the ensemble broke 1 and, at 8, 3):
    the worst case is lower by a quarter, a half, a quarter, a quarter; a checkpoint without a
    search is left out."""
    common = {
        **MODEL,
        **_method("unstructured", "global", "magnitude"),
        "seed": 0,
        "norm": "L0",
        "scenario": "white-box",
        "source_cr": 0.0,
    }
    runs = {
        ("p", 16): {"l0_ensemble": [2, 3, np.inf, 8], "l0_greedy": [1, 2, 2, np.inf]},
        ("p", 64): {"l0_ensemble": [1, 1, 1, 1]},  # no search ran here
    }
    attack_rows, sample_rows = [], []
    for (prune_id, cr), by_attack in runs.items():
        for name, dist in by_attack.items():
            grid = (1.0, 2.0, 4.0) if name == "l0_greedy" else (1.0, 2.0, 4.0, 8.0)
            at = {**common, "prune_id": prune_id, "cr": cr, "attack": name, "preset": "default", "kind": "minimal"}
            attack_rows += [{**at, "eps": e, "robust_acc": float((np.asarray(dist) > e).mean())} for e in grid]
            sample_rows += [
                {**at, "eps": np.nan, "sample": i, "distance": d, "broken": np.nan} for i, d in enumerate(dist)
            ]
    gains = report.search_gain(pd.DataFrame(attack_rows), pd.DataFrame(sample_rows)).set_index("eps")
    assert gains["checkpoints"].tolist() == [1, 1, 1, 1]  # CR 16 only
    assert gains["gain"].to_dict() == pytest.approx({1.0: 0.25, 2.0: 0.5, 4.0: 0.25, 8.0: 0.25})
    assert gains.loc[2.0, "without"] == pytest.approx(0.75) and gains.loc[2.0, "with"] == pytest.approx(0.25)
    assert gains.loc[8.0, "without"] == pytest.approx(0.25) and gains.loc[8.0, "with"] == pytest.approx(0.0)
    assert gains.loc[2.0, "method"] == "global magnitude unstructured" and gains.loc[2.0, "cr"] == 16
    sentence = report.search_gain_sentence(gains.reset_index())
    assert "mlp by up to 50.0 points (global magnitude unstructured, CR 16, 2 px: 25.0 % robust with them" in sentence
    assert sentence.startswith("With the searches in the worst case, the L0 robust accuracy fell: mlp by")
    bb = report.search_gain_sentence(gains.reset_index(), "Brendel-Bethge", "it")
    assert bb.startswith("With Brendel-Bethge in the worst case") and "25.0 % robust with it, 75.0 % without" in bb
    assert (
        report.search_gain_sentence(gains.iloc[:0], "Brendel-Bethge") == "None of Brendel-Bethge ran on these tables."
    )
    table = report.search_gain_table(gains.reset_index())
    assert table.loc[("mlp", "standard", "8 px"), "largest drop (points)"] == "25.0"
    # without a search there is nothing to compare
    plain = pd.DataFrame(attack_rows)
    assert report.search_gain(plain[plain["attack"] != "l0_greedy"], pd.DataFrame(sample_rows)).empty


def test_dead_gradients_sets_the_zero_gradient_share_beside_fmn_and_apgd():
    def rows(sha, method, cr, fmn, apgd):
        base = {**MODEL, **method, "cr": cr, "checkpoint_sha": sha, "norm": "Linf"}
        out = [{**base, "attack": "linf_fmn", "eps": e, "robust_acc": a} for e, a in zip((8 / 255, 32 / 255), fmn)]
        out += [{**base, "attack": "linf_apgd", "eps": 8 / 255, "robust_acc": apgd[0]}]
        out += [{**base, "attack": "linf_apgd", "eps": 32 / 255, "robust_acc": apgd[1]}] if len(apgd) > 1 else []
        return out

    local, collapsed = _method("unstructured", "local", "magnitude"), _method("filter", "global", "random", True)
    attack = pd.DataFrame(
        rows("a", local, 64.0, (0.8, 0.6), (0.7, 0.1))  # 60 % dead: FMN 50 points behind at 32/255
        + rows("b", collapsed, 64.0, (0.12, 0.12), (0.12,))  # every correct image dead; APGD only at 8/255
        + rows("c", local, 2.0, (0.9, 0.5), (0.9, 0.4))  # 0.5 % dead: under the 1 % floor
    )
    records = [
        {**MODEL, **local, "cr": 64.0, "checkpoint_sha": "a", "correct": 500, "correct_zero_gradient": 300},
        {**MODEL, **collapsed, "cr": 64.0, "checkpoint_sha": "b", "correct": 120, "correct_zero_gradient": 120},
        {**MODEL, **local, "cr": 2.0, "checkpoint_sha": "c", "correct": 1000, "correct_zero_gradient": 5},
        {
            **MODEL,
            **local,
            "cr": 8.0,
            "checkpoint_sha": "gone",
            "correct": 10,
            "correct_zero_gradient": 10,
        },  # not in the tables
    ]
    dead = report.dead_gradients(attack, records)
    table = dead["table"]
    assert table["method"].tolist() == ["global random filter + dense neurons", "local magnitude unstructured"]
    assert table["zero gradient (of the correct images)"].tolist() == ["100.0 % (120 of 120)", "60.0 % (300 of 500)"]
    assert table["Linf budget"].tolist() == ["8/255", "32/255"]  # the largest budget both attacks ran
    assert table["FMN robust"].tolist() == ["12.0 %", "60.0 %"] and table["APGD robust"].tolist() == [
        "12.0 %",
        "10.0 %",
    ]
    assert dead["sentence"] == (
        "On 2 of the 3 checkpoints measured, 1 % or more of the correctly classified images have an exactly zero "
        "input gradient, most on the mlp on mnist, global random filter + dense neurons at CR 64: 100.0 % (120 of 120). "
        "FMN, which starts at the image, is left furthest behind on the local magnitude unstructured at CR 64 "
        "(60.0 % (300 of 500)): it counted 60.0 % robust at 32/255, APGD 10.0 %. Where every correct image has none "
        "(global random filter + dense neurons at CR 64), no attack that follows the gradient moves from any of them."
    )
    no_linf = report.dead_gradients(attack[attack["attack"] == "linf_fmn"], records)  # APGD did not run
    assert "FMN, which starts" not in no_linf["sentence"] and no_linf["table"]["APGD robust"].tolist() == ["\u2013"] * 2
    assert report.dead_gradients(attack.assign(checkpoint_sha="x"), records)["sentence"].startswith("No checkpoint")
    assert report.dead_gradients(attack, [])["table"].empty
    assert report.dead_gradients(attack, records[2:3])["sentence"].startswith("On none of the 1 checkpoint measured")
