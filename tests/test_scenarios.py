"""Scenarios and sweet spots on constructed tables, where the right answer is known."""

import numpy as np
import pandas as pd
import pytest

from prunerob import aggregate, scenarios

META = {
    "dataset": "mnist",
    "arch": "cnn",
    "seed": 0,
    "training": "standard",
    "structure": "unstructured",
    "scope": "global",
    "criterion": "magnitude",
    "schedule": "cumulative",
    "prune_dense_neurons": False,
}


def _lines(clean, robust):
    return pd.DataFrame(
        {
            "norm": "Linf",
            "eps": 0.1,
            "cr": [float(c) for c in range(1, len(clean) + 1)],
            "clean": clean,
            "robust": robust,
        }
    )


def test_best_ranges_is_the_upper_envelope():
    # CR 1: most accurate when clean; CR 2: most robust; CR 3: never best
    lines = _lines([0.99, 0.95, 0.90], [0.10, 0.50, 0.20])
    best = scenarios.best_ranges(lines, ["norm", "eps"])
    assert list(best["candidate"]) == [1.0, 2.0]
    # they cross where 0.99 - 0.89 p = 0.95 - 0.45 p, at p = 0.04 / 0.44
    assert best["p_from"].iloc[0] == 0 and best["p_to"].iloc[-1] == 1
    assert best["p_to"].iloc[0] == pytest.approx(0.04 / 0.44) == best["p_from"].iloc[1]
    assert best["acc_from"].iloc[0] == pytest.approx(0.99) and best["acc_to"].iloc[1] == pytest.approx(0.50)


def test_best_ranges_ties_go_to_the_higher_cr_and_a_dominant_line_wins_everywhere():
    best = scenarios.best_ranges(_lines([0.9, 0.9], [0.5, 0.5]), ["norm", "eps"])
    assert list(best["candidate"]) == [2.0] and (best["p_from"].iloc[0], best["p_to"].iloc[0]) == (0, 1)
    best = scenarios.best_ranges(_lines([0.9, 0.95, 0.8], [0.5, 0.6, 0.1]), ["norm", "eps"])
    assert list(best["candidate"]) == [2.0]


def test_best_ranges_three_segments():
    # clean leader, a middle compromise, a robust leader
    best = scenarios.best_ranges(_lines([0.99, 0.97, 0.80], [0.0, 0.5, 0.7]), ["norm", "eps"])
    assert list(best["candidate"]) == [1.0, 2.0, 3.0]
    assert np.all(np.diff(best["p_from"]) > 0)


def test_accuracy_over_p_is_the_mixture():
    acc = scenarios.accuracy_over_p(_lines([0.9], [0.3]), ps=[0, 0.5, 1])
    assert list(acc["acc"]) == pytest.approx([0.9, 0.6, 0.3])


def _samples(robust_by_cr, seeds=(0,), attack="linf_fmn", eps=0.1):
    """Minimal-attack sample rows: distance 1 (robust at eps 0.1) or 0.05 (broken)."""
    rows = []
    for seed in seeds:
        for cr, flags in robust_by_cr.items():
            for i, robust in enumerate(flags):
                rows.append(
                    {
                        **META,
                        "seed": seed,
                        "prune_id": f"p{seed}",
                        "stage_id": f"a{seed}-{cr}",
                        "cr": float(cr),
                        "attack": attack,
                        "norm": "Linf",
                        "kind": "minimal",
                        "eps": np.nan,
                        "scenario": "white-box",
                        "source_cr": float(cr),
                        "sample": i,
                        "distance": 1.0 if robust else 0.05,
                    }
                )
    return pd.DataFrame(rows)


def test_worst_case_samples_agrees_with_aggregate_worst_case():
    rng = np.random.default_rng(0)
    samples = pd.concat(
        [_samples({1: rng.random(50) < 0.7, 2: rng.random(50) < 0.6}, attack=a) for a in ("linf_fmn", "linf_other")],
        ignore_index=True,
    )
    grid = {"Linf": [0.0, 0.1]}
    per_sample = scenarios.worst_case_samples(samples, grid)
    mine = per_sample.groupby(["cr", "eps"])["robust"].mean()
    theirs = aggregate.worst_case(samples, grid).set_index(["cr", "eps"])["robust_acc"]
    assert mine.to_dict() == pytest.approx(theirs.to_dict())
    assert set(per_sample.columns) >= {"seed", "structure", "scope", "criterion", "sample", "robust"}


def test_sweet_spots_flags_only_clear_differences():
    n = 1000
    rng = np.random.default_rng(3)
    dense = rng.random(n) < 0.5
    samples = _samples({1: dense, 2: dense | (rng.random(n) < 0.2), 4: dense & (rng.random(n) < 0.6), 8: dense.copy()})
    per_sample = scenarios.worst_case_samples(samples, {"Linf": [0.0, 0.1]})
    spots = scenarios.sweet_spots(per_sample, n_boot=500).set_index("cr")
    assert spots.loc[2.0, "verdict"] == "more robust" and spots.loc[2.0, "low"] > 0
    assert spots.loc[4.0, "verdict"] == "less robust" and spots.loc[4.0, "high"] < 0
    assert spots.loc[8.0, "verdict"] == "no clear difference" and spots.loc[8.0, "diff"] == 0
    assert (spots["n_seeds"] == 1).all() and (spots["n"] == n).all()


def test_sweet_spots_pairs_each_seed_with_its_own_dense_model():
    # seed 0: CR 2 better than its dense model; seed 1: worse by as much -> no clear difference
    n = 400
    ones, zeros = np.ones(n, bool), np.zeros(n, bool)
    per_sample = pd.concat(
        [
            scenarios.worst_case_samples(_samples({1: zeros, 2: ones}, seeds=(0,)), {"Linf": [0.1]}),
            scenarios.worst_case_samples(_samples({1: ones, 2: zeros}, seeds=(1,)), {"Linf": [0.1]}),
        ],
        ignore_index=True,
    )
    spot = scenarios.sweet_spots(per_sample, n_boot=300).iloc[0]
    assert spot["n_seeds"] == 2 and spot["diff"] == 0 and spot["verdict"] == "no clear difference"
    ci = scenarios.robust_with_ci(per_sample)
    assert set(ci["n_seeds"]) == {2} and ((ci["low"] <= ci["robust_acc"]) & (ci["robust_acc"] <= ci["high"])).all()


def test_scenario_lines_take_clean_accuracy_from_the_attacked_images():
    # the full test set reads 0.99, but 2 of the 4 attacked images are misclassified: acc(p) must mix
    # numbers measured on one set of images
    prune = pd.DataFrame([{**META, "stage_id": "prune-a", "cr": 1.0, "clean_acc": 0.99}])
    worst = pd.DataFrame({"prune_id": "prune-a", "cr": 1.0, "norm": "L2", "eps": [0.5, 1.0], "robust_acc": [0.5, 0.25]})
    samples = pd.DataFrame(
        {
            "prune_id": "prune-a",
            "cr": 1.0,
            "norm": "L2",
            # two attacks on the same four images: each image counts once
            "sample": [0, 1, 2, 3] * 2,
            "label": [1, 2, 3, 4] * 2,
            "clean_pred": [1, 2, 0, 0] * 2,
        }
    )
    lines = scenarios.scenario_lines(worst, prune, samples)
    assert lines["clean"].tolist() == [0.5, 0.5] and lines["clean_full"].tolist() == [0.99, 0.99]
    assert lines["robust"].tolist() == [0.5, 0.25]
    assert scenarios.scenario_lines(worst, prune)["clean"].tolist() == [0.99, 0.99]
