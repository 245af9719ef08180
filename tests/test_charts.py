"""Chart builders give valid, interactive Vega-Lite specs that carry every row they are given."""

import pandas as pd
import pytest

from prunerob import charts


def _prune_rows():
    rows = []
    for structure in ("unstructured", "filter"):
        for cr in (1, 2, 4):
            rows.append(
                {
                    "dataset": "mnist",
                    "arch": "cnn",
                    "structure": structure,
                    "scope": "global",
                    "criterion": "magnitude",
                    "prune_dense_neurons": False,
                    "cr": float(cr),
                    "kept": 1 / cr,
                    "n_kept": 100 // cr,
                    "clean_acc": 0.99 - 0.01 * cr,
                    "sparsity": 1 - 1 / cr,
                    "layers_removed": 0,
                }
            )
    return pd.DataFrame(rows)


def _attack_rows():
    rows = []
    for cr in (1, 2, 4):
        for eps in (0, 2 / 255, 8 / 255):
            rows.append(
                {
                    "cr": float(cr),
                    "eps": eps,
                    "norm": "Linf",
                    "robust_acc": 0.9 - eps - 0.01 * cr,
                    "sparsity": 1 - 1 / cr,
                    "n": 1000,
                }
            )
    return pd.DataFrame(rows)


def _params(spec):
    return [p for p in spec.get("params", [])] + [p for layer in spec.get("layer", []) for p in layer.get("params", [])]


def test_robust_vs_cr_has_a_line_per_eps_and_clean_and_a_legend_selection():
    prune = _prune_rows()
    spec = charts.robust_vs_cr(_attack_rows(), prune[prune["structure"] == "unstructured"]).to_dict()
    values = next(iter(spec["datasets"].values()))
    series = {v["series"] for v in values}
    assert series == {"clean (full test set)", "eps = 2/255", "eps = 8/255"}
    assert len(values) == 3 * 3  # 3 CRs x (clean + 2 eps); eps 0 is the clean baseline of the samples
    assert any(p.get("select", {}).get("type") == "point" and p.get("bind") == "legend" for p in _params(spec))


def test_method_charts_carry_every_method():
    prune = _prune_rows()
    for chart in (charts.clean_vs_cr(prune), charts.kept_vs_cr(prune)):
        spec = chart.to_dict()
        methods = {v.get("method") for d in spec["datasets"].values() for v in d} - {None}
        assert methods == {"global magnitude unstructured", "global magnitude filter"}


def test_method_label_marks_dense_neuron_pruning():
    prune = _prune_rows().assign(prune_dense_neurons=[False] * 3 + [True] * 3)
    labels = charts.method_label(prune)
    assert labels.iloc[0] == "global magnitude unstructured"
    assert labels.iloc[-1] == "global magnitude filter + dense neurons"


def test_eps_labels():
    assert charts.eps_label(8 / 255, "Linf") == "8/255"
    assert charts.eps_label(0.5 / 255, "Linf") == "0.5/255"
    assert charts.eps_label(0.125 / 255, "Linf") == "0.125/255"
    assert charts.eps_label(1.5, "L2") == "1.5"


def test_acc_vs_eps_has_a_line_per_cr():
    curves = pd.DataFrame({"cr": [1.0, 1.0, 4.0, 4.0], "eps": [0.0, 1.0, 0.0, 1.0], "robust_acc": [0.9, 0.5, 0.9, 0.4]})
    spec = charts.acc_vs_eps(curves, "L2").to_dict()
    values = next(iter(spec["datasets"].values()))
    assert {v["CR"] for v in values} == {"CR 1", "CR 4"}


def _robust_rows():
    rows = []
    for cr in (1.0, 2.0, 4.0):
        for eps in (0.0, 0.5, 1.0):
            rows.append(
                {
                    "structure": "unstructured",
                    "scope": "global",
                    "criterion": "magnitude",
                    "prune_dense_neurons": False,
                    "cr": cr,
                    "eps": eps,
                    "norm": "L2",
                    "robust_acc": 0.9 - eps / 2 - cr / 100,
                    "low": 0.1,
                    "high": 0.95,
                }
            )
    return pd.DataFrame(rows)


def _bound_params(spec):
    found = list(spec.get("params", []))
    for key in ("layer", "vconcat", "hconcat"):
        for sub in spec.get(key, []):
            found += _bound_params(sub)
    return found


def test_robust_vs_cr_by_eps_has_an_eps_dropdown_and_a_legend_selection():
    spec = charts.robust_vs_cr_by_eps(
        _robust_rows(), _prune_rows()[lambda f: f["structure"] == "unstructured"], initial_eps="1"
    ).to_dict()
    params = _bound_params(spec)
    picker = next(p for p in params if p["name"] == "eps_pick")
    assert picker["bind"]["input"] == "select" and picker["bind"]["options"] == ["0.5", "1"]
    assert picker["value"] == "1"
    assert any(p.get("bind") == "legend" for p in params)
    values = [v for d in spec["datasets"].values() for v in d]
    assert {v.get("epsilon") for v in values} - {None} == {"0.5", "1"}  # eps 0 left out


def test_scenario_chart_has_an_eps_dropdown_and_a_line_per_cr():
    from prunerob import scenarios

    lines = _robust_rows().assign(clean=0.99).rename(columns={"robust_acc": "robust"})
    acc = scenarios.accuracy_over_p(lines[lines["eps"] > 0], ps=[0, 0.5, 1])
    spec = charts.scenario_lines_chart(acc).to_dict()
    assert any(p["name"] == "eps_pick" and "bind" in p for p in _bound_params(spec))
    values = [v for d in spec["datasets"].values() for v in d]
    assert {v["CR"] for v in values} == {"CR 1", "CR 2", "CR 4"}
    dense = [v for v in values if v["CR"] == "CR 1"]
    assert all(v["gain"] == pytest.approx(0) for v in dense)


def test_difference_chart_has_an_eps_dropdown():
    diffs = pd.DataFrame(
        {
            "structure": "unstructured",
            "scope": "global",
            "criterion": "magnitude",
            "prune_dense_neurons": False,
            "cr": [2.0, 4.0],
            "eps": [0.5, 0.5],
            "norm": "L2",
            "dense": 0.5,
            "pruned": [0.6, 0.4],
            "diff": [0.1, -0.1],
            "low": [0.05, -0.15],
            "high": [0.15, -0.05],
            "verdict": ["more robust", "less robust"],
        }
    )
    spec = charts.difference_vs_cr(diffs).to_dict()
    assert any(p["name"] == "eps_pick" for p in _bound_params(spec))


def _headline_rows():
    """The standard CNN (two methods), the PGD-trained CNN and the MLP, one row each per CR."""
    rows = []
    for arch, training, structure in (
        ("cnn", "standard", "unstructured"),
        ("cnn", "standard", "filter"),
        ("cnn", "pgd (eps 0.1)", "unstructured"),
        ("mlp", "standard", "unstructured"),
    ):
        for cr in (1.0, 2.0):
            rows.append(
                {
                    "dataset": "mnist",
                    "arch": arch,
                    "training": training,
                    "structure": structure,
                    "scope": "global",
                    "criterion": "magnitude",
                    "cr": cr,
                }
            )
    return pd.DataFrame(rows)


def test_pick_selects_the_standard_cnn_not_its_pgd_trained_twin():
    picked = charts.pick(_headline_rows())
    assert len(picked) == 2
    assert set(picked["training"]) == {"standard"} and set(picked["arch"]) == {"cnn"}
    assert set(picked["structure"]) == {"unstructured"}
    pgd = charts.pick(_headline_rows(), training="pgd (eps 0.1)")
    assert len(pgd) == 2 and set(pgd["training"]) == {"pgd (eps 0.1)"}


def test_pick_none_drops_a_key():
    every_method = charts.pick(_headline_rows(), structure=None, scope=None, criterion=None)
    assert set(every_method["structure"]) == {"unstructured", "filter"}
    assert set(every_method["training"]) == {"standard"} and set(every_method["arch"]) == {"cnn"}
    both_trainings = charts.pick(_headline_rows(), training=None)
    assert set(both_trainings["training"]) == {"standard", "pgd (eps 0.1)"}
    assert set(both_trainings["arch"]) == {"cnn"}


def test_pick_returns_an_empty_frame_unchanged_and_names_a_missing_column():
    empty = pd.DataFrame()
    assert charts.pick(empty) is empty
    without_training = _headline_rows().drop(columns="training")
    with pytest.raises(KeyError, match="training"):
        charts.pick(without_training)
    assert len(charts.pick(without_training, training=None)) == 4  # both CNN trainings: nothing tells them apart


def test_model_label_tells_trainings_apart():
    labels = set(charts.model_label(_headline_rows()))
    assert labels == {"cnn on mnist", "cnn on mnist, PGD training (eps 0.1)", "mlp on mnist"}


def test_middle_eps_is_where_the_dense_model_is_nearest_half_robust():
    rows = pd.DataFrame(
        {
            "cr": [1.0] * 4 + [4.0] * 4,
            "eps": [0.0, 0.1, 0.2, 0.3] * 2,
            "robust_acc": [0.99, 0.8, 0.45, 0.1, 0.99, 0.52, 0.2, 0.0],
        }
    )
    assert charts.middle_eps(rows) == 0.2  # the dense model's, not CR 4's (0.52 at 0.1)
    # without the dense model: nearest 50 % over every row
    assert charts.middle_eps(rows[rows["cr"] == 4]) == 0.1
    # another column, e.g. the dense robust accuracy beside each pruned model's
    spots = pd.DataFrame({"cr": [2.0, 2.0], "eps": [0.1, 0.2], "dense": [0.7, 0.4]})
    assert charts.middle_eps(spots, "dense") == 0.2


def test_clean_accuracy_by_structure_has_a_panel_per_structure_and_few_lines_each():
    prune = _prune_rows().assign(kept=0.5)
    spec = charts.clean_by_structure(prune, "t").to_dict()
    assert [p["title"] for p in spec["hconcat"]] == ["unstructured", "filter"]
    methods = {v.get("method") for d in spec["datasets"].values() for v in d} - {None}
    assert methods == {"global magnitude unstructured", "global magnitude filter"}
