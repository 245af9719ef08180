"""Tidy result tables: where they live, how they are written, how they are read back.

Every finished stage writes one parquet file per table it produces, named by the stage's id, under
``<results>/<table>/``.  Files are written to a temporary name and renamed, so a reader (or a killed
run) never sees half a file; a file that cannot be read is reported as corrupt and its stage is
recomputed.  ``collect(table)`` is the one function that reads a table back.

Folders: results default to ``book/results`` (committed: the book reads them), artifacts
(checkpoints) to ``artifacts/`` (never committed); ``$PRUNEROB_RESULTS`` and
``$PRUNEROB_ARTIFACTS`` override them.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("train", "history", "prune", "layers", "attack", "samples", "checks", "checks_agreement", "sweeps")


def results_dir() -> Path:
    return Path(os.environ.get("PRUNEROB_RESULTS", ROOT / "book" / "results"))


def artifacts_dir() -> Path:
    return Path(os.environ.get("PRUNEROB_ARTIFACTS", ROOT / "artifacts"))


def runs_dir() -> Path:
    """Executed stage notebooks: the record of each run."""
    return Path(os.environ.get("PRUNEROB_RUNS", ROOT / "book" / "runs"))


def table_path(table: str, stage_id: str) -> Path:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; valid: {', '.join(TABLES)}")
    return results_dir() / table / f"{stage_id}.parquet"


def atomic_write_bytes(path: Path, write) -> Path:
    """Call ``write(tmp_path)``, then rename onto ``path``: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results and checkpoints are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_table(frame: pd.DataFrame, table: str, stage_id: str) -> Path:
    return atomic_write_bytes(table_path(table, stage_id), lambda p: frame.to_parquet(p, index=False))


def read_table_file(path: Path) -> pd.DataFrame | None:
    """The table in ``path``, or None when it is missing or corrupt."""
    try:
        return pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - missing or truncated files raise many kinds (OSError, ArrowInvalid, ...)
        return None


def stage_done(table: str, stage_id: str) -> bool:
    return read_table_file(table_path(table, stage_id)) is not None


def collect(table: str) -> pd.DataFrame:
    """All finished stages' rows of ``table`` as one frame (empty if none)."""
    folder = results_dir() / table
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; valid: {', '.join(TABLES)}")
    frames = [f for f in (read_table_file(p) for p in sorted(folder.glob("*.parquet"))) if f is not None]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@functools.cache
def code_version() -> str:
    """The git commit of the code that produced a result ('-dirty' if it had local changes).

    ``$PRUNEROB_CODE_VERSION`` names it where the code runs without its git history (a copy of
    the working tree on another machine).
    """
    if os.environ.get("PRUNEROB_CODE_VERSION"):
        return os.environ["PRUNEROB_CODE_VERSION"]
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no",
                                "--", "prunerob"], capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(**libraries: str) -> dict[str, str]:
    """Columns every row carries: versions of the code and of the libraries that made it."""
    import torch

    import prunerob

    return {"prunerob_version": prunerob.__version__, "code_version": code_version(),
            "torch_version": str(torch.__version__), **libraries}


def fingerprint_agreement(train: pd.DataFrame, prune: pd.DataFrame, attack: pd.DataFrame) -> pd.DataFrame:
    """Whether each result was computed on the checkpoint its upstream table names now.

    Per link (a prune stage's dense model; an attack run's checkpoint; a transfer attack's source),
    counted in stages: ``runs``; ``same``, the fingerprint the result recorded is the upstream's;
    ``different``, both recorded and not equal (the checkpoint was made again and came out
    different after the result was computed: the result measured weights no table describes);
    ``unknown``, one side from before fingerprints were recorded."""
    def upstream(frame, key_cols):
        if not len(frame) or "checkpoint_sha" not in frame:
            return {}
        return {tuple(k) if isinstance(k, tuple) else (k,): v
                for k, v in frame.groupby(key_cols)["checkpoint_sha"].first().items()}

    def tally(link, frame, keys, sha_col, reference):
        if not len(frame):
            return {"link": link, "runs": 0, "same": 0, "different": 0, "unknown": 0}
        runs = frame.groupby("stage_id").first()
        recorded = runs[sha_col] if sha_col in runs else pd.Series(None, index=runs.index, dtype=object)
        now = [reference.get(tuple(row)) for row in runs[keys].itertuples(index=False)]
        now = pd.Series(now, index=runs.index, dtype=object)
        known = recorded.notna() & now.notna()
        same = int((known & (recorded == now)).sum())
        return {"link": link, "runs": len(runs), "same": same, "different": int(known.sum()) - same,
                "unknown": int((~known).sum())}

    trains = upstream(train, ["stage_id"])
    steps = {(k[0], float(k[1])): v for k, v in upstream(prune, ["stage_id", "cr"]).items()}
    attack = attack.assign(cr=attack["cr"].astype(float), source_cr=attack["source_cr"].astype(float)) if len(attack) else attack
    transfer = attack[attack["scenario"] == "transfer"] if len(attack) else attack
    return pd.DataFrame([
        tally("prune stage: its dense model", prune, ["train_id"], "dense_sha", trains),
        tally("attack run: the checkpoint attacked", attack, ["prune_id", "cr"], "checkpoint_sha", steps),
        tally("transfer attack: the checkpoint crafted on", transfer, ["prune_id", "source_cr"], "source_sha", steps),
    ]).set_index("link")
