"""The study profiles span the grids the README and the book promise."""

from collections import Counter

import pytest

from prunerob import attacks, bench, plan, profiles, sweep
from prunerob.spec import AttackStage, SpecError


def test_paper_profile_is_the_original_grid_plus_two_robustbench_models():
    stages = profiles.expand(profiles.load_profile("paper"))
    kinds = Counter(s.kind for s in stages)
    original = {("mnist", "cnn"), ("cifar10", "resnet8"), ("cifar10", "vgg11"), ("imagenette", "resnet18")}
    zoo = {("cifar10", "rb:Linf:Carmon2019Unlabeled"), ("cifar10", "rb:Linf:Standard")}
    prune = [s.params() for s in stages if s.kind == "prune"]
    assert {(p["dataset"], p["arch"]) for p in prune} == original | zoo
    assert {p["seed"] for p in prune} == set(range(5))
    assert len({(p["structure"], p["scope"], p["criterion"]) for p in prune}) == 12
    # every model: 5 seeds x 12 methods x 7 CRs x 7 attacks
    assert kinds == {"train": 6 * 5, "prune": 6 * 5 * 12, "attack": 6 * 5 * 12 * 7 * 7}
    attacks = {s.params()["attack"] for s in stages if s.kind == "attack"}
    # the original's attacks at their settings, and this study's default set
    assert {"linf_pgd", "l2_cw", "l0_bb"} <= attacks and {"linf_fmn", "l2_ddn", "l0_pgd", "l0_pgd_min"} <= attacks
    cw = next(s for s in stages if s.kind == "attack" and s.params()["attack"] == "l2_cw")
    assert cw.attack.preset_params["steps"] == 5000 and cw.attack.preset_params["binary_search_steps"] == 9


def test_dry_run_lists_the_grid_and_writes_nothing(out_dirs, capsys):
    lines = []
    summary = sweep.run("smoke", dry_run=True, echo=lines.append)
    assert lines[0].startswith("profile smoke:") and "stages per data set and architecture:" in lines
    assert any("mnist" in line and "cnn" in line for line in lines[1:5])
    assert sum(line.startswith("  would run") for line in lines) == len(
        plan.plan(profiles.expand(profiles.load_profile("smoke")))
    )
    assert not summary.done and not any(p.is_file() for d in out_dirs.values() for p in d.rglob("*"))
    # nothing finished in the results folder: the estimate says it has no counterpart for any stage
    n = len(plan.plan(profiles.expand(profiles.load_profile("smoke"))))
    assert f"estimate: about 0.0 h of stage time for 0 of the {n} stages to run" in "\n".join(lines)
    assert f"; {n} with no finished counterpart left out" in "\n".join(lines)


def _mlp_fmn_tables(out_dirs, n_copied: int = 3):
    """The cpu profile's MLP FMN attack stages with committed tables (at least 4), the first
    ``n_copied`` tables copied into the empty results folder, and those tables' first rows."""
    import shutil
    from pathlib import Path

    import pandas as pd

    book = Path(__file__).resolve().parents[1] / "book" / "results" / "attack"
    fmn = [
        s
        for s in profiles.expand(profiles.load_profile("cpu"))
        if s.kind == "attack" and s.params()["arch"] == "mlp" and s.params()["attack"] == "linf_fmn"
    ]
    finished = [s for s in fmn if (book / f"{s.id}.parquet").is_file()]
    assert len(finished) >= 4, "the cpu profile's MLP FMN tables are committed"
    (out_dirs["results"] / "attack").mkdir(parents=True)
    for s in finished[:n_copied]:
        shutil.copy(book / f"{s.id}.parquet", out_dirs["results"] / "attack")
    return finished, [pd.read_parquet(book / f"{s.id}.parquet").iloc[0] for s in finished[:n_copied]]


def test_the_estimate_takes_the_median_seconds_per_correct_image_of_finished_twins(out_dirs):
    """Finished MLP FMN runs of the cpu profile (committed tables, clean accuracy 0.97-0.99) copied into
    an empty results folder, no prune table: a stage of the same attack and preset is estimated at
    their median seconds per correctly classified image times its n_samples times their median clean
    accuracy; a stage kind with no finished twin is left out and named."""
    import dataclasses

    import pandas as pd

    finished, rows = _mlp_fmn_tables(out_dirs)
    per_correct = pd.Series([r["stage_seconds"] / (r["n"] * r["clean_acc"]) for r in rows]).median()
    acc = pd.Series([r["clean_acc"] for r in rows]).median()
    other = finished[3]
    half = dataclasses.replace(other, attack=dataclasses.replace(other.attack, n_samples=other.attack.n_samples // 2))
    seconds, unknown = plan.estimate_seconds([other, half, other.upstream])
    assert seconds == pytest.approx(per_correct * acc * (other.attack.n_samples + other.attack.n_samples // 2))
    per_image = pd.Series([r["stage_seconds"] / r["n"] for r in rows]).median()
    assert seconds == pytest.approx(per_image * 1.5 * other.attack.n_samples, rel=0.03)  # as per attacked image
    assert unknown == [other.upstream]  # no prune table in the folder


def test_an_attack_on_a_checkpoint_at_chance_is_estimated_from_its_correctly_classified_images(out_dirs):
    """Misclassified images are not attacked, so an attack's time follows its checkpoint's clean
    accuracy (read from the prune table): the committed MLP FMN tables and their prune table, one CR's
    clean accuracy set to 0.1, estimate that CR's attack at a tenth of what the same CR at 1.0 gives;
    counterparts whose correctly classified images range 2x or more are fitted with a fixed part and a
    part per image (their times set on such a line, the line is recovered).  A stage whose prune stage
    has not run takes that CR's clean accuracy from the same method's other seeds."""
    import dataclasses
    import shutil
    from pathlib import Path

    import pandas as pd

    from prunerob import results

    finished, rows = _mlp_fmn_tables(out_dirs)
    other = finished[3]
    book = Path(__file__).resolve().parents[1] / "book" / "results" / "prune"
    (out_dirs["results"] / "prune").mkdir(parents=True)
    prune_file = out_dirs["results"] / "prune" / f"{other.upstream.id}.parquet"
    shutil.copy(book / prune_file.name, prune_file)
    pruned = pd.read_parquet(prune_file)
    at_cr = pruned["cr"] == float(other.params()["cr"])
    assert at_cr.sum() == 1

    def estimate_at(acc: float) -> float:
        results.write_table(pruned.assign(clean_acc=pruned["clean_acc"].where(~at_cr, acc)), "prune", other.upstream.id)
        return plan.stage_estimates([other])[other.id]

    full, chance = estimate_at(1.0), estimate_at(0.1)
    per_correct = pd.Series([r["stage_seconds"] / (r["n"] * r["clean_acc"]) for r in rows]).median()
    assert full == pytest.approx(per_correct * other.attack.n_samples)
    assert chance == pytest.approx(full / 10)
    # another seed of the same method, its prune stage not run: that CR's accuracy of the seeds run
    seed = dataclasses.replace(other, train=dataclasses.replace(other.train, seed=other.train.seed + 7))
    assert seed.upstream.id != other.upstream.id
    assert plan.stage_estimates([seed])[seed.id] == pytest.approx(chance)

    fixed, per_image = 6.0, 0.02  # counterparts at clean accuracy 0.2, 0.6, 1.0 on that line
    for r, acc in zip(rows, (0.2, 0.6, 1.0)):
        path = out_dirs["results"] / "attack" / f"{r['stage_id']}.parquet"
        table = pd.read_parquet(path)
        results.write_table(
            table.assign(clean_acc=acc, stage_seconds=fixed + per_image * table["n"] * acc), "attack", r["stage_id"]
        )
    assert estimate_at(0.5) == pytest.approx(fixed + per_image * other.attack.n_samples * 0.5)
    assert estimate_at(0.1) == pytest.approx(fixed + per_image * other.attack.n_samples * 0.1)


def test_transfer_attack_entries_expand_to_both_directions():
    from prunerob.spec import SpecError

    profile = {
        "grid": [
            {
                "dataset": "mnist",
                "arch": "cnn",
                "crs": [1, 2, 4],
                "attacks": [
                    {"attack": "linf_pgd", "source_cr": 1, "on_crs": [2, 4]},  # crafted on the dense model
                    {"attack": "linf_pgd", "source_cr": [2, 4], "on_crs": [1]},  # crafted on each pruned one
                    {"attack": "linf_pgd"},
                ],
            }
        ]
    }  # white-box on every CR
    attacks = [s for s in profiles.expand(profile) if s.kind == "attack"]
    pairs = sorted((s.checkpoint.source_cr, s.checkpoint.cr) for s in attacks)
    assert pairs == [(0, 1), (0, 2), (0, 4), (1, 2), (1, 4), (2, 1), (4, 1)]
    assert len({s.id for s in attacks}) == 7
    white = next(s for s in attacks if s.checkpoint.cr == 2 and not s.transfer)
    assert white.id == AttackStage.from_params(dataset="mnist", arch="cnn", crs=[1, 2, 4], cr=2).id
    for bad in (2, 8):
        with pytest.raises(SpecError, match="source_cr"):
            AttackStage.from_params(dataset="mnist", arch="cnn", crs=[1, 2, 4], cr=2, source_cr=bad)


def test_only_selects_a_slice_with_the_stages_it_needs():
    stages = profiles.expand(profiles.load_profile("cpu"))
    mlp = profiles.select(stages, {"arch": "mlp"})
    assert mlp and all(s.model.arch == "mlp" for s in mlp)
    assert {s.kind for s in mlp} == {"train", "prune", "attack"}
    ids = {s.id for s in mlp}
    assert all(s.upstream.id in ids for s in mlp if hasattr(s, "upstream"))  # nothing it needs is left out
    adv = profiles.select(
        profiles.expand(profiles.load_profile("full")),
        {"arch": "cnn", "training": "pgd", "attack": "l2_ddn", "finetune_max_epochs": 3},
    )
    prune_stage = next(s for s in adv if s.kind == "prune")
    assert Counter(s.kind for s in adv) == Counter({"train": 1, "prune": 1, "attack": len(prune_stage.prune.crs)})
    # kind selects a stage kind: the CNN's checkpoints without their attacks
    ckpts = profiles.select(stages, {"arch": "cnn", "seed": 0, "kind": "prune"})
    assert Counter(s.kind for s in ckpts) == Counter({"train": 1, "prune": 12})
    with pytest.raises(SpecError, match="--only kind='tune': no stage .* values there: attack, prune, train"):
        profiles.select(stages, {"kind": "tune"})
    with pytest.raises(SpecError, match="--only archh=...: unknown parameter; valid: .*arch"):
        profiles.select(stages, {"archh": "mlp"})
    with pytest.raises(
        SpecError,
        match="--only arch='vgg11': no stage of the profile has it; values there: cnn, cnn_original, mlp, resnet8",
    ):
        profiles.select(stages, {"arch": "vgg11"})
    with pytest.raises(
        SpecError, match="--only training='pgd': no stage of the profile has it; values there: standard"
    ):
        profiles.select(stages, {"training": "pgd"})


METHODS = {
    (st, sc, cr)
    for st in ("unstructured", "kernel", "filter")
    for sc in ("global", "local")
    for cr in ("magnitude", "random")
}


def test_the_cpu_profile_is_the_issues_grid_on_a_two_core_budget():
    """CNN and MLP on MNIST: every method at CR 1..64, every method of both (seed 0) attacked on every
    pruned CR with the default set (the dense model once) and PGD_0 at CR 4, 16, 64 (every CR of the
    headline method, and the original's PGD presets on the CNN's); the original's CNN re-made;
    ResNet8 on Fashion-MNIST reduced. The short fine-tuning budget is what fits two cores (README)."""
    stages = profiles.expand(profiles.load_profile("cpu"))
    prune = [s for s in stages if s.kind == "prune"]
    by_model = {}
    for s in prune:
        by_model.setdefault((s.data.dataset, s.model.arch), []).append(s)
    assert set(by_model) == {
        ("mnist", "cnn"),
        ("mnist", "mlp"),
        ("mnist", "cnn_original"),
        ("fashion_mnist", "resnet8"),
    }
    cnn = {(s.prune.structure, s.prune.scope, s.prune.criterion) for s in by_model["mnist", "cnn"]}
    assert cnn == METHODS
    # the MLP's kernel and filter pruning coincide (all layers dense): structured runs once, with neurons
    mlp = {(s.prune.structure, s.prune.scope, s.prune.criterion) for s in by_model["mnist", "mlp"]}
    assert mlp == {m for m in METHODS if m[0] != "kernel"}
    for s in by_model["mnist", "cnn"] + by_model["mnist", "mlp"] + by_model["mnist", "cnn_original"]:
        assert tuple(s.prune.crs) == (1, 2, 4, 8, 16, 32, 64) and s.prune.finetune_max_epochs == 3
        assert s.train.training == "standard" and s.upstream.train.max_epochs == 30
    for s in by_model["fashion_mnist", "resnet8"]:
        assert tuple(s.prune.crs) == (1, 4, 16, 64) and s.upstream.train.max_epochs == 3
    every, pruned, checks = [1, 2, 4, 8, 16, 32, 64], [2, 4, 8, 16, 32, 64], [4, 16, 64]
    headline = ("unstructured", "global", "magnitude")

    def crs(arch, method, name, output="logits", preset=None):
        return sorted(
            s.checkpoint.cr
            for s in stages
            if s.kind == "attack"
            and s.model.arch == arch
            and s.train.seed == 0
            and (s.prune.structure, s.prune.scope, s.prune.criterion) == method
            and s.params()["attack"] == name
            and s.attack.attack_output == output
            and preset in (None, s.attack.preset_name)
        )

    # the original's PGD presets, and the minimal attacks of the full profile's standard twin of its
    # PGD-trained CNN: on every CR of the CNN's headline method only
    for name in ("linf_pgd", "l2_pgd", "l2_ddn", "l0_pgd_min"):
        assert crs("cnn", headline, name) == every, name
        assert all(crs("cnn", m, name) == [] for m in cnn - {headline}) and crs("mlp", headline, name) == []
    # every method of both attacked with the default set (bench.DEFAULT_SET) on every pruned CR (the
    # dense model once, under the headline method), PGD_0 (another family in L0) at CR 4, 16, 64
    default = [pair for pairs in bench.DEFAULT_SET.values() for pair in pairs]
    assert {name for name, _ in default} == {
        "linf_fmn",
        "linf_apgd",
        "l2_ensemble",
        "l2_apgd",
        "l0_ensemble",
        "l0_onepixel",
        "l0_greedy",
        "l0_bb",
    }
    for arch, methods in (("cnn", cnn), ("mlp", mlp)):
        assert {
            (s.prune.structure, s.prune.scope, s.prune.criterion)
            for s in stages
            if s.kind == "attack" and s.model.arch == arch and s.train.seed == 0
        } == methods
        for method in methods:
            for name, preset in default:
                want = every if method == headline else pruned
                assert crs(arch, method, name, preset=preset) == want, (arch, method, name, preset)
            assert crs(arch, method, "l0_pgd") == (every if method == headline else checks), (arch, method)
    for name, output in (
        ("linf_fmn", "logits"),
        ("l2_ensemble", "logits"),
        ("l0_ensemble", "logits"),
        ("linf_pgd", "logits"),
        ("linf_pgd", "softmax"),
    ):
        assert crs("cnn_original", headline, name, output) == every, (name, output)
    assert all(
        s.attack.n_samples == 1000 and not s.transfer
        for s in stages
        if s.kind == "attack" and s.model.arch != "resnet8"
    )
    minimal = {"linf_fmn", "l2_ddn", "l0_pgd_min"}
    # one seed of everything: the CNN's seeds 1 and 2 are recomputed in recompute/cnn and land with it
    assert {s.train.seed for s in stages} == {0}
    resnet = {s.params()["attack"] for s in stages if s.kind == "attack" and s.model.arch == "resnet8"}
    assert resnet == minimal


def test_the_gpu_profile_runs_the_full_profiles_fashion_mnist_stages():
    """The full profile's ResNet8 on Fashion-MNIST with the original's recipe (up to 100 epochs) was
    computed on a GPU; the gpu profile computes those stages and more."""
    full = {
        s.id
        for s in profiles.expand(profiles.load_profile("full"))
        if s.data.dataset == "fashion_mnist" and s.train.max_epochs == 100
    }
    gpu = profiles.expand(profiles.load_profile("gpu"))
    assert full and full < {s.id for s in gpu if s.model.arch == "resnet8"}
    assert {s.model.arch for s in gpu} == {"resnet8", "vgg11", "cnn"}
    assert {s.train.training for s in gpu} == {"standard", "pgd"}
    # a GPU affords several seeds: every model of the profile runs three
    seeds = {}
    for s in gpu:
        seeds.setdefault((s.data.dataset, s.model.arch, s.train.training), set()).add(s.train.seed)
    assert set(map(frozenset, seeds.values())) == {frozenset({0, 1, 2})}


def _recipe(stage) -> dict:
    """A stage's parameters without its training (what must match for a like-for-like comparison)."""
    return {
        k: v
        for k, v in stage.params().items()
        if k not in ("training", "adv_eps", "adv_steps", "adv_step_size", "batch_size")
    }


def test_the_full_profile_compares_pgd_training_at_the_cpu_budget_on_the_cpu_profiles_stages():
    """The adversarial-training chapter's CPU comparisons: the PGD-trained ResNet8 (Fashion-MNIST) and
    CNN (MNIST, to CR 64) beside standard models whose stages are the cpu profile's (one table, not a
    second computation), at the same recipe and with the same attack runs."""
    full = profiles.expand(profiles.load_profile("full"))
    cpu_ids = {s.id for s in profiles.expand(profiles.load_profile("cpu"))}
    for only in ({"arch": "resnet8", "max_epochs": 3}, {"arch": "cnn", "finetune_max_epochs": 3}):
        picked = profiles.select(full, only)
        std = [s for s in picked if s.train.training == "standard"]
        pgd = [s for s in picked if s.train.training == "pgd"]
        assert std and pgd, only
        # the cpu profile's models (ResNet8 faces one more attack here: APGD, the fixed Linf check)
        assert {s.id for s in std if s.kind != "attack" or s.model.arch == "cnn"} <= cpu_ids, only
        assert {s.id for s in pgd}.isdisjoint(cpu_ids), only  # the cpu profile has no adversarial training
        assert all(s.train.adv_eps == 0.1 and s.train.adv_steps == 10 for s in pgd)
        runs = {
            (s.kind, s.params().get("attack"), s.params().get("cr"), s.params().get("eps") and tuple(s.params()["eps"]))
            for s in pgd
        }
        std_runs = {
            (s.kind, s.params().get("attack"), s.params().get("cr"), s.params().get("eps") and tuple(s.params()["eps"]))
            for s in std
        }
        assert std_runs <= runs, only  # every attack run on the standard model also runs on the PGD-trained one
        # beyond them only fixed-budget checks of the PGD-trained model's minimal attacks, at their budgets
        extra = runs - std_runs
        minimal = {(cr, eps) for kind, attack, cr, eps in runs if attack and attacks.ATTACKS[attack].kind == "minimal"}
        assert all(attacks.ATTACKS[a].kind == "fixed" and (cr, eps) in minimal for _, a, cr, eps in extra), only
        prune_std, prune_pgd = (next(s for s in group if s.kind == "prune") for group in (std, pgd))
        assert {k: v for k, v in _recipe(prune_std).items() if k != "max_epochs"} == {
            k: v for k, v in _recipe(prune_pgd).items() if k != "max_epochs"
        }, only
    # the CNN's 3-epoch schedule starts from the same PGD-trained dense model as the 30-epoch one
    pgd_cnn = [s for s in full if s.kind == "prune" and s.model.arch == "cnn" and s.train.training == "pgd"]
    assert sorted(s.prune.finetune_max_epochs for s in pgd_cnn) == [3, 30]
    assert len({s.upstream.id for s in pgd_cnn}) == 1
    assert max(pgd_cnn, key=lambda s: s.prune.finetune_max_epochs).prune.crs == (1, 2, 4, 8, 16)
    assert min(pgd_cnn, key=lambda s: s.prune.finetune_max_epochs).prune.crs == (1, 2, 4, 8, 16, 32, 64)


def test_profile_results_keeps_only_the_named_recipes_rows(monkeypatch):
    """The committed tables of the full profile hold two ResNet8 recipes; ``only`` picks one."""
    from pathlib import Path

    # the committed tables (another test's session fixture may point PRUNEROB_RESULTS elsewhere)
    monkeypatch.setenv("PRUNEROB_RESULTS", str(Path(__file__).resolve().parents[1] / "book" / "results"))
    prune = profiles.profile_results("prune", "full", {"arch": "resnet8", "max_epochs": 3})
    train_ids = {
        s.id
        for s in profiles.expand(profiles.load_profile("full"))
        if s.kind == "train" and s.model.arch == "resnet8" and s.train.max_epochs == 3
    }
    assert len(prune) and set(prune["train_id"]) <= train_ids
    everything = profiles.profile_results("prune", "full")
    assert set(everything[everything["arch"] == "resnet8"]["train_id"]) - train_ids  # the other recipe is there too
    with pytest.raises(SpecError, match="max_epochs=7"):
        profiles.profile_results("prune", "full", {"arch": "resnet8", "max_epochs": 7})


@pytest.mark.parametrize(
    "text, words",
    [
        ("", ["empty", "description, grid"]),
        ("grid:\n  - dataset: mnist\n    arch: [cnn, mlp\n", ["not valid YAML", "line 4"]),
        ("gird:\n  - dataset: mnist\n", ["unknown key(s) gird", "valid: description, grid"]),
        ("grid:\n  - dataset: mnist\n    crs: 4\n", ["grid entry 1", "crs=4 must be a list"]),
        (
            "grid:\n  - dataset: mnist\n    attacks:\n      - attack: l0_pgd\n        eps: [2.5, 8.7]\n",
            ["grid entry 1", "attack entry 1", "eps=[2.5, 8.7]", "positive integers"],
        ),
        (
            "grid:\n  - dataset: mnist\n    attacks:\n      - attack: linf_pgd\n        n_sample: 10\n",
            ["attack entry 1", "unknown key(s) n_sample", "n_samples", "on_crs"],
        ),
    ],
)
def test_a_broken_profile_fails_whole_before_anything_runs(text, words, tmp_path, out_dirs):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        sweep.run(str(path), progress=False, echo=lambda line: None)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    for w in words:
        assert w in str(err.value), str(err.value)
    assert not any(d.exists() for d in out_dirs.values())


def test_a_minimal_attack_listed_with_two_grids_runs_once_on_their_union(tmp_path, monkeypatch):
    """Two entries asking one checkpoint for the same minimal attack at other budgets are one run
    (its id leaves the grid out), reported at every budget either asked for."""
    from prunerob import profiles

    (tmp_path / "two.yaml").write_text(
        "description: one minimal run, two grids\n"
        "grid:\n"
        "  - {dataset: mnist, arch: mlp, crs: [1, 2], attacks: [{attack: l2_ddn, eps: [0.5, 1.0]}]}\n"
        "  - {dataset: mnist, arch: mlp, crs: [1, 2], attacks: [{attack: l2_ddn, eps: [1.0, 2.0]},\n"
        "                                                       {attack: l2_apgd, eps: [0.5]},\n"
        "                                                       {attack: l2_apgd, eps: [1.0]}]}\n"
    )
    monkeypatch.setenv("PRUNEROB_PROFILES", str(tmp_path))
    attacks = [s for s in profiles.expand(profiles.load_profile("two")) if s.kind == "attack"]
    ddn = [s for s in attacks if s.attack.attack == "l2_ddn"]
    assert len(ddn) == 2 and {s.checkpoint.cr for s in ddn} == {1, 2}  # one per checkpoint
    assert all(list(s.attack.eps) == [0.5, 1.0, 2.0] for s in ddn)
    assert len([s for s in attacks if s.attack.attack == "l2_apgd"]) == 4  # a fixed attack: one run per grid


def test_the_cnn_recompute_profile_is_every_method_on_the_default_set():
    """recompute/cnn/profile.yaml, the CNN's recompute in progress (README, recompute status): seed 0's
    12 methods and seeds 1 and 2's six magnitude methods, each facing the default set
    (``bench.DEFAULT_SET``) on every pruned CR and PGD_0 at CR 4, 16, 64; the dense model attacked once,
    under the headline method, which seed 0 also attacks with PGD_0 on every CR and the original's PGD
    presets."""
    from pathlib import Path

    from prunerob import bench

    path = Path(__file__).resolve().parents[1] / "recompute" / "cnn" / "profile.yaml"
    stages = profiles.expand(profiles.load_profile(str(path)))
    default = {(name, preset) for pairs in bench.DEFAULT_SET.values() for name, preset in pairs}
    headline = ("unstructured", "global", "magnitude")
    every, pruned, checks = [1, 2, 4, 8, 16, 32, 64], [2, 4, 8, 16, 32, 64], [4, 16, 64]
    got: dict = {}
    for s in stages:
        if s.kind == "attack":
            method = (s.prune.structure, s.prune.scope, s.prune.criterion)
            key = (s.train.seed, method, s.attack.attack, s.attack.preset_name)
            got.setdefault(key, []).append(s.checkpoint.cr)
    assert {s.model.arch for s in stages} == {"cnn"} and all(
        s.attack.n_samples == 1000 for s in stages if s.kind == "attack"
    )
    magnitude = {m for m in METHODS if m[2] == "magnitude"}
    for seed, methods in ((0, METHODS), (1, magnitude), (2, magnitude)):
        assert {key[1] for key in got if key[0] == seed} == methods, seed
        for method in methods:
            names = {key[2:]: sorted(crs) for key, crs in got.items() if key[:2] == (seed, method)}
            extra = {("l0_pgd", "default"): every if (seed, method) == (0, headline) else checks}
            if (seed, method) == (0, headline):
                extra |= {("linf_pgd", "original"): every, ("l2_pgd", "original"): every}  # the original's presets
            if (seed, method) == (0, headline):  # the full profile's standard twin of its PGD-trained CNN
                extra |= {(name, "default"): every for name in ("linf_apgd", "l2_apgd", "l2_ddn", "l0_pgd_min")}
            wanted = {pair: every if method == headline else pruned for pair in default} | extra
            assert names == wanted, (seed, method)
    assert Counter(s.kind for s in stages) == Counter({"train": 3, "prune": 24, "attack": 666 + 2 * 314})
    # the full profile's stages on these weights (its standard twin) are re-made in this unit
    twin = {
        s.id
        for s in profiles.expand(profiles.load_profile("full"))
        if s.kind == "attack"
        and s.model.arch == "cnn"
        and s.train.training == "standard"
        and s.prune.finetune_max_epochs == 3
    }
    assert len(twin) == 42 and twin <= {s.id for s in stages}


def test_the_resnet8_recompute_profile_is_the_default_set_on_the_cpu_profiles_resnet8():
    """recompute/resnet8/profile.yaml: the cpu profile's ResNet8 stages (the same train and prune
    stage ids, so its tables replace theirs), both pruning methods facing the default set
    (``bench.DEFAULT_SET``) and PGD_0 at CR 4, 16, 64, the dense model once, on 500 images."""
    from pathlib import Path

    from prunerob import bench

    path = Path(__file__).resolve().parents[1] / "recompute" / "resnet8" / "profile.yaml"
    stages = profiles.expand(profiles.load_profile(str(path)))
    cpu = profiles.expand(profiles.load_profile("cpu"))
    upstream = {s.id for s in stages if s.kind != "attack"}
    assert upstream == {s.id for s in cpu if s.kind != "attack" and s.model.arch == "resnet8"}
    wanted = {(name, preset) for pairs in bench.DEFAULT_SET.values() for name, preset in pairs} | {
        ("l0_pgd", "default")
    }
    got: dict = {}
    for s in stages:
        if s.kind == "attack":
            assert s.attack.n_samples == 500 and s.model.arch == "resnet8"
            got.setdefault((s.checkpoint.cr, s.attack.attack, s.attack.preset_name), set()).add(s.prune.structure)
    for cr in (4, 16, 64):
        assert {k[1:] for k in got if k[0] == cr} == wanted and all(
            got[(cr, *p)] == {"unstructured", "filter"} for p in wanted
        )
    assert {k[1:] for k in got if k[0] == 1} == wanted and all(got[(1, *p)] == {"unstructured"} for p in wanted)
    assert len([s for s in stages if s.kind == "attack"]) == 9 * 7


def test_train_and_prune_estimates_scale_with_their_work(out_dirs):
    """A train stage is estimated per training image (scaled down where it may run fewer epochs than
    its counterparts ran), a prune stage per CR of its schedule: committed MLP tables of the cpu
    profile copied into an empty results folder."""
    import dataclasses
    import shutil
    from pathlib import Path

    import pandas as pd

    book = Path(__file__).resolve().parents[1] / "book" / "results"
    prune = next(
        s
        for s in profiles.expand(profiles.load_profile("cpu"))
        if s.kind == "prune" and s.params()["arch"] == "mlp" and (book / "prune" / f"{s.id}.parquet").is_file()
    )
    train = prune.upstream
    for kind, stage in (("train", train), ("prune", prune)):
        (out_dirs["results"] / kind).mkdir(parents=True)
        shutil.copy(book / kind / f"{stage.id}.parquet", out_dirs["results"] / kind)
    trained = pd.read_parquet(book / "train" / f"{train.id}.parquet").iloc[0]
    pruned = pd.read_parquet(book / "prune" / f"{prune.id}.parquet")
    crs = prune.prune.crs
    assert len(pruned) == len(crs) > 3 and train.data.n_train == 0  # all training images
    half = dataclasses.replace(train, data=dataclasses.replace(train.data, n_train=int(trained["n_train"]) // 2))
    short = dataclasses.replace(half, train=dataclasses.replace(half.train, max_epochs=1))
    fewer = dataclasses.replace(prune, prune=dataclasses.replace(prune.prune, crs=crs[:3]))
    got = plan.stage_estimates([train, half, short, prune, fewer])
    assert got[train.id] == pytest.approx(trained["seconds"])
    assert got[half.id] == pytest.approx(trained["seconds"] * (int(trained["n_train"]) // 2) / trained["n_train"])
    assert got[short.id] == pytest.approx(got[half.id] / trained["epochs"])
    assert got[prune.id] == pytest.approx(pruned["seconds"].sum())
    assert got[fewer.id] == pytest.approx(pruned["seconds"].sum() * 3 / len(crs))
