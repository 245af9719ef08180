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


def test_norm_comparison_reads_both_models_at_the_reference_models_middle_budget():
    worst = pd.DataFrame([
        dict(method=m, cr=cr, norm="Linf", eps=eps, robust_acc=acc)
        for m, table in {"CNN": {1: (0.9, 0.55, 0.1), 4: (0.9, 0.5, 0.2), 16: (0.9, 0.3, 0.0)},
                         "MLP": {1: (0.8, 0.4, 0.0), 4: (0.8, 0.6, 0.1)}}.items()
        for cr, accs in table.items() for eps, acc in zip((0.0, 8 / 255, 16 / 255), accs)])
    eps, text = compare.norm_comparison(worst, "Linf", "CNN", "MLP", ("CNN", "MLP"))
    assert eps == pytest.approx(8 / 255)  # the CNN's dense model is nearest 50 % there (55 %)
    # CR 16 has no MLP row: the text stops at CR 4, the largest CR both reach
    assert text == ("at Linf 8/255 the CNN keeps 55.0% of the images dense and 50.0% at CR 4; "
                    "the MLP 40.0% dense and 60.0% at CR 4 (its best CR: 4, 60.0%)")
    assert compare.norm_comparison(worst, "L2", "CNN", "MLP") is None
    assert compare.norm_comparison(worst[worst["method"] == "CNN"], "Linf", "CNN", "MLP") is None
