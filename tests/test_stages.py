"""Stage bodies on real MNIST (small): cumulative vs one-shot schedules, checkpoints, missing upstream."""

import pandas as pd
import pytest
import torch

from prunerob import prune, results, stages
from prunerob.spec import AttackStage, PruneStage


@pytest.fixture
def trained(out_dirs):
    stage = PruneStage.from_params(
        n_train=500, n_eval=500, max_epochs=1, crs=[1, 2, 4], criterion="random", finetune_max_epochs=1
    )
    stages.run_train(stage.upstream, device="cpu", progress=False)
    return stage


def _masks(stage, cr):
    return prune.current_masks(stages.load_model(stages.prune_checkpoint(stage, cr)))


def test_cumulative_masks_nest_and_one_shot_masks_start_from_the_dense_model(trained):
    cumulative = trained
    oneshot = PruneStage.from_params(**{**trained.params(), "schedule": "oneshot"})
    for stage in (cumulative, oneshot):
        table = stages.run_prune(stage, device="cpu", progress=False)
        assert table["kept"].tolist() == pytest.approx([1, 0.5, 0.25], abs=1 / 61470)
    nested = lambda s: all(bool((a <= b).all()) for a, b in zip(_masks(s, 4).values(), _masks(s, 2).values()))
    assert nested(cumulative)
    assert not nested(oneshot)  # random masks drawn afresh from the dense model at every CR


def test_prune_without_its_dense_model_says_which_stage_to_run(out_dirs):
    stage = PruneStage.from_params(n_train=500, max_epochs=1, crs=[1, 2])
    with pytest.raises(stages.MissingUpstream, match=stage.upstream.id):
        stages.run_prune(stage, device="cpu", progress=False)


def test_saved_checkpoint_reloads_to_identical_outputs(trained, mnist):
    stages.run_prune(trained, device="cpu", progress=False)
    path = stages.prune_checkpoint(trained, 4)
    a, b = stages.load_model(path), stages.load_model(path)
    x = mnist.eval_subset(64)[0]
    assert torch.equal(a(x), b(x))
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(stages.MissingUpstream, match="unreadable"):
        stages.load_model(path)


VOLATILE = ["seconds", "resumed", "code_version"]


def test_a_killed_prune_stage_resumes_after_its_last_finished_cr_to_the_same_table(trained, monkeypatch):
    """Random masks, so the random state must resume too: the resumed table equals the first."""
    import pandas as pd

    from prunerob import results

    first = stages.run_prune(trained, device="cpu", progress=False)
    assert not first["resumed"].any()
    masks_first = _masks(trained, 4)
    # as a kill during CR 4's fine-tuning leaves it: CR 1 and 2 saved, no CR 4, no table
    stages.prune_checkpoint(trained, 4).unlink()
    results.table_path("prune", trained.id).unlink()
    calls = []
    real_fit = stages.fit
    monkeypatch.setattr(stages, "fit", lambda *a, **k: calls.append(k.get("desc")) or real_fit(*a, **k))
    again = stages.run_prune(trained, device="cpu", progress=False)
    assert calls == ["fine-tune CR 4"]  # CR 2 was not fine-tuned again
    assert again["resumed"].tolist() == [True, True, False]
    pd.testing.assert_frame_equal(again.drop(columns=VOLATILE), first.drop(columns=VOLATILE))
    masks_again = _masks(trained, 4)
    assert all(torch.equal(masks_first[k], masks_again[k]) for k in masks_first)  # same random masks


def test_a_checkpoint_of_another_stage_or_an_unreadable_one_is_not_resumed(trained):
    stages.run_prune(trained, device="cpu", progress=False)
    stages.prune_checkpoint(trained, 2).write_bytes(b"garbage")
    assert list(stages._finished_steps(trained)) == [1]  # resuming stops at the first unusable step
    again = stages.run_prune(trained, device="cpu", progress=False)
    assert again["resumed"].tolist() == [True, False, False]


def test_a_sweep_removes_only_the_temporaries_of_runs_that_ended(out_dirs):
    """A killed run's temporaries are cleared at the next sweep's start, but not those of a sweep
    running beside it (another --only slice): their worker is alive and its stage would lose its record."""
    import os
    import subprocess
    import sys
    import time

    from prunerob import runs

    records = out_dirs["runs"] / "train"
    tables = out_dirs["results"] / "train"
    records.mkdir(parents=True)
    tables.mkdir(parents=True)
    live = records / f".train-aaaaaaaaaaaa.{os.getpid()}.tmp.ipynb"
    assert runs._run_temporary(records / "train-aaaaaaaaaaaa.ipynb", os.getpid()) == live  # what execute_stage writes
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    dead = records / f".train-bbbbbbbbbbbb.{ended.pid}.tmp.ipynb"
    fresh_table = tables / ".train-aaaaaaaaaaaa.parquet.x1y2z3.tmp"
    old_table = tables / ".train-bbbbbbbbbbbb.parquet.q9w8e7.tmp"
    for path in (live, dead, fresh_table, old_table):
        path.write_text("{}")
    old = time.time() - runs.STALE_TABLE_TEMPORARY_S - 60
    os.utime(old_table, (old, old))
    runs.remove_stale_temporaries()
    assert live.exists() and fresh_table.exists()
    assert not dead.exists() and not old_table.exists()


def test_a_result_is_kept_only_where_every_checkpoint_it_used_is_known_to_be_the_same():
    from prunerob import plan, profiles

    full = profiles.expand(profiles.load_profile("full"))
    white = next(s for s in full if s.kind == "attack" and not s.transfer and s.checkpoint.cr == 2)
    transfer = next(
        s for s in full if s.kind == "attack" and s.transfer and s.checkpoint.source_cr == 1 and s.checkpoint.cr == 2
    )
    prune = next(s for s in full if s.kind == "prune")
    assert plan.reproduced({2.0: "a", 4.0: "b"}, {2.0: "a", 4.0: "c"}, white)
    assert not plan.reproduced({2.0: "a"}, {2.0: "b"}, white)
    assert not plan.reproduced(None, {2.0: "a"}, white)  # a table from before fingerprints
    assert not plan.reproduced({2.0: None}, {2.0: None}, white)
    assert not plan.reproduced({1.0: "a", 2.0: "b"}, {1.0: "x", 2.0: "b"}, transfer)  # its source changed
    assert plan.reproduced({1.0: "a", 2.0: "b"}, {1.0: "a", 2.0: "b"}, transfer)
    assert plan.reproduced({None: "d"}, {None: "d"}, prune) and not plan.reproduced({None: "d"}, {None: "e"}, prune)


def test_the_fingerprint_tells_weights_apart_and_survives_a_save(trained, tmp_path):
    from prunerob import results

    model = stages.load_model(stages.train_checkpoint(trained.upstream))
    sha = stages.model_fingerprint(model)
    assert results.read_table_file(results.table_path("train", trained.upstream.id))["checkpoint_sha"].iloc[0] == sha
    path = tmp_path / "m.pt"
    stages.save_model(path, model, "cnn", "mnist", {})
    assert stages.model_fingerprint(stages.load_model(path)) == sha
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert stages.model_fingerprint(model) != sha


def test_a_train_stage_gives_the_same_weights_whatever_the_thread_count(out_dirs):
    """Weights must not depend on how many threads torch had when the stage started (two workers on
    two cores give each one thread, one worker gives two): each stage fixes the count and records it."""
    from prunerob.spec import TrainStage

    stage = TrainStage.from_params(arch="cnn", n_train=1500, n_eval=500, max_epochs=1, batch_size=64)
    before = torch.get_num_threads()
    shas = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            row = stages.run_train(stage, device="cpu", progress=False)
            assert torch.get_num_threads() == threads  # the caller's count is restored
            shas.append(row["checkpoint_sha"].iloc[0])
            assert row["torch_threads"].iloc[0] == stages.STAGE_THREADS
    finally:
        torch.set_num_threads(before)
    assert shas[0] == shas[1]


def test_the_original_cnn_is_attacked_on_its_logits_and_once_the_original_way_on_its_softmax(out_dirs):
    """The replica of the original's CNN trains, prunes and is attacked like any model; with
    attack_output=softmax the attack receives probabilities as logits (the original's wiring), which
    the tables record; predictions, and so clean accuracy, are the same either way."""
    from prunerob.spec import AttackStage, PruneStage, TrainStage

    common = dict(arch="cnn_original", n_train=1000, n_eval=500, max_epochs=1)
    stages.run_train(TrainStage.from_params(**common), device="cpu", progress=False)
    stages.run_prune(PruneStage.from_params(**common, crs=[1, 4], finetune_max_epochs=0), device="cpu", progress=False)
    runs = {}
    for output in ("logits", "softmax"):
        stage = AttackStage.from_params(
            **common,
            crs=[1, 4],
            finetune_max_epochs=0,
            cr=4,
            attack="linf_pgd",
            eps=[4 / 255, 16 / 255],
            n_samples=100,
            attack_output=output,
        )
        runs[output] = stages.run_attack(stage, device="cpu", progress=False)
    logits, softmax = runs["logits"], runs["softmax"]
    assert (
        "attack_output"
        not in AttackStage.from_params(
            **common, crs=[1, 4], finetune_max_epochs=0, cr=4, attack="linf_pgd", n_samples=100
        ).canonical()["attack"]
    )
    assert logits["stage_id"].iloc[0] != softmax["stage_id"].iloc[0]
    assert set(logits["attack_output"]) == {"logits"} and set(softmax["attack_output"]) == {"softmax"}
    assert logits["clean_acc"].iloc[0] == softmax["clean_acc"].iloc[0] > 0.2  # chance: 0.1
    assert logits["checkpoint_sha"].iloc[0] == softmax["checkpoint_sha"].iloc[0]
    assert logits["all_checks_passed"].all() and softmax["all_checks_passed"].all()
    # every stage that ran wrote its parameters: a recipe is a filter on the stages table's columns
    with_params = results.with_params(softmax, "max_epochs", "n_train", "n_samples", "crs")
    assert with_params[["max_epochs", "n_train", "n_samples", "crs"]].iloc[0].tolist() == [
        1,
        1000,
        100,
        "[1, 4]",
    ]
    kinds = results.collect("stages").set_index("stage_id")["kind"]
    assert kinds[softmax["train_id"].iloc[0]] == "train" and kinds[softmax["prune_id"].iloc[0]] == "prune"


def test_a_checkpoint_with_other_weights_than_its_table_recorded_is_refused_and_not_resumed(trained):
    stages.run_prune(trained, device="cpu", progress=False)
    assert stages.checkpoint_problem(trained, 2) is None
    path = stages.prune_checkpoint(trained, 2)
    blob = torch.load(path, weights_only=True)
    blob["state_dict"] = torch.load(stages.prune_checkpoint(trained, 4), weights_only=True)["state_dict"]
    torch.save(blob, path)  # loadable, right stage and CR, wrong weights
    assert "is not the checkpoint its table recorded" in stages.checkpoint_problem(trained, 2)
    assert list(stages._finished_steps(trained)) == [1]
    attack = AttackStage.from_params(**{**trained.params(), "cr": 2, "n_samples": 500})
    with pytest.raises(
        stages.MissingUpstream,
        match=rf"CR 2 checkpoint of prune stage {trained.id}: .* run that "
        r"stage first: python -m prunerob stage prune -p 'n_train=500' -p 'n_eval=500'",
    ):
        stages.check_upstream(attack)


def test_a_result_computed_on_a_checkpoint_that_was_re_made_since_with_other_weights_runs_again(trained):
    """A prune table records its dense model's fingerprint; once the train stage's table records
    another (the train stage was re-made in an earlier sweep, say with other weights), the prune
    stage is planned again, with the reason, even when the sweep that plans it runs no train stage."""
    from prunerob import plan, results

    stages.run_prune(trained, device="cpu", progress=False)
    upstream = trained.upstream
    assert plan.plan([upstream, trained]) == []
    assert plan.used_fingerprints(trained) == results.recorded_fingerprints(upstream)
    # the prune stage's result was computed on another dense model than the one the train stage's
    # table (and checkpoint) now holds
    pruned = results.read_table_file(results.table_path("prune", trained.id))
    results.write_table(pruned.assign(dense_sha="0" * 16), "prune", trained.id)
    why: dict = {}
    assert [s.id for s in plan.plan([upstream, trained], why)] == [trained.id]
    assert "fingerprint 0000000000000000, which that stage has re-made since as" in why[trained.id]
    # a table from before fingerprints keeps its result: nothing says it belongs to another checkpoint
    results.write_table(pruned.assign(dense_sha=pd.Series([None] * len(pruned), dtype="str")), "prune", trained.id)
    assert plan.plan([upstream, trained]) == []


@pytest.mark.parametrize("kind", ["train", "prune", "attack"])
def test_a_stage_notebooks_parameters_cell_states_the_specs_defaults(kind):
    """papermill injects only the parameters a stage sets; the rest come from the notebook's
    parameters cell, so it must name every parameter of the stage with the spec's default (a
    notebook run by hand with no parameters is the default stage)."""
    import jupytext

    from prunerob import runs, spec

    cell = next(c for c in jupytext.read(runs.notebook_path(kind)).cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(cell.source, namespace)
    stated = {k: v for k, v in namespace.items() if not k.startswith("__")}
    defaults = (
        {"train": spec.TrainStage, "prune": spec.PruneStage, "attack": spec.AttackStage}[kind].from_params().params()
    )
    assert set(stated) == set(defaults) | {"device", "progress"}
    assert (stated["device"], stated["progress"]) == ("auto", True)
    for name, value in defaults.items():
        got = stated[name]
        assert (list(got) if isinstance(got, (list, tuple)) else got) == pytest.approx(value), name


def test_a_budget_added_to_a_minimal_attack_comes_from_its_samples_as_a_new_run_would_report_it(out_dirs):
    """A finished minimal attack asked for more budgets is not run again: the rows are computed from
    its samples (plan.regrid), and equal what a run reported at the larger grid writes."""
    from prunerob import plan
    from prunerob.spec import TrainStage

    common = dict(arch="mlp", n_train=1000, n_eval=500, max_epochs=1)
    stages.run_train(TrainStage.from_params(**common), device="cpu", progress=False)
    stages.run_prune(PruneStage.from_params(**common, crs=[1], finetune_max_epochs=0), device="cpu", progress=False)
    base = dict(**common, crs=[1], finetune_max_epochs=0, cr=1, attack="l2_ddn", n_samples=60)
    small = AttackStage.from_params(**base, eps=[0.5, 1.0])
    large = AttackStage.from_params(**base, eps=[0.25, 0.5, 1.0, 2.0])
    assert small.id == large.id
    stages.run_attack(small, device="cpu", progress=False)
    assert plan.missing_budgets(small) == [] and plan.missing_budgets(large) == [0.25, 2.0]
    assert plan.regrid(large) == [0.25, 2.0] and plan.missing_budgets(large) == []
    regridded = {t: results.read_table_file(results.table_path(t, large.id)) for t in ("attack", "checks")}
    assert "converged_at_twice_the_steps" in set(regridded["checks"]["check"])  # kept: no budget enters it
    curve = regridded["checks"][regridded["checks"]["check"] == "curve_holds_at_twice_the_steps"]
    assert list(curve["eps"]) == [0.5, 1.0]  # the run's budgets keep theirs; an added budget has none
    direct = stages.run_attack(large, device="cpu", progress=False)  # the same run, reported at the larger grid
    columns = ["eps", "robust_acc", "robust_acc_original_rule", "n", "violations", "clean_acc", "all_checks_passed"]
    pd.testing.assert_frame_equal(regridded["attack"][columns], direct[columns])
    assert 0 < direct["robust_acc"].iloc[1] < direct["clean_acc"].iloc[0]  # the budgets discriminate
    checks = results.read_table_file(results.table_path("checks", large.id))
    ran = ~((checks["check"] == "curve_holds_at_twice_the_steps") & checks["eps"].isin([0.25, 2.0]))
    pd.testing.assert_frame_equal(
        regridded["checks"][["check", "value", "passed"]],
        checks.loc[ran, ["check", "value", "passed"]].reset_index(drop=True),
    )
