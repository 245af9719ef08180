"""Study profiles -> stage tasks -> papermill-executed notebooks, on a local pool or a Dask cluster.

A profile (``prunerob/profiles/<name>.yaml``) lists grid entries of flat stage parameters; a list
value is an axis of the grid (``crs`` and ``eps`` are list-valued parameters, not axes), and
``attacks`` lists the attacks to run on every checkpoint (``on_crs``: only on these; ``source_cr``:
crafted on the checkpoint at that CR, a transfer attack).  Expansion gives train, prune and attack
stages (attack after prune after train).  A stage whose primary table exists is skipped, unless a
stage that must run needs its checkpoint and the checkpoint is gone; the finished stages downstream of
a checkpoint made again then run again too, unless it came out the same (the tables record each
checkpoint's fingerprint, and each result the fingerprint of the checkpoint it measured).  A stage
that fails does not stop the others, only those that depend on it, and a re-run retries it.

Each stage runs as its notebook (``book/experiments/<kind>.md``) through papermill; the executed
notebook is written to ``book/runs/<kind>/<stage id>.ipynb`` (atomically: a killed run leaves no
half-written record).  Executors: anything with ``submit(fn, *args) -> future`` works, so the local
``ProcessPoolExecutor`` and ``dask.distributed.Client`` run the same tasks; a stage is submitted once its upstream stage is done.

Before any kernel starts, the whole profile is checked (every stage built, so validated), and so are
the options and the data sets; a finished stage's checkpoint that a stage about to run needs is
verified (loadable, the fingerprint its table recorded), and a bad one is re-made like a missing one.
Ctrl-C stops the sweep cleanly (see :func:`run`).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import functools
import itertools
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from prunerob import results
from prunerob.results import PRIMARY_TABLE, recorded_fingerprints
from prunerob.spec import AttackStage, PruneStage, SpecError, invalid

PROFILES_DIR = Path(__file__).parent / "profiles"
EXPERIMENTS_DIR = results.ROOT / "book" / "experiments"
LIST_PARAMS = {"crs", "eps", "on_crs"}
KERNEL_START_TRIES = 3
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


PROFILE_KEYS = ("description", "grid")
ENTRY_KEYS = ("attacks",)  # a grid entry's keys besides the prune stage's parameters
ATTACK_KEYS = ("on_crs",)  # an attack entry's keys besides the attack stage's own parameters


def profiles_dir() -> Path:
    """``$PRUNEROB_PROFILES`` (a folder of profiles, e.g. a test's) or the package's."""
    env = os.environ.get("PRUNEROB_PROFILES")
    return Path(env) if env else PROFILES_DIR


def profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def profile_path(name: str) -> Path:
    """A profile's file: a name in the profiles folder, or a path to a YAML file."""
    if name.endswith((".yaml", ".yml")) and Path(name).exists():
        return Path(name)
    path = profiles_dir() / f"{name}.yaml"
    if not path.exists():
        raise invalid("--profile", name, profiles(), why="is not a profile")
    return path


def load_profile(name: str) -> dict[str, Any]:
    """A profile's YAML, its top-level form checked (its stages are checked by :func:`expand`):
    an empty or broken file, or a misspelt key, fails naming the file (and line) and the valid keys."""
    path = profile_path(name)
    try:
        profile = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise SpecError(f"profile {where}: not valid YAML ({problem})") from None
    if profile is None:
        raise SpecError(
            f"profile {path}: the file is empty; a profile is a mapping with keys "
            f"{', '.join(PROFILE_KEYS)} (grid: a list of stage parameter sets)"
        )
    if not isinstance(profile, dict):
        raise SpecError(
            f"profile {path}: a profile is a mapping with keys {', '.join(PROFILE_KEYS)}, "
            f"not a {type(profile).__name__}"
        )
    unknown = sorted(set(profile) - set(PROFILE_KEYS))
    if unknown:
        raise SpecError(
            f"profile {path}: unknown key(s) {', '.join(map(str, unknown))}; valid: {', '.join(PROFILE_KEYS)}"
        )
    grid = profile.get("grid")
    if not isinstance(grid, list) or not grid or not all(isinstance(e, dict) for e in grid):
        raise invalid(
            f"profile {path}: grid",
            grid,
            why="must be a non-empty list of stage parameter sets "
            "(mappings, e.g. {dataset: mnist, arch: cnn, crs: [1, 2, 4]})",
        )
    return profile


def _axes(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """All combinations of the list-valued entries (the grid's axes)."""
    keys = list(entry)
    values = [v if isinstance(v, list) and k not in LIST_PARAMS else [v] for k, v in entry.items()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def expand(profile: dict[str, Any]) -> list:
    """The profile's stages, each once, upstream stages first; a bad entry fails naming it (every
    stage is built, so validated, here: before anything runs)."""
    stages: dict[str, Any] = {}
    for i, entry in enumerate(profile["grid"], 1):
        try:
            _expand_entry(entry, stages)
        except SpecError as exc:
            raise SpecError(f"grid entry {i}: {exc}") from None
    order = {"train": 0, "prune": 1, "attack": 2}
    return sorted(stages.values(), key=lambda s: order[s.kind])


def _expand_entry(entry: dict[str, Any], stages: dict[str, Any]) -> None:
    entry = dict(entry)
    attacks = entry.pop("attacks", [])
    if not isinstance(attacks, list) or not all(isinstance(a, dict) for a in attacks):
        raise invalid("attacks", attacks, why="must be a list of attack entries (mappings, e.g. {attack: linf_pgd})")
    for params in _axes(entry):
        prune_stage = PruneStage.from_params(**params)
        stages.setdefault(prune_stage.upstream.id, prune_stage.upstream)
        stages.setdefault(prune_stage.id, prune_stage)
        for j, attack in enumerate(attacks, 1):
            attack = dict(attack)
            on_crs = attack.pop("on_crs", None)  # attack only these checkpoints (default: every CR)
            if on_crs is not None and not isinstance(on_crs, list):
                raise invalid(f"attack entry {j}: on_crs", on_crs, why="must be a list, e.g. [1, 4]")
            own = set(AttackStage.param_names()) - set(PruneStage.param_names())
            unknown = sorted(set(attack) - own)
            if unknown:
                raise SpecError(
                    f"attack entry {j}: unknown key(s) {', '.join(map(str, unknown))}; valid: "
                    f"{', '.join(sorted(own | set(ATTACK_KEYS)))}"
                )
            for attack_params in _axes(attack):
                for cr in on_crs or prune_stage.prune.crs:
                    if cr == attack_params.get("source_cr"):
                        continue  # transfer from a model to itself is the white-box attack
                    try:
                        stage = AttackStage.from_params(**params, **attack_params, cr=cr)
                    except SpecError as exc:
                        raise SpecError(f"attack entry {j}: {exc}") from None
                    stages.setdefault(stage.id, stage)


def select(all_stages: list, only: dict[str, Any]) -> list:
    """The stages whose parameters have every value in ``only`` (e.g. ``{"arch": "mlp"}``), with the
    upstream stages they need; ``kind`` (train, prune, attack) selects by stage kind.  An unknown
    parameter name or a value no stage has is an error."""
    if not only:
        return all_stages

    rows = [{"kind": s.kind, **s.params()} for s in all_stages]  # once: a stage's params is a walk
    names = {name for row in rows for name in row}
    for name, value in only.items():
        if name not in names:
            raise SpecError(f"--only {name}=...: unknown parameter; valid: {', '.join(sorted(names))}")
        if not any(name in row and row[name] == value for row in rows):
            seen = sorted({str(row[name]) for row in rows if name in row})
            raise SpecError(f"--only {name}={value!r}: no stage of the profile has it; values there: {', '.join(seen)}")
    keep: dict[str, Any] = {}
    for s, row in zip(all_stages, rows):
        if all(name in row and row[name] == value for name, value in only.items()):
            up = s
            while up is not None:
                keep.setdefault(up.id, up)
                up = getattr(up, "upstream", None)
    return [s for s in all_stages if s.id in keep]


def notebook_path(kind: str) -> Path:
    return EXPERIMENTS_DIR / f"{kind}.md"


def run_record(stage) -> Path:
    return results.runs_dir() / stage.kind / f"{stage.id}.ipynb"


@functools.cache
def portable_kernel_manager() -> type:
    """A kernel manager whose kernels start with :data:`prunerob.stages.PORTABLE_ENV` (and never with
    the opt-out of it): the environment torch and MKL read once, when the process starts."""
    from jupyter_client.manager import AsyncKernelManager

    from prunerob.stages import NATIVE_MATH_VAR, PORTABLE_ENV

    class PortableMathKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw: Any):
            env = {k: v for k, v in dict(kw.pop("env", None) or os.environ).items() if k != NATIVE_MATH_VAR}
            return await super()._async_pre_start_kernel(env=env | PORTABLE_ENV, **kw)

    return PortableMathKernelManager


def execute_stage(stage, device: str = "auto", progress: bool = True) -> Path:
    """Run one stage's notebook through papermill; the executed notebook is the run's record."""
    import jupytext
    import papermill

    out = run_record(stage)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _run_temporary(out, os.getpid())
    nb = jupytext.read(notebook_path(stage.kind))
    set_run_title(nb, stage)
    try:
        for attempt in range(KERNEL_START_TRIES):
            try:
                papermill.execute_notebook(
                    nb,
                    str(tmp),
                    parameters={**stage.params(), "device": device, "progress": progress},
                    kernel_name="python3",
                    progress_bar=False,
                    cwd=str(EXPERIMENTS_DIR),
                    # the stage's progress bars (epochs, CR steps, attack budgets) reach this terminal
                    stderr_file=sys.stderr if progress else None,
                    # the kernel's own log stays quiet (its "running over TCP without encryption" warning:
                    # the kernel listens on loopback only, for this process)
                    extra_arguments=KERNEL_ARGS,
                    # the stages that make weights start with portable CPU math (stages.PORTABLE_ENV)
                    **({"kernel_manager_class": portable_kernel_manager()} if stage.kind in ("train", "prune") else {}),
                )
                break
            except RuntimeError as exc:  # many kernels starting at once can race for a port
                if "Kernel didn't respond" not in str(exc) or attempt == KERNEL_START_TRIES - 1:
                    raise
        os.replace(tmp, out)
    except BaseException:
        # keep the failed record beside the others for reading, never under the final name
        if tmp.exists():
            os.replace(tmp, out.with_name(f"{out.stem}.failed.ipynb"))
        raise
    return out


def _checkpoint_problem(stage) -> str | None:
    """Why the checkpoint(s) of a finished train or prune stage cannot be used (missing, unreadable,
    not the one its table recorded); None where they are fine."""
    from prunerob import stages as st

    if stage.kind == "train":
        return st.checkpoint_problem(stage)
    if stage.kind == "prune":
        for cr in stage.prune.crs:
            problem = st.checkpoint_problem(stage, cr)
            if problem:
                return problem
    return None


def plan(all_stages: list, remade: dict[str, str] | None = None) -> list:
    """The stages that must run: missing tables, plus upstream stages whose checkpoint is needed and
    missing or bad (``remade``, if given, gets their ids and what was wrong)."""
    by_id = {s.id: s for s in all_stages}
    todo: dict[str, Any] = {}

    def need(stage, for_checkpoint: bool) -> None:
        if stage.id in todo:
            return
        done = results.stage_done(PRIMARY_TABLE[stage.kind], stage.id)
        if done and not for_checkpoint:
            problem = _upstream_changed(stage)
            if problem is None:
                return
            if remade is not None:
                remade[stage.id] = problem
            done = False
        if done:
            problem = _checkpoint_problem(stage)
            if problem is None:
                return
            if remade is not None:
                remade[stage.id] = problem
        todo[stage.id] = stage
        if hasattr(stage, "upstream"):
            need(by_id.get(stage.upstream.id, stage.upstream), True)

    for s in all_stages:
        need(s, False)
    return [s for s in all_stages if s.id in todo] + [s for s in todo.values() if s.id not in by_id]


def used_fingerprints(stage) -> dict | None:
    """The fingerprints of the upstream checkpoints recorded in a finished stage's own table, keyed as
    :func:`recorded_fingerprints` keys them (a prune stage: its dense model's under None; an attack
    stage: the attacked checkpoint's and a transfer source's under their CRs); None where the table
    is missing or predates fingerprints."""
    if not hasattr(stage, "upstream"):
        return None
    frame = results.read_table_file(results.table_path(PRIMARY_TABLE[stage.kind], stage.id))
    if frame is None or not len(frame):
        return None

    def shas(column: str) -> list[str]:
        return [str(v) for v in frame[column].dropna().unique()] if column in frame else []

    if stage.kind == "prune":
        dense = shas("dense_sha")
        return {None: dense[0]} if len(dense) == 1 else None
    out: dict = {}
    for key, column in (
        (float(stage.checkpoint.cr), "checkpoint_sha"),
        (float(stage.checkpoint.source_cr or stage.checkpoint.cr), "source_sha"),
    ):
        found = shas(column)
        if len(found) != 1:
            return None
        out.setdefault(key, found[0])
    return out


def _upstream_changed(stage) -> str | None:
    """Why a finished stage's result no longer belongs to the checkpoints its upstream stage's table
    now records (that stage was re-made since, with other weights), or None: it still does, or a
    fingerprint is unknown on either side (a table from before fingerprints keeps its result)."""
    used = used_fingerprints(stage)
    now = recorded_fingerprints(stage.upstream) if used is not None else None
    if used is None or now is None:
        return None
    for key, sha in used.items():
        if key in now and now[key] != sha:
            where = "the dense model" if key is None else f"CR {key:g}"
            return (
                f"its result was computed on {where} of {stage.upstream.id} with fingerprint {sha}, "
                f"which that stage has re-made since as {now[key]}"
            )
    return None


def recheck(all_stages: list, todo: list) -> list:
    """Finished stages downstream of a stage that runs again (one whose table exists but whose
    checkpoint is gone, or whose table was unreadable): their results were computed on the old
    checkpoint.  Each waits for its upstream stage and runs again unless the re-made checkpoint is
    the one its result used (the same fingerprint in the upstream's table before and after)."""
    order = {kind: i for i, kind in enumerate(PRIMARY_TABLE)}
    pending = {s.id for s in todo}
    out = []
    for s in sorted(all_stages, key=lambda st: order[st.kind]):
        if s.id not in pending and hasattr(s, "upstream") and s.upstream.id in pending:
            pending.add(s.id)
            out.append(s)
    return out


def _checkpoints_used(stage) -> list:
    """The keys of :func:`recorded_fingerprints` of the upstream checkpoints ``stage`` read."""
    if stage.kind == "prune":
        return [None]
    return sorted({float(stage.checkpoint.cr), float(stage.checkpoint.source_cr or stage.checkpoint.cr)})


def reproduced(before: dict | None, after: dict | None, stage) -> bool:
    """Whether the upstream checkpoints ``stage`` used are, after re-making, the ones it used:
    known fingerprints, equal; an unknown one (a table from before fingerprints) counts as changed."""
    if before is None or after is None:
        return False
    keys = _checkpoints_used(stage)
    return all(before.get(k) is not None and before.get(k) == after.get(k) for k in keys)


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False  # Ctrl-C: what had not finished is in stopped and not_started
    stopped: list[str] = field(default_factory=list)  # running when the sweep was interrupted
    not_started: list[str] = field(default_factory=list)
    record: Path | None = None  # the sweep record written

    def line(self) -> str:
        return (
            f"done {len(self.done)}, skipped {len(self.skipped)}, failed {len(self.failed)}, "
            f"blocked {len(self.blocked)}"
            + (f", stopped {len(self.stopped)}, not started {len(self.not_started)}" if self.interrupted else "")
            + f", {self.seconds:.0f} s"
        )


def last_error_line(exc: BaseException) -> str:
    """A failed stage's error in one whole line: a notebook's exception as ``Name: message`` (papermill
    keeps it apart from the traceback), else the last non-empty line of the error's text."""
    name, value = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if name:
        return " ".join(f"{name}: {value}".split())
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


def _run_task(stage, device: str, progress: bool = False) -> str:
    execute_stage(stage, device, progress)
    return stage.id


def check_options(device: str = "auto", workers: int = 1) -> None:
    """The run's options: a device that exists here, a worker count >= 1."""
    from prunerob.spec import check_device

    check_device(device)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise invalid("--workers", workers, "an integer >= 1")


def preflight(stages: list, device: str = "auto", workers: int = 1) -> None:
    """What would make every stage fail, checked before the first kernel starts: the options (see
    :func:`check_options`) and the data sets the stages read (under ``$PRUNEROB_DATA``: downloaded
    now if they can be, else DataError naming the data set and the folder).  Writes nothing."""
    from prunerob import data

    check_options(device, workers)
    for name in sorted({s.data.dataset for s in stages}):
        data.check_available(name)


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
) -> Summary:
    """Expand a profile, skip what exists, run the rest, each stage once its upstream stage is done.

    Ctrl-C (SIGINT) stops scheduling, ends the running stages (their workers and kernels), writes the
    sweep record (``interrupted``) and returns a summary with ``interrupted`` set; a second Ctrl-C
    ends the process at once.  A re-run resumes: finished stages are skipped."""
    check_options(device, workers)
    profile = load_profile(profile_name)
    try:
        all_stages = expand(profile)
    except SpecError as exc:
        raise SpecError(f"profile {profile_path(profile_name)}: {exc}") from None
    all_stages = select(all_stages, only or {})
    remade: dict[str, str] = {}
    todo = plan(all_stages, remade)
    todo_ids = {t.id for t in todo}
    checks = recheck(all_stages, todo)
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
    if dry_run:
        for line in grid_table(all_stages, {t.id for t in todo}):
            echo(line)
        for s in todo:
            echo(f"  would run {s.id}  ({_describe(s)})")
        for s in checks:
            echo(f"  would run {s.id} again unless {s.upstream.id} re-makes the checkpoint it used  ({_describe(s)})")
        return summary
    if todo:
        preflight(todo, device, workers)
    # what the tables of the stages about to run again say about their checkpoints, before they run
    before = {s.id: recorded_fingerprints(s) for s in todo + checks if s.kind != "attack"}
    _remove_stale_temporaries()
    started_at = datetime.datetime.now(datetime.UTC)
    start = time.perf_counter()
    executor, close = _executor(workers, scheduler)
    failed_ids: set[str] = set()
    total = len(todo) + len(checks)
    count = 0
    stop = _Interrupt(executor)
    order = {kind: i for i, kind in enumerate(PRIMARY_TABLE)}
    waiting = sorted(todo + checks, key=lambda st: order[st.kind])
    running: dict[Any, Any] = {}
    try:
        stop.install()
        # Each stage is submitted as soon as its upstream stage (if it must run too) has finished,
        # trains first, then prunes, then attacks: a slow prune stage delays only its own attacks.
        pending = todo_ids | check_ids
        finished: set[str] = set()
        unchanged: set[str] = set()  # re-checked stages whose upstream checkpoint came out the same
        while (waiting or running) and not stop.requested:
            still = []
            for st in waiting:
                up = st.upstream.id if hasattr(st, "upstream") and st.upstream.id in pending else None
                if up in failed_ids:
                    summary.blocked.append(st.id)
                    failed_ids.add(st.id)
                    count += 1
                elif st.id in check_ids and (
                    up in unchanged
                    or (up in finished and reproduced(before.get(up), recorded_fingerprints(st.upstream), st))
                ):
                    unchanged.add(st.id)  # its result was computed on the checkpoint that is there now
                    summary.skipped.append(st.id)
                    count += 1
                elif up is None or up in finished:
                    if st.id in check_ids:
                        echo(
                            f"running {st.id} again: {up} re-made the checkpoint it used, and it is not "
                            f"the one its result was computed on (or that one's fingerprint is unknown)"
                        )
                    if progress:
                        echo(f"scheduled {st.id}  ({_describe(st)})")
                    running[executor.submit(_run_task, st, device, progress)] = st
                else:
                    still.append(st)
            waiting = still
            for fut in _first_done(running, STOP_CHECK_S):
                st = running.pop(fut)
                count += 1
                try:
                    fut.result()
                    summary.done.append(st.id)
                    finished.add(st.id)
                    if progress:
                        echo(f"[{count}/{total}] done {st.id}")
                except Exception as exc:  # noqa: BLE001 - one failing stage must not stop the sweep
                    summary.failed[st.id] = last_error_line(exc)
                    failed_ids.add(st.id)
                    echo(f"FAILED {st.id}: {summary.failed[st.id]}")
        if stop.requested:
            summary.interrupted = True
            # a submitted stage still queued in the pool had not started: only those a worker had
            # taken up were stopped while running
            # (a local pool hands a worker at most one queued stage ahead; a Dask future cannot say,
            # and counts as started)
            started = [fut for fut in running if getattr(fut, "running", lambda: True)() or fut.done()]
            summary.stopped = [running[fut].id for fut in started]
            summary.not_started = [st.id for fut, st in running.items() if fut not in started] + [
                st.id for st in waiting
            ]
            stop.end_workers()
            _remove_stale_temporaries()  # the stopped stages' half-written run records
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
    finally:
        stop.restore()
    return summary


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


def run_title(stage) -> str:
    """What a run is, as its page title says it: 'linf_fmn (strong) on cnn / mnist, seed 0, global
    magnitude unstructured, CR 16'; a train stage: 'training cnn / mnist, seed 0'."""
    p = stage.params()
    model = f"{p['arch']} / {p['dataset']}, seed {p['seed']}"
    if stage.train.training != "standard":
        from prunerob.stages import training_label

        model += f", {training_label(stage)}"
    if stage.kind == "train":
        return f"training {model}"
    method = f"{p['scope']} {p['criterion']} {p['structure']}" + (
        " + dense neurons" if p.get("prune_dense_neurons") else ""
    )
    if stage.kind == "prune":
        return f"pruning {model}: {method}, CR {', '.join(f'{c:g}' for c in p['crs'])}"
    attack = p["attack"] + (f" ({p['preset']})" if p.get("preset") else "")
    if p.get("attack_output", "logits") != "logits":
        attack += f" on the {p['attack_output']} output"
    source = f", crafted at CR {p['source_cr']:g}" if p.get("source_cr") else ""
    return f"{attack} on {model}, {method}, CR {p['cr']:g}{source}"


def rerun_command(stage) -> str:
    """The command that runs ``stage`` again, as a user types it after the README's setup: its
    parameters that differ from the defaults, each as ``-p name=value`` (YAML, quoted for the shell)."""
    import shlex

    import yaml

    def value(v: Any) -> str:
        return yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()

    flat = {name: v for part in stage.canonical().values() for name, v in part.items()}
    args = " ".join(f"-p {shlex.quote(f'{name}={value(v)}')}" for name, v in flat.items())
    return f".venv/bin/python -m prunerob stage {stage.kind} {args}".strip()


RERUN_NOTE = "Run it again:"


def set_run_title(nb, stage) -> bool:
    """Give an executed (or to be executed) stage notebook its run's title, with the stage id, as its
    first heading, and under it the command that runs it again (change a ``-p`` value to run it with
    other parameters); True where the cell changed."""
    cell = nb.cells[0]
    if cell.cell_type != "markdown" or not cell.source.startswith("# "):
        return False
    _, _, rest = cell.source.partition("\n")
    rest = rest.lstrip("\n")
    if rest.startswith(RERUN_NOTE):  # the note of an earlier title: replaced
        rest = rest.partition("\n\n")[2]
    note = (
        f"{RERUN_NOTE} `{rerun_command(stage)}` (its upstream checkpoints must exist: `.venv/bin/python -m "
        "prunerob sweep` re-makes them; change a `-p` value to run it with other parameters)."
    )
    new = f"# {run_title(stage)} ({stage.id})\n\n{note}" + (f"\n\n{rest}" if rest else "")
    if cell.source == new:
        return False
    cell.source = new
    return True


def retitle_runs(profiles: tuple[str, ...] | None = None) -> tuple[int, list[Path]]:
    """Give every executed notebook of ``profiles`` (default: the book's) its run's title; returns the
    number retitled and the run records of stages in none of them (not shown in the book)."""
    import nbformat

    stages = {s.id: s for name in (profiles or book_profiles()) for s in expand(load_profile(name))}
    changed, orphans = 0, []
    for path in sorted(results.runs_dir().glob("*/*.ipynb")):
        stage = stages.get(path.stem)
        if stage is None:
            orphans.append(path)
            continue
        nb = nbformat.read(path, as_version=4)
        if set_run_title(nb, stage):
            results.atomic_write_bytes(path, lambda p, nb=nb: nbformat.write(nb, str(p)))
            changed += 1
    return changed, orphans


def _describe(stage) -> str:
    p = stage.params()
    what = f"{p['dataset']} {p['arch']} seed {p['seed']}"
    if stage.train.training != "standard":
        from prunerob.stages import training_label

        what += f" [{training_label(stage)}]"
    if stage.kind != "train":
        what += f" {p['structure']} {p['scope']} {p['criterion']}" + (" +dense" if p.get("prune_dense_neurons") else "")
    if stage.kind == "attack":
        what += f" CR {p['cr']:g} {p['attack']}" + (
            f" (crafted at CR {p['source_cr']:g})" if p.get("source_cr") else ""
        )
    return what


def grid_table(all_stages: list, todo_ids: set[str]) -> list[str]:
    """Stage counts per data set and architecture: the grid a profile spans, and what is left to run."""
    import pandas as pd

    rows = [
        {"dataset": s.params()["dataset"], "arch": s.params()["arch"], "kind": s.kind, "to_run": s.id in todo_ids}
        for s in all_stages
    ]
    frame = pd.DataFrame(rows)
    table = frame.pivot_table(index=["dataset", "arch"], columns="kind", values="to_run", aggfunc="size", fill_value=0)
    left = frame[frame["to_run"]].groupby(["dataset", "arch"]).size()
    table = table[[k for k in PRIMARY_TABLE if k in table.columns]].assign(to_run=left).fillna(0).astype(int)
    return ["stages per data set and architecture:", *table.to_string().splitlines()]


# a table's temporary lives for the seconds its write takes; one older than this was left by a killed run
STALE_TABLE_TEMPORARY_S = 600
RUN_TEMPORARY_SUFFIX = ".tmp.ipynb"  # a run record being written: .<stage>.<pid>.tmp.ipynb


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _run_temporary(record: Path, pid: int) -> Path:
    """Where worker ``pid`` writes the run record ``record`` until it is complete."""
    return record.with_name(f".{record.stem}.{pid}{RUN_TEMPORARY_SUFFIX}")


def _run_temporary_pid(path: Path) -> int | None:
    """The worker pid in a name made by :func:`_run_temporary`; None for any other name."""
    name = path.name
    if not (name.startswith(".") and name.endswith(RUN_TEMPORARY_SUFFIX)):
        return None
    pid = name[: -len(RUN_TEMPORARY_SUFFIX)].rpartition(".")[2]
    return int(pid) if pid.isdigit() else None


def _is_stale(path: Path, now: float) -> bool:
    """A run record's temporary (:func:`_run_temporary`) is stale when its worker process has
    ended; a table's (``.<name>.<random>.tmp``) when it is older than the longest write.  Another
    sweep running beside this one (say another ``--only`` slice) keeps its temporaries."""
    pid = _run_temporary_pid(path)
    if pid is not None:
        return not _pid_alive(pid)
    try:
        return now - path.stat().st_mtime > STALE_TABLE_TEMPORARY_S
    except FileNotFoundError:
        return False


def _remove_stale_temporaries() -> None:
    """Temporary files a killed run left behind (never visible as results; just clutter)."""
    now = time.time()
    for folder in (results.results_dir(), results.runs_dir()):
        if folder.exists():
            for path in folder.rglob(".*.tmp*"):
                if _is_stale(path, now):
                    path.unlink(missing_ok=True)


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


def book_profile() -> str:
    """The profile whose results the book shows: ``$PRUNEROB_PROFILE`` or the default, ``cpu``."""
    return os.environ.get("PRUNEROB_PROFILE", "cpu")


# The profile the transfer and adversarial-training chapters read (both trainings share its
# fine-tuning budget); its tables are committed beside the book profile's.
COMPANION_PROFILE = "full"


def book_profiles() -> tuple[str, ...]:
    """Every profile the book reads: its own (``$PRUNEROB_PROFILE``) and the companion profile."""
    return tuple(dict.fromkeys((book_profile(), COMPANION_PROFILE)))


def profile_results(table: str, profile: str | tuple[str, ...] | None = None, only: dict[str, Any] | None = None):
    """The rows of ``table`` that belong to the stages of ``profile`` (default: the book's), or of
    any of several profiles; with ``only`` (as in :func:`select`, e.g. ``{"arch": "resnet8",
    "max_epochs": 3}``), of the stages with those parameters and the stages upstream of them."""
    names = (profile,) if isinstance(profile, str) else (profile or (book_profile(),))
    ids = {s.id for name in names for s in select(expand(load_profile(name)), only or {})}
    frame = results.collect(table)
    return frame[frame["stage_id"].isin(ids)].reset_index(drop=True) if len(frame) else frame
