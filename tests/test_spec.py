import pytest

from prunerob import attacks, data, models, prune
from prunerob.spec import (ARCHS, CRITERIA, DATASETS, SCOPES, STRUCTURES, AttackStage, PruneStage, SpecError,
                           TrainStage, stage_from_params)


def test_registries_match_the_names_specs_accept():
    assert set(DATASETS) == set(data.DATASETS)
    assert set(ARCHS) == set(models.ARCHITECTURES)
    assert set(STRUCTURES) == set(prune.STRUCTURES) and set(SCOPES) == set(prune.SCOPES)
    assert set(CRITERIA) == set(prune.CRITERIA)
    for info in attacks.ATTACKS.values():
        assert info.name.lower().startswith(info.norm.lower() + "_")


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


@pytest.mark.parametrize("kind, params, words", [
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
])
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

    from prunerob import attacks

    lock = json.loads((Path(__file__).parent / "presets.lock.json").read_text())
    now = attacks.preset_fingerprints()
    changed = sorted(k for k in lock if k in now and now[k] != lock[k])
    removed = sorted(set(lock) - set(now))
    assert not changed, f"presets edited in place: {changed}; add them under new names instead"
    assert not removed, f"presets removed: {removed}; committed results may still name them"
    assert set(now) - set(lock) == set(), f"new presets {sorted(set(now) - set(lock))}: add them to tests/presets.lock.json"
