"""Chart builders give valid, interactive Vega-Lite specs that carry every row they are given."""

import pandas as pd

from prunerob import charts


def _prune_rows():
    rows = []
    for structure in ("unstructured", "filter"):
        for cr in (1, 2, 4):
            rows.append({"dataset": "mnist", "arch": "cnn", "structure": structure, "scope": "global",
                         "criterion": "magnitude", "prune_dense_neurons": False, "cr": float(cr),
                         "kept": 1 / cr, "n_kept": 100 // cr, "clean_acc": 0.99 - 0.01 * cr,
                         "sparsity": 1 - 1 / cr, "layers_removed": 0})
    return pd.DataFrame(rows)


def _attack_rows():
    rows = []
    for cr in (1, 2, 4):
        for eps in (0, 2 / 255, 8 / 255):
            rows.append({"cr": float(cr), "eps": eps, "norm": "Linf", "robust_acc": 0.9 - eps - 0.01 * cr,
                         "sparsity": 1 - 1 / cr, "n": 1000})
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
