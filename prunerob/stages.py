"""The bodies of the three stages: what a stage notebook calls after validating its parameters.

Each stage reads its upstream checkpoint, does its work, saves its own checkpoints (atomically) and
writes its tidy tables (atomically), the stage's primary table last: that file existing means the
stage finished.  A stage whose upstream checkpoint is missing says which stage to run first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from prunerob import catalog, models, prune, results, zoo
from prunerob import data as data_mod
from prunerob.spec import AttackStage, PruneStage, TrainStage
from prunerob.train import History, evaluate, fit, seed_everything, select_device


class MissingUpstream(RuntimeError):
    """An upstream stage's checkpoint is not there."""


# --- threads ---------------------------------------------------------------------------------

# torch's CPU kernels split reductions (a convolution's weight gradient, a matrix product) across
# threads, and the order of a float sum changes its last bits: the same train stage gave other
# weights with 1 thread than with 2, and a CR 64 model's robustness moved by 18 points between the
# two.  Every stage therefore runs torch on exactly this many threads on a CPU (the sweep gets its
# parallelism from workers, one stage each), and every table records the count in `torch_threads`.
# On a GPU the count does not enter the math, and the tables record the count used all the same.
STAGE_THREADS = 1


@contextlib.contextmanager
def fixed_threads(device: torch.device):
    """Run the body with torch on :data:`STAGE_THREADS` threads (CPU), restoring the count after;
    yields the count the stage ran with."""
    before = torch.get_num_threads()
    if device.type == "cpu" and STAGE_THREADS:
        torch.set_num_threads(STAGE_THREADS)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# --- portable CPU math -----------------------------------------------------------------------

# The same train stage gave other weights on an Intel processor with AVX-512 than on an AMD one with
# AVX2, at one thread: torch picks its vector kernels (ATen) by processor, MKL picks its matrix-product
# code by processor, and oneDNN and NNPACK convolutions differ again.  The stages that make weights
# (train, prune) therefore run on a CPU with portable math: ATen's default (not vectorised) kernels
# and MKL in its reproducible mode COMPATIBLE (both chosen when the process starts: PORTABLE_ENV,
# which the sweep and `stage` give their kernels), oneDNN and NNPACK off.  Measured: one set of
# weights with MKL restricted to SSE4.2, AVX2 or AVX-512 on one Intel processor, at about 1.5-2x the
# training time.  Not across vendors: an AMD EPYC re-made the same stages with other weights (README,
# "The sweep"), each the same there run after run; where a re-made checkpoint differs,
# its fingerprint says so and what was measured on it runs again.  Attacks run on the processor's
# fastest kernels; their tables record the checkpoint they measured.
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
# set to 1 to train and prune with the processor's own kernels (weights then depend on the processor)
NATIVE_MATH_VAR = "PRUNEROB_NATIVE_MATH"


def math_problem() -> str | None:
    """Why this process cannot make portable weights on a CPU (one line); None where it can."""
    if os.environ.get(NATIVE_MATH_VAR) == "1":
        return None
    capability, mkl = torch.backends.cpu.get_cpu_capability(), os.environ.get("MKL_CBWR")
    if capability == "DEFAULT" and mkl == "COMPATIBLE":
        return None
    return (
        f"train and prune stages make weights with portable CPU math, but this process runs torch's "
        f"{capability} kernels with MKL_CBWR={mkl}: start it with "
        + " ".join(f"{k}={v}" for k, v in PORTABLE_ENV.items())
        + f" (`python -m prunerob stage` and `sweep` do), or set {NATIVE_MATH_VAR}=1 for weights that depend on the processor"
    )


@contextlib.contextmanager
def portable_math(device: torch.device):
    """The body (a train or prune stage) on a CPU with portable math: refused, before any work, in a
    process started without :data:`PORTABLE_ENV`; oneDNN and NNPACK off while it runs."""
    if device.type != "cpu":
        yield
        return
    problem = math_problem()
    if problem:
        raise RuntimeError(problem)
    native = os.environ.get(NATIVE_MATH_VAR) == "1"
    # oneDNN is switched through its one flag: torch.backends.mkldnn.flags() also restores the TF32
    # flag on exit, which prints a UserWarning about Intel GPUs into every stage's terminal output
    was = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(native)
    try:
        with torch.backends.nnpack.flags(enabled=native):
            yield
    finally:
        torch._C._set_mkldnn_enabled(was)


# --- checkpoints -----------------------------------------------------------------------------


def train_checkpoint(stage: TrainStage) -> Path:
    return results.artifacts_dir() / "train" / f"{stage.id}.pt"


def prune_checkpoint(stage: PruneStage, cr: float) -> Path:
    return results.artifacts_dir() / "prune" / stage.id / f"cr{cr:g}.pt"


def save_model(path: Path, model: torch.nn.Module, arch: str, dataset: str, meta: dict[str, Any]) -> None:
    blob = {
        "arch": arch,
        "dataset": dataset,
        "meta": meta,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    results.atomic_write_bytes(path, lambda p: torch.save(blob, p))


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a model's state (every tensor's name, dtype, shape and values, masks included):
    the tables record it for each checkpoint and for the checkpoint each result was computed on, so
    a result is tied to the weights it measured, and a re-made checkpoint that came out different
    (another machine, another thread count) is told apart from one that reproduced."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        tensor = value.detach().cpu().contiguous().reshape(-1)  # 0-d tensors (BatchNorm counters) too
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def _load_blob(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MissingUpstream(f"checkpoint {path} is missing") from None
    except Exception as exc:  # noqa: BLE001 - a truncated or garbled file
        raise MissingUpstream(f"checkpoint {path} is unreadable ({type(exc).__name__}); recompute it") from None


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """What a checkpoint says about itself (stage id, CR, and for a prune step its table row)."""
    return _load_blob(path).get("meta", {})


def load_model(path: Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Rebuild a saved model (masks included) in eval mode; a corrupt file raises MissingUpstream."""
    blob = _load_blob(path)
    model = new_model(blob["arch"], blob["dataset"])
    prune.load_pruned_state(model, blob["state_dict"])
    return model.to(device).eval()


def stage_command(stage) -> str:
    """The command that runs ``stage`` on its own (its non-default parameters)."""
    import json
    import shlex

    flat = {k: v for part in stage.canonical().values() for k, v in part.items()}
    args = " ".join(
        shlex.quote(f"-p {k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}").replace(
            "'-p ", "-p '"
        )
        for k, v in flat.items()
    )
    return f"python -m prunerob stage {stage.kind}" + (f" {args}" if args else "")


def recorded_sha(stage, cr: float | None = None) -> str | None:
    """The fingerprint a train stage's table (``cr`` None) or a prune stage's table (at ``cr``)
    recorded for its checkpoint; None where the table is missing or predates fingerprints."""
    return (results.recorded_fingerprints(stage) or {}).get(None if cr is None else float(cr))


def _verified(stage, cr: float | None, device: torch.device | str = "cpu") -> tuple[torch.nn.Module | None, str | None]:
    """(model, None) for a usable checkpoint of a train stage (``cr`` None) or of a prune stage at
    ``cr``; (None, what is wrong) where it is missing, unreadable, or not the one its stage's table
    recorded (another fingerprint)."""
    if stage.kind == "train":
        path = train_checkpoint(stage)
    elif cr is None:
        raise TypeError(f"the checkpoint of {stage.kind} stage {stage.id} needs a CR")
    else:
        path = prune_checkpoint(stage, cr)
    if not path.exists():
        return None, f"{path} is missing"
    try:
        model = load_model(path, device)
    except MissingUpstream as exc:  # not a checkpoint torch can read (truncated, garbled)
        return None, str(exc).removeprefix("checkpoint ").removesuffix("; recompute it")
    except Exception as exc:  # noqa: BLE001 - weights that do not fit the architecture
        return None, f"{path} is unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
    sha, found = recorded_sha(stage, cr), model_fingerprint(model)
    if sha is not None and found != sha:
        return None, f"{path} is not the checkpoint its table recorded (fingerprint {found}, recorded {sha})"
    return model, None


def checkpoint_problem(stage, cr: float | None = None) -> str | None:
    """What is wrong with a checkpoint (see :func:`_verified`); None if it is usable."""
    return _verified(stage, cr)[1]


def load_upstream(stage, cr: float | None = None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The checkpoint of upstream ``stage`` (train: ``cr`` None; prune: at ``cr``), verified: loadable and,
    where its table records a fingerprint, that one.  Else MissingUpstream naming the stage to run."""
    model, problem = _verified(stage, cr, device)
    if problem:
        what = "the dense model" if cr is None else f"the CR {cr:g} checkpoint"
        raise MissingUpstream(
            f"{what} of {stage.kind} stage {stage.id}: {problem}; run that stage first: {stage_command(stage)}"
        )
    assert model is not None  # _verified gives a model whenever it finds no problem
    return model


def check_upstream(stage) -> None:
    """Every upstream checkpoint ``stage`` reads is there and verified (see :func:`load_upstream`)."""
    if stage.kind == "prune":
        load_upstream(stage.upstream)
    elif stage.kind == "attack":
        for cr in dict.fromkeys((stage.checkpoint.cr, stage.checkpoint.source_cr or stage.checkpoint.cr)):
            load_upstream(stage.upstream, cr)


def new_model(arch: str, dataset: str) -> torch.nn.Module:
    """The architecture with fresh weights (for a RobustBench model: the zoo's, without its weights)."""
    if catalog.is_zoo_arch(arch):
        return zoo.build(arch, dataset)
    info = data_mod.info(dataset)
    return models.build_model(arch, info.input_shape, info.num_classes, info.mean, info.std)


def _ids(stage) -> dict[str, str]:
    out = {"stage_id": stage.id}
    up = stage
    while hasattr(up, "upstream"):
        up = up.upstream
        out[f"{up.kind}_id"] = up.id
    return out


def _meta(stage) -> dict[str, Any]:
    """Columns that say which run a row belongs to."""
    row = {
        "dataset": stage.data.dataset,
        "arch": stage.model.arch,
        "seed": stage.train.seed,
        "training": training_label(stage),
    }
    if hasattr(stage, "prune"):
        row.update(
            structure=stage.prune.structure,
            scope=stage.prune.scope,
            criterion=stage.prune.criterion,
            schedule=stage.prune.schedule,
            prune_dense_neurons=stage.prune.prune_dense_neurons,
        )
    return row


def training_label(stage) -> str:
    """How the model was trained: "standard", "pgd" (adversarial training at its radius), and for a
    pruned model whose fine-tuning differs from its dense model's training, that too."""
    label = stage.train.training
    if stage.train.adversarial:
        label = f"pgd (eps {stage.train.adv_eps:g})"
    if (
        hasattr(stage, "prune")
        and stage.prune.finetune_training != "same"
        and stage.prune.finetune_training != stage.train.training
    ):
        label += f", {stage.prune.finetune_training} fine-tuning"
    return label


def training_params(label: str) -> dict[str, Any]:
    """The stage parameters a :func:`training_label` was written from: "pgd (eps 0.1), standard
    fine-tuning" gives ``{"training": "pgd", "adv_eps": 0.1, "finetune_training": "standard"}``;
    a label not of that form is taken as the training's name."""
    match = re.fullmatch(r"(\w+)(?: \(eps ([0-9.eE+-]+)\))?(?:, (\w+) fine-tuning)?", label)
    if match is None:
        return {"training": label}
    out: dict[str, Any] = {"training": match[1]}
    if match[2] is not None:
        out["adv_eps"] = float(match[2])
    if match[3] is not None:
        out["finetune_training"] = match[3]
    return out


def finetune_spec(stage: PruneStage):
    """The training recipe of the fine-tuning after each pruning step."""
    if stage.prune.finetune_training == "standard" and stage.train.adversarial:
        return dataclasses.replace(stage.train, training="standard", adv_eps=0.0, adv_steps=10, adv_step_size=0.0)
    return stage.train


# --- train -----------------------------------------------------------------------------------


def run_train(stage: TrainStage, device: str = "auto", progress: bool = True) -> pd.DataFrame:
    """Train the dense model; a RobustBench model (``rb:...``) is loaded from the zoo instead."""
    dev = select_device(device)
    with fixed_threads(dev) as threads, portable_math(dev):
        return _run_train(stage, dev, progress, threads)


def _run_train(stage: TrainStage, dev: torch.device, progress: bool, threads: int) -> pd.DataFrame:
    info = data_mod.info(stage.data.dataset)
    splits = data_mod.load(stage.data).to(dev)
    if catalog.is_zoo_arch(stage.model.arch):
        model, hist = _load_zoo_model(stage, splits, dev)
    else:
        seed_everything(stage.train.seed)  # the initial weights belong to the seed too
        model = new_model(stage.model.arch, stage.data.dataset).to(dev)
        hist = fit(model, splits, stage.train, large=info.large, progress=progress, desc=f"train {stage.id}")
    test_loss, test_acc = evaluate(model, splits.test_x, splits.test_y)
    row = {
        **_ids(stage),
        **_meta(stage),
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_prunable": models.count_prunable(model),
        "epochs": hist.epochs,
        "best_epoch": hist.best_epoch,
        "val_loss": hist.best_val_loss,
        "test_loss": test_loss,
        "clean_acc": test_acc,
        "n_train": len(splits.train_y),
        "n_test": len(splits.test_y),
        "seconds": hist.seconds,
        "device": dev.type,
        "torch_threads": threads,
        "checkpoint_sha": model_fingerprint(model),
        **results.provenance(),
    }
    save_model(train_checkpoint(stage), model, stage.model.arch, stage.data.dataset, {"stage_id": stage.id})
    if hist.rows:  # a zoo model has no training history
        history = pd.DataFrame(hist.rows).assign(stage_id=stage.id, step="train")
        results.write_table(results.conform(history, "history"), "history", stage.id)
    frame = pd.DataFrame([row])
    results.write_stage_row(stage)  # its parameters, before the table that marks it done
    results.write_table(results.conform(frame, "train"), "train", stage.id)
    return frame


def _load_zoo_model(stage: TrainStage, splits: data_mod.Splits, dev: torch.device) -> tuple[torch.nn.Module, History]:
    """The zoo's weights in place of training: epochs 0, the validation loss of the loaded model."""
    start = time.perf_counter()
    model = zoo.load(stage.model.arch, stage.data.dataset).to(dev)
    hist = History(seconds=time.perf_counter() - start)
    hist.best_val_loss, _ = evaluate(model, splits.val_x, splits.val_y)
    return model, hist


# --- prune -----------------------------------------------------------------------------------


def run_prune(stage: PruneStage, device: str = "auto", progress: bool = True) -> pd.DataFrame:
    dev = select_device(device)
    with fixed_threads(dev) as threads, portable_math(dev):
        return _run_prune(stage, dev, progress, threads)


def _run_prune(stage: PruneStage, dev: torch.device, progress: bool, threads: int) -> pd.DataFrame:
    info = data_mod.info(stage.data.dataset)
    dense_path = train_checkpoint(stage.upstream)
    model = load_upstream(stage.upstream, None, dev)  # verified: loadable, the train table's fingerprint
    splits = data_mod.load(stage.data).to(dev)
    dense_sha = model_fingerprint(model)  # the dense model every step starts from, as the train table names it
    generator = torch.Generator().manual_seed(stage.train.seed)
    rows, layer_frames, histories = [], [], []
    done = _finished_steps(stage)  # a killed run's finished CRs: resumed, not recomputed
    for cr in stage.prune.crs:
        start = time.perf_counter()
        if cr in done:
            meta = done[cr]
            model = load_model(prune_checkpoint(stage, cr), dev)
            if "generator" in meta:
                generator.set_state(meta["generator"])
            if "row" in meta:
                row = meta["row"]
            else:  # written before checkpoints carried their row: measured again, the rest unknown
                row = {
                    **_step_row(stage, model, splits, cr),
                    "finetune_epochs": None,
                    "seconds": None,
                    "device": "unknown",
                    **results.provenance(),
                }
            rows.append({**row, "dense_sha": dense_sha, "checkpoint_sha": model_fingerprint(model), "resumed": True})
            if meta.get("history"):
                histories.append(pd.DataFrame(meta["history"]).assign(stage_id=stage.id, step=f"cr{cr:g}"))
            layer_frames.append(prune.sparsity_report(model).assign(stage_id=stage.id, cr=float(cr)))
            continue
        if stage.prune.schedule == "oneshot":
            model = load_model(dense_path, dev)
        epochs = 0
        hist_rows: list[dict] = []
        if cr > 1:
            masks = prune.compute_masks(
                model,
                structure=stage.prune.structure,
                scope=stage.prune.scope,
                criterion=stage.prune.criterion,
                cr=cr,
                generator=generator,
                prune_dense_neurons=stage.prune.prune_dense_neurons,
            )
            prune.apply_masks(model, masks)
            hist = fit(
                model,
                splits,
                finetune_spec(stage),
                max_epochs=stage.prune.finetune_max_epochs,
                large=info.large,
                progress=progress,
                desc=f"fine-tune CR {cr:g}",
            )
            epochs, hist_rows = hist.epochs, hist.rows
            histories.append(pd.DataFrame(hist.rows).assign(stage_id=stage.id, step=f"cr{cr:g}"))
        rows.append(
            {
                **_step_row(stage, model, splits, cr),
                "finetune_epochs": epochs,
                "seconds": time.perf_counter() - start,
                "device": dev.type,
                "torch_threads": threads,
                **results.provenance(),
                "dense_sha": dense_sha,
                "checkpoint_sha": model_fingerprint(model),
                "resumed": False,
            }
        )
        layer_frames.append(prune.sparsity_report(model).assign(stage_id=stage.id, cr=float(cr)))
        # the checkpoint carries its table row, fine-tuning history and the random state after this
        # step, so that a killed stage resumes after its last finished CR with the same result
        save_model(
            prune_checkpoint(stage, cr),
            model,
            stage.model.arch,
            stage.data.dataset,
            {"stage_id": stage.id, "cr": cr, "row": rows[-1], "history": hist_rows, "generator": generator.get_state()},
        )
    if histories:
        results.write_table(results.conform(pd.concat(histories, ignore_index=True), "history"), "history", stage.id)
    layers = pd.concat(layer_frames, ignore_index=True)
    layers["shape"] = layers["shape"].astype(str)
    results.write_table(results.conform(layers, "layers"), "layers", stage.id)
    frame = pd.DataFrame(rows)
    results.write_stage_row(stage)  # its parameters, before the table that marks it done
    results.write_table(results.conform(frame, "prune"), "prune", stage.id)
    return frame


def library_version(name: str) -> str:
    """The installed version of an attack's library; this package's own where prunerob implements
    the attack (also when it runs from a checkout that was never pip-installed)."""
    import importlib.metadata as md

    import prunerob

    if name == "prunerob":
        return prunerob.__version__
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "unknown"


def _step_row(stage: PruneStage, model: torch.nn.Module, splits: data_mod.Splits, cr: float) -> dict[str, Any]:
    """What the prune table says about one pruned checkpoint that can be measured on it."""
    test_loss, test_acc = evaluate(model, splits.test_x, splits.test_y)
    report = prune.sparsity_report(model)
    total = report[report["layer"] == "total"].iloc[0]
    size = prune.sparse_bytes(model)
    n_units, n_units_kept = prune.count_units(model, stage.prune.structure, stage.prune.prune_dense_neurons)
    return {
        **_ids(stage),
        **_meta(stage),
        "cr": float(cr),
        "target_kept": 1 / cr,
        "n_units": n_units,
        "n_units_kept": n_units_kept,
        "kept": float(total["kept_fraction"]),
        "sparsity": float(total["sparsity"]),
        "n_prunable": int(total["n_weights"]),
        "n_kept": int(total["n_kept"]),
        "layers_removed": int(report.loc[report["layer"] != "total", "layer_removed"].sum()),
        "clean_acc": test_acc,
        "test_loss": test_loss,
        **{f"bytes_{k}": int(v) for k, v in size.items()},
    }


def _finished_steps(stage: PruneStage) -> dict[float, dict]:
    """The leading CRs of ``stage`` whose checkpoints a killed run left complete (readable, of this
    stage and CR): each step builds on the one before, so resuming stops at the first missing or
    unusable one.  A checkpoint from before checkpoints carried their table row and random state
    resumes only where no random state is needed (magnitude criterion)."""
    done: dict[float, dict] = {}
    for cr in stage.prune.crs:
        path = prune_checkpoint(stage, cr)
        if not path.exists():
            break
        try:
            meta = checkpoint_meta(path)
        except MissingUpstream:
            break
        if meta.get("stage_id") != stage.id or float(meta.get("cr", -1)) != float(cr):
            break
        if "row" not in meta and (stage.prune.criterion == "random" or stage.prune.schedule != "cumulative"):
            break
        sha = meta.get("row", {}).get("checkpoint_sha")
        if sha is not None:  # loadable but garbled weights are made again too
            try:
                if model_fingerprint(load_model(path)) != sha:
                    break
            except Exception:  # noqa: BLE001
                break
        done[cr] = meta
    return done


# --- attack ----------------------------------------------------------------------------------


def _as_attacked(model: torch.nn.Module, stage: AttackStage) -> torch.nn.Module:
    """The model as the attack sees it: itself, or its softmax output (the original's wiring)."""
    return models.SoftmaxOutput(model) if stage.attack.attack_output == "softmax" else model


def run_attack(stage: AttackStage, device: str = "auto", progress: bool = True) -> pd.DataFrame:
    dev = select_device(device)
    with fixed_threads(dev) as threads:
        return _run_attack(stage, dev, progress, threads)


def _run_attack(stage: AttackStage, dev: torch.device, progress: bool, threads: int) -> pd.DataFrame:
    from prunerob import attacks
    from prunerob import evaluate as ev

    cr = stage.checkpoint.cr
    model = load_upstream(stage.upstream, cr, dev)  # verified: loadable, the prune table's fingerprint
    source = None
    if stage.transfer:  # crafted on another checkpoint of the same prune stage
        source = load_upstream(stage.upstream, stage.checkpoint.source_cr, dev)
    info = data_mod.info(stage.data.dataset)
    test_x, test_y = data_mod.load_split(stage.data.dataset, train=False)
    if stage.attack.n_samples > len(test_y):
        raise ValueError(f"n_samples={stage.attack.n_samples} exceeds the {len(test_y)} test images")
    x = data_mod.to_float(test_x[: stage.attack.n_samples]).to(dev)
    y = test_y[: stage.attack.n_samples].to(dev)
    atk = attacks.get(stage.attack.attack)
    start = time.perf_counter()
    res = ev.attack_curve(
        _as_attacked(model, stage),
        x,
        y,
        stage.attack,
        info.input_shape,
        progress=progress,
        source=None if source is None else _as_attacked(source, stage),
    )
    seconds = time.perf_counter() - start
    report = prune.sparsity_report(model)
    total = report[report["layer"] == "total"].iloc[0]
    common = {
        **_ids(stage),
        **_meta(stage),
        "cr": float(cr),
        "sparsity": float(total["sparsity"]),
        "attack": atk.name,
        "preset": stage.attack.preset_name,
        "norm": atk.norm,
        "kind": atk.kind,
        "library": atk.library,
        "scenario": "transfer" if stage.transfer else "white-box",
        "source_cr": float(stage.checkpoint.source_cr or cr),
        "attack_output": stage.attack.attack_output,
        "checkpoint_sha": model_fingerprint(model),
        "source_sha": model_fingerprint(source if source is not None else model),
    }
    versions = results.provenance(library_version=library_version(atk.library))
    clean_acc = float(res.curve.loc[res.curve["eps"] == 0, "robust_acc"].iloc[0])
    results.write_table(results.conform(res.samples.assign(**common), "samples"), "samples", stage.id)
    results.write_table(results.conform(res.checks.assign(**common), "checks"), "checks", stage.id)
    curve = res.curve.assign(
        **common,
        clean_acc=clean_acc,
        all_checks_passed=bool(res.checks["passed"].all()),
        stage_seconds=seconds,
        device=dev.type,
        torch_threads=threads,
        **versions,
    )
    results.write_stage_row(stage)  # its parameters, before the table that marks it done
    results.write_table(results.conform(curve, "attack"), "attack", stage.id)
    return curve
