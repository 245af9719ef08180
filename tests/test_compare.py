"""Comparing models on the attacks they all faced."""

import pandas as pd
import pytest

from prunerob import compare

MODEL = dict(dataset="mnist", arch="cnn", structure="unstructured", scope="global", criterion="magnitude")


def _tables(training, runs, robust_by_run, n=100):
    """Attack and samples rows of one fixed attack run per name at eps 0.1 (CR 1): the first
    ``robust_by_run[run]`` samples are robust."""
    attack, samples = [], []
    for (name, preset) in runs:
        k = robust_by_run[name]
        common = dict(MODEL, training=training, prune_id=f"prune-{training}", stage_id=f"{training}-{name}",
                      cr=1.0, attack=name, preset=preset, norm="Linf", kind="fixed", scenario="white-box",
                      source_cr=1.0)
        attack.append(dict(common, eps=0.1, robust_acc=k / n, n=n))
        for i in range(n):
            samples.append(dict(common, eps=0.1, sample=i, label=0, clean_pred=0, adv_pred=0 if i < k else 1,
                                success=i >= k, broken=i >= k, valid=True,
                                distance=0.1 if i >= k else float("nan")))
    return pd.DataFrame(attack), pd.DataFrame(samples)


def test_models_compare_on_the_attacks_they_all_faced():
    a1, s1 = _tables("standard", [("linf_apgd", "default"), ("linf_pgd", "original")], {"linf_apgd": 60, "linf_pgd": 40})
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
