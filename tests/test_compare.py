"""Comparing models on the attacks they all faced."""

import numpy as np
import pandas as pd
import pytest

from prunerob import aggregate, compare, stats

MODEL = dict(dataset="mnist", arch="cnn", structure="unstructured", scope="global", criterion="magnitude")


def _tables(training, runs, robust_by_run, n=100, seed=0):
    """Attack and samples rows of one fixed attack run per name at eps 0.1 (CR 1) of one seed: the
    first ``robust_by_run[run]`` samples are robust."""
    attack, samples = [], []
    for name, preset in runs:
        k = robust_by_run[name]
        common = dict(
            MODEL,
            training=training,
            seed=seed,
            prune_id=f"prune-{training}-{seed}",
            stage_id=f"{training}-{seed}-{name}",
            cr=1.0,
            attack=name,
            preset=preset,
            norm="Linf",
            kind="fixed",
            scenario="white-box",
            source_cr=1.0,
        )
        attack.append(dict(common, eps=0.1, robust_acc=k / n, n=n))
        for i in range(n):
            samples.append(
                dict(
                    common,
                    eps=0.1,
                    sample=i,
                    label=0,
                    clean_pred=0,
                    adv_pred=0 if i < k else 1,
                    success=i >= k,
                    broken=i >= k,
                    valid=True,
                    distance=0.1 if i >= k else float("nan"),
                )
            )
    return pd.DataFrame(attack), pd.DataFrame(samples)


def test_models_compare_on_the_attacks_they_all_faced():
    a1, s1 = _tables(
        "standard", [("linf_apgd", "default"), ("linf_pgd", "original")], {"linf_apgd": 60, "linf_pgd": 40}
    )
    a2, s2 = _tables("pgd", [("linf_apgd", "default")], {"linf_apgd": 90})
    models = {"standard": dict(MODEL, training="standard"), "PGD": dict(MODEL, training="pgd")}
    worst = compare.worst_case_by_model(pd.concat([a1, a2]), pd.concat([s1, s2]), models)
    at = worst.set_index("method")["robust_acc"]
    # the standard model's extra (stronger here) linf_pgd run is left out: both face APGD only
    assert at["standard"] == pytest.approx(0.6) and at["PGD"] == pytest.approx(0.9)
    assert (worst["low"] < worst["robust_acc"]).all() and (worst["high"] > worst["robust_acc"]).all()
    assert set(worst["attacks"]) == {"linf_apgd"}
    eps, table = compare.summary_at(worst, "Linf", "standard")
    assert eps == 0.1 and table.loc[1.0, "PGD"] == pytest.approx(0.9)


def test_a_model_without_attacks_gives_an_empty_comparison():
    a1, s1 = _tables("standard", [("linf_apgd", "default")], {"linf_apgd": 60})
    models = {"standard": dict(MODEL, training="standard"), "PGD": dict(MODEL, training="pgd")}
    assert compare.worst_case_by_model(a1, s1, models).empty


def test_rows_of_names_a_missing_column():
    with pytest.raises(KeyError, match="no column training"):
        compare.rows_of(pd.DataFrame({"arch": ["cnn"]}), {"training": "pgd"})
    assert compare.rows_of(pd.DataFrame(), {"training": "pgd"}).empty


def test_norm_comparison_reads_both_models_at_the_reference_models_middle_budget():
    worst = pd.DataFrame(
        [
            dict(method=m, cr=cr, norm="Linf", eps=eps, robust_acc=acc)
            for m, table in {
                "CNN": {1: (0.9, 0.55, 0.1), 4: (0.9, 0.5, 0.2), 16: (0.9, 0.3, 0.0)},
                "MLP": {1: (0.8, 0.4, 0.0), 4: (0.8, 0.6, 0.1)},
            }.items()
            for cr, accs in table.items()
            for eps, acc in zip((0.0, 8 / 255, 16 / 255), accs)
        ]
    )
    eps, text = compare.norm_comparison(worst, "Linf", "CNN", "MLP", ("CNN", "MLP"))
    assert eps == pytest.approx(8 / 255)  # the CNN's dense model is nearest 50 % there (55 %)
    # CR 16 has no MLP row: the text stops at CR 4, the largest CR both reach
    assert text == (
        "at Linf 8/255 the CNN keeps 55.0% of the images dense and 50.0% at CR 4; "
        "the MLP 40.0% dense and 60.0% at CR 4 (its best CR: 4, 60.0%)"
    )
    assert compare.norm_comparison(worst, "L2", "CNN", "MLP") is None
    assert compare.norm_comparison(worst[worst["method"] == "CNN"], "Linf", "CNN", "MLP") is None
    # a third model with fewer CRs in the same frame does not cut the two models' comparison
    third = worst[(worst["method"] == "MLP") & (worst["cr"] == 1)].assign(method="MLP, short schedule")
    both_to_16 = pd.concat([worst, worst[(worst["method"] == "MLP") & (worst["cr"] == 4)].assign(cr=16), third])
    _, text = compare.norm_comparison(both_to_16, "Linf", "CNN", "MLP", ("CNN", "MLP"))
    assert "30.0% at CR 16" in text and "60.0% at CR 16" in text


def test_seeds_average_on_the_attacks_every_seed_faced_with_a_band_that_holds_their_spread():
    # seed 0 also ran linf_pgd (stronger here: 40 robust); seeds 1, 2 ran APGD only
    a0, s0 = _tables(
        "standard", [("linf_apgd", "default"), ("linf_pgd", "original")], {"linf_apgd": 60, "linf_pgd": 40}
    )
    a1, s1 = _tables("standard", [("linf_apgd", "default")], {"linf_apgd": 70}, seed=1)
    a2, s2 = _tables("standard", [("linf_apgd", "default")], {"linf_apgd": 80}, seed=2)
    attack, samples = pd.concat([a0, a1, a2]), pd.concat([s0, s1, s2])
    models = {"CNN": dict(MODEL, training="standard")}
    per_seed = compare.worst_case_per_seed(attack, samples, models).set_index("seed")
    assert per_seed["robust_acc"].to_dict() == pytest.approx({0: 0.6, 1: 0.7, 2: 0.8})  # not seed 0's 0.4
    row = compare.worst_case_by_model(attack, samples, models).iloc[0]
    assert row["robust_acc"] == pytest.approx(0.7) and row["n_seeds"] == 3 and row["n"] == 100
    assert row["attacks"] == "linf_apgd"
    # the band is wider than the seeds' t-interval alone and than the images' Wilson interval alone
    half_t = 4.302653 * 0.1 / np.sqrt(3)
    w_low, w_high = stats.wilson_interval(70, 100)
    assert row["low"] < min(0.7 - half_t, w_low) and row["high"] > max(0.7 + half_t, w_high)
    assert row["high"] - row["robust_acc"] == pytest.approx(np.hypot(half_t, w_high - 0.7))
    # one seed: exactly the Wilson interval
    one = compare.worst_case_by_model(a1, s1, models).iloc[0]
    assert (one["low"], one["high"]) == pytest.approx(stats.wilson_interval(70, 100))


def test_seed_band_validates_and_collapses_without_noise():
    low, high = stats.seed_band([0.5, 0.5], [0.0, 0.2], [3, 1], None)
    assert low[0] == high[0] == 0.5  # three equal seeds, no image noise: nothing to draw
    assert low[1] == high[1] == 0.5  # one seed: its spread is unknown, and no images given
    with pytest.raises(ValueError, match="n_seeds"):
        stats.seed_band([0.5], [0.1], [0], 100)


def test_prune_over_seeds_averages_each_method_and_cr():
    rows = [
        dict(
            dataset="mnist",
            arch="cnn",
            training="standard",
            structure="unstructured",
            scope="global",
            criterion=crit,
            schedule="cumulative",
            prune_dense_neurons=False,
            seed=seed,
            cr=cr,
            clean_acc=acc,
            kept=1 / cr,
            sparsity=1 - 1 / cr,
            n_kept=100 / cr,
            layers_removed=0,
            finetune_epochs=3,
            n_prunable=100,
        )
        for crit, accs in {"magnitude": {0: 0.98, 1: 0.97, 2: 0.99}, "random": {0: 0.5}}.items()
        for seed, acc in accs.items()
        for cr in (1, 4)
    ]
    out = compare.prune_over_seeds(pd.DataFrame(rows)).set_index(["criterion", "cr"])
    assert len(out) == 4 and out.loc[("magnitude", 4), "clean_acc"] == pytest.approx(0.98)
    assert out.loc[("magnitude", 4), "n_seeds"] == 3 and out.loc[("random", 1), "n_seeds"] == 1
    assert out.loc[("magnitude", 4), "low"] < 0.98 < out.loc[("magnitude", 4), "high"]
    assert out.loc[("random", 1), "low"] == out.loc[("random", 1), "high"] == 0.5
    assert out.loc[("magnitude", 4), "kept"] == 0.25


def test_common_runs_only_limits_each_models_seeds_to_their_shared_runs():
    a0, s0 = _tables(
        "standard", [("linf_apgd", "default"), ("linf_pgd", "original")], {"linf_apgd": 60, "linf_pgd": 40}
    )
    a1, s1 = _tables("standard", [("linf_apgd", "default")], {"linf_apgd": 70}, seed=1)
    b0, t0 = _tables("pgd", [("linf_apgd", "default"), ("linf_pgd", "original")], {"linf_apgd": 90, "linf_pgd": 85})
    samples, attack = aggregate.common_runs_only(
        pd.concat([s0, s1, t0]), pd.concat([a0, a1, b0]), ["dataset", "arch", "training"]
    )
    # the standard model's seeds share APGD only; the PGD model (one seed) keeps both of its runs
    assert sorted(attack[attack["training"] == "standard"]["attack"]) == ["linf_apgd", "linf_apgd"]
    assert sorted(attack[attack["training"] == "pgd"]["attack"]) == ["linf_apgd", "linf_pgd"]
    assert len(samples) == 4 * 100
