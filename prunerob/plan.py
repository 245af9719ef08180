"""What a sweep must run, and why; and what is checked before the first kernel starts.

A stage whose primary table exists is skipped, unless a stage that must run needs its checkpoint and
the checkpoint is gone or bad (not loadable, not the fingerprint its table recorded): then it is
re-made like a missing one.  The finished stages downstream of a checkpoint made again run again too
(:func:`recheck`), unless it came out the same (:func:`reproduced`: the tables record each
checkpoint's fingerprint, and each result the fingerprint of the checkpoint it measured).
:func:`preflight` checks the options and the data sets before any kernel starts.  The module imports
without torch (the functions that need it, such as those loading a checkpoint, import it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prunerob import aggregate, catalog, results
from prunerob.results import PRIMARY_TABLE, recorded_fingerprints
from prunerob.spec import invalid


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
    usable: set[str] = set()  # stages whose checkpoints were verified in this plan: each once

    def need(stage, for_checkpoint: bool) -> None:
        if stage.id in todo or (for_checkpoint and stage.id in usable):
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
                usable.add(stage.id)
                return
            if remade is not None:
                remade[stage.id] = problem
        todo[stage.id] = stage
        if hasattr(stage, "upstream"):
            need(by_id.get(stage.upstream.id, stage.upstream), True)

    for s in all_stages:
        need(s, False)
    return [s for s in all_stages if s.id in todo] + [s for s in todo.values() if s.id not in by_id]


def missing_budgets(stage) -> list[float]:
    """The budgets of a finished minimal attack stage's grid that its attack table lacks (its id
    leaves the grid out, so a profile may ask a finished run for a budget it was not reported at);
    empty for other stages, unfinished ones, or a complete table."""
    if stage.kind != "attack" or catalog.attack(stage.attack.attack).kind != "minimal":
        return []
    table = results.read_table_file(results.table_path("attack", stage.id))
    if table is None:
        return []
    have = table["eps"].to_numpy(float)
    return [float(e) for e in stage.attack.eps if not np.isclose(have, float(e), rtol=1e-9, atol=0).any()]


def regrid(stage) -> list[float]:
    """Add the budgets :func:`missing_budgets` names to a finished minimal attack's tables, computed
    from its samples (each sample's verified minimal distance) as the run computes them
    (``aggregate.minimal_curve``), with its sanity checks re-done over the whole grid; the attack
    is not run again.  Returns the budgets added (none where the samples table is missing)."""
    from prunerob import evaluate

    missing = missing_budgets(stage)
    samples = results.read_table_file(results.table_path("samples", stage.id)) if missing else None
    checks = results.read_table_file(results.table_path("checks", stage.id)) if missing else None
    if not missing or samples is None or checks is None:
        return []
    attack = results.read_table_file(results.table_path("attack", stage.id))
    assert attack is not None  # missing_budgets read it
    samples = samples.sort_values("sample")
    clean_ok = (samples["clean_pred"] == samples["label"]).to_numpy()
    added = aggregate.minimal_curve(clean_ok, samples["distance"].to_numpy(), missing)
    template = attack[attack["eps"] == 0].iloc[[0]].reset_index(drop=True)
    rows = template.loc[template.index.repeat(len(added))].reset_index(drop=True)
    rows[list(added.columns)] = added.to_numpy()  # the run's other columns (seconds, n, ...) as they are
    curve = pd.concat([attack, rows], ignore_index=True).sort_values("eps", ignore_index=True)
    unbounded = checks[checks["check"] == "unbounded_breaks_all"]
    redone = evaluate.sanity_checks(
        curve,
        float(template["clean_acc"].iloc[0]),
        float(unbounded["eps"].iloc[0]) if len(unbounded) else float("nan"),
        float(unbounded["value"].iloc[0]) if len(unbounded) else None,
    )
    own = [c for c in ("check", "value", "expected", "passed", "eps") if c in checks]  # a check's; the rest: the run's
    common = checks.drop(columns=own).iloc[[0]]
    # the convergence checks stand: the distance check does not depend on the budgets, the curve
    # check's rows are per budget (a budget added here has none)
    kept = checks[checks["check"].isin([catalog.CONVERGENCE_CHECK, catalog.CURVE_CHECK])]
    redone = pd.concat([redone, kept[own]], ignore_index=True)
    new_checks = redone.assign(**{str(k): v for k, v in common.iloc[0].items()})
    curve = curve.assign(all_checks_passed=bool(redone["passed"].all()))
    results.write_table(results.conform(new_checks, "checks"), "checks", stage.id)
    results.write_table(results.conform(curve, "attack"), "attack", stage.id)  # last: the primary table
    return missing


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


def describe(stage) -> str:
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


def stage_estimates(todo: list) -> dict[str, float | None]:
    """Each stage's expected time in seconds from the finished stages in the results folder, by stage
    id; None for a stage with no finished counterpart.  A counterpart is a finished stage of the same
    kind, data set, architecture and training (an attack: and the same attack and preset; a prune
    stage: and the same structure), and the estimate their median time per unit of work times the
    stage's.  An attack's unit is a correctly classified image among those it attacks (a misclassified
    one is not attacked: a checkpoint at chance takes a fraction of a dense model's time): its
    attacked model's clean accuracy (from the prune table; else the median of the same method's other
    seeds at that CR; else the counterparts' median) times its ``n_samples``.  Where the counterparts'
    numbers of such images differ by 2x or more, a line fitted through their times (a fixed part and
    a part per image, neither negative) replaces the median (time: the attack's own,
    ``stage_seconds``, without the few seconds its kernel takes to start).  A prune stage's: per CR
    of its schedule times its number of CRs; a train stage's per training image times its ``n_train``
    (0, all of them: as many as the counterpart that had the most), scaled down where its
    ``max_epochs`` is below the counterparts' median number of epochs run."""
    keys = {
        "train": ["dataset", "arch", "training"],
        "prune": ["dataset", "arch", "training", "structure"],
        "attack": ["dataset", "arch", "training", "attack", "preset"],
    }
    medians: dict[str, dict] = {"attack": {}}  # train and prune: per counterpart key, the median seconds per unit
    lines: dict = {}  # attack: per counterpart key, (fixed seconds, seconds per correct image)
    accs: dict = {}  # attack: the counterparts' median clean accuracy
    prune_acc: dict = {}  # attack: (prune stage id, CR) -> clean accuracy, from the prune table
    method_acc: dict = {}  # attack: the same method and CR's median clean accuracy over the seeds
    epochs: dict = {}  # train: the counterparts' median number of epochs run
    most: dict = {}  # train: the counterparts' largest number of training images
    for kind in {s.kind for s in todo}:
        cols, table = keys[kind], results.collect(kind)
        if kind == "attack":  # one row per budget: per stage, its time and its correctly classified images
            per_stage = table.groupby("stage_id").agg(
                **{c: (c, "first") for c in cols},
                seconds=("stage_seconds", "first"),
                n=("n", "first"),
                acc=("clean_acc", "first"),
            )
            per_stage["k"] = (per_stage["n"] * per_stage["acc"].fillna(1.0)).clip(lower=1)
            lines = {key: _time_line(g["k"], g["seconds"]) for key, g in per_stage.groupby(cols)}
            accs = per_stage.groupby(cols)["acc"].median().to_dict()
            prune_acc, method_acc = _clean_accuracies()
            continue
        if kind == "prune":  # a row per CR of its schedule: seconds per CR
            per_stage = table.groupby("stage_id").agg(
                **{c: (c, "first") for c in cols}, seconds=("seconds", "sum"), n=("cr", "size")
            )
            per_stage["seconds"] = per_stage["seconds"] / per_stage["n"]
        else:  # one row per train stage: seconds per training image
            per_stage = table.assign(seconds=table["seconds"] / table["n_train"].clip(lower=1))
            if len(per_stage):
                epochs = per_stage.groupby(cols)["epochs"].median().to_dict()
                most = per_stage.groupby(cols)["n_train"].max().to_dict()
        medians[kind] = per_stage.groupby(cols)["seconds"].median().to_dict() if len(per_stage) else {}
    out: dict[str, float | None] = {}
    for stage in todo:
        p = stage.params()
        if stage.kind == "attack":
            p["preset"] = stage.attack.preset_name  # the tables name the preset an empty one stands for
        key = tuple(p[c] for c in keys[stage.kind])
        if stage.kind == "attack":
            if key not in lines:
                out[stage.id] = None
                continue
            fixed, per_image = lines[key]
            acc = prune_acc.get((stage.upstream.id, float(p["cr"])))
            if acc is None:  # its prune stage has not run: the same method's other seeds, else the counterparts'
                acc = method_acc.get(_method_key(p), accs.get(key))
            seconds = fixed + per_image * p["n_samples"] * (1.0 if acc is None or pd.isna(acc) else acc)
        else:
            seconds = medians[stage.kind].get(key)
            if seconds is not None and stage.kind == "prune":
                seconds *= len(p["crs"])
            elif seconds is not None:
                seconds *= (p["n_train"] or most[key]) * min(1.0, p["max_epochs"] / max(epochs[key], 1))
        out[stage.id] = seconds
    return out


def _time_line(k: pd.Series, seconds: pd.Series) -> tuple[float, float]:
    """(fixed seconds, seconds per image) of stages that took ``seconds`` for ``k`` images: the median
    per image and no fixed part, unless the largest ``k`` is at least twice the smallest (two or more
    stages): then the least-squares line, its parts kept non-negative."""
    x, y = k.to_numpy(float), seconds.to_numpy(float)
    if len(x) >= 2 and x.max() >= 2 * x.min():
        per_image, fixed = np.polyfit(x, y, 1)
        if fixed < 0 or per_image < 0:  # a line through the origin, or a constant time
            per_image = max(float(np.dot(x, y) / np.dot(x, x)), 0.0)
            fixed = 0.0 if per_image > 0 else float(np.median(y))
        return float(fixed), float(per_image)
    return 0.0, float(np.median(y / x))


_METHOD = ["dataset", "arch", "training", "structure", "scope", "criterion", "schedule", "prune_dense_neurons", "cr"]


def _method_key(p: dict) -> tuple:
    """A stage's ``_METHOD`` values, typed as the prune table holds them."""
    return tuple({**p, "cr": float(p["cr"]), "prune_dense_neurons": bool(p["prune_dense_neurons"])}[c] for c in _METHOD)


def _clean_accuracies() -> tuple[dict, dict]:
    """From the finished prune tables: (prune stage id, CR) -> that checkpoint's clean accuracy, and
    the same method at the same CR (``_METHOD``'s values) -> the median over the seeds that have it."""
    table = results.collect("prune")
    own = {(sid, float(cr)): acc for sid, cr, acc in zip(table["stage_id"], table["cr"], table["clean_acc"])}
    if not len(table):
        return own, {}
    table = table.assign(cr=table["cr"].astype(float), prune_dense_neurons=table["prune_dense_neurons"].astype(bool))
    return own, table.groupby(_METHOD)["clean_acc"].median().to_dict()


def estimate_seconds(todo: list) -> tuple[float, list]:
    """The stages' expected time in seconds (:func:`stage_estimates`), and the stages with no finished
    counterpart (left out of the sum)."""
    each = stage_estimates(todo)
    return sum(v for v in each.values() if v is not None), [s for s in todo if each[s.id] is None]


def estimate(todo: list, workers: int) -> str:
    """:func:`estimate_seconds` as the dry run's line: the stage time, that time over ``workers`` (as
    if every worker stayed busy), and how many stages it leaves out."""
    total, unknown = estimate_seconds(todo)
    line = (
        f"estimate: about {total / 3600:.1f} h of stage time for {len(todo) - len(unknown)} of the {len(todo)} "
        f"stages to run, {total / 3600 / max(workers, 1):.1f} h on {workers} worker(s) kept busy (medians of the "
        f"finished stages of the same kind, data set, architecture, training, attack and preset in "
        f"{results.results_dir()})"
    )
    return line + (f"; {len(unknown)} with no finished counterpart left out" if unknown else "")
