"""Result tables: which checkpoint each result measured."""

import pandas as pd
import pytest

from prunerob import results


def _frames():
    train = pd.DataFrame({"stage_id": ["t1", "t2"], "checkpoint_sha": ["T1", None]})
    prune = pd.DataFrame(
        {
            "stage_id": ["p1", "p1", "p2"],
            "train_id": ["t1", "t1", "t2"],
            "cr": [1.0, 2.0, 1.0],
            "dense_sha": ["T1", "T1", "T2"],
            "checkpoint_sha": ["P1", "P2", "Q1"],
        }
    )
    attack = pd.DataFrame(
        {
            "stage_id": ["a1", "a1", "a2", "a3", "a4"],
            "prune_id": ["p1", "p1", "p1", "p2", "p1"],
            "cr": [1, 1, 2, 1, 2],
            "source_cr": [1, 1, 2, 1, 1],
            "scenario": ["white-box", "white-box", "white-box", "white-box", "transfer"],
            "checkpoint_sha": ["P1", "P1", "P2-old", None, "P2"],
            "source_sha": ["P1", "P1", "P2-old", None, "P1"],
        }
    )
    return train, prune, attack


def test_each_result_is_matched_to_the_checkpoint_its_upstream_table_names():
    agreement = results.fingerprint_agreement(*_frames())
    assert agreement.loc["prune stage: its dense model"].to_dict() == {
        "runs": 2,
        "same": 1,
        "different": 0,
        "unknown": 1,
    }
    # a1 on P1 (same), a2 on a checkpoint since made again (different), a3 from before fingerprints, a4 same
    assert agreement.loc["attack run: the checkpoint attacked"].to_dict() == {
        "runs": 4,
        "same": 2,
        "different": 1,
        "unknown": 1,
    }
    assert agreement.loc["transfer attack: the checkpoint crafted on"].to_dict() == {
        "runs": 1,
        "same": 1,
        "different": 0,
        "unknown": 0,
    }


def test_tables_from_before_fingerprints_are_unknown_not_different():
    train, prune, attack = _frames()
    # a table from before fingerprints holds NA in their columns (python -m prunerob.migrate)
    agreement = results.fingerprint_agreement(
        train.assign(checkpoint_sha=None),
        prune.assign(dense_sha=None),
        attack.assign(checkpoint_sha=None, source_sha=None),
    )
    assert (agreement["different"] == 0).all() and (agreement["same"] == 0).all()
    assert agreement["unknown"].tolist() == agreement["runs"].tolist() == [2, 4, 1]


# --- schema ----------------------------------------------------------------------------------


def _valid(table="sweeps"):
    row = {
        "profile": "cpu",
        "started_at": "2026-01-01T00:00:00",
        "seconds": 1.5,
        "done": 1,
        "failed": 0,
        "blocked": 0,
        "skipped": 0,
        "workers": None,
        "scheduler": "local",
        "device": "cpu",
        "cpu_count": 2,
        "only": "",
        "code_version": "abc",
        "interrupted": False,
        "stopped": 0,
        "not_started": 0,
    }
    return results.conform(pd.DataFrame([row]), table)


@pytest.mark.slow  # reads every committed table (about a minute): make test runs it
def test_every_committed_table_file_matches_its_schema():
    root = results.ROOT / "book" / "results"
    bad = {}
    for table in results.TABLES:
        files = sorted((root / table).glob("*.parquet"))
        for path in files:
            problems = results.schema_problems(results.read_raw(path), table)
            if problems:
                bad[str(path.relative_to(root))] = problems[:3]
    assert not bad, f"{len(bad)} files do not match their schema (run `{results.MIGRATE_COMMAND}`): {bad}"


def test_a_conformed_frame_round_trips_with_its_columns_in_order(out_dirs):
    frame = _valid()
    assert frame.columns.tolist() == results.columns("sweeps")
    assert frame["schema_version"].tolist() == [results.SCHEMA_VERSION]
    assert frame["workers"].isna().all() and str(frame["workers"].dtype) == "Int64"
    shuffled = frame[frame.columns[::-1]]
    path = results.write_table(shuffled, "sweeps", "x")
    back = results.read_table_file(path)
    pd.testing.assert_frame_equal(back, frame)
    pd.testing.assert_frame_equal(results.collect("sweeps"), frame)


def test_a_missing_column_is_named_with_its_table_and_dtype(out_dirs):
    with pytest.raises(results.SchemaError, match=r"'sweeps'.*column 'device' is missing \(expected dtype str\)"):
        results.write_table(_valid().drop(columns="device"), "sweeps", "x")
    assert not results.table_path("sweeps", "x").exists()
    with pytest.raises(results.SchemaError, match="column 'device' is missing"):  # conform adds only nullable ones
        results.conform(_valid().drop(columns="device"), "sweeps")


def test_a_wrong_dtype_is_named_with_expected_and_found(out_dirs):
    frame = _valid().assign(done=1.0)
    with pytest.raises(results.SchemaError, match=r"'sweeps'.*column 'done' has dtype float64, expected int64"):
        results.write_table(frame, "sweeps", "x")
    with pytest.raises(results.SchemaError, match=r"column 'done'.*does not cast to int64: non-integer"):
        results.conform(frame.assign(done=1.5), "sweeps")
    with pytest.raises(results.SchemaError, match=r"column 'device'.*does not cast to str"):
        results.conform(frame.assign(device=3), "sweeps")
    with pytest.raises(results.SchemaError, match=r"column 'seconds' holds 1 missing values; it is not nullable"):
        results.write_table(_valid().assign(seconds=float("nan")), "sweeps", "x")


def test_an_extra_column_is_named(out_dirs):
    with pytest.raises(results.SchemaError, match=r"'sweeps'.*column 'colour' is not in the schema"):
        results.write_table(_valid().assign(colour="red"), "sweeps", "x")
    with pytest.raises(results.SchemaError, match="column 'colour' is not in the schema"):
        results.conform(_valid().assign(colour="red"), "sweeps")


def test_reading_a_file_that_does_not_match_names_it_and_the_migration(out_dirs):
    path = results.table_path("sweeps", "old")
    path.parent.mkdir(parents=True)
    _valid().drop(columns="schema_version").to_parquet(path, index=False)
    for read in (
        lambda: results.collect("sweeps"),
        lambda: results.read_table_file(path),
        lambda: results.stage_done("sweeps", "old"),
    ):
        with pytest.raises(results.SchemaError, match=rf"{path}.*'schema_version' is missing.*prunerob.migrate"):
            read()


def test_collect_reads_its_cache_only_while_no_file_changed(out_dirs):
    first = _valid()
    results.write_table(first, "sweeps", "a")
    pd.testing.assert_frame_equal(results.collect("sweeps"), first)
    cached = list((out_dirs["artifacts"] / "cache").glob("collect-sweeps-*.parquet"))
    assert len(cached) == 1
    pd.testing.assert_frame_equal(results.collect("sweeps"), first)  # from the cache
    second = first.assign(done=7, seconds=2.5)
    results.write_table(second, "sweeps", "b")  # a new stage
    assert results.collect("sweeps")["done"].tolist() == [first["done"].iloc[0], 7]
    results.write_table(second.assign(done=9), "sweeps", "a")  # a stage's file rewritten
    assert results.collect("sweeps")["done"].tolist() == [9, 7]
    results.table_path("sweeps", "b").unlink()  # a stage's file removed
    assert results.collect("sweeps")["done"].tolist() == [9]
    assert len(list((out_dirs["artifacts"] / "cache").glob("collect-sweeps-*.parquet"))) == 1


def test_collect_of_a_table_without_files_has_its_columns():
    frame = results.empty("attack")
    assert frame.columns.tolist() == results.columns("attack") and not len(frame)
    assert not results.schema_problems(frame, "attack")


def test_migration_fills_true_values_and_is_idempotent(out_dirs):
    from prunerob import migrate

    root = results.results_dir()
    common = {
        "stage_id": "a",
        "prune_id": "p",
        "train_id": "t",
        "dataset": "mnist",
        "arch": "cnn",
        "seed": 0,
        "training": "standard",
        "structure": "unstructured",
        "scope": "global",
        "criterion": "magnitude",
        "schedule": "cumulative",
        "cr": 2.0,
        "sparsity": 0.5,
        "attack": "l2_cw",
        "preset": "x",
        "norm": "L2",
        "kind": "minimal",
        "library": "foolbox",
    }
    samples = pd.DataFrame(
        {
            "sample": [0, 1, 2, 3],
            "label": [1, 1, 1, 1],
            "clean_pred": [1, 1, 1, 0],
            "adv_pred": [0, 0, 0, 0],
            "success": [True] * 4,
            "valid": [True] * 4,
            "distance": pd.Series([0.5, 1.0, 2.0, 0.0], dtype="float32"),
            "l0_channels": pd.Series([1, 1, 1, 0], dtype="float32"),
            **common,
        }
    )
    attack = pd.DataFrame(
        {
            "eps": [0.0, 1.0, 1.5],
            "robust_acc": [0.75, 0.25, 0.25],
            "n": 4,
            "violations": 0,
            "seconds": 1.0,
            **common,
            "clean_acc": 0.75,
            "all_checks_passed": True,
            "stage_seconds": 2.0,
            "device": "cpu",
            "prunerob_version": "0",
            "code_version": "c",
            "torch_version": "2",
            "library_version": "3",
        }
    )
    for table, frame in (("samples", samples), ("attack", attack)):
        (root / table).mkdir(parents=True)
        frame.to_parquet(root / table / "a.parquet", index=False)
    report = migrate.migrate(root, echo=lambda *_: None)
    assert report["attack"]["rewritten"] == report["samples"]["rewritten"] == 1
    migrated = results.collect("attack")
    # d >= eps, of the clean-correct samples: at 1.0 the samples at 1.0 and 2.0
    assert migrated["robust_acc_original_rule"].tolist() == [0.75, 0.5, 0.25]
    assert migrated["robust_acc_run"].isna().all() and migrated["checkpoint_sha"].isna().all()
    assert migrated["scenario"].eq("white-box").all() and migrated["source_cr"].eq(2.0).all()
    assert not migrated["prune_dense_neurons"].any()
    assert results.collect("samples")["broken"].isna().all()
    again = migrate.migrate(root, echo=lambda *_: None)
    assert all(r["rewritten"] == 0 for r in again.values())


def test_a_stages_row_holds_every_parameter_and_rebuilds_the_same_stage():
    from prunerob import spec

    attack = spec.AttackStage.from_params(
        attack="l2_ddn", eps=[0.5, 1.0], structure="filter", cr=4, max_epochs=3, training="pgd", adv_eps=0.1
    )
    transfer = spec.AttackStage.from_params(attack="linf_apgd", cr=1, source_cr=4, n_samples=500)
    for stage in (attack, attack.upstream, attack.upstream.upstream, transfer):
        row = results.stage_row(stage).iloc[0]
        assert (row["stage_id"], row["kind"]) == (stage.id, stage.kind)
        assert type(stage).from_params(**results.stage_params(row)).id == stage.id
    train_row = results.stage_row(attack.upstream.upstream).iloc[0]
    assert pd.isna(train_row["structure"]) and pd.isna(train_row["eps"]) and train_row["max_epochs"] == 3


def test_with_params_adds_stage_parameters_and_names_bad_ones(out_dirs):
    import pytest

    from prunerob import spec

    stages = [spec.TrainStage.from_params(max_epochs=m) for m in (3, 30)]
    for stage in stages:
        results.write_stage_row(stage)
    frame = pd.DataFrame({"stage_id": [stages[0].id, stages[1].id, stages[0].id], "value": [1, 2, 3]})
    assert results.with_params(frame, "max_epochs")["max_epochs"].tolist() == [3, 30, 3]
    with pytest.raises(ValueError, match="no stage parameter epochs; valid: dataset"):
        results.with_params(frame, "epochs")
    with pytest.raises(ValueError, match="already has column"):
        results.with_params(frame.assign(max_epochs=1), "max_epochs")


def test_the_migration_writes_the_stages_rows_of_finished_profile_stages_only(out_dirs):
    from prunerob import migrate, profiles

    root = results.results_dir()
    stages = profiles.expand(profiles.load_profile("smoke"))
    done = [s for s in stages if s.kind == "train"]
    for stage in done:  # a finished train stage: its primary table exists
        (root / "train").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"x": [1]}).to_parquet(root / "train" / f"{stage.id}.parquet")
    (root / "train" / "train-not-in-a-profile.parquet").write_bytes(b"")
    quiet = {"echo": lambda *_: None, "names": ("smoke",)}
    assert migrate.stage_rows(root, write=False, **quiet) == len(done)
    assert migrate.stage_rows(root, **quiet) == len(done)
    assert sorted(results.collect("stages")["stage_id"]) == sorted(s.id for s in done)
    assert migrate.stage_rows(root, **quiet) == 0  # idempotent


def test_the_migration_moves_a_minimal_attacks_run_to_the_id_without_its_grid(out_dirs):
    from prunerob import migrate, profiles

    root, runs_root = results.results_dir(), results.runs_dir()
    stage = next(
        s
        for s in profiles.expand(profiles.load_profile("cpu"))
        if s.kind == "attack" and s.attack.attack == "l2_ensemble" and s.model.arch == "mlp"
    )
    old = migrate.grid_id(stage)
    assert old != stage.id and old.startswith("attack-")
    for table in ("attack", "samples", "checks"):
        (root / table).mkdir(parents=True)
        pd.DataFrame({"stage_id": [old, old], "x": [1, 2]}).to_parquet(root / table / f"{old}.parquet")
    (runs_root / "attack").mkdir(parents=True)
    (runs_root / "attack" / f"{old}.ipynb").write_text(f'{{"title": "# l2_ensemble ({old})"}}')
    quiet = {"echo": lambda *_: None, "names": ("cpu",)}
    assert migrate.minimal_ids(root, runs_root, write=False, **quiet) == {old: stage.id}
    assert (root / "attack" / f"{old}.parquet").exists()  # a check writes nothing
    assert migrate.minimal_ids(root, runs_root, **quiet) == {old: stage.id}
    for table in ("attack", "samples", "checks"):
        assert not (root / table / f"{old}.parquet").exists()
        assert pd.read_parquet(root / table / f"{stage.id}.parquet")["stage_id"].tolist() == [stage.id] * 2
    assert (runs_root / "attack" / f"{stage.id}.ipynb").read_text() == f'{{"title": "# l2_ensemble ({stage.id})"}}'
    assert migrate.minimal_ids(root, runs_root, **quiet) == {}  # idempotent


def test_the_migration_deletes_the_tables_and_runs_of_superseded_stages_only(out_dirs):
    """A profile change (another preset, another attack set) leaves tables of stages no profile
    holds: ``--superseded`` deletes them, so the book shows one truth, and keeps every table of a
    profile's stage, sweep records and files being written."""
    from prunerob import migrate, profiles

    root, runs_root = results.results_dir(), results.runs_dir()
    kept = next(s for s in profiles.expand(profiles.load_profile("smoke")) if s.kind == "attack")
    gone = "attack-000000000000"
    for table in ("attack", "samples", "checks", "stages"):
        (root / table).mkdir(parents=True, exist_ok=True)
        for sid in (kept.id, gone):
            pd.DataFrame({"stage_id": [sid]}).to_parquet(root / table / f"{sid}.parquet")
    (root / "sweeps").mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(root / "sweeps" / "smoke-20261206T000000Z.parquet")
    (runs_root / "attack").mkdir(parents=True)
    for sid in (kept.id, gone):
        (runs_root / "attack" / f"{sid}.ipynb").write_text("{}")
    writing = runs_root / "attack" / f".{gone}.123.tmp.ipynb"
    writing.write_text("{}")
    quiet = {"echo": lambda *_: None, "names": ("smoke",)}
    listed = migrate.superseded(root, runs_root, write=False, **quiet)
    assert sorted(p.name for p in listed) == sorted([f"{gone}.parquet"] * 4 + [f"{gone}.ipynb"])
    assert all(p.exists() for p in listed)  # a check deletes nothing
    assert migrate.superseded(root, runs_root, **quiet) == listed
    assert not any(p.exists() for p in listed)
    for table in ("attack", "samples", "checks", "stages"):
        assert (root / table / f"{kept.id}.parquet").exists()
    assert (root / "sweeps" / "smoke-20261206T000000Z.parquet").exists() and writing.exists()
    assert (runs_root / "attack" / f"{kept.id}.ipynb").exists()
    assert migrate.superseded(root, runs_root, **quiet) == []  # idempotent


# The commits of four units computed on branches of their own (2026-12-04/06: the MLP's recompute,
# three pieces of the original's CNN), kept then by tags computed/<commit> that did not survive the
# move to a new machine (only main's history travels): their code cannot be checked out (README).
LOST_CODE_VERSIONS = {"ade6698460cf", "5ad83cad84e3", "6d00d9edf379", "05577337b990"}


def test_every_committed_table_names_code_in_mains_history():
    """Every code version a committed table names (book/results, and recompute/ where a unit is being
    recomputed) is a commit of this checkout's history, so ``git checkout <code_version>`` gives the
    code that made the row; no unit is computed on a commit that does not land on main."""
    import glob
    import subprocess
    from pathlib import Path

    import pyarrow.parquet as pq

    root = Path(__file__).resolve().parents[1]
    if subprocess.run(["git", "rev-parse", "--git-dir"], cwd=root, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    versions = set()
    for path in glob.glob(str(root / "book" / "results" / "*" / "*.parquet")) + glob.glob(
        str(root / "recompute" / "*" / "results" / "*" / "*.parquet")
    ):
        if "code_version" in pq.read_schema(path).names:
            column = pq.read_table(path, columns=["code_version"]).column(0).to_pylist()
            versions |= {v.removesuffix("-dirty") for v in column if v}
    assert len(versions) > 10
    missing = sorted(
        v
        for v in versions - LOST_CODE_VERSIONS
        if subprocess.run(["git", "merge-base", "--is-ancestor", v, "HEAD"], cwd=root, capture_output=True).returncode
    )
    assert not missing, f"code versions not in main's history: {missing}"
