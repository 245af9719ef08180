"""The sweep's scheduling on a real Dask cluster on loopback: every stage submitted at once with its
upstream stage's future as a dependency, each run after that one, none run after that one failed.

The stages' notebooks are replaced by a recorder (the cluster's workers are threads of this process,
so the replacement reaches them); the slow tests run real stages on Dask (tests/test_resume.py)."""

from __future__ import annotations

import threading
import time

import pytest

from prunerob import plan, profiles, runs, sweep


@pytest.fixture
def recorder(monkeypatch, out_dirs):
    """runs.execute_stage replaced: records when each stage started and ended, fails the one named."""
    seen: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()
    fail: set[str] = set()

    def execute(stage, device="auto", progress=True):
        start = time.monotonic()
        time.sleep(0.05)
        if stage.id in fail:
            raise RuntimeError(f"{stage.id} broke")
        with lock:
            seen[stage.id] = (start, time.monotonic())

    monkeypatch.setattr(runs, "execute_stage", execute)
    return seen, fail


def test_dask_runs_every_stage_after_its_upstream_and_none_after_a_failed_one(recorder):
    from dask.distributed import LocalCluster

    seen, fail = recorder
    stages = profiles.expand(profiles.load_profile("smoke"))
    prune = next(s for s in stages if s.kind == "prune" and s.train.seed == 1)
    fail.add(prune.id)
    lines: list[str] = []
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")  # a real scheduler, over loopback
        summary = sweep.run("smoke", scheduler=cluster.scheduler_address, echo=lines.append)
    downstream = {s.id for s in stages if s.kind == "attack" and s.upstream.id == prune.id}
    assert summary.failed.keys() == {prune.id} and "broke" in summary.failed[prune.id]
    assert set(summary.blocked) == downstream and len(downstream) == 3
    assert set(seen) == set(summary.done) == {s.id for s in stages} - downstream - {prune.id}
    for st in stages:  # each stage started after its upstream stage had ended
        if st.id in seen and hasattr(st, "upstream"):
            assert seen[st.id][0] >= seen[st.upstream.id][1], st.id
    # all submitted at once, before the first stage finished: the cluster orders them, not the loop
    submitted = next(i for i, line in enumerate(lines) if line.startswith(f"submitted {len(stages)} stages"))
    assert submitted < min(i for i, line in enumerate(lines) if "] done " in line)
    assert not any(line.startswith("scheduled ") for line in lines)


def test_a_re_checked_stage_runs_on_a_worker_only_if_its_upstream_checkpoint_changed(recorder, monkeypatch):
    """On Dask the re-check is decided on the worker, from the upstream task's own result."""
    seen, _ = recorder
    stages = profiles.expand(profiles.load_profile("smoke"))
    attack = next(s for s in stages if s.kind == "attack")
    same = {attack.checkpoint.cr: "a" * 16}
    monkeypatch.setattr(sweep, "recorded_fingerprints", lambda stage: dict(same))
    # its upstream was re-checked too and kept: skipped, whatever the fingerprints say
    assert sweep._stage_task(attack, "cpu", False, True, None, ("up", "skipped")) == (attack.id, "skipped")
    # its upstream re-made the checkpoint it used and it came out the same: skipped
    assert sweep._stage_task(attack, "cpu", False, True, dict(same), ("up", "done")) == (attack.id, "skipped")
    assert not seen
    # it came out different, or its old fingerprint is unknown: it runs again
    assert plan.reproduced({attack.checkpoint.cr: "b" * 16}, same, attack) is False
    assert sweep._stage_task(attack, "cpu", False, True, {attack.checkpoint.cr: "b" * 16}, ("up", "done")) == (
        attack.id,
        "done",
    )
    assert sweep._stage_task(attack, "cpu", False, True, None, ("up", "done")) == (attack.id, "done")
    # a stage with no result runs whatever its upstream did
    assert sweep._stage_task(attack, "cpu", False, False, None, ("up", "skipped")) == (attack.id, "done")
    assert list(seen) == [attack.id]


def test_the_plan_verifies_each_upstream_checkpoint_once(monkeypatch):
    """Many attack stages read one prune stage's checkpoints: the plan loads and fingerprints each
    checkpoint once, not once per attack stage that needs it (on the cpu profile's CNN that was 2,604
    loads, 9 minutes before the first stage started, for 91 checkpoints)."""
    from prunerob import results, stages

    all_stages = profiles.expand(profiles.load_profile("cpu"))
    attacks = [s for s in all_stages if s.kind == "attack"]
    assert len(attacks) > 10 * len({s.upstream.id for s in attacks})  # many attacks per prune stage
    # train and prune done with usable checkpoints, every attack still to run
    monkeypatch.setattr(results, "stage_done", lambda table, sid: table != "attack")
    monkeypatch.setattr(plan, "_upstream_changed", lambda stage: None)
    calls: list = []
    monkeypatch.setattr(stages, "checkpoint_problem", lambda st, cr=None: calls.append((st.id, cr)))
    todo = plan.plan(all_stages)
    assert sorted(s.id for s in todo) == sorted(s.id for s in attacks)
    wanted = {(s.upstream.id, float(cr)) for s in attacks for cr in s.upstream.prune.crs}
    assert set(calls) == wanted and len(calls) == len(wanted)  # every checkpoint verified, each once
