"""Rewrite every result table file to the declared schema (``results.SCHEMAS``, version
``results.SCHEMA_VERSION``).  Idempotent: a file that already matches is left alone.

    python -m prunerob.migrate            # the tables under $PRUNEROB_RESULTS (default book/results)
    python -m prunerob.migrate --check    # say what would change, write nothing
    python -m prunerob.migrate --runs     # also title every executed notebook by what it ran
    python -m prunerob.migrate --superseded  # also delete the tables and runs of stages no profile holds

A column a file lacks is filled with its true value where the file's own rows (or its stage's other
tables) give it, and NA only where no true value exists:

* ``scenario`` = ``white-box``, ``source_cr`` = ``cr`` (attack, samples, checks): written before
  transfer attacks existed, every run attacked the checkpoint it was crafted on (the stage writes a
  white-box run's ``source_cr`` as its own ``cr``);
* ``attack_output`` = ``logits`` (attack, samples, checks): written before an attack could be handed
  the softmax output (the original's wiring, for the replica of its CNN);
* ``prune_dense_neurons`` = False (prune, attack, samples, checks): written before structured
  pruning could prune dense layers' neurons;
* ``resumed`` = False (prune): written before a prune stage could resume;
* ``interrupted`` = False, ``stopped`` = ``not_started`` = 0 (sweeps): before Ctrl-C was handled, an
  interrupted sweep wrote no record, so every older record is of a sweep that ran to its end;
* ``robust_acc_original_rule`` (attack): a minimal attack's share of clean-correct samples whose
  verified minimal distance d (the stage's samples table) is d >= eps (eps 0: the clean accuracy),
  as ``evaluate._minimal_curve`` computes it; NA on a fixed attack's rows, where no distance rule
  applies (a fixed run has a budget, not a distance per sample);
* ``robust_acc_run`` (attack): NA on a minimal attack's rows (one run, no per-budget runs);
* NA: ``eps``/``broken`` of minimal attacks' samples, ``eps`` of checks other than the unbounded
  one, ``val_clean_loss``/``val_adv_acc`` of standard training, fingerprints (``checkpoint_sha``,
  ``dense_sha``, ``source_sha``) from before they were recorded, and the columns added with schema
  version 1 (``torch_threads``, ``n_units``, ``n_units_kept``, ``source_attack``) until recomputed;
* ``schema_version`` = ``results.SCHEMA_VERSION``.

A minimal attack's id leaves its budget grid out since schema version 1 (one run gives every
budget): its tables and run notebook move to the new id (:func:`minimal_ids`). The ``stages`` table
(one row per stage: every parameter) is written for every finished stage of every profile that lacks
its row (:func:`stage_rows`); stages write their own row since.

Minimal attacks' stored ``robust_acc_original_rule`` is recomputed from the samples too and a
mismatch reported (never silently rewritten).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from prunerob import aggregate, results

ATTACK_TABLES = ("attack", "samples", "checks")


def original_rule(curve: pd.DataFrame, samples: pd.DataFrame) -> pd.Series:
    """Per row of a minimal attack's ``curve``: the share of samples robust by the original's rule,
    clean-correct and distance >= eps (eps 0: clean-correct), as the stage computes it
    (``aggregate.minimal_curve``)."""
    clean_ok = (samples["clean_pred"] == samples["label"]).to_numpy()
    rows = aggregate.minimal_curve(clean_ok, samples["distance"].to_numpy(), curve["eps"])
    return pd.Series(rows["robust_acc_original_rule"].to_numpy(), index=curve.index, dtype="float64")


def fill(table: str, frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """``frame`` (the rows of ``path``) with the columns it lacks filled by their true values where
    there are any (see the module's docstring), and a note per filled column."""
    notes: dict[str, str] = {}

    def add(column: str, value, note: str) -> None:
        nonlocal frame
        if column not in frame:
            frame = frame.assign(**{column: value})
            notes[column] = note

    if table in ATTACK_TABLES:
        add("scenario", "white-box", "white-box")
        add("source_cr", frame["cr"].astype(float) if "cr" in frame else np.nan, "= cr")
        add("attack_output", "logits", "logits")
    if table in ("prune", *ATTACK_TABLES):
        add("prune_dense_neurons", False, "False")
    if table == "prune":
        add("resumed", False, "False")
    if table == "sweeps":  # before Ctrl-C was handled, an interrupted sweep wrote no record at all
        add("interrupted", False, "False")
        add("stopped", 0, "0")
        add("not_started", 0, "0")
    if table == "attack" and len(frame):
        minimal = (frame["kind"] == "minimal").all()
        if minimal:
            samples = results.read_raw(path.parent.parent / "samples" / path.name)
            recomputed = original_rule(frame, samples) if samples is not None else None
            if "robust_acc_original_rule" not in frame:
                if recomputed is None:
                    raise FileNotFoundError(
                        f"{path}: a minimal attack without robust_acc_original_rule and "
                        f"without its samples table to compute it from"
                    )
                add("robust_acc_original_rule", recomputed, "recomputed from the samples (d >= eps)")
            elif recomputed is not None and not np.allclose(
                recomputed, frame["robust_acc_original_rule"], rtol=0, atol=1e-12
            ):
                notes["!robust_acc_original_rule"] = "stored values differ from the samples' (left as stored)"
    for column in results.columns(table):
        if column not in frame and column != "schema_version":
            notes[column] = "NA"
    return results.conform(frame, table), notes


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return (
        a.columns.tolist() == b.columns.tolist()
        and a.dtypes.astype(str).tolist() == b.dtypes.astype(str).tolist()
        and a.equals(b)
    )


def migrate(root: Path | None = None, write: bool = True, echo=print) -> dict:
    """Rewrite every table file under ``root`` (default: the results folder) to the schema; returns
    per table: files seen, files rewritten, and per column the fill and how many files got it."""
    root = Path(root or results.results_dir())
    report = {}
    for table in results.TABLES:
        files = sorted((root / table).glob("*.parquet"))
        changed = 0
        filled: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for path in files:
            raw = results.read_raw(path)
            if raw is None:
                echo(f"  {path}: unreadable, left alone (its stage is recomputed by the next sweep)")
                continue
            new, notes = fill(table, raw, path)
            for column, note in notes.items():
                filled[column][note] += 1
            if same(raw, new):
                continue
            changed += 1
            if write:
                results.atomic_write_bytes(path, lambda p, frame=new: frame.to_parquet(p, index=False))
        report[table] = {"files": len(files), "rewritten": changed, "filled": {c: dict(n) for c, n in filled.items()}}
        echo(f"{table}: {len(files)} files, {changed} {'rewritten' if write else 'to rewrite'}")
        for column, counts in filled.items():
            echo("    " + column + ": " + ", ".join(f"{note} in {n} files" for note, n in counts.items()))
    return report


def profile_stages(names: tuple[str, ...] | None = None) -> list:
    """Every stage of the profiles ``names`` (default: every profile), expanded once for the
    migrations below (expanding every profile takes seconds)."""
    from prunerob import profiles

    return [s for name in names or profiles.profiles() for s in profiles.expand(profiles.load_profile(name))]


def grid_id(stage) -> str:
    """The id a minimal attack stage had while its budget grid was hashed into it (schema version 1
    and before): the digest of every stage's canonical parameters, ``eps`` included."""
    from prunerob import spec

    return f"{stage.kind}-{spec._digest(stage.kind, spec._Stage.canonical(stage))}"


def minimal_ids(
    root: Path | None = None,
    runs_root: Path | None = None,
    write: bool = True,
    echo=print,
    names: tuple[str, ...] | None = None,
    stages: list | None = None,
) -> dict[str, str]:
    """Give each finished minimal attack of the profiles the id that leaves its budget grid out: its
    tables (attack, samples, checks, stages), their ``stage_id`` and its run notebook move from the
    old id (:func:`grid_id`) to the new.  Idempotent; a run whose new id is taken, or two old runs
    that would share one new id, are reported and left alone.  ``names``: the profiles whose stages
    count (default: every profile; ``stages``: their stages, already expanded).  Returns old id -> new id
    moved."""
    from prunerob import catalog

    root = Path(root or results.results_dir())
    runs_root = Path(runs_root or results.runs_dir())
    wanted: dict[str, list[str]] = {}
    for stage in stages if stages is not None else profile_stages(names):
        if stage.kind != "attack" or catalog.attack(stage.attack.attack).kind != "minimal":
            continue
        old = grid_id(stage)
        if old != stage.id and (root / "attack" / f"{old}.parquet").exists():
            olds = wanted.setdefault(stage.id, [])
            if old not in olds:
                olds.append(old)
    moved = {}
    for new, olds in sorted(wanted.items()):
        if len(olds) > 1 or (root / "attack" / f"{new}.parquet").exists():
            echo(f"  {new}: left alone ({', '.join(olds)} would move to an id that is taken or shared)")
            continue
        moved[olds[0]] = new
    for old, new in moved.items() if write else ():
        for table in ("attack", "samples", "checks", "stages"):
            src = root / table / f"{old}.parquet"
            frame = results.read_raw(src)
            if frame is None:
                continue
            frame["stage_id"] = pd.Series(new, index=frame.index, dtype=frame["stage_id"].dtype)
            results.atomic_write_bytes(root / table / f"{new}.parquet", lambda p, f=frame: f.to_parquet(p, index=False))
            src.unlink()
        notebook = runs_root / "attack" / f"{old}.ipynb"
        if notebook.exists():
            text = notebook.read_text().replace(old, new)
            results.atomic_write_bytes(notebook.with_name(f"{new}.ipynb"), lambda p, t=text: Path(p).write_text(t))
            notebook.unlink()
    echo(f"minimal attacks: {len(moved)} runs {'moved' if write else 'to move'} to ids without their budget grid")
    return moved


def stage_rows(
    root: Path | None = None,
    write: bool = True,
    echo=print,
    names: tuple[str, ...] | None = None,
    stages: list | None = None,
) -> int:
    """Write the ``stages`` table's row (every parameter) of each stage of every profile whose
    primary table is under ``root`` and whose row is not; returns how many were (or would be)
    written.  Tables of stages no profile holds get no row (a test keeps the book free of them);
    ``names``: the profiles whose stages count (default: every profile; ``stages``: their stages,
    already expanded)."""
    root = Path(root or results.results_dir())
    missing = {}
    for stage in stages if stages is not None else profile_stages(names):
        done = (root / results.PRIMARY_TABLE[stage.kind] / f"{stage.id}.parquet").exists()
        if done and not (root / "stages" / f"{stage.id}.parquet").exists():
            missing[stage.id] = stage
    for stage in missing.values():
        if write:
            path = root / "stages" / f"{stage.id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            row = results.stage_row(stage)
            results.atomic_write_bytes(path, lambda p, frame=row: frame.to_parquet(p, index=False))
    echo(f"stages: {len(missing)} rows {'written' if write else 'to write'} (finished stages of the profiles)")
    return len(missing)


def superseded(
    root: Path | None = None,
    runs_root: Path | None = None,
    write: bool = True,
    echo=print,
    names: tuple[str, ...] | None = None,
    stages: list | None = None,
) -> list[Path]:
    """The result tables (every stage-keyed table: all but ``sweeps``) and executed notebooks of
    stages that no profile holds any more -- superseded when a profile changed (another preset,
    another attack set) -- deleted (``write``) or only listed, so that the book shows one truth.
    Sweep records and files being written (``.<name>.tmp...``) are left alone.  ``names``: the
    profiles whose stages count (default: every profile; ``stages``: their stages, already expanded).
    Returns the paths deleted (or to delete)."""
    from prunerob import catalog

    root = Path(root or results.results_dir())
    runs_root = Path(runs_root or results.runs_dir())
    stages = stages if stages is not None else profile_stages(names)
    known = {s.id for s in stages}
    # a minimal attack's run still under the id with its budget grid is not superseded: minimal_ids moves it
    known |= {grid_id(s) for s in stages if s.kind == "attack" and catalog.attack(s.attack.attack).kind == "minimal"}
    found = [
        path
        for table in results.TABLES
        if table != "sweeps"
        for path in sorted((root / table).glob("*.parquet"))
        if not path.name.startswith(".") and path.stem not in known
    ]
    found += [p for p in sorted(runs_root.glob("*/*.ipynb")) if not p.name.startswith(".") and p.stem not in known]
    if write:
        for path in found:
            path.unlink()
    n_stages = len({p.stem for p in found})
    echo(f"superseded: {len(found)} files of {n_stages} stages no profile holds {'deleted' if write else 'to delete'}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prunerob.migrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, help="the results folder (default: $PRUNEROB_RESULTS or book/results)")
    parser.add_argument("--check", action="store_true", help="report what would change; write nothing")
    parser.add_argument(
        "--runs", action="store_true", help="also title the executed notebooks of the book's profiles by what they ran"
    )
    parser.add_argument(
        "--superseded",
        action="store_true",
        help="also delete the tables and executed notebooks of stages no profile holds (with --check: list them)",
    )
    args = parser.parse_args(argv)
    stages = profile_stages()
    if args.superseded:
        for path in superseded(args.results, write=not args.check, stages=stages):
            print(f"  {'deleted' if not args.check else 'superseded'}: {path}", file=sys.stderr)
    migrate(args.results, write=not args.check)
    minimal_ids(args.results, write=not args.check, stages=stages)
    stage_rows(args.results, write=not args.check, stages=stages)
    if args.runs and not args.check:
        from prunerob import runs

        changed, orphans = runs.retitle_runs()
        print(f"runs: {changed} retitled; {len(orphans)} belong to no profile the book shows", file=sys.stderr)
        for path in orphans:
            print(f"  not in the book's profiles: {path}", file=sys.stderr)
    bad = [
        (t, p)
        for t in results.TABLES
        for p in sorted(((args.results or results.results_dir()) / t).glob("*.parquet"))
        if not args.check and (raw := results.read_raw(p)) is not None and results.schema_problems(raw, t)
    ]
    for table, path in bad:
        print(f"still not matching the {table} schema: {path}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
