"""One stage run: its notebook (``book/experiments/<kind>.md``) executed through papermill, and the
executed notebook as the run's record (``book/runs/<kind>/<stage id>.ipynb``, written atomically: a
killed run leaves no half-written record, and :func:`remove_stale_temporaries` clears what it left).
A run record's first heading is the run's title (:func:`run_title`), with the command that runs it
again (:func:`rerun_command`).  A stage that fails keeps its record as ``<stage id>.failed.ipynb``.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

from prunerob import results
from prunerob.profiles import book_profiles, expand, load_profile

EXPERIMENTS_DIR = results.ROOT / "book" / "experiments"
KERNEL_START_TRIES = 3
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


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


# the environment variables that name folders; a stage's kernel runs in book/experiments, so a relative
# one is made absolute (against this process's working folder) before a kernel starts
PATH_VARS = (
    "PRUNEROB_RESULTS",
    "PRUNEROB_ARTIFACTS",
    "PRUNEROB_RUNS",
    "PRUNEROB_DATA",
    "PRUNEROB_FIGURES",
    "PRUNEROB_PROFILES",
)


def absolute_env() -> None:
    """Make every folder variable of ``PATH_VARS`` that is set and relative absolute, resolved against
    this process's working folder, so that the stage kernel started next (working folder
    ``book/experiments``) writes where the command was pointed."""
    for name in PATH_VARS:
        value = os.environ.get(name)
        if value and not os.path.isabs(value):
            os.environ[name] = os.path.abspath(value)


def execute_stage(stage, device: str = "auto", progress: bool = True) -> Path:
    """Run one stage's notebook through papermill; the executed notebook is the run's record."""
    import jupytext
    import papermill

    absolute_env()

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


def last_error_line(exc: BaseException) -> str:
    """A failed stage's error in one whole line: a notebook's exception as ``Name: message`` (papermill
    keeps it apart from the traceback), else the last non-empty line of the error's text."""
    name, value = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if name:
        return " ".join(f"{name}: {value}".split())
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


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


def remove_stale_temporaries() -> None:
    """Temporary files a killed run left behind (never visible as results; just clutter)."""
    now = time.time()
    for folder in (results.results_dir(), results.runs_dir()):
        if folder.exists():
            for path in folder.rglob(".*.tmp*"):
                if _is_stale(path, now):
                    path.unlink(missing_ok=True)
