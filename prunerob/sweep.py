"""The sweep: a profile's stages run on a local pool or a Dask cluster, each once its upstream stage is done.

The stages come from the profile (:mod:`prunerob.profiles`), what must run of them from the tables
and checkpoints there are (:mod:`prunerob.plan`), and each runs as its papermill-executed notebook
(:func:`prunerob.runs.execute_stage`).  On the local ``ProcessPoolExecutor`` a stage is submitted
once its upstream stage is done; on a Dask cluster (``dask.distributed.Client``) every stage is
submitted at once with its upstream stage's future as an argument, and the cluster runs it after
that one.  A stage that fails does not stop the others, only those that depend on it, and a re-run
retries it.  A re-checked stage (downstream of a
checkpoint made again) runs again only if that checkpoint came out different.

Before any kernel starts, the whole profile is checked (every stage built, so validated), and so are
the options and the data sets (:func:`prunerob.plan.preflight`).  A sweep with stages to run leaves a
record of what ran and its wall time (:func:`write_sweep_record`).  Ctrl-C stops the sweep cleanly
(see :func:`run`).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from prunerob import plan, profiles, results, runs
from prunerob.results import PRIMARY_TABLE, recorded_fingerprints
from prunerob.spec import SpecError, invalid


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False  # Ctrl-C: what had not finished is in stopped and not_started
    deadline: bool = False  # --stop-after/--finish-by: what did not start before the deadline is in not_started
    stopped: list[str] = field(default_factory=list)  # running when the sweep was interrupted
    not_started: list[str] = field(default_factory=list)
    record: Path | None = None  # the sweep record written

    def line(self) -> str:
        return (
            f"done {len(self.done)}, skipped {len(self.skipped)}, failed {len(self.failed)}, "
            f"blocked {len(self.blocked)}"
            + (f", stopped {len(self.stopped)}, not started {len(self.not_started)}" if self.interrupted else "")
            + (f", not started {len(self.not_started)} (deadline)" if self.deadline else "")
            + f", {self.seconds:.0f} s"
        )


def _must_run(stage, is_check: bool, before_up: dict | None, up_status: str | None) -> bool:
    """Whether a stage runs, once its upstream stage (if that ran in this sweep) has finished with
    ``up_status``: a stage with no result always; a re-checked one (its result is there, but its
    upstream checkpoint was re-made) only if that checkpoint came out different from the one its
    result was computed on (``before_up``: the upstream table's fingerprints before the re-make)."""
    if not is_check:
        return True
    if up_status == "skipped":  # the upstream was re-checked too and found unchanged: so is its checkpoint
        return False
    return not plan.reproduced(before_up, recorded_fingerprints(stage.upstream), stage)


def _stage_task(
    stage, device: str, progress: bool = False, is_check: bool = False, before_up=None, upstream=None
) -> tuple[str, str]:
    """One stage on a worker: ``(id, status)``, status ``done`` (ran) or ``skipped`` (a re-checked
    stage whose upstream checkpoint came out the same).  ``upstream`` is the upstream task's own
    ``(id, status)``: on Dask its future, which Dask resolves before this task starts (and which
    fails this task, unrun, if it failed).  The local pool decides before it submits, and passes
    neither."""
    if not _must_run(stage, is_check, before_up, upstream[1] if upstream else None):
        return stage.id, "skipped"
    runs.execute_stage(stage, device, progress)
    return stage.id, "done"


def run(
    profile_name: str,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    device: str = "auto",
    dry_run: bool = False,
    progress: bool = True,
    echo=print,
    only: dict[str, Any] | None = None,
    stop_after: float | None = None,
    finish_by: float | None = None,
) -> Summary:
    """Expand a profile, skip what exists, run the rest, each stage once its upstream stage is done.

    Ctrl-C (SIGINT) stops scheduling, ends the running stages (their workers and kernels), writes the
    sweep record (``interrupted``) and returns a summary with ``interrupted`` set; a second Ctrl-C
    ends the process at once.  ``stop_after`` (hours, local pool only): no stage starts after that
    long, the running ones finish (nothing is lost), and the summary has ``deadline`` set; the pool is
    then handed one stage per worker at a time.  ``finish_by`` (hours, instead of ``stop_after``): the
    same, and no stage starts that its estimate (:func:`prunerob.plan.stage_estimates`) says would
    end after that long, so shorter stages fill the time left; a stage with no estimate starts as
    with ``stop_after``.  A re-run resumes: finished stages are skipped."""
    plan.check_options(device, workers)
    check_deadline(stop_after, finish_by, scheduler)
    profile = profiles.load_profile(profile_name)
    try:
        all_stages = profiles.expand(profile)
    except SpecError as exc:
        raise SpecError(f"profile {profiles.profile_path(profile_name)}: {exc}") from None
    all_stages = profiles.select(all_stages, only or {})
    remade: dict[str, str] = {}
    todo = plan.plan(all_stages, remade)
    todo_ids = {t.id for t in todo}
    checks = plan.recheck(all_stages, todo)
    check_ids = {s.id for s in checks}
    summary = Summary(skipped=[s.id for s in all_stages if s.id not in todo_ids | check_ids])
    counts = {k: sum(s.kind == k for s in all_stages) for k in PRIMARY_TABLE}
    echo(
        f"profile {profile_name}: {len(all_stages)} stages ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
        f"{len(todo)} to run, {len(summary.skipped)} already done"
        + (f", {len(checks)} to run again if a checkpoint they used comes out different when re-made" if checks else "")
    )
    for stage_id, problem in remade.items():
        echo(f"re-making the checkpoints of {stage_id} (its stage runs again): {problem}")
    # finished minimal attacks asked for budgets their table lacks: computed from their samples
    for stage in all_stages:
        budgets = plan.missing_budgets(stage) if stage.id not in todo_ids else []
        if budgets:
            echo(
                f"{'would add' if dry_run else 'adding'} budget(s) {', '.join(f'{e:g}' for e in budgets)} to "
                f"{stage.id} from its samples (a minimal attack's run gives every budget; it is not run again)"
            )
            if not dry_run:
                plan.regrid(stage)
    if dry_run:
        for line in plan.grid_table(all_stages, {t.id for t in todo}):
            echo(line)
        if todo or checks:
            echo(plan.estimate(todo + checks, workers))
        for s in todo:
            echo(f"  would run {s.id}  ({plan.describe(s)})")
        for s in checks:
            echo(
                f"  would run {s.id} again unless {s.upstream.id} re-makes the checkpoint it used  ({plan.describe(s)})"
            )
        return summary
    if todo:
        plan.preflight(todo, device, workers)
    # what the tables of the stages about to run again say about their checkpoints, before they run
    before = {s.id: recorded_fingerprints(s) for s in todo + checks if s.kind != "attack"}
    runs.remove_stale_temporaries()
    started_at = datetime.datetime.now(datetime.UTC)
    start = time.perf_counter()
    executor, close = _executor(workers, scheduler)
    failed_ids: set[str] = set()
    total = len(todo) + len(checks)
    count = 0
    stop = _Interrupt(executor)
    order = {kind: i for i, kind in enumerate(PRIMARY_TABLE)}
    # trains first, then prunes, then attacks: every stage after its upstream stage
    waiting = sorted(todo + checks, key=lambda st: order[st.kind])
    hours = stop_after if stop_after is not None else finish_by
    deadline = start + hours * 3600 if hours is not None else None
    estimates = plan.stage_estimates(todo + checks) if finish_by is not None else {}

    def fits(st) -> bool:  # --finish-by: its estimate ends it before the deadline (no estimate: it may start)
        seconds = estimates.get(st.id)
        return seconds is None or deadline is None or time.perf_counter() + seconds <= deadline

    pending = todo_ids | check_ids
    running: dict[Any, Any] = {}
    status: dict[str, str] = {}  # finished stages: done or skipped
    futures: dict[str, Any] = {}  # Dask: each stage's future

    def upstream_id(st) -> str | None:  # its upstream stage, if that runs in this sweep
        return st.upstream.id if hasattr(st, "upstream") and st.upstream.id in pending else None

    def check(st) -> tuple[bool, dict | None]:  # a re-checked stage?, its upstream's fingerprints before
        up = upstream_id(st)
        return st.id in check_ids, before.get(up) if up else None

    def again(st) -> str:  # why a re-checked stage runs
        return (
            f" (again: {upstream_id(st)} re-made the checkpoint it used, and it is not the one its result "
            "was computed on, or that one's fingerprint is unknown)"
            if st.id in check_ids
            else ""
        )

    try:
        stop.install()
        if scheduler:
            # Dask: every stage submitted at once, its upstream stage's future as an argument, so that
            # the cluster runs it once that one is done (and fails it, unrun, if that one failed)
            for st in waiting:
                up = upstream_id(st)
                futures[st.id] = executor.submit(
                    _stage_task, st, device, progress, *check(st), futures.get(up) if up else None
                )
                running[futures[st.id]] = st
            waiting = []
            if progress:
                echo(f"submitted {len(running)} stages to the Dask cluster, each to run once its upstream is done")
        while (waiting or running) and not stop.requested:
            # the local pool: a stage is submitted as soon as its upstream stage has finished, so a
            # slow prune stage delays only its own attacks; with a deadline, one stage per worker at a
            # time (a stage queued in the pool would start after it) and none once it has passed
            # (with --finish-by, none that its estimate says would end after it)
            past = deadline is not None and time.perf_counter() >= deadline
            if past and not running:
                summary.deadline = True
                summary.not_started = [st.id for st in waiting]
                break
            still = []
            for st in waiting:
                up = upstream_id(st)
                if up in failed_ids:
                    summary.blocked.append(st.id)
                    failed_ids.add(st.id)
                    count += 1
                elif up is None or up in status:
                    if not _must_run(st, *check(st), status[up] if up else None):
                        status[st.id] = "skipped"  # its result was computed on the checkpoint there now
                        summary.skipped.append(st.id)
                        count += 1
                        continue
                    if deadline is not None and (past or len(running) >= workers or not fits(st)):
                        still.append(st)
                        continue
                    if progress:
                        echo(f"scheduled {st.id}  ({plan.describe(st)}){again(st)}")
                    running[executor.submit(_stage_task, st, device, progress)] = st
                else:
                    still.append(st)
            waiting = still
            if deadline is not None and waiting and not running:  # none of them may start any more
                summary.deadline = True
                summary.not_started = [st.id for st in waiting]
                break
            for fut in _first_done(running, STOP_CHECK_S):
                st = running.pop(fut)
                count += 1
                try:
                    _, status[st.id] = fut.result()
                except Exception as exc:  # noqa: BLE001 - one failing stage must not stop the sweep
                    failed_ids.add(st.id)
                    up = upstream_id(st)
                    if up in failed_ids or (up in futures and futures[up].status == "error"):
                        # Dask: failed, unrun, because its upstream failed
                        summary.blocked.append(st.id)
                        continue
                    summary.failed[st.id] = runs.last_error_line(exc)
                    echo(f"FAILED {st.id}: {summary.failed[st.id]}")
                    continue
                if status[st.id] == "skipped":
                    summary.skipped.append(st.id)
                    continue
                summary.done.append(st.id)
                if progress:  # on Dask, where it was not scheduled by this loop, why a re-checked stage ran
                    echo(f"[{count}/{total}] done {st.id}{again(st) if scheduler else ''}")
        if stop.requested:
            summary.interrupted = True

            # a submitted stage still queued in the pool had not started: only those a worker had
            # taken up were stopped while running (a local pool hands a worker at most one queued
            # stage ahead). A Dask future cannot say: one whose upstream stage had finished counts as
            # started, the others had not.
            def started(fut, st) -> bool:
                if isinstance(fut, concurrent.futures.Future):
                    return fut.running() or fut.done()
                return upstream_id(st) is None or upstream_id(st) in status

            started_ids = [st.id for fut, st in running.items() if started(fut, st)]
            summary.stopped = started_ids
            summary.not_started = [st.id for st in running.values() if st.id not in started_ids]
            summary.not_started += [st.id for st in waiting]
            stop.end_workers()
            if futures:  # Dask: what the cluster has not run yet is dropped
                executor.cancel(list(futures.values()))
            runs.remove_stale_temporaries()  # the stopped stages' half-written run records
    finally:
        if summary.interrupted:
            stop.close_quietly(close)
        else:
            close()
    try:
        summary.seconds = time.perf_counter() - start
        if todo:  # a sweep with nothing to run leaves no record (the book's build must not change the tree)
            summary.record = write_sweep_record(
                profile_name, summary, started_at, workers=workers, scheduler=scheduler, device=device, only=only
            )
        if summary.interrupted:
            for line in interrupted_report(summary):
                echo(line)
        else:
            echo(summary.line())
            if summary.deadline:
                echo(
                    f"  --stop-after {stop_after:g} h passed: {len(summary.not_started)} stages not started; "
                    "run the same command again to go on"
                    if finish_by is None
                    else f"  --finish-by {finish_by:g} h: {len(summary.not_started)} stages not started (the time had "
                    "passed, or their estimate did not fit in what was left); run the same command again to go on"
                )
    finally:
        stop.restore()
    return summary


def check_deadline(stop_after: float | None, finish_by: float | None, scheduler: str | None) -> None:
    """``--stop-after`` or ``--finish-by`` (not both): a number of hours > 0, with the local pool (a
    Dask cluster is handed every stage at once)."""
    if stop_after is not None and finish_by is not None:
        raise SpecError(f"--stop-after={stop_after!r} and --finish-by={finish_by!r}: give one of the two")
    for flag, hours in (("--stop-after", stop_after), ("--finish-by", finish_by)):
        if hours is None:
            continue
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours < float("inf"):
            raise invalid(flag, hours, "a number of hours > 0, e.g. 2.5")
        if scheduler:
            raise SpecError(f"{flag}={hours!r} works with the local pool (--workers), not with --scheduler")


def interrupted_report(summary: Summary, shown: int = 5) -> list[str]:
    """The one-screen summary of an interrupted sweep."""
    out = [f"interrupted (Ctrl-C): {summary.line()}"]
    for label, ids in (
        ("stopped while running", summary.stopped),
        ("failed", list(summary.failed)),
        ("not started", summary.not_started),
    ):
        if ids:
            out.append(f"  {label} ({len(ids)}): {', '.join(ids[:shown])}" + (", ..." if len(ids) > shown else ""))
    if summary.record is not None:
        out.append(f"  sweep record: {summary.record}")
    out.append("  run the same command again to resume: finished stages are skipped")
    return out


class _Interrupt:
    """The sweep's Ctrl-C: the first asks the scheduling loop to stop (and the loop ends the running
    stages), a second ends the process at once (workers and kernels killed first)."""

    def __init__(self, executor) -> None:
        self.executor = executor
        self.requested = False
        self.previous: Callable[[int, FrameType | None], Any] | int | None = None
        self.installed = False

    def install(self) -> None:
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
            self.installed = True
        except ValueError:  # not the main thread (a sweep run from a thread): no Ctrl-C handling
            pass

    def restore(self) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)
            self.installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            self.end_workers(signal.SIGKILL)
            os._exit(130)
        self.requested = True
        print(
            "\nCtrl-C: stopping the sweep (ending the running stages; Ctrl-C again to quit at once)",
            file=sys.stderr,
            flush=True,
        )

    def _pids(self) -> list[int]:
        procs = getattr(self.executor, "_processes", None) or {}
        return list(procs)

    def end_workers(self, sig: int = signal.SIGTERM) -> None:
        """End the local pool's workers and everything they started (the stage kernels)."""
        import psutil

        victims = []
        for pid in self._pids():
            try:
                proc = psutil.Process(pid)
                victims += [*proc.children(recursive=True), proc]
            except psutil.NoSuchProcess:
                continue
        for proc in victims:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(victims, timeout=5)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        for fut in list(getattr(self.executor, "_pending_work_items", {}).values()):
            getattr(fut, "future", fut).cancel()

    @staticmethod
    def close_quietly(close) -> None:
        try:
            close(wait=False, cancel_futures=True)
        except TypeError:  # a Dask client's close
            close()
        except Exception:  # noqa: BLE001 - a pool whose workers were killed is broken; nothing to close
            pass


def write_sweep_record(
    profile_name: str,
    summary: Summary,
    started_at: datetime.datetime,
    *,
    workers: int,
    scheduler: str | None,
    device: str,
    only: dict[str, Any] | None,
) -> Path:
    """One row per sweep that ran stages, in ``sweeps/<profile>-<start time>.parquet``: when, how long,
    on what, and how many stages ran, failed and were skipped (``skipped == 0`` and ``failed == 0``: a
    complete run from nothing, whose wall time is the profile's cost on that machine)."""
    import pandas as pd

    row = {
        "profile": profile_name,
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": summary.seconds,
        "done": len(summary.done),
        "failed": len(summary.failed),
        "blocked": len(summary.blocked),
        "skipped": len(summary.skipped),
        "workers": workers if not scheduler else None,
        "scheduler": "dask" if scheduler else "local",
        "device": device,
        "cpu_count": os.cpu_count(),
        "only": " ".join(f"{k}={v}" for k, v in (only or {}).items()),
        "code_version": results.code_version(),
    }
    row.update(
        interrupted=bool(summary.interrupted), stopped=len(summary.stopped), not_started=len(summary.not_started)
    )
    return results.write_table(
        results.conform(pd.DataFrame([row]), "sweeps"),
        "sweeps",
        f"{Path(profile_name).stem}-{started_at:%Y%m%dT%H%M%SZ}",
    )


STOP_CHECK_S = 1.0  # the longest a Ctrl-C waits for the scheduling loop to notice it


def _first_done(running: dict, timeout: float) -> list:
    """The futures of ``running`` that have finished, once at least one has (or after ``timeout``
    seconds, so that the loop sees a Ctrl-C): the pool's or the Dask client's own wait, no polling."""
    if not running:
        return []
    futures = list(running)
    if isinstance(futures[0], concurrent.futures.Future):
        done, _ = concurrent.futures.wait(futures, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        return [f for f in futures if f in done]  # in submission order
    from dask.distributed import wait as dask_wait

    try:
        dask_wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
    except TimeoutError:
        pass
    return [f for f in futures if f.done()]


def _executor(workers: int, scheduler: str | None):
    if scheduler:
        from dask.distributed import Client

        client = Client(scheduler)

        class _DaskSubmit:  # Dask would cache identical calls; every stage run is a side effect
            def submit(self, fn, *args):
                return client.submit(fn, *args, pure=False)

            def cancel(self, futures: list) -> None:
                client.cancel(futures)

        return _DaskSubmit(), client.close
    from concurrent.futures import ProcessPoolExecutor

    workers = max(1, workers)
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_share_cores, initargs=(workers,))
    return pool, pool.shutdown


def _share_cores(workers: int) -> None:
    """Each of ``workers`` local processes gets its share of the cores: the stage kernels they start
    inherit ``OMP_NUM_THREADS`` (torch's thread count), so two workers on two cores do not run four
    threads.  A thread count the user set is kept.  Workers ignore Ctrl-C (the terminal sends it to
    the whole process group): the sweep ends them itself, without a traceback from each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
