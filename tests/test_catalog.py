"""The catalog holds the study's names; every registry of implementations covers exactly them."""

import dataclasses

import pytest

from prunerob import attacks, catalog, data, models, prune, spec, zoo


def test_data_sets_each_have_a_loader_and_nothing_else_has():
    assert list(data.LOADERS) == list(catalog.DATASETS)
    assert list(data.DATASETS) == list(catalog.DATASETS)
    for name, info in data.DATASETS.items():
        facts = catalog.DATASETS[name]
        assert info.name == name and info.load is data.LOADERS[name]
        assert all(getattr(info, f.name) == getattr(facts, f.name) for f in dataclasses.fields(facts))


def test_architectures_each_have_a_constructor_and_nothing_else_has():
    assert list(models.ARCHITECTURES) == list(catalog.ARCHS)


def test_pruning_methods_each_have_an_implementation_and_nothing_else_has():
    assert set(prune._UNITS) == set(catalog.STRUCTURES)
    assert set(prune._SELECT) == set(catalog.SCOPES)
    assert set(prune._SCORES) == set(catalog.CRITERIA)


def test_attacks_each_have_a_run_function_and_nothing_else_has():
    assert list(attacks.RUNS) == list(catalog.ATTACKS)
    assert list(attacks.ATTACKS) == list(catalog.ATTACKS)
    for name, info in attacks.ATTACKS.items():
        entry = catalog.ATTACKS[name]
        assert isinstance(info, catalog.Attack) and info.run is attacks.RUNS[name]
        assert all(getattr(info, f.name) == getattr(entry, f.name) for f in dataclasses.fields(entry))


def test_attack_entries_are_well_formed():
    for name, entry in catalog.ATTACKS.items():
        assert entry.name == name
        assert entry.norm in catalog.NORMS and entry.kind in catalog.KINDS
        assert name.lower().startswith(entry.norm.lower() + "_")
        assert entry.presets and entry.reference
        for params in entry.presets.values():
            for attack, preset in params.get("components", []):  # an ensemble's components exist
                assert catalog.ATTACKS[attack].norm == entry.norm and preset in catalog.ATTACKS[attack].presets


def test_unknown_attack_names_the_valid_ones():
    with pytest.raises(spec.SpecError, match="attack='nope' is not valid; valid: linf_pgd, "):
        catalog.attack("nope")
    with pytest.raises(spec.SpecError, match="attack='nope' is not valid"):
        attacks.get("nope")


def test_zoo_data_sets_are_study_data_sets():
    assert set(catalog.ZOO_DATASETS) <= set(catalog.DATASETS)
    with pytest.raises(spec.SpecError, match="threat model 'Foo'"):
        zoo.check("rb:Foo:bar", "cifar10")


def test_specs_accept_exactly_the_catalog_names():
    assert spec.STRUCTURES is catalog.STRUCTURES and spec.SCOPES is catalog.SCOPES
    assert spec.CRITERIA is catalog.CRITERIA and spec.SpecError is catalog.SpecError
    for name in catalog.DATASETS:
        spec.DataSpec(dataset=name)
    for name in catalog.ARCHS:
        spec.ModelSpec(arch=name)
    for name in catalog.ATTACKS:
        spec.AttackSpec(attack=name)


def test_every_attacks_reference_is_in_the_books_bibliography():
    """The setup chapter cites each attack by its reference key: a key missing from
    book/references.bib would break the book's build with an unresolved citation."""
    import re
    from pathlib import Path

    bib = (Path(__file__).resolve().parents[1] / "book" / "references.bib").read_text()
    keys = set(re.findall(r"^@\w+\{([^,]+),", bib, re.M))
    missing = {a.reference for a in catalog.ATTACKS.values()} - keys
    assert not missing, f"attack references missing from book/references.bib: {sorted(missing)}"
