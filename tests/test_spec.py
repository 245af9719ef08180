import pytest

from prunerob import catalog, data
from prunerob.spec import (
    AttackStage,
    PruneStage,
    SpecError,
    TrainStage,
    stage_from_params,
)


def test_hash_is_stable_across_releases():
    # Changing these breaks every committed result: only non-default fields may enter the hash.
    assert TrainStage().id == "train-861ff6179123"
    assert PruneStage().id == "prune-e5e909e4da1f"
    assert AttackStage().id == "attack-a38838aede8e"


def test_hash_ignores_defaults_order_and_number_spelling():
    assert TrainStage.from_params(arch="cnn", seed=0, lr=0.001).id == TrainStage().id
    a = PruneStage.from_params(crs=[1, 2, 4], seed=1)
    b = PruneStage.from_params(seed=1, crs=[1.0, 2.0, 4.0])
    assert a.id == b.id
    assert PruneStage.from_params(seed=2).id != PruneStage.from_params(seed=1).id


def test_new_default_field_keeps_old_ids():
    # What a stage hashes is only what differs from the defaults.
    assert TrainStage().canonical() == {"data": {}, "model": {}, "train": {}}
    assert TrainStage.from_params(seed=3).canonical() == {"data": {}, "model": {}, "train": {"seed": 3}}


def test_upstream_links():
    s = AttackStage.from_params(arch="mlp", seed=2, cr=4)
    assert s.upstream.upstream == TrainStage.from_params(arch="mlp", seed=2)
    assert s.upstream == PruneStage.from_params(arch="mlp", seed=2)


@pytest.mark.parametrize(
    "kind, params, words",
    [
        ("train", {"dataset": "svhn"}, ["dataset='svhn'", "mnist", "fashion_mnist", "cifar10", "imagenette"]),
        ("train", {"arch": "resnet50"}, ["arch='resnet50'", "cnn", "vgg11", "resnet18"]),
        ("train", {"lr": -1}, ["lr=-1", "> 0"]),
        ("train", {"batch_size": 1.5}, ["batch_size=1.5", "integer"]),
        ("train", {"archh": "cnn"}, ["unknown parameter", "archh", "valid:", "arch"]),
        ("prune", {"structure": "channel"}, ["structure='channel'", "unstructured", "kernel", "filter"]),
        ("prune", {"crs": [1, 4, 2]}, ["strictly increasing"]),
        ("prune", {"crs": [0.5, 1]}, [">= 1"]),
        ("attack", {"attack": "pgd"}, ["attack='pgd'", "linf_pgd"]),
        ("attack", {"preset": "fast"}, ["preset", "original", "strong"]),
        ("attack", {"eps": [-0.1]}, ["eps entry", ">= 0"]),
        ("attack", {"cr": 3}, ["cr=3", "1, 2, 4"]),
        ("sweep", {}, ["unknown stage", "train, prune, attack"]),
    ],
)
def test_bad_input_names_what_was_wrong_and_the_valid_choices(kind, params, words):
    with pytest.raises(SpecError) as err:
        stage_from_params(kind, params)
    for w in words:
        assert w in str(err.value)


def test_params_round_trip():
    s = AttackStage.from_params(arch="mlp", crs=[1, 2], cr=2, eps=[0.1, 0.2], n_samples=10)
    assert AttackStage.from_params(**s.params()) == s
    assert s.params()["eps"] == [0.1, 0.2]


def test_attack_presets_are_pinned_since_stage_ids_hash_only_their_names():
    """Committed attack results are found by stage id, and the id hashes a preset's name, not its
    values: a preset edited in place would pass old results off as new ones. Changing a preset means
    adding one under a new name (new stage ids, fresh runs); only a new preset joins the lock file."""
    import json
    from pathlib import Path

    lock = json.loads((Path(__file__).parent / "presets.lock.json").read_text())
    now = catalog.preset_fingerprints()
    changed = sorted(k for k in lock if k in now and now[k] != lock[k])
    removed = sorted(set(lock) - set(now))
    assert not changed, f"presets edited in place: {changed}; add them under new names instead"
    assert not removed, f"presets removed: {removed}; committed results may still name them"
    assert set(now) - set(lock) == set(), (
        f"new presets {sorted(set(now) - set(lock))}: add them to tests/presets.lock.json"
    )


@pytest.mark.parametrize(
    "kind, params, words",
    [
        # attack budgets per norm: L0 in whole pixels, Linf in (0, 1], L2 > 0
        (
            "attack",
            {"attack": "l0_pgd", "eps": [2.5, 8.7]},
            ["eps=[2.5, 8.7]", "L0", "positive integers", "[1, 2, 4, 8"],
        ),
        ("attack", {"eps": [0.1, 2]}, ["eps=[0.1, 2]", "Linf", "(0, 1]"]),
        ("attack", {"attack": "l2_pgd", "eps": [-1.0, 1.0]}, ["eps entry", ">= 0"]),
        # a number where a list is expected
        ("prune", {"crs": 4}, ["crs=4 must be a list, e.g. [1, 2, 4]"]),
        ("attack", {"eps": 0.1}, ["eps=0.1 must be a list, e.g. ["]),
        # more samples than the test set has
        ("attack", {"n_samples": 20000}, ["n_samples=20000", "10000 test images of mnist", "1 .. 10000"]),
    ],
)
def test_bad_budgets_lists_and_sample_counts_fail_naming_the_valid_values(kind, params, words):
    with pytest.raises(SpecError) as err:
        stage_from_params(kind, params)
    assert "\n" not in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_an_attacks_default_budgets_are_its_norms():
    from prunerob.spec import NORM_DEFAULT_EPS, PAPER_LINF_EPS

    assert AttackStage.from_params(attack="l0_pgd").attack.eps == NORM_DEFAULT_EPS["L0"] == (1, 2, 4, 8, 12, 16, 24, 32)
    assert AttackStage.from_params(attack="l2_ddn").attack.eps == NORM_DEFAULT_EPS["L2"]
    assert AttackStage.from_params(attack="linf_fmn").attack.eps == PAPER_LINF_EPS
    # a default L0 grid hashes as given (it differs from the field default), a default Linf grid not at all
    assert (
        AttackStage.from_params(attack="l0_pgd").id
        == AttackStage.from_params(attack="l0_pgd", eps=[1, 2, 4, 8, 12, 16, 24, 32]).id
    )
    assert "eps" not in AttackStage.from_params(attack="linf_apgd").canonical()["attack"]
    # eps 0 (clean accuracy) as the first grid point stays valid, as before
    assert AttackStage.from_params(attack="l0_pgd", eps=[0, 1, 2]).attack.eps == (0, 1, 2)


def test_test_set_sizes_match_the_data():
    assert len(data.load_split("mnist", train=False)[1]) == catalog.DATASETS["mnist"].test_size


def _committed_attack_tables() -> set[str]:
    from pathlib import Path

    return {p.stem for p in (Path(__file__).resolve().parents[1] / "book" / "results" / "attack").glob("*.parquet")}


def test_attack_stage_ids_of_the_committed_profiles_are_unchanged():
    """Committed results are keyed by stage id: a change to how an attack stage hashes would orphan
    its table (and run it again unasked).  Every committed attack table is still a stage of the cpu
    or full profile, and every attack stage of the full profile (Linf, L2 and L0) finds its table."""
    from prunerob import profiles

    stages = {p: [s for s in profiles.expand(profiles.load_profile(p)) if s.kind == "attack"] for p in ("cpu", "full")}
    known = {s.id for group in stages.values() for s in group}
    orphans = sorted(_committed_attack_tables() - known)
    assert not orphans, f"{len(orphans)} committed attack tables belong to no stage of a profile: {orphans[:3]}"
    assert {s.attack.attack for s in stages["full"]} >= {"linf_pgd", "l2_ddn", "l0_pgd_min"}
    missing = [s.id for s in stages["full"] if s.id not in _committed_attack_tables()]
    assert not missing, (
        f"{len(missing)} of {len(stages['full'])} full-profile attack stages lack a table: {missing[:3]}"
    )


def test_every_attack_stage_of_the_cpu_profile_has_its_table():
    """The cpu profile attacks every pruning method of every model on every pruned checkpoint; the
    book reads every one of those results, so none may be missing (a unit still being recomputed
    lives under ``recompute/`` and enters the profile when it lands: README, recompute status)."""
    from prunerob import profiles

    have = _committed_attack_tables()
    stages = [s for s in profiles.expand(profiles.load_profile("cpu")) if s.kind == "attack"]
    missing = [s.id for s in stages if s.id not in have]
    assert {s.model.arch for s in stages} >= {"cnn", "mlp", "cnn_original", "resnet8"}
    assert not missing, f"{len(missing)} of {len(stages)} cpu-profile attack stages lack a table: {missing[:3]}"


def test_every_committed_stage_has_its_parameters_in_the_stages_table():
    """A recipe is a filter on columns: every finished stage of the committed tables has its row in
    the stages table, and the row rebuilds a stage with the same id (the parameters are whole)."""
    from pathlib import Path

    import pandas as pd

    from prunerob import results, spec

    book = Path(__file__).resolve().parents[1] / "book" / "results"
    have = {p.stem for kind in ("train", "prune", "attack") for p in (book / kind).glob("*.parquet")}
    rows = pd.concat([pd.read_parquet(p) for p in (book / "stages").glob("*.parquet")]).set_index("stage_id")
    assert not have - set(rows.index), f"{len(have - set(rows.index))} finished stages lack their stages row"
    kinds = {"train": spec.TrainStage, "prune": spec.PruneStage, "attack": spec.AttackStage}
    for stage_id, row in rows.iterrows():
        assert kinds[row["kind"]].from_params(**results.stage_params(row)).id == stage_id


def test_a_minimal_attacks_budget_grid_is_not_in_its_id_a_fixed_attacks_is():
    """One minimal run gives every sample's distance, so every budget: its grid is a report setting
    (a budget added later is computed from the samples); a fixed attack runs once per budget."""
    minimal = [AttackStage.from_params(attack="l2_ddn", eps=e, cr=4) for e in ([0.5, 1.0], [0.25, 0.5, 1.0, 2.0])]
    fixed = [AttackStage.from_params(attack="l2_apgd", eps=e, cr=4) for e in ([0.5, 1.0], [0.25, 0.5, 1.0, 2.0])]
    assert minimal[0].id == minimal[1].id and "eps" not in minimal[0].canonical()["attack"]
    assert fixed[0].id != fixed[1].id and fixed[0].canonical()["attack"]["eps"] == [0.5, 1]
    assert AttackStage.from_params(attack="l2_ddn", eps=[0.5, 1.0], cr=2).id != minimal[0].id
