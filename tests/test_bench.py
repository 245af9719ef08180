"""Benchmarks run and record what they measured (speed goals live in their JSON, not in tests)."""

import json

import pytest

from prunerob import bench


def test_prune_bench_times_every_method_and_records_the_machine(tmp_path):
    records = bench.bench_prune("cnn", (1, 28, 28), crs=(1, 2, 4))
    assert len(records) == 12 * 2
    assert {(r["structure"], r["scope"], r["criterion"]) for r in records} == {
        (s, sc, c)
        for s in ("unstructured", "kernel", "filter")
        for sc in ("global", "local")
        for c in ("magnitude", "random")
    }
    assert all(r["compute_s"] > 0 and r["apply_s"] >= 0 for r in records)
    unstructured = [r for r in records if r["structure"] == "unstructured"]
    assert all(abs(r["kept"] - 1 / r["cr"]) <= 1 / r["n_prunable"] for r in unstructured)
    path = bench.write("prune_cnn", records, "test", tmp_path / "b.json")
    blob = json.loads(path.read_text())
    assert blob["machine"]["cpu_count"] >= 1 and blob["records"] == records
    assert "cr" in bench.summarize_prune(records) or "2" in bench.summarize_prune(records)


@pytest.mark.slow
def test_attack_bench_compares_sets_per_norm_and_measures_throughput(trained_cnn, mnist):
    from prunerob.spec import AttackSpec

    model = trained_cnn
    x, y = mnist.eval_subset(40)
    sets = {
        "default": {"L0": [AttackSpec(attack="l0_pgd_min", eps=(2, 8)), AttackSpec(attack="l0_pgd", eps=(2, 8))]},
        "original": {"L0": [AttackSpec(attack="l0_fmn", eps=(2, 8))]},
    }
    out = bench.bench_attacks(model, x, y, (1, 28, 28), batch_size=40, sets=sets)
    for name in sets:
        r = out[name]["L0"]
        acc = [r["robust_acc"][e] for e in (0.0, 2.0, 8.0)]
        assert acc == sorted(acc, reverse=True) and r["checks_passed"] and r["seconds"] > 0
        assert 2 * r["median_distance"] == int(2 * r["median_distance"]) and 0 <= r["median_distance"] <= 28 * 28
    assert out["speedup"] > 0 and set(out["no_weaker"]["L0"]) == {"robust_acc", "median_distance"}
    # the worst case of two attacks is never above either one alone
    assert out["default"]["L0"]["attacks"] == ["l0_pgd_min", "l0_pgd"]
    tp = bench.throughput(model, x, y, steps=5, repeats=1)
    assert tp["bare_images_per_s"] > 0 and 0 < tp["ratio"] < 10


@pytest.mark.slow
def test_attack_bench_alternates_rounds_and_keeps_each_norms_best_seconds(mnist, monkeypatch):
    """``rounds``: the sets run in turn (default, original, default, ...), seconds are each norm's best
    round.  The bookkeeping only: an untrained CNN, and each attack's result computed once."""
    import torch

    from prunerob import evaluate as ev
    from prunerob import stages
    from prunerob.spec import AttackSpec

    torch.manual_seed(0)
    model = stages.new_model("cnn", "mnist").eval()
    order, cache = [], {}
    real = ev.attack_curve

    def once(model, x, y, spec, shape):
        order.append(spec.attack)
        if spec.attack not in cache:
            cache[spec.attack] = real(model, x, y, spec, shape)
        return cache[spec.attack]

    monkeypatch.setattr(ev, "attack_curve", once)
    x, y = mnist.eval_subset(10)
    sets = {
        "default": {"L0": [AttackSpec(attack="l0_pgd_min", eps=(2, 8))]},
        "original": {"L0": [AttackSpec(attack="l0_fmn", preset="default", eps=(2, 8))]},
    }
    out = bench.bench_attacks(model, x, y, (1, 28, 28), batch_size=10, sets=sets, rounds=2)
    assert order == ["l0_pgd_min", "l0_fmn", "l0_pgd_min", "l0_fmn"]
    for name in sets:
        r = out[name]["L0"]
        assert len(r["seconds_rounds"]) == 2 and r["seconds"] == min(r["seconds_rounds"])
    assert out["rounds"] == 2 and out["speedup"] > 0


def test_default_attack_set_uses_the_ensembles():
    sets = bench.attack_sets()
    assert [s.attack for s in sets["default"]["L0"]] == ["l0_ensemble"]
    assert [s.attack for s in sets["default"]["L2"]] == ["l2_ensemble"]


def test_bench_sweep_projects_the_default_sets_cost_from_the_profiles_runs(monkeypatch, tmp_path):
    import nbformat
    import pandas as pd

    from prunerob import bench, sweep

    rows = []
    for i, (attack, preset, seconds) in enumerate(
        [
            ("linf_fmn", "strong", 30.0),
            ("l2_ensemble", "fast", 10.0),
            ("l0_ensemble", "default", 60.0),
            ("l0_pgd", "default", 40.0),
        ]
    ):
        for cr in (1.0, 2.0):
            sid = f"attack-{i}{int(cr)}"
            rows.append(
                {
                    "stage_id": sid,
                    "arch": "mlp",
                    "training": "standard",
                    "attack": attack,
                    "preset": preset,
                    "attack_output": "logits",
                    "cr": cr,
                    "stage_seconds": seconds * cr,
                    "code_version": "abc",
                }
            )
            (tmp_path / "attack").mkdir(exist_ok=True)
            nb = nbformat.v4.new_notebook(metadata={"papermill": {"duration": seconds * cr + 10}})
            nbformat.write(nb, str(tmp_path / "attack" / f"{sid}.ipynb"))
    monkeypatch.setattr(sweep, "profile_results", lambda table, profile=None, only=None: pd.DataFrame(rows))
    monkeypatch.setenv("PRUNEROB_RUNS", str(tmp_path))
    records = bench.bench_sweep("cpu", workers=2, grid_checkpoints=10)
    per_attack = {r["attack"]: r for r in records if "attack" in r}
    assert per_attack["l0_pgd"]["stage_seconds_median"] == 60.0 and not per_attack["l0_pgd"]["default_set"]
    assert per_attack["linf_fmn"]["papermill_seconds_median"] == 55.0
    (projection,) = [r for r in records if "projection" in r]
    # medians over CR 1 and 2 of the three default attacks' whole-stage seconds: 55 + 25 + 100 = 180
    assert projection["seconds_per_checkpoint_papermill"] == 180.0
    assert projection["projected_minutes"] == 180.0 * 10 / 2 / 60
