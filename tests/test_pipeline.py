"""The study end to end on the smoke profile: real papermill runs of the stage notebooks."""

import os

import nbformat
import numpy as np
import pytest

from prunerob import plan, profiles, results, runs, sweep
from prunerob.spec import TrainStage

pytestmark = pytest.mark.slow


def test_every_stage_runs_and_writes_its_tables(smoke_study):
    s = smoke_study["summary"]
    assert not s.failed and not s.blocked, s.failed
    assert len(s.done) == 10  # per seed (2): 1 train, 1 prune, 3 attack (one per CR)
    stages = profiles.expand(profiles.load_profile("smoke"))
    for stage in stages:
        assert results.stage_done(results.PRIMARY_TABLE[stage.kind], stage.id)
        record = runs.run_record(stage)
        nb = nbformat.read(record, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "n_train = 2000" in injected[0].source
        # titled by what it ran, with its stage id
        assert nb.cells[0].source.splitlines()[0] == f"# {runs.run_title(stage)} ({stage.id})"
        assert stage.params()["arch"] in runs.run_title(stage)
    assert not list(smoke_study["PRUNEROB_RUNS"].rglob("*.tmp.ipynb"))


def test_tables_are_tidy_and_the_curves_are_sane(smoke_study):
    attack = results.collect("attack")
    prune = results.collect("prune")
    assert sorted(prune["seed"].unique()) == [0, 1]
    for _, rows in prune.groupby("seed"):
        assert sorted(rows["cr"]) == [1.0, 2.0, 4.0]
        assert rows.sort_values("cr")["kept"].tolist() == pytest.approx([1.0, 0.5, 0.25], abs=1 / 61470)
    assert prune.groupby("cr")["clean_acc"].nunique().max() == 2  # two seeds, two different models
    for col in (
        "dataset",
        "arch",
        "seed",
        "structure",
        "scope",
        "criterion",
        "cr",
        "sparsity",
        "clean_acc",
        "attack",
        "norm",
        "kind",
        "eps",
        "robust_acc",
        "n",
        "violations",
        "seconds",
        "stage_id",
        "prune_id",
        "train_id",
        "library",
        "library_version",
        "torch_version",
        "code_version",
    ):
        assert col in attack.columns, col
    assert set(attack["norm"]) == {"Linf"} and set(attack["kind"]) == {"fixed"}
    for _, curve in attack.groupby("stage_id"):
        curve = curve.sort_values("eps")
        assert curve["robust_acc"].iloc[0] == curve["clean_acc"].iloc[0]
        assert np.all(np.diff(curve["robust_acc"]) <= 0)
    assert attack["violations"].sum() == 0
    assert results.collect("checks")["passed"].all()
    # every result names the checkpoint it measured, and it is the one the upstream table describes
    agreement = results.fingerprint_agreement(results.collect("train"), prune, attack)
    assert agreement["runs"].tolist() == agreement["same"].tolist() == [2, 6, 0]


def test_a_second_run_skips_everything(smoke_study):
    again = sweep.run("smoke", progress=False)
    assert again.done == [] and len(again.skipped) == 10


def test_a_sweep_that_ran_stages_leaves_a_record_of_its_wall_time(smoke_study):
    record = results.collect("sweeps")
    # the first run (from nothing) left one row; a run with nothing to do leaves none
    sweep.run("smoke", progress=False)
    assert len(results.collect("sweeps")) == len(record) == 1
    row = record.iloc[0]
    assert row["profile"] == "smoke" and row["done"] == 10 and row["skipped"] == 0 and row["failed"] == 0
    assert row["seconds"] == pytest.approx(smoke_study["summary"].seconds)
    assert row["workers"] == 1 and row["scheduler"] == "local" and row["cpu_count"] == os.cpu_count()
    assert row["code_version"] == results.code_version() and row["only"] == ""


def test_a_lost_checkpoint_is_recomputed_when_needed(smoke_study):
    from prunerob import stages

    stage = TrainStage.from_params(n_train=2000, n_eval=1000, max_epochs=1)
    all_stages = profiles.expand(profiles.load_profile("smoke"))
    assert plan.plan(all_stages) == []
    ckpt = stages.train_checkpoint(stage)
    saved = ckpt.read_bytes()
    ckpt.unlink()
    try:
        assert plan.plan(all_stages) == []  # nothing downstream needs it
        attack_table = next(p for p in (smoke_study["PRUNEROB_RESULTS"] / "attack").glob("*.parquet"))
        moved = attack_table.with_suffix(".bak")
        attack_table.rename(moved)
        try:
            todo = [s.kind for s in plan.plan(all_stages)]
            assert todo.count("attack") == 1 and "prune" not in todo  # prune checkpoints are there
        finally:
            moved.rename(attack_table)
    finally:
        ckpt.write_bytes(saved)


def test_unknown_parameter_fails_the_notebook_with_one_clear_error(smoke_study, tmp_path):
    import jupytext
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(
            jupytext.read(runs.notebook_path("train")),
            str(tmp_path / "bad.ipynb"),
            parameters={"archh": "cnn"},
            kernel_name="python3",
            progress_bar=False,
        )
    assert "unknown parameter(s) for the train stage: archh" in str(err.value)
    assert "valid: dataset" in str(err.value)
    assert not list((smoke_study["PRUNEROB_RESULTS"]).glob("train/*archh*"))


def test_dry_run_lists_without_running(smoke_study, capsys):
    s = sweep.run("cpu", dry_run=True, progress=False)
    out = capsys.readouterr().out
    stages = profiles.expand(profiles.load_profile("cpu"))
    counts = {k: sum(st.kind == k for st in stages) for k in ("train", "prune", "attack")}
    assert (
        f"profile cpu: {len(stages)} stages ({counts['train']} train, {counts['prune']} prune, "
        f"{counts['attack']} attack)"
    ) in out
    assert counts["prune"] >= 12 and out.count("would run") == len(stages)  # nothing is done in this results dir
    assert s.done == []


def _thread_setting():
    return os.environ.get("OMP_NUM_THREADS")


@pytest.mark.parametrize("user_setting", [None, "3"])
def test_local_workers_share_the_cores(monkeypatch, user_setting):
    """Two local workers on two cores run one torch thread each (stage kernels inherit the setting);
    a thread count the user chose is kept."""
    if user_setting is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", user_setting)
    pool, close = sweep._executor(2, None)
    try:
        seen = pool.submit(_thread_setting).result()
    finally:
        close()
    assert seen == (user_setting or str(max(1, (os.cpu_count() or 1) // 2)))


def test_results_on_a_re_made_checkpoint_run_again_unless_it_came_out_the_same(smoke_study, tmp_path, monkeypatch):
    """A fresh clone has the tables but not the checkpoints, so a stage added later re-makes the
    checkpoint it needs, and the finished results downstream of it were measured on the old one.
    Every result names the checkpoint it measured (a fingerprint); those downstream of a re-made
    checkpoint run again where it came out different, and are kept where it is the same."""
    import shutil

    res, art = tmp_path / "results", tmp_path / "artifacts"
    shutil.copytree(smoke_study["PRUNEROB_RESULTS"], res)
    shutil.copytree(smoke_study["PRUNEROB_ARTIFACTS"], art)
    for name, path in (("PRUNEROB_RESULTS", res), ("PRUNEROB_ARTIFACTS", art), ("PRUNEROB_RUNS", tmp_path / "runs")):
        monkeypatch.setenv(name, str(path))
    all_stages = profiles.expand(profiles.load_profile("smoke"))
    prune = next(s for s in all_stages if s.kind == "prune" and s.train.seed == 0)
    on = {s.checkpoint.cr: s for s in all_stages if s.kind == "attack" and s.upstream.id == prune.id}
    assert sorted(on) == [1, 2, 4]
    table = results.read_table_file(results.table_path("prune", prune.id))
    shas = dict(zip(table["cr"], table["checkpoint_sha"]))
    assert len(set(shas.values())) == 3  # three different checkpoints
    trained = results.read_table_file(results.table_path("train", prune.upstream.id))
    assert set(table["dense_sha"]) == {trained["checkpoint_sha"].iloc[0]}
    for cr, st in on.items():
        rows = results.read_table_file(results.table_path("attack", st.id))
        assert set(rows["checkpoint_sha"]) == set(rows["source_sha"]) == {shas[cr]}

    shutil.rmtree(art / "prune" / prune.id)  # the checkpoints are not in the clone
    results.table_path("attack", on[1].id).unlink()  # a result to compute: it needs the prune stage again
    table.loc[table["cr"] == 2, "checkpoint_sha"] = "0" * 16  # CR 2's result was measured on another checkpoint
    results.write_table(table, "prune", prune.id)
    remade: dict[str, str] = {}
    todo = plan.plan(all_stages, remade)
    # CR 2's result records another checkpoint than the prune table now holds: it runs again at once
    assert {s.id for s in todo} == {prune.id, on[1].id, on[2].id}
    assert "re-made since as " + "0" * 16 in remade[on[2].id]
    # CR 4's checkpoint is re-made: its result waits and runs again only if the weights come out other
    assert {s.id for s in plan.recheck(all_stages, todo)} == {on[4].id}

    summary = sweep.run("smoke", progress=False)
    assert sorted(summary.done) == sorted([prune.id, on[1].id, on[2].id]) and not summary.failed
    assert on[4].id in summary.skipped  # measured on the very checkpoint that was re-made
    assert results.recorded_fingerprints(prune) == shas  # re-made on this machine, the same weights
    rows = results.read_table_file(results.table_path("attack", on[2].id))
    assert set(rows["checkpoint_sha"]) == {shas[2]}


def test_bench_gradients_counts_the_correct_images_of_every_attacked_checkpoint(smoke_study, monkeypatch, tmp_path):
    import shutil

    from prunerob import bench

    attack = profiles.profile_results("attack", "smoke")
    records = bench.bench_gradients("smoke", n=50, echo=lambda line: None)
    assert len(records) == attack.drop_duplicates(["prune_id", "cr"]).shape[0] == 6  # 2 seeds x CR 1, 2, 4
    for r in records:
        row = attack[(attack["prune_id"] == r["prune_id"]) & (attack["cr"] == r["cr"])].iloc[0]
        assert r["checkpoint_sha"] == row["checkpoint_sha"]
        assert r["n"] == 50 and r["correct"] / 50 == row["clean_acc"]  # the attack's own 50 images
        assert 0 <= r["correct_zero_gradient"] <= r["correct"]
    # a checkpoint that is not the one the tables measured is left out and named; nothing is written
    copy = tmp_path / "artifacts"
    shutil.copytree(smoke_study["PRUNEROB_ARTIFACTS"], copy)
    monkeypatch.setenv("PRUNEROB_ARTIFACTS", str(copy))
    first, other = records[0], next(r for r in records[1:] if r["checkpoint_sha"] != records[0]["checkpoint_sha"])
    path = copy / "prune" / first["prune_id"] / f"cr{first['cr']:g}.pt"
    shutil.copy(copy / "prune" / other["prune_id"] / f"cr{other['cr']:g}.pt", path)
    said: list[str] = []
    again = bench.bench_gradients("smoke", n=50, echo=said.append)
    assert len(again) == 5 and said == [
        f"left out: {path} has fingerprint {other['checkpoint_sha']}, the tables {first['checkpoint_sha']}"
    ]
    with pytest.raises(ValueError, match="--arch='mlp' has no attack results in profile 'smoke'; valid: cnn"):
        bench.bench_gradients("smoke", archs=["mlp"])


def test_a_bench_sample_store_takes_the_runs_the_tables_hold(smoke_study, tmp_path):
    import torch

    from prunerob import bench
    from prunerob.spec import AttackSpec

    attack, stages_t = results.collect("attack"), results.collect("stages")
    row = attack[attack["cr"] == 2.0].iloc[0]
    params = stages_t[stages_t["stage_id"] == row["stage_id"]].iloc[0]
    spec = AttackSpec(
        attack="linf_pgd", eps=(8 / 255, 32 / 255), n_samples=50, attack_batch_size=int(params["attack_batch_size"])
    )
    store = bench.SampleStore(tmp_path, row["checkpoint_sha"], "cpu", tables=True)
    got = store.get(spec)
    assert got is not None and got[3] == f"{results.table_path('samples', row['stage_id'])} (the tables)"
    run = attack[attack["stage_id"] == row["stage_id"]]
    assert got[1] == pytest.approx(run["seconds"].sum()) and got[2] == bool(run["all_checks_passed"].all())
    # the set worked out from that run alone (no model: nothing may run) reads the table's curve
    x, y = torch.zeros(50, 1, 28, 28), torch.zeros(50, dtype=torch.long)
    out = bench.bench_attacks(None, x, y, (1, 28, 28), batch_size=int(params["attack_batch_size"]),
                              sets={"default": {"Linf": [spec]}}, samples=store)  # fmt: skip
    assert out["default"]["Linf"]["robust_acc"] == pytest.approx(dict(zip(run["eps"], run["robust_acc"])))
    assert out["default"]["Linf"]["runs_taken"] == {"linf_pgd": got[3]}
    # another budget list of a fixed attack, other images, another device, or no table lookup: not that run
    assert (
        store.get(AttackSpec(attack="linf_pgd", eps=(8 / 255,), n_samples=50, attack_batch_size=spec.attack_batch_size))
        is None
    )
    assert (
        store.get(AttackSpec(attack="linf_pgd", eps=spec.eps, n_samples=40, attack_batch_size=spec.attack_batch_size))
        is None
    )
    assert bench.SampleStore(tmp_path, row["checkpoint_sha"], "cuda", tables=True).get(spec) is None
    assert bench.SampleStore(tmp_path, row["checkpoint_sha"], "cpu").get(spec) is None
