"""The transfer view of the tables: white-box against transfer robust accuracy per CR."""

import pandas as pd
import pytest

from prunerob import transfer


def _run(stage, scenario, cr, source_cr, broken_by_eps):
    rows = []
    for eps, broken in broken_by_eps.items():
        for s, b in enumerate(broken):
            rows.append(
                {
                    "stage_id": stage,
                    "attack": "linf_apgd",
                    "norm": "Linf",
                    "scenario": scenario,
                    "cr": cr,
                    "source_cr": source_cr,
                    "eps": eps,
                    "sample": s,
                    "broken": b,
                }
            )
    return rows


def _samples():
    rows = []
    # white-box on the dense model and on CR 2 attacked 6 images, the transfer runs only 4
    rows += _run("w1", "white-box", 1.0, 1.0, {0.0: [0] * 6, 0.1: [1, 1, 0, 0, 0, 0]})
    rows += _run("w2", "white-box", 2.0, 2.0, {0.0: [0] * 6, 0.1: [1, 1, 1, 0, 0, 1]})
    rows += _run("t12", "transfer", 2.0, 1.0, {0.0: [0] * 4, 0.1: [1, 0, 0, 0]})  # dense -> CR 2
    rows += _run("t21", "transfer", 1.0, 2.0, {0.0: [0] * 4, 0.1: [1, 1, 1, 0]})  # CR 2 -> dense
    return pd.DataFrame(rows)


def test_curves_line_up_white_box_and_both_transfer_directions_on_common_images():
    c = transfer.curves(_samples(), "linf_apgd")
    at = c[c["eps"] == 0.1].set_index(["method", "cr"])["robust_acc"]
    L = transfer.LABELS
    assert set(c["n"]) == {4}  # only the images every run attacked
    assert at[(L["white"], 1.0)] == pytest.approx(0.5) and at[(L["white"], 2.0)] == pytest.approx(0.25)
    assert at[(L["from_dense"], 2.0)] == pytest.approx(0.75)  # the pruned model inherits 1 of 2
    assert at[(L["to_dense"], 2.0)] == pytest.approx(0.25)  # placed at the source's CR
    # at CR 1 both transfer views are the dense model's white-box run
    assert at[(L["from_dense"], 1.0)] == at[(L["to_dense"], 1.0)] == at[(L["white"], 1.0)]
    assert ((c["low"] <= c["robust_acc"]) & (c["robust_acc"] <= c["high"])).all()


def test_curves_of_an_attack_without_rows_are_empty_and_white_box_runs_alone_give_every_view():
    from prunerob import results

    assert transfer.curves(results.empty("samples"), "linf_apgd").empty  # no attack results yet
    white = _samples()
    white = white[white["stage_id"].isin(["w1", "w2"])]
    assert transfer.curves(white, "l2_apgd").empty
    c = transfer.curves(white, "linf_apgd")
    assert set(c["method"]) == set(transfer.LABELS.values())
    assert len(c[c["method"] == transfer.LABELS["from_dense"]]) == 2  # just the dense point per eps


def test_the_transfer_section_reads_the_largest_cr_and_says_how_many_seeds():
    from prunerob import report

    samples = _samples()
    attack = (
        samples.drop_duplicates(["stage_id"])
        .assign(n=[6, 6, 4, 4], violations=0, seed=0)[["stage_id", "scenario", "n", "violations", "seed"]]
        .reset_index(drop=True)
    )
    section = report.transfer_section(attack, samples, "full")
    values = section["values"]
    assert (values["n"], values["runs"], values["violations"]) == (4, 2, 0)
    assert values["Linf-text"] == (
        "at 25.5/255, the dense model keeps 50.0% of the images under its own attack; the CR 2 model keeps 25.0% "
        "under a white-box attack and 75.0% against examples crafted on the dense model, and the dense model keeps "
        "25.0% against examples crafted on the CR 2 model (one seed)"
    )
    assert section["figures"]["L2"] == "no L2 transfer results in profile full"
    assert values["L2-text"] == "not measured in this profile"
    assert not isinstance(section["figures"]["Linf"], str)
    empty = report.transfer_section(attack.iloc[:0], samples.iloc[:0], "full")
    assert empty["values"]["n"] == 0 and empty["figures"]["Linf"] == "no Linf transfer results in profile full"
