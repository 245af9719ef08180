"""The report layer on small frames whose answers are known by construction."""

import re

import numpy as np
import pandas as pd
import pytest

from prunerob import charts, report

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
            {**base, "cr": cr, "attack": "l0_ensemble", "check": "unbounded_breaks_all", "passed": cr == 1}
            for cr in (1, 4)
        ]
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

    from prunerob import sweep
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
    title = sweep.run_title(stage)
    assert title == "l2_ensemble (fast) on mlp / mnist, seed 0, local random filter + dense neurons, CR 4"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Attack stage: one attack\n\ntext")])
    assert sweep.set_run_title(nb, stage) and not sweep.set_run_title(nb, stage)
    heading, note, text = nb.cells[0].source.split("\n\n")
    assert heading == f"# {title} ({stage.id})" and text == "text"
    assert note.startswith(f"{sweep.RERUN_NOTE} `{sweep.rerun_command(stage)}`")


def test_a_runs_command_runs_that_very_stage_again():
    """The command on each run page, parsed as the CLI parses it, gives the same stage (its id)."""
    import shlex

    from prunerob import cli, sweep
    from prunerob.spec import stage_from_params

    stages = sweep.expand(sweep.load_profile("cpu"))
    for kind in ("train", "prune", "attack"):
        for stage in [s for s in stages if s.kind == kind][:40]:
            words = shlex.split(sweep.rerun_command(stage))
            assert words[:5] == [".venv/bin/python", "-m", "prunerob", "stage", kind]
            params = dict(cli._param(v) for flag, v in zip(words[5::2], words[6::2]) if flag == "-p")
            assert stage_from_params(kind, params).id == stage.id, sweep.rerun_command(stage)


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


def test_attack_bench_reads_the_committed_benchmark_per_norm():
    import json

    from prunerob import results

    blob = json.loads((results.ROOT / "benchmarks" / "attacks.json").read_text())
    numbers, table = report.attack_bench(blob)
    record = blob["records"][0]
    assert list(table.index) == ["Linf", "L2", "L0"]
    assert numbers["bench-default-s"] == f"{sum(v['seconds'] for v in record['default'].values()):.0f}"
    assert numbers["bench-n"] == record["n_samples"] and numbers["bench-speedup"] == f"{record['speedup']:.0f}"
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
    assert numbers["bench-speedup"] == "25" and numbers["bench-default-s"] == "30" and numbers["bench-n"] == 1000
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
