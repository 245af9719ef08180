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
import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("train", "history", "prune", "layers", "attack", "samples", "checks", "sweeps", "stages")


# --- schema ----------------------------------------------------------------------------------
#
# Every table has one declared schema: its columns in order, each with a pandas dtype and whether
# it may hold NA (a value that can be legitimately absent: a fingerprint from before fingerprints,
# the fixed attacks' per-run accuracy on a minimal attack's row).  ``write_table`` refuses a frame
# that does not match it; ``collect`` and ``read_table_file`` refuse a file that does not (old
# files: ``python -m prunerob.migrate`` rewrites them).  Writers build their rows and pass them
# through ``conform``, which adds the nullable columns they do not know (as NA), the schema
# version, and casts to the declared dtypes.  A change to a schema bumps SCHEMA_VERSION and the
# migration.

SCHEMA_VERSION = 1
MIGRATE_COMMAND = "python -m prunerob.migrate"


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # "str" (pandas' default string dtype), "int64", "Int64", "float64", "float32", "bool", "boolean"
    nullable: bool = False


def _cols(spec: str) -> tuple[Column, ...]:
    """'name:dtype name:dtype? ...' -> columns ('?': nullable)."""
    out = []
    for item in spec.split():
        name, dtype = item.split(":")
        out.append(Column(name, dtype.rstrip("?"), dtype.endswith("?")))
    return tuple(out)


_MODEL = "dataset:str arch:str seed:int64 training:str"
_METHOD = "structure:str scope:str criterion:str schedule:str prune_dense_neurons:bool"
_PROVENANCE = "prunerob_version:str code_version:str torch_version:str torch_threads:Int64?"
_ATTACK_RUN = (
    f"stage_id:str prune_id:str train_id:str {_MODEL} {_METHOD} cr:float64 sparsity:float64 "
    "attack:str preset:str norm:str kind:str library:str scenario:str source_cr:float64 "
    "attack_output:str checkpoint_sha:str? source_sha:str?"
)

SCHEMAS: dict[str, tuple[Column, ...]] = {
    "train": _cols(
        f"stage_id:str {_MODEL} n_params:int64 n_prunable:int64 epochs:int64 best_epoch:int64 "
        "val_loss:float64 test_loss:float64 clean_acc:float64 n_train:int64 n_test:int64 "
        f"seconds:float64 device:str checkpoint_sha:str? {_PROVENANCE} schema_version:int64"
    ),
    "history": _cols(
        "epoch:int64 train_loss:float64 val_loss:float64 val_acc:float64 val_clean_loss:float64? "
        "val_adv_acc:float64? lr:float64 stage_id:str step:str schema_version:int64"
    ),
    "prune": _cols(
        f"stage_id:str train_id:str {_MODEL} {_METHOD} cr:float64 target_kept:float64 kept:float64 "
        "sparsity:float64 n_prunable:int64 n_kept:int64 n_units:Int64? n_units_kept:Int64? "
        "layers_removed:int64 clean_acc:float64 test_loss:float64 bytes_dense:int64 bytes_coo:int64 "
        "bytes_bitmask:int64 bytes_prunable_dense:int64 bytes_prunable_coo:int64 "
        "bytes_prunable_bitmask:int64 bytes_other:int64 finetune_epochs:Int64? seconds:float64? "
        f"device:str {_PROVENANCE} dense_sha:str? checkpoint_sha:str? resumed:bool schema_version:int64"
    ),
    "layers": _cols(
        "layer:str kind:str shape:str? n_weights:int64 n_kept:int64 kept_fraction:float64 "
        "sparsity:float64 n_out:int64 n_out_kept:int64 layer_removed:bool n_params:int64 "
        "n_params_kept:int64 target_kept:Int64? stage_id:str cr:float64 schema_version:int64"
    ),
    "attack": _cols(
        "eps:float64 robust_acc:float64 robust_acc_run:float64? robust_acc_original_rule:float64? "
        f"n:int64 violations:int64 seconds:float64 {_ATTACK_RUN} clean_acc:float64 "
        f"all_checks_passed:bool stage_seconds:float64 device:str {_PROVENANCE} library_version:str "
        "schema_version:int64"
    ),
    "samples": _cols(
        "sample:int64 label:int64 clean_pred:int64 adv_pred:int64 eps:float64? success:bool "
        "broken:boolean? valid:bool distance:float32 l0_channels:float32 "
        f"{_ATTACK_RUN} source_attack:str? schema_version:int64"
    ),
    "checks": _cols(
        f"check:str value:float64 expected:float64 passed:bool eps:float64? {_ATTACK_RUN} schema_version:int64"
    ),
    "sweeps": _cols(
        "profile:str started_at:str seconds:float64 done:int64 failed:int64 blocked:int64 "
        "skipped:int64 workers:Int64? scheduler:str device:str cpu_count:Int64? only:str "
        "code_version:str interrupted:bool stopped:int64 not_started:int64 schema_version:int64"
    ),
}


def _stage_columns() -> str:
    """The ``stages`` table: one row per stage, every parameter of its kind (the parameters of an
    attack stage, the most any kind has: NA where a kind has no such parameter), so that a recipe is
    a filter on columns (:func:`with_params`). Lists (``crs``, ``eps``) are JSON text."""
    from dataclasses import fields

    from prunerob import spec

    kinds = {"bool": "boolean", "int": "Int64", "float": "float64", "str": "str", "tuple": "str"}
    cols = ["stage_id:str kind:str"]
    for part in spec.AttackStage.PARTS.values():
        cols += [f"{f.name}:{kinds[str(f.type)]}?" for f in fields(part)]  # annotations are text here
    return " ".join(cols) + " schema_version:int64"


SCHEMAS["stages"] = _cols(_stage_columns())
assert set(SCHEMAS) == set(TABLES)


class SchemaError(ValueError):
    """A frame or file that does not match its table's declared schema."""


def schema(table: str) -> tuple[Column, ...]:
    if table not in SCHEMAS:
        raise ValueError(f"unknown table {table!r}; valid: {', '.join(TABLES)}")
    return SCHEMAS[table]


def columns(table: str) -> list[str]:
    return [c.name for c in schema(table)]


def _dtype_ok(series: pd.Series, dtype: str) -> bool:
    found = series.dtype
    if dtype == "str":  # pandas' default string dtype, whatever its storage (python or pyarrow)
        return isinstance(found, pd.StringDtype) and found.na_value is np.nan
    return found == pd.api.types.pandas_dtype(dtype)


def schema_problems(frame: pd.DataFrame, table: str) -> list[str]:
    """What is wrong with ``frame`` as rows of ``table`` (empty: it matches): one line per missing
    column, extra column, wrong dtype, and NA in a column that may not hold it."""
    cols = schema(table)
    names = [c.name for c in cols]
    problems = [f"column {c.name!r} is missing (expected dtype {c.dtype})" for c in cols if c.name not in frame]
    problems += [
        f"column {name!r} is not in the schema (found dtype {frame[name].dtype}); declared: {', '.join(names)}"
        for name in frame.columns
        if name not in names
    ]
    for c in cols:
        if c.name not in frame:
            continue
        if not _dtype_ok(frame[c.name], c.dtype):
            problems.append(f"column {c.name!r} has dtype {frame[c.name].dtype}, expected {c.dtype}")
        elif not c.nullable and frame[c.name].isna().any():
            problems.append(
                f"column {c.name!r} holds {int(frame[c.name].isna().sum())} missing values; "
                f"it is not nullable (dtype {c.dtype})"
            )
    if (
        "schema_version" in frame
        and len(frame)
        and _dtype_ok(frame["schema_version"], "int64")
        and (frame["schema_version"] != SCHEMA_VERSION).any()
    ):
        problems.append(
            f"column 'schema_version' holds {sorted(set(frame['schema_version']))}, expected {SCHEMA_VERSION}"
        )
    return problems


def validate(frame: pd.DataFrame, table: str, where: str = "") -> pd.DataFrame:
    """``frame`` with its columns in the declared order; SchemaError naming the table, each column,
    the expected and the found dtype where it does not match."""
    problems = schema_problems(frame, table)
    if problems:
        raise SchemaError(
            f"{where or 'frame'} does not match the {table!r} table's schema (version "
            f"{SCHEMA_VERSION}): " + "; ".join(problems)
        )
    return frame[columns(table)]


def conform(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """A writer's rows as the schema wants them: the nullable columns it does not know added as NA,
    ``schema_version`` set, every column cast to its declared dtype, in the declared order.  A
    missing column that may not be NA, a column not in the schema, or a value that does not cast
    exactly raise SchemaError."""
    cols = schema(table)
    frame = frame.assign(schema_version=SCHEMA_VERSION)
    where = f"the rows for the {table!r} table"
    names = {c.name for c in cols}
    if any(name not in names for name in frame.columns) or any(
        c.name not in frame and not c.nullable and len(frame) for c in cols
    ):
        validate(frame, table, where)  # raises, naming every problem
    out = {}
    for c in cols:
        if c.name not in frame:
            out[c.name] = pd.Series(None, index=frame.index, dtype=c.dtype)
            continue
        try:
            out[c.name] = _cast(frame[c.name], c.dtype)
        except (TypeError, ValueError) as exc:
            raise SchemaError(
                f"{where}: column {c.name!r} (dtype {frame[c.name].dtype}) does not cast to {c.dtype}: {exc}"
            ) from None
    return validate(pd.DataFrame(out, index=frame.index), table, where)


def _cast(series: pd.Series, dtype: str) -> pd.Series:
    """``series`` as ``dtype``, refusing casts that would change a value (1.5 to an integer, 3 to a
    string or a boolean, NA into a column that cannot hold it)."""
    if _dtype_ok(series, dtype):
        return series
    values = series.dropna()
    if dtype in ("bool", "int64") and series.isna().any():
        raise ValueError(f"{int(series.isna().sum())} missing values")
    if dtype == "str" and not values.map(lambda v: isinstance(v, str)).all():
        raise ValueError("non-string values")
    if dtype in ("bool", "boolean") and not values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
        raise ValueError("non-boolean values")
    out = series.astype(dtype)  # type: ignore[call-overload]  # pandas-stubs take only literal dtype names
    if (
        dtype in ("int64", "Int64")
        and not (out.dropna().astype(float).to_numpy() == values.astype(float).to_numpy()).all()
    ):
        raise ValueError("non-integer values")
    return out


def stage_row(stage) -> pd.DataFrame:
    """The ``stages`` table's row of ``stage``: its id, kind and every parameter (lists as JSON)."""
    import json

    params = {k: json.dumps(v) if isinstance(v, (list, tuple)) else v for k, v in stage.params().items()}
    return conform(pd.DataFrame([{"stage_id": stage.id, "kind": stage.kind, **params}]), "stages")


def stage_params(row: pd.Series) -> dict:
    """The parameters a ``stages`` table row holds, as the stage's ``from_params`` takes them (plain
    Python values, lists decoded, NA left out): ``spec.AttackStage.from_params(**stage_params(row))``
    rebuilds the stage of an attack row, with the same id."""
    import json

    out = {}
    for name, value in row.items():
        if name in ("stage_id", "kind", "schema_version") or pd.isna(value):
            continue
        out[str(name)] = json.loads(value) if name in ("crs", "eps") else getattr(value, "item", lambda v=value: v)()
    return out


def write_stage_row(stage) -> Path:
    """Write the ``stages`` table's row of ``stage`` (before its primary table, which marks it done)."""
    return write_table(stage_row(stage), "stages", stage.id)


def with_params(frame: pd.DataFrame, *names: str) -> pd.DataFrame:
    """``frame`` (rows with a ``stage_id``) with the stage parameters ``names`` added as columns, from
    the ``stages`` table (e.g. ``with_params(attack, "max_epochs", "finetune_max_epochs")``, then
    filter on them). A name the frame already has, or no stage parameter, is an error."""
    known = [c for c in columns("stages") if c not in ("stage_id", "kind", "schema_version")]
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"no stage parameter {', '.join(bad)}; valid: {', '.join(known)}")
    clash = [n for n in names if n in frame.columns]
    if clash:
        raise ValueError(f"the frame already has column(s) {', '.join(clash)}")
    stages = collect("stages")
    return frame.merge(stages[["stage_id", *names]], on="stage_id", how="left", validate="many_to_one")


def results_dir() -> Path:
    return Path(os.environ.get("PRUNEROB_RESULTS", ROOT / "book" / "results"))


def artifacts_dir() -> Path:
    return Path(os.environ.get("PRUNEROB_ARTIFACTS", ROOT / "artifacts"))


def runs_dir() -> Path:
    """Executed stage notebooks, the record of each run: ``$PRUNEROB_RUNS``, else ``runs`` beside the
    results folder (``book/runs``; with ``PRUNEROB_RESULTS=x/results``, ``x/runs``: the run records
    of other results never overwrite the committed ones)."""
    return Path(os.environ.get("PRUNEROB_RUNS", results_dir().parent / "runs"))


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
    """Write ``frame`` as ``stage_id``'s rows of ``table``, its columns in the declared order; a frame
    that does not match the table's schema raises SchemaError (writers pass theirs through
    :func:`conform`) and nothing is written."""
    path = table_path(table, stage_id)
    frame = validate(frame, table, f"the rows of stage {stage_id}")
    return atomic_write_bytes(path, lambda p: frame.to_parquet(p, index=False))


def read_raw(path: Path) -> pd.DataFrame | None:
    """The frame in ``path`` as stored, unchecked (for the migration); None when missing or corrupt."""
    try:
        return pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - missing or truncated files raise many kinds (OSError, ArrowInvalid, ...)
        return None


def read_table_file(path: Path) -> pd.DataFrame | None:
    """The table in ``path``, or None when it is missing or corrupt.  A file of one of the TABLES
    (``<results>/<table>/<id>.parquet``) that does not match its table's schema raises SchemaError,
    naming the file and the migration command."""
    frame = read_raw(path)
    table = Path(path).parent.name
    if frame is None or table not in TABLES:
        return frame
    return checked(frame, table, Path(path))


def checked(frame: pd.DataFrame, table: str, path: Path) -> pd.DataFrame:
    """``frame`` read from ``path``, validated (columns in the declared order)."""
    try:
        return validate(frame, table, f"{path}")
    except SchemaError as exc:
        raise SchemaError(
            f"{exc}. Files written before schema version {SCHEMA_VERSION} are rewritten by `{MIGRATE_COMMAND}`"
        ) from None


def stage_done(table: str, stage_id: str) -> bool:
    return read_table_file(table_path(table, stage_id)) is not None


# The table whose file marks a stage of each kind as finished (written last).
PRIMARY_TABLE = {"train": "train", "prune": "prune", "attack": "attack"}


def recorded_fingerprints(stage) -> dict | None:
    """The checkpoint fingerprints in a train or prune stage's table: ``{cr: sha}`` (a train stage's
    under ``None``); None where the table is missing or predates fingerprints."""
    frame = read_table_file(table_path(PRIMARY_TABLE[stage.kind], stage.id))
    if frame is None or not len(frame) or frame["checkpoint_sha"].isna().any():
        return None
    if stage.kind == "train":
        return {None: frame["checkpoint_sha"].iloc[0]}
    return dict(zip(frame["cr"].astype(float), frame["checkpoint_sha"]))


def empty(table: str) -> pd.DataFrame:
    """No rows, the table's columns and dtypes."""
    return pd.DataFrame({c.name: pd.Series(dtype=c.dtype) for c in schema(table)})


def collect(table: str) -> pd.DataFrame:
    """All finished stages' rows of ``table`` as one frame (no rows, the table's columns, if none);
    a file that does not match the table's schema raises SchemaError."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; valid: {', '.join(TABLES)}")
    files = sorted((results_dir() / table).glob("*.parquet"))
    if not files:
        return empty(table)
    cache = _collect_cache(table, files)
    if cache.exists():
        frame = read_raw(cache)
        if frame is not None and not schema_problems(frame, table):
            return frame[columns(table)]
    frames = [f for f in (read_table_file(p) for p in files) if f is not None]
    frames = [f for f in frames if len(f)]
    frame = pd.concat(frames, ignore_index=True) if frames else empty(table)
    try:
        for old in cache.parent.glob(f"collect-{table}-*.parquet"):
            old.unlink(missing_ok=True)  # one cache per table: the files changed since the old one
        atomic_write_bytes(cache, lambda p: frame.to_parquet(p, index=False))
    except OSError:
        pass  # a read-only artifacts folder: every read reads the files
    return frame


def _collect_cache(table: str, files: list[Path]) -> Path:
    """Where ``collect(table)`` keeps the rows of ``files`` as one file, under the artifacts folder:
    the book's chapters each read every table, and reading and checking ~1,600 small files takes
    a minute where one file takes a second.  The name hashes each file's name, size, modification
    time and inode (a rewrite is a rename onto a new file) and the table's schema, so a changed,
    added or removed file (or a changed schema) misses the cache."""
    key = hashlib.sha256(f"{SCHEMA_VERSION} {schema(table)!r} {results_dir().resolve()}".encode())
    for path in files:
        st = path.stat()
        key.update(f"\n{path.name} {st.st_size} {st.st_mtime_ns} {st.st_ino}".encode())
    return artifacts_dir() / "cache" / f"collect-{table}-{key.hexdigest()[:20]}.parquet"


@functools.cache
def code_version() -> str:
    """The git commit of the code that produced a result ('-dirty' if it had local changes).

    ``$PRUNEROB_CODE_VERSION`` names it where the code runs without its git history (a copy of
    the working tree on another machine).
    """
    if os.environ.get("PRUNEROB_CODE_VERSION"):
        return os.environ["PRUNEROB_CODE_VERSION"]
    try:
        sha = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", "prunerob"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(**libraries: str) -> dict[str, str]:
    """Columns every row carries: versions of the code and of the libraries that made it."""
    import torch

    import prunerob

    return {
        "prunerob_version": prunerob.__version__,
        "code_version": code_version(),
        "torch_version": str(torch.__version__),
        **libraries,
    }


def fingerprint_agreement(train: pd.DataFrame, prune: pd.DataFrame, attack: pd.DataFrame) -> pd.DataFrame:
    """Whether each result was computed on the checkpoint its upstream table names now.

    Per link (a prune stage's dense model; an attack run's checkpoint; a transfer attack's source),
    counted in stages: ``runs``; ``same``, the fingerprint the result recorded is the upstream's;
    ``different``, both recorded and not equal (the checkpoint was made again and came out
    different after the result was computed: the result measured weights no table describes);
    ``unknown``, one side from before fingerprints were recorded."""

    def upstream(frame, key_cols):
        if not len(frame):
            return {}
        return {
            tuple(k) if isinstance(k, tuple) else (k,): v
            for k, v in frame.groupby(key_cols)["checkpoint_sha"].first().items()
        }

    def tally(link, frame, keys, sha_col, reference):
        if not len(frame):
            return {"link": link, "runs": 0, "same": 0, "different": 0, "unknown": 0}
        runs = frame.groupby("stage_id").first()
        recorded = runs[sha_col]
        now = [reference.get(tuple(row)) for row in runs[keys].itertuples(index=False)]
        now = pd.Series(now, index=runs.index, dtype=object)
        known = recorded.notna() & now.notna()
        same = int((known & (recorded == now)).sum())
        return {
            "link": link,
            "runs": len(runs),
            "same": same,
            "different": int(known.sum()) - same,
            "unknown": int((~known).sum()),
        }

    trains = upstream(train, ["stage_id"])
    steps = {(k[0], float(k[1])): v for k, v in upstream(prune, ["stage_id", "cr"]).items()}
    attack = (
        attack.assign(cr=attack["cr"].astype(float), source_cr=attack["source_cr"].astype(float))
        if len(attack)
        else attack
    )
    transfer = attack[attack["scenario"] == "transfer"] if len(attack) else attack
    return pd.DataFrame(
        [
            tally("prune stage: its dense model", prune, ["train_id"], "dense_sha", trains),
            tally("attack run: the checkpoint attacked", attack, ["prune_id", "cr"], "checkpoint_sha", steps),
            tally(
                "transfer attack: the checkpoint crafted on", transfer, ["prune_id", "source_cr"], "source_sha", steps
            ),
        ]
    ).set_index("link")
