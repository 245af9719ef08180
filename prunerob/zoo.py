"""RobustBench model-zoo entries as the study's dense models.

The architecture name ``rb:<threat model>:<zoo name>`` (e.g. ``rb:Linf:Carmon2019Unlabeled``) names
one entry of RobustBench's model zoo (Croce et al. 2021) for the stage's data set. Its train stage
does not train: it loads the zoo's weights with ``robustbench.utils.load_model`` from a local folder
in RobustBench's own layout,

    $PRUNEROB_ROBUSTBENCH_DIR/<data set>/<threat model>/<zoo name>.pt

(default ``~/.cache/prunerob/robustbench``); RobustBench downloads a file that is not there (from
Google Drive) on first use. Pruning, fine-tuning and attacks then treat it like any other model. Zoo
models take inputs in [0, 1] and own their normalization, as the study's own models do, and their
checkpoints rebuild the zoo's architecture (without weights) before loading the saved state.

Only CIFAR-10 is shared between the zoo (CIFAR-10, CIFAR-100, ImageNet) and this study's data sets.
Entries that RobustBench serves through timm's hub rather than a model folder are not offered.

Prunable layers follow the study's convention (see :mod:`prunerob.models`): every Conv2d and Linear
except 1x1 projection shortcuts (a 1x1 convolution with ``shortcut`` or ``downsample`` in its name,
as in the zoo's ResNets and WideResNets) and layers the forward pass never calls (the checkpoint of
``Carmon2019Unlabeled`` carries an unused block, ``sub_block1``): those would count toward the
compression rate without changing any output.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from torch import nn

from prunerob import catalog
from prunerob.catalog import ZOO_DATASETS, SpecError, parse_zoo_arch

SHORTCUT_WORDS = ("shortcut", "downsample")


class ZooError(RuntimeError):
    """A zoo model's weights are missing or unreadable."""


def model_dir() -> Path:
    """``$PRUNEROB_ROBUSTBENCH_DIR`` or, when unset, ``~/.cache/prunerob/robustbench``."""
    env = os.environ.get("PRUNEROB_ROBUSTBENCH_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "prunerob" / "robustbench"


def _robustbench_zoo():
    from prunerob import _autoattack_shim

    _autoattack_shim.install()  # robustbench's __init__ imports autoattack
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return model_dicts, BenchmarkDataset, ThreatModel


@functools.cache  # a paper-size grid checks the same name thousands of times
def _entries(dataset: str, threat_model: str) -> dict:
    model_dicts, BenchmarkDataset, ThreatModel = _robustbench_zoo()
    entries = model_dicts[BenchmarkDataset(ZOO_DATASETS[dataset])].get(ThreatModel(threat_model), {})
    # gdrive_id None: weights come through timm's hub, not from a model folder
    return {name: entry for name, entry in entries.items() if entry.get("gdrive_id") is not None}


def names(dataset: str, threat_model: str) -> list[str]:
    """The zoo entries this study can load for a data set and threat model."""
    return list(_entries(dataset, threat_model))


def check(arch: str, dataset: str) -> None:
    """Raise SpecError unless ``arch`` names a loadable zoo entry for ``dataset``."""
    threat_model, name = parse_zoo_arch(arch)
    if dataset not in ZOO_DATASETS:
        raise SpecError(
            f"arch={arch!r} is a RobustBench model; its dataset must be one of {', '.join(ZOO_DATASETS)}, not {dataset!r}"
        )
    valid = names(dataset, threat_model)
    if name not in valid:
        raise SpecError(
            f"arch={arch!r}: {name!r} is not a RobustBench {dataset} {threat_model} model; valid: {', '.join(valid)}"
        )


def build(arch: str, dataset: str) -> nn.Module:
    """The zoo entry's architecture with fresh (untrained) weights, prunable layers marked."""
    check(arch, dataset)
    threat_model, name = parse_zoo_arch(arch)
    return _mark_prunable(_entries(dataset, threat_model)[name]["model"](), arch, dataset)


def load(arch: str, dataset: str, folder: Path | None = None) -> nn.Module:
    """The zoo entry with its weights, read by RobustBench from ``folder`` (default :func:`model_dir`)."""
    check(arch, dataset)
    threat_model, name = parse_zoo_arch(arch)
    folder = Path(folder) if folder is not None else model_dir()
    _robustbench_zoo()
    from robustbench.utils import load_model

    path = folder / ZOO_DATASETS[dataset] / threat_model / f"{name}.pt"
    try:
        model = load_model(name, model_dir=str(folder), dataset=ZOO_DATASETS[dataset], threat_model=threat_model)
    except Exception as exc:  # noqa: BLE001 - a missing, half-downloaded or foreign file ends in one advice
        raise ZooError(
            f"RobustBench model {name!r} ({dataset}, {threat_model}) could not be loaded from {path} "
            f"({type(exc).__name__}: {str(exc)[:300]}). Put the zoo's checkpoint there (RobustBench's layout: "
            f"<model dir>/<data set>/<threat model>/<name>.pt) or let RobustBench download it; delete a file "
            f"left by a failed download (an HTML page: 'invalid load key'). Set PRUNEROB_ROBUSTBENCH_DIR to "
            f"use another model dir."
        ) from exc
    return _mark_prunable(model.float().eval(), arch, dataset)


# (arch, dataset) -> names of the layers that are not prunable; found once per process (a forward pass)
_NOT_PRUNABLE: dict[tuple[str, str], frozenset[str]] = {}


def _mark_prunable(model: nn.Module, arch: str, dataset: str) -> nn.Module:
    key = (arch, dataset)
    if key not in _NOT_PRUNABLE:
        _NOT_PRUNABLE[key] = not_prunable(model, catalog.DATASETS[dataset].input_shape)
    for name, module in model.named_modules():
        if name in _NOT_PRUNABLE[key]:
            module.prunable = False
    return model


def not_prunable(model: nn.Module, input_shape: tuple[int, int, int]) -> frozenset[str]:
    """Names of the Conv2d and Linear layers that are 1x1 projection shortcuts or that a forward pass
    (eval mode, one blank input) never calls."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    called: set[int] = set()
    hooks = [m.register_forward_hook(lambda module, args, out: called.add(id(module))) for _, m in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    out = set()
    for name, module in layers:
        shortcut = (
            isinstance(module, nn.Conv2d)
            and module.kernel_size == (1, 1)
            and any(word in name.lower() for word in SHORTCUT_WORDS)
        )
        if shortcut or id(module) not in called:
            out.add(name)
    return frozenset(out)
