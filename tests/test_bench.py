"""Benchmarks run and record what they measured (speed goals live in their JSON, not in tests)."""

import json
from collections import Counter

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


def test_memory_format_bench_times_both_formats_per_architecture(tmp_path, capsys):
    from prunerob import cli

    records = bench.bench_memory_format(["cnn", "resnet8"], n=8, steps=2, rounds=1)
    assert [(r["arch"], r["dataset"]) for r in records] == [("cnn", "mnist"), ("resnet8", "fashion_mnist")]
    for r in records:
        for what in ("bare", "sigma_zero"):
            for fmt in ("contiguous", "channels_last"):
                assert r[f"{what}_s_per_step_{fmt}"] > 0
            assert r[f"speedup_{what}"] == r[f"{what}_s_per_step_contiguous"] / r[f"{what}_s_per_step_channels_last"]
        assert r["max_abs_logit_difference"] < 1e-4  # one model in two layouts
    out = tmp_path / "m.json"
    assert cli.main(["bench", "memory-format", "--arch", "cnn,mlp", "--out", str(out)]) == 2  # mlp: no such choice
    assert (
        "--arch='mlp' is not an architecture with convolutions; valid: cnn, cnn_original, resnet8, vgg11"
        in capsys.readouterr().err
    )
    assert not out.exists()


def test_batch_bench_gives_the_per_image_cost_of_each_batch_size(tmp_path, capsys):
    from prunerob import cli

    records = bench.bench_batch(["mlp", "cnn"], sizes=(8, 4), steps=2, rounds=1)
    assert [(r["arch"], r["dataset"]) for r in records] == [("mlp", "mnist"), ("cnn", "mnist")]
    for r in records:
        assert list(r["s_per_image_step"]) == ["4", "8"] and min(r["s_per_image_step"].values()) > 0
        assert r["relative_to_largest"]["8"] == 1.0
        assert r["relative_to_largest"]["4"] == r["s_per_image_step"]["4"] / r["s_per_image_step"]["8"]
    out = tmp_path / "b.json"
    assert cli.main(["bench", "batch", "--arch", "cnn,lenet", "--out", str(out)]) == 2
    assert (
        "--arch='lenet' is not an architecture of the study; valid: mlp, cnn, cnn_original, resnet8, vgg11"
        in capsys.readouterr().err
    )
    assert not out.exists()


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

    def once(model, x, y, spec, shape, **kw):
        assert kw == {"convergence": False}  # a benchmark times the attack alone
        order.append(spec.attack)
        if spec.attack not in cache:
            cache[spec.attack] = real(model, x, y, spec, shape, **kw)
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


def test_default_attack_set_uses_the_ensembles_apgd_and_the_l0_searches_at_presets_the_catalog_has():
    from prunerob import catalog

    sets = bench.attack_sets()
    assert [(s.attack, s.preset) for s in sets["default"]["L0"]] == [
        ("l0_ensemble", "steps6000"),
        ("l0_onepixel", "default"),
        ("l0_greedy", "default"),
        ("l0_bb", "original"),
    ]
    assert [(s.attack, s.preset) for s in sets["default"]["L2"]] == [("l2_ensemble", "default"), ("l2_apgd", "strong")]
    assert [(s.attack, s.preset) for s in sets["default"]["Linf"]] == [("linf_fmn", "strong"), ("linf_apgd", "strong")]
    # the searches run at the budgets they search: the one-pixel search at 1 px, the greedy one up to 4
    l0 = {s.attack: s.eps for s in sets["default"]["L0"]}
    assert l0["l0_onepixel"] == (1,) and l0["l0_greedy"] == (1, 2, 4) and l0["l0_ensemble"] == bench.L0_EPS
    for norm, specs in sets["default"].items():
        for s in specs:
            assert catalog.attack(s.attack).norm == norm and s.preset in catalog.attack(s.attack).presets


def test_the_recomputed_units_of_the_cpu_profile_face_the_default_set_on_every_pruned_checkpoint():
    """The units recomputed since the default set changed (README: the recompute status) run every
    attack of ``bench.DEFAULT_SET`` at its preset on every CR they prune to."""
    from prunerob import profiles

    stages = [s for s in profiles.expand(profiles.load_profile("cpu")) if s.kind == "attack"]
    wanted = {pair for pairs in bench.DEFAULT_SET.values() for pair in pairs}
    # the original's CNN: global and local magnitude unstructured; the MLP: its 8 methods; the CNN
    # (seed 0, the one seed the profile has until seeds 1 and 2 are recomputed): its 12
    for arch, n_methods in (("cnn_original", 2), ("mlp", 8), ("cnn", 12)):
        by_cr: dict = {}
        for s in stages:
            if s.model.arch == arch:
                pair = (s.attack.attack, s.attack.preset or "default")
                by_cr.setdefault((str(s.prune), s.checkpoint.cr), set()).add(pair)
        assert len({prune for prune, _ in by_cr}) == n_methods, arch
        crs = [cr for _, cr in by_cr]  # every pruned CR of each method; the dense model (CR 1) once
        assert sorted(crs) == [1] + sorted([2, 4, 8, 16, 32, 64] * n_methods), arch
        for key, pairs in by_cr.items():
            assert wanted <= pairs, (arch, key, wanted - pairs)


def test_attack_sets_can_be_restricted_to_some_norms_in_the_catalogs_order():
    chosen = bench.choose_sets("strongest,default", "L0, Linf")
    assert list(chosen) == ["strongest", "default"]
    assert all(list(per_norm) == ["Linf", "L0"] for per_norm in chosen.values())
    assert chosen["default"]["L0"][0].attack == "l0_ensemble"
    assert all(list(per_norm) == ["Linf", "L2", "L0"] for per_norm in bench.choose_sets("default").values())


def test_bench_sweep_projects_the_default_sets_cost_from_the_profiles_runs(monkeypatch, tmp_path):
    import nbformat
    import pandas as pd

    from prunerob import bench, profiles

    rows = []
    for i, (attack, preset, seconds) in enumerate(
        [
            ("linf_fmn", "strong", 30.0),
            ("linf_apgd", "strong", 20.0),
            ("l2_ensemble", "default", 10.0),
            ("l2_ensemble", "fast", 5.0),
            ("l0_ensemble", "steps6000", 60.0),
            ("l0_pgd", "default", 40.0),
            ("l0_ensemble", "default", 50.0),
            ("l2_apgd", "strong", 4.0),
            ("l0_onepixel", "default", 2.0),
            ("l0_greedy", "default", 6.0),
            ("l0_bb", "original", 8.0),
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
    monkeypatch.setattr(profiles, "profile_results", lambda table, profile=None, only=None: pd.DataFrame(rows))
    monkeypatch.setenv("PRUNEROB_RUNS", str(tmp_path))
    records = bench.bench_sweep("cpu", workers=2, grid_checkpoints=10)
    per_attack = {r["attack"]: r for r in records if "attack" in r}
    assert per_attack["l0_pgd"]["stage_seconds_median"] == 60.0 and not per_attack["l0_pgd"]["default_set"]
    assert [r["default_set"] for r in records if r.get("attack") == "l0_ensemble"] == [False, True]
    assert per_attack["linf_fmn"]["papermill_seconds_median"] == 55.0
    (projection,) = [r for r in records if "projection" in r]
    # medians over CR 1 and 2 of the eight default attacks' whole-stage seconds (1.5 x seconds + 10):
    # 55 + 40 + 25 + 100 + 16 + 13 + 19 + 22
    assert projection["seconds_per_checkpoint_papermill"] == 290.0
    assert projection["projected_minutes"] == 290.0 * 10 / 2 / 60
    # measured: the eight default attacks' whole-stage seconds summed over both checkpoints
    # (CR 1 and 2: 3 x seconds + 20 each), over two workers
    assert projection["checkpoints_measured"] == 2
    assert projection["measured_minutes"] == pytest.approx((3 * (30 + 20 + 10 + 60 + 4 + 2 + 6 + 8) + 8 * 20) / 2 / 60)


def test_profile_total_sums_the_run_records_of_every_stage_of_the_profile(monkeypatch, tmp_path):
    """The whole profile's cost from its own run records: per kind, and over the workers; a stage
    without a record is counted as such, not as free."""
    import nbformat

    from prunerob import profiles

    stages = profiles.expand(profiles.load_profile("smoke"))
    kinds = Counter(s.kind for s in stages)
    assert set(kinds) == {"train", "prune", "attack"}
    recorded = {"train": 100.0, "prune": 50.0, "attack": 10.0}
    skipped = next(s for s in stages if s.kind == "attack")  # one attack never ran
    for s in stages:
        if s is not skipped:
            (tmp_path / s.kind).mkdir(exist_ok=True)
            nb = nbformat.v4.new_notebook(metadata={"papermill": {"duration": recorded[s.kind]}})
            nbformat.write(nb, str(tmp_path / s.kind / f"{s.id}.ipynb"))
    monkeypatch.setenv("PRUNEROB_RUNS", str(tmp_path))
    total = bench.profile_total("smoke", workers=2)
    assert total["stages"] == dict(kinds) and total["stages_without_run_record"] == 1
    want = {k: recorded[k] * (n - (k == "attack")) / 3600 for k, n in kinds.items()}
    assert total["hours_by_kind"] == pytest.approx(want)
    assert total["hours"] == pytest.approx(sum(want.values()))
    assert total["hours_on_workers"] == pytest.approx(total["hours"] / 2)


def test_strongest_set_has_every_non_ensemble_attack_of_each_norm_once_at_a_preset_it_has():
    from prunerob import attacks
    from prunerob.spec import PAPER_LINF_EPS

    strongest = bench.attack_sets()["strongest"]
    ensembles = {n for n, a in attacks.ATTACKS.items() if all("components" in p for p in a.presets.values())}
    assert ensembles == {"l0_ensemble", "l2_ensemble"}
    grids = {"Linf": PAPER_LINF_EPS, "L2": bench.L2_EPS, "L0": bench.L0_EPS}
    assert set(strongest) == {"Linf", "L2", "L0"}
    for norm, specs in strongest.items():
        names = [s.attack for s in specs]
        assert len(names) == len(set(names)), names
        assert set(names) == {n for n, a in attacks.ATTACKS.items() if a.norm == norm and n not in ensembles}
        for s in specs:
            info = attacks.get(s.attack)
            assert s.preset in info.presets, (s.attack, s.preset)
            assert "strong" not in info.presets or s.preset == "strong" or s.attack in ("l2_ddn", "l0_sigma_zero")
            # the default set's budgets, up to what the attack searches (one pixel for l0_onepixel)
            assert tuple(s.eps) == tuple(e for e in grids[norm] if e <= (info.max_budget or float("inf")))
    chosen = {s.attack: attacks.get(s.attack).presets[s.preset] for specs in strongest.values() for s in specs}
    assert chosen["l0_sigma_zero"]["steps"] == max(p["steps"] for p in attacks.get("l0_sigma_zero").presets.values())
    assert chosen["linf_apgd"]["n_restarts"] > 1 and chosen["l2_apgd"]["n_restarts"] > 1
    assert chosen["l0_bb"] == attacks.get("l0_bb").presets["original"]
    assert chosen["l2_cw"] == attacks.get("l2_cw").presets["original"]
    assert chosen["l2_ddn"]["steps"] == max(p["steps"] for p in attacks.get("l2_ddn").presets.values())
    assert [s.eps for s in strongest["L0"] if s.attack == "l0_onepixel"] == [(1,)]


def test_default_vs_strongest_is_the_largest_excess_and_one_point_is_ten_images_of_1000():
    gap = bench.default_vs_strongest({0.0: 1.0, 2.0: 0.53, 8.0: 0.2}, {0.0: 1.0, 2.0: 0.52, 8.0: 0.25})
    assert gap == {"largest_excess": pytest.approx(0.01), "at_eps": 2.0, "within_1_point": True}
    gap = bench.default_vs_strongest({0.0: 1.0, 2.0: 0.531}, {0.0: 1.0, 2.0: 0.52})
    assert gap["at_eps"] == 2.0 and not gap["within_1_point"]
    gap = bench.default_vs_strongest({0.0: 0.9, 2.0: 0.4}, {0.0: 0.9, 2.0: 0.5})  # stronger: excess 0 at eps 0
    assert gap == {"largest_excess": 0.0, "at_eps": 0.0, "within_1_point": True}


def test_attack_bench_compares_the_default_set_with_the_strongest_per_sample(monkeypatch):
    """Bookkeeping with made-up attack results (minimal attacks: per-sample distances): the strongest
    set's robust accuracy is the per-sample worst case over its attacks, ``default_vs_strongest`` the
    largest excess of the default set's over it, and the strongest set runs in the first round only."""
    import numpy as np
    import pandas as pd
    import torch

    from prunerob import evaluate as ev
    from prunerob.spec import AttackSpec

    inf = np.inf
    distances = {
        "l0_fmn": [1, 2, 3, 4, 5, 6, 7, 8, inf, inf],
        "l0_sigma_zero": [1, 1, 3, 4, 5, 6, 7, 8, 8, inf],
    }
    order = []

    def fake(model, x, y, spec, shape, convergence=True):
        order.append(spec.attack)
        d = np.asarray(distances[spec.attack], float)
        samples = pd.DataFrame(
            {
                "sample": np.arange(10),
                "label": 0,
                "clean_pred": 0,
                "adv_pred": np.where(np.isfinite(d), 1, 0),
                "success": np.isfinite(d),
                "valid": True,
                "distance": d,
            }
        )
        return ev.AttackResult(samples, pd.DataFrame(), pd.DataFrame({"passed": [True]}))

    monkeypatch.setattr(ev, "attack_curve", fake)
    sets = {
        "default": {"L0": [AttackSpec(attack="l0_fmn", preset="default", eps=(2, 8))]},
        "strongest": {
            "L0": [
                AttackSpec(attack="l0_fmn", preset="strong", eps=(2, 8)),
                AttackSpec(attack="l0_sigma_zero", eps=(2, 8)),
            ]
        },
    }
    x, y = torch.zeros(10, 1, 28, 28), torch.zeros(10, dtype=torch.long)
    out = bench.bench_attacks(None, x, y, (1, 28, 28), batch_size=10, sets=sets, rounds=2)
    assert order == ["l0_fmn", "l0_fmn", "l0_sigma_zero", "l0_fmn"]  # strongest: first round only
    assert out["default"]["L0"]["robust_acc"] == {0.0: 1.0, 2.0: 0.8, 8.0: 0.2}
    assert out["strongest"]["L0"]["robust_acc"] == {0.0: 1.0, 2.0: 0.8, 8.0: 0.1}
    assert out["strongest"]["L0"]["presets"] == ["strong", "default"]
    assert len(out["default"]["L0"]["seconds_rounds"]) == 2 and len(out["strongest"]["L0"]["seconds_rounds"]) == 1
    gap = out["default_vs_strongest"]["L0"]
    assert gap["largest_excess"] == pytest.approx(0.1) and gap["at_eps"] == 8.0 and not gap["within_1_point"]
    assert "speedup" not in out  # no original set
    # what each attack found alone, and whose distance was the smallest (a tie: the attack run first)
    strongest = out["strongest"]["L0"]
    assert strongest["per_attack"] == {
        "l0_fmn": {0.0: 1.0, 2.0: 0.8, 8.0: 0.2},
        "l0_sigma_zero": {0.0: 1.0, 2.0: 0.8, 8.0: 0.1},
    }
    assert strongest["worst_from"] == pytest.approx({"l0_fmn": 7 / 9, "l0_sigma_zero": 2 / 9})
    assert out["default"]["L0"]["per_attack"] == {} and out["default"]["L0"]["worst_from"] == {"l0_fmn": 1.0}


def test_attack_bench_runs_an_attack_two_sets_share_once_and_keeps_every_run_for_a_later_call(
    tmp_path, monkeypatch, capsys
):
    """An attack run that two sets share (same attack, preset, budgets) runs once in a call; with a
    ``SampleStore`` every run is kept on disk, and a later call whose strongest set gained an attack
    runs only that one, taking the rest from the store with their seconds as measured then and the
    same robust accuracy as running them again."""
    import numpy as np
    import pandas as pd
    import torch

    from prunerob import evaluate as ev
    from prunerob.spec import AttackSpec

    inf = np.inf
    distances = {"l0_fmn": [1, 2, 3, 4, 5, 6, 7, 8, inf, inf], "l0_sigma_zero": [1, 1, 3, 4, 5, 6, 7, 8, 8, inf],
                 "l0_pgd_min": [1, 1, 1, 4, 5, 6, 7, 8, 8, 8]}  # fmt: skip
    order = []

    def fake(model, x, y, spec, shape, convergence=True):
        order.append(spec.attack)
        d = np.asarray(distances[spec.attack], float)
        frame = pd.DataFrame({"sample": np.arange(10), "label": 0, "clean_pred": 0, "adv_pred": np.where(np.isfinite(d), 1, 0),
                              "success": np.isfinite(d), "valid": True, "distance": d})  # fmt: skip
        return ev.AttackResult(frame, pd.DataFrame(), pd.DataFrame({"passed": [True]}))

    monkeypatch.setattr(ev, "attack_curve", fake)
    fmn, sz, pgd = (AttackSpec(attack=a, eps=(2, 8)) for a in ("l0_fmn", "l0_sigma_zero", "l0_pgd_min"))
    sets = {"default": {"L0": [fmn]}, "strongest": {"L0": [fmn, sz]}}
    x, y = torch.zeros(10, 1, 28, 28), torch.zeros(10, dtype=torch.long)
    store = bench.SampleStore(tmp_path / "samples", "abc")
    first = bench.bench_attacks(None, x, y, (1, 28, 28), batch_size=10, sets=sets, samples=store)
    assert order == ["l0_fmn", "l0_sigma_zero"]  # the strongest set took FMN's run from the default set
    assert first["strongest"]["L0"]["runs_taken"] == {"l0_fmn": "this run"}
    assert "runs_taken" not in first["default"]["L0"]
    assert len(list((tmp_path / "samples").glob("abc-*.parquet"))) == 2
    # a later call: the strongest set gained PGD_0-min; only it runs, the rest comes from the store
    sets["strongest"]["L0"].append(pgd)
    second = bench.bench_attacks(None, x, y, (1, 28, 28), batch_size=10, sets=sets, samples=store)
    assert order == ["l0_fmn", "l0_sigma_zero", "l0_pgd_min"]
    assert second["default"]["L0"]["robust_acc"] == first["default"]["L0"]["robust_acc"]
    assert second["default"]["L0"]["seconds"] == first["default"]["L0"]["seconds"]  # as measured then
    assert first["strongest"]["L0"]["robust_acc"] == {0.0: 1.0, 2.0: 0.8, 8.0: 0.1}
    assert second["strongest"]["L0"]["robust_acc"] == {
        0.0: 1.0,
        2.0: 0.7,
        8.0: 0.0,
    }  # PGD_0-min: sample 2 at 1 px, 9 at 8
    assert set(second["strongest"]["L0"]["runs_taken"]) == {"l0_fmn", "l0_sigma_zero"}
    # another checkpoint, other images, another device, or a file that cannot be read: run again
    ran = bench._resized(fmn, 10, 10)  # what the call ran: 10 images, batches of 10
    assert store.get(ran) is not None and bench.SampleStore(tmp_path / "samples", "zzz").get(ran) is None
    assert store.get(bench._resized(fmn, 11, 10)) is None
    assert bench.SampleStore(tmp_path / "samples", "abc", "cuda").get(ran) is None  # another device's seconds
    assert json.loads(store._path(ran).with_suffix(".json").read_text())["device"] == "cpu"
    store._path(ran).with_suffix(".json").write_text("{")
    bench.bench_attacks(None, x, y, (1, 28, 28), batch_size=10, sets={"default": {"L0": [fmn, sz]}}, samples=store)
    assert order[3:] == ["l0_fmn"]  # sigma-zero's run read from the store, FMN's run again
    # --samples naming a file stops before any work, with one line
    from prunerob import cli

    out = tmp_path / "out.json"
    argv = ["bench", "attacks", "--checkpoint", str(tmp_path / "no.pt"), "--samples", str(out.parent / "m.json")]
    (tmp_path / "m.json").write_text("{}")
    assert cli.main(argv + ["--out", str(out)]) == 2 and not out.exists()
    assert capsys.readouterr().err.strip().endswith("is a file; it must be a folder (made if missing)")


@pytest.mark.slow
def test_attack_bench_default_vs_strongest_on_a_trained_cnn(trained_cnn, mnist):
    """Real attacks on a few images: a strongest set that holds the default set's attack is never
    weaker, so its largest excess is >= 0 (0 at the clean budget) and equals the largest difference."""
    from prunerob.spec import AttackSpec

    x, y = mnist.eval_subset(10)
    sets = {
        "default": {"L2": [AttackSpec(attack="l2_ddn", eps=(1.0, 2.0))]},
        "strongest": {"L2": [AttackSpec(attack="l2_ddn", eps=(1.0, 2.0)), AttackSpec(attack="l2_fmn", eps=(1.0, 2.0))]},
    }
    out = bench.bench_attacks(trained_cnn, x, y, (1, 28, 28), batch_size=10, sets=sets)
    d, s = out["default"]["L2"]["robust_acc"], out["strongest"]["L2"]["robust_acc"]
    assert list(d) == list(s) == [0.0, 1.0, 2.0] and d[0.0] == s[0.0]
    assert all(s[e] <= d[e] for e in d)
    gap = out["default_vs_strongest"]["L2"]
    assert gap["largest_excess"] == max(d[e] - s[e] for e in d) >= 0
    assert gap["within_1_point"] == (gap["largest_excess"] <= 0.01 + 1e-9)
    assert out["strongest"]["L2"]["checks_passed"]
    assert set(out["strongest"]["L2"]["per_attack"]) == {"l2_ddn", "l2_fmn"}
    assert sum(out["strongest"]["L2"]["worst_from"].values()) == pytest.approx(1.0)


def test_bench_attacks_cli_writes_one_record_per_checkpoint_after_each(tmp_path, monkeypatch, capsys):
    import torch

    from prunerob import cli

    paths = [tmp_path / "cr1.pt", tmp_path / "cr16.pt"]
    for p in paths:
        torch.save({"arch": "cnn", "dataset": "mnist", "state_dict": {}}, p)
    out = tmp_path / "attacks.json"
    calls = []

    def fake(checkpoint, n, device, throughput_n, rounds, sets, samples_dir=None):
        if calls:  # the first checkpoint's record is on disk before the second starts
            assert [r["checkpoint"] for r in json.loads(out.read_text())["records"]] == [str(paths[0])]
        calls.append((checkpoint, n, rounds, list(sets)))
        return {"checkpoint": str(checkpoint), "speedup": 2.0, "load_before": [1.0, 1.0, 1.0]}

    monkeypatch.setattr(bench, "bench_attacks_on", fake)
    argv = ["bench", "attacks", "--n", "50", "--rounds", "2", "--sets", "strongest,default", "--out", str(out)]
    argv += ["--beside", "a 2-worker sweep"]
    assert cli.main(argv + [a for p in paths for a in ("--checkpoint", str(p))]) == 0
    assert calls == [(p, 50, 2, ["strongest", "default"]) for p in paths]
    blob = json.loads(out.read_text())
    assert blob["benchmark"] == "attacks" and [r["checkpoint"] for r in blob["records"]] == list(map(str, paths))
    assert blob["beside"] == "a 2-worker sweep"
    assert f"wrote {out}" in capsys.readouterr().out


def test_bench_attacks_reuses_an_earlier_runs_strongest_set_for_the_same_checkpoint_and_images(tmp_path, monkeypatch):
    """--reuse-strongest: the strongest set's blocks of an earlier JSON (same checkpoint, same n) are
    taken, marked with the file they came from, and compared with the default set as if run now;
    a norm the earlier file lacks, or another n, is run."""
    import torch

    from prunerob import cli

    ckpt = tmp_path / "cr64.pt"
    torch.save({"arch": "cnn", "dataset": "mnist", "meta": {"cr": 64, "row": {"checkpoint_sha": "abc"}}}, ckpt)
    acc = {"0.0": 0.98, "4.0": 0.34}
    l0 = bench.attack_sets()["strongest"]["L0"]
    now = {"attacks": [s.attack for s in l0], "presets": [s.preset for s in l0]}
    earlier = tmp_path / "earlier.json"
    blob = {"when": "then", "records": [
        {"checkpoint": "elsewhere/cr64.pt", "checkpoint_sha": "abc", "n_samples": 300, "sets": ["strongest"],
         "strongest": {"L0": {"robust_acc": acc, **now}}},
        {"checkpoint": "other.pt", "checkpoint_sha": "zzz", "n_samples": 300, "sets": ["strongest"],
         "strongest": {"Linf": {"robust_acc": {"0.0": 0.0}}}},
    ]}  # fmt: skip
    earlier.write_text(json.dumps(blob))
    ran = []

    def fake(checkpoint, n, device, throughput_n, rounds, sets, samples_dir=None):
        ran.append({name: list(per_norm) for name, per_norm in sets.items()})
        return {"checkpoint": str(checkpoint), "default": {"L0": {"robust_acc": {0.0: 0.98, 4.0: 0.36}}},
                **({"strongest": {"Linf": {"robust_acc": {"0.0": 0.9}}}} if "strongest" in sets else {})}  # fmt: skip

    monkeypatch.setattr(bench, "bench_attacks_on", fake)
    out = tmp_path / "out.json"
    argv = ["bench", "attacks", "--checkpoint", str(ckpt), "--n", "300", "--sets", "default,strongest",
            "--norms", "L0", "--reuse-strongest", str(earlier), "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    assert ran == [{"default": ["L0"]}]  # the strongest L0 block came from the earlier file
    (record,) = json.loads(out.read_text())["records"]
    assert record["strongest"]["L0"]["reused_from"] == f"{earlier} (then)"
    assert record["default_vs_strongest"]["L0"]["largest_excess"] == pytest.approx(0.02)
    assert cli.main(argv[:5] + ["301"] + argv[6:]) == 0  # other images: nothing to reuse, it runs
    assert ran[-1] == {"default": ["L0"], "strongest": ["L0"]}
    # a block of an earlier strongest set (one attack at another preset) is run again, not reused
    blob["records"][0]["strongest"]["L0"]["presets"] = ["strong" if a == "l0_sigma_zero" else p for a, p in
                                                        zip(now["attacks"], now["presets"])]  # fmt: skip
    earlier.write_text(json.dumps(blob))
    assert cli.main(argv) == 0
    assert ran[-1] == {"default": ["L0"], "strongest": ["L0"]}


def test_bench_attacks_reuse_takes_any_sets_blocks_that_ran_what_the_set_names_now(tmp_path, monkeypatch):
    """--reuse: every set's blocks of an earlier JSON for the same checkpoint and images are taken
    where they ran the attacks and presets the set names now (a changed default set runs again), and
    the comparison is made on them; a file that is not a benchmark JSON stops with one line."""
    import torch

    from prunerob import cli

    ckpt = tmp_path / "cr16.pt"
    torch.save({"arch": "cnn", "dataset": "mnist", "meta": {"cr": 16, "row": {"checkpoint_sha": "abc"}}}, ckpt)
    sets = bench.attack_sets()

    def block(name, norm, acc):
        specs = sets[name][norm]
        return {"attacks": [s.attack for s in specs], "presets": [s.preset for s in specs], "robust_acc": acc}

    earlier = tmp_path / "earlier.json"
    stale = block("default", "L2", {"0.0": 0.99, "1.5": 0.2})
    stale["presets"] = ["fast" if a == "l2_ensemble" else p for a, p in zip(stale["attacks"], stale["presets"])]
    record = {"checkpoint": "x.pt", "checkpoint_sha": "abc", "n_samples": 300, "sets": ["default", "strongest"],
              "default": {"L0": block("default", "L0", {"0.0": 0.99, "4.0": 0.5}), "L2": stale},
              "strongest": {"L0": block("strongest", "L0", {"0.0": 0.99, "4.0": 0.49}),
                            "L2": block("strongest", "L2", {"0.0": 0.99, "1.5": 0.15})}}  # fmt: skip
    earlier.write_text(json.dumps({"when": "then", "records": [record]}))
    ran = []

    def fake(checkpoint, n, device, throughput_n, rounds, todo, samples_dir=None):
        ran.append({name: list(per_norm) for name, per_norm in todo.items()})
        return {"checkpoint": str(checkpoint), "default": {"L2": {"robust_acc": {0.0: 0.99, 1.5: 0.16}}}}

    monkeypatch.setattr(bench, "bench_attacks_on", fake)
    out = tmp_path / "out.json"
    argv = ["bench", "attacks", "--checkpoint", str(ckpt), "--n", "300", "--sets", "default,strongest",
            "--norms", "L0,L2", "--reuse", str(earlier), "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    assert ran == [{"default": ["L2"]}]  # the default L2 block was of another preset: run again
    (got,) = json.loads(out.read_text())["records"]
    assert got["default"]["L0"]["reused_from"] == f"{earlier} (then)" and "reused_from" not in got["default"]["L2"]
    assert got["default_vs_strongest"]["L0"]["largest_excess"] == pytest.approx(0.01)
    assert got["default_vs_strongest"]["L2"]["largest_excess"] == pytest.approx(0.01)
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert cli.main(argv[:-4] + ["--reuse", str(bad), "--out", str(tmp_path / "o2.json")]) == 2
    assert not (tmp_path / "o2.json").exists()


def test_bench_convergence_reads_the_curve_at_twice_the_steps_on_a_real_checkpoint(out_dirs, monkeypatch, capsys):
    """On a real (briefly trained) MLP checkpoint: each norm's default minimal attack, then twice its
    steps on every correct sample; the longer run can only lower the curve (per-sample worst case),
    ``moved_points`` is that shift, and a bad --norms stops before any work with one line."""
    from prunerob import cli, stages
    from prunerob.spec import PruneStage, TrainStage

    common = dict(arch="mlp", n_train=1000, n_eval=500, max_epochs=1)
    stages.run_train(TrainStage.from_params(**common), device="cpu", progress=False)
    prune = PruneStage.from_params(**common, crs=[1], finetune_max_epochs=0)
    stages.run_prune(prune, device="cpu", progress=False)
    checkpoint = stages.prune_checkpoint(prune, 1)
    # a cheap stand-in for the default L2 attack on 40 images: DDN at its default (100 steps)
    monkeypatch.setitem(bench.DEFAULT_SET, "L2", (("l2_ddn", "default"),))
    out = out_dirs["results"] / "convergence.json"
    argv = ["bench", "convergence", "--checkpoint", str(checkpoint), "--n", "40", "--norms", "L2", "--out", str(out)]
    assert cli.main(argv) == 0
    (record,) = json.loads(out.read_text())["records"]
    got = record["norms"]["L2"]
    assert (got["attack"], record["n_samples"]) == ("l2_ddn", 40) and 0 < got["n_checked"] <= 40
    for eps, acc in got["robust_acc"].items():
        twice = got["robust_acc_twice_the_steps"][eps]
        assert twice <= acc + 1e-9
        if float(eps) > 0:
            assert got["moved_points"][eps] == pytest.approx(100 * (acc - twice), abs=0.01)
    assert 0 <= got["distances_cut"] <= 1 and got["seconds"]["twice_the_steps"] > 0
    for bad, named in ((["--norms", "L3"], "--norms"), (["--norms", "L0,L2", "--preset", "strong"], "--preset"),
                       (["--norms", "L0", "--preset", "steps7"], "preset")):  # fmt: skip
        assert cli.main(["bench", "convergence", "--checkpoint", str(checkpoint), *bad]) == 2
        assert named in capsys.readouterr().err


def test_one_pixel_bench_counts_what_each_run_over_claims_at_one_pixel():
    """Six images: 0 misclassified, 1 to 5 correct; the one-pixel search broke 1, 2 and 5.  A minimal
    run (distances) and a fixed run (at 1 and 4 px) are held to it, each and as the worst case."""
    import numpy as np
    import pandas as pd

    clean_ok = np.array([False, True, True, True, True, True])
    broken = np.array([False, True, True, False, False, True])
    base = {"prune_id": "prune-x", "cr": 64.0, "norm": "L0", "preset": "p", "scenario": "white-box"}
    minimal = pd.DataFrame(
        {**base, "stage_id": "attack-m", "attack": "l0_ensemble", "kind": "minimal", "sample": range(6),
         "eps": np.nan, "broken": False, "distance": [0.0, 1.0, 3.0, 2.0, 1.0, np.inf]}
    )  # fmt: skip
    fixed = pd.DataFrame(
        {**base, "stage_id": "attack-f", "attack": "l0_pgd", "kind": "fixed", "sample": [*range(6)] * 3,
         "eps": [0.0] * 6 + [1.0] * 6 + [4.0] * 6,
         "broken": [True, False, False, False, False, False] + [True, False, True, False, False, False] + [True] * 6,
         "distance": np.nan}
    )  # fmt: skip
    out = bench.one_pixel_against_runs(clean_ok, broken, {"attack-m": minimal, "attack-f": fixed})
    assert out["robust_acc_exhaustive"] == 2 / 6
    runs = {r["stage_id"]: r for r in out["runs"]}
    # minimal: robust at 1 px = distance > 1: images 2, 3, 5; of them 2 and 5 fall to one pixel;
    # it broke image 4 with one pixel where the search (black and white only) did not
    assert runs["attack-m"] == {
        "stage_id": "attack-m", "attack": "l0_ensemble", "preset": "p",
        "robust_acc_1px": 3 / 6, "over_claim_points": round(100 * 2 / 6, 2), "beyond": 1,
    }  # fmt: skip
    # fixed: its 1-px run broke image 2 only (its 4-px run says nothing about one pixel)
    assert runs["attack-f"]["robust_acc_1px"] == 4 / 6 and runs["attack-f"]["over_claim_points"] == round(
        100 * 2 / 6, 2
    )
    assert out["worst_case"] == {
        "attacks": ["l0_ensemble", "l0_pgd"], "robust_acc_1px": 2 / 6,
        "over_claim_points": round(100 / 6, 2), "beyond": 1,
    }  # fmt: skip
    assert bench.one_pixel_against_runs(clean_ok, broken, {})["worst_case"] is None


def test_one_pixel_bench_refuses_a_missing_checkpoint_before_any_work(tmp_path, capsys):
    from prunerob import cli

    out = tmp_path / "o.json"
    assert cli.main(["bench", "onepixel", "--checkpoint", str(tmp_path / "no.pt"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("no such file (a model saved by a train or prune stage)")
    assert (
        cli.main(["bench", "onepixel", "--pixels", "0", "--checkpoint", str(tmp_path / "no.pt"), "--out", str(out)])
        == 2
    )
    assert "--pixels=0 must be an integer >= 1" in capsys.readouterr().err
    assert not out.exists()


def test_the_greedy_bench_compares_each_budget_up_to_its_pixels():
    import numpy as np
    import pandas as pd

    clean_ok = np.array([False, True, True, True])
    distance = np.array([np.inf, 1.0, 2.0, np.inf])  # the greedy search: image 2 needs 2 pixels, 3 none within 2
    base = {"prune_id": "prune-x", "cr": 64.0, "norm": "L0", "preset": "p", "scenario": "white-box"}
    minimal = pd.DataFrame(
        {**base, "stage_id": "attack-m", "attack": "l0_ensemble", "kind": "minimal", "sample": range(4),
         "eps": np.nan, "broken": False, "distance": [0.0, 1.0, 4.0, 3.0]}
    )  # fmt: skip
    out = bench.greedy_against_runs(clean_ok, distance, {"attack-m": minimal}, pixels=2)
    assert list(out) == ["1", "2"]
    assert out["1"] == {"robust_acc_greedy": 2 / 4, "robust_acc": 2 / 4, "over_claim_points": 0.0}
    # at 2 px the run counts images 2 and 3 robust; the greedy search broke image 2
    assert out["2"] == {"robust_acc_greedy": 1 / 4, "robust_acc": 2 / 4, "over_claim_points": 25.0}
    assert bench.greedy_against_runs(clean_ok, distance, {}, pixels=1) == {"1": {"robust_acc_greedy": 2 / 4}}
