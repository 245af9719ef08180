"""Pruning strategies compute masks; masks are applied with ``torch.nn.utils.prune``.

A pruning method is three names: a *structure* (what one unit is), a *scope* (where the threshold
is drawn) and a *criterion* (how a unit is scored). :func:`compute_masks` turns a model and a
compression rate CR into one boolean mask per prunable module; :func:`apply_masks` installs
them. Strategies never touch weights themselves: score -> threshold -> mask.

Prunable weights are the ``weight`` of every module that :func:`prunerob.models.prunable_modules`
returns (Conv2d and Linear; no biases, no BatchNorm, no 1x1 shortcuts). What CR counts depends on
the structure, as in the original (Merkle et al.'s code): it counts the *units* the method prunes.
Unstructured pruning keeps ``round(total_prunable / cr)`` weights; structured pruning keeps
``1/cr`` of the kernels or filters (and, with ``prune_dense_neurons``, hidden dense neurons) of the
layers it can prune, while the other layers keep every weight. The resulting weight sparsity of the
model is measured and reported beside the CR (:func:`sparsity_report`, :func:`count_units`).

Units (the rows of a 2-D view of a weight):

* ``unstructured``: one weight.
* ``kernel``: one ``(out, in)`` slice ``kh x kw`` of a conv weight.
* ``filter``: one output channel ``weight[o]`` of a conv.
* with ``prune_dense_neurons=True``, both structured kinds prune a dense layer by output neuron
  (row ``weight[o]``); otherwise structured pruning leaves dense layers alone, as the original did.
  The output layer is never pruned by neuron: its rows are the class logits.

Scores (shared by both scopes): ``magnitude`` is the L1 norm of a unit within a layer (local) and
its mean ``|w|`` across layers (global, so units of different sizes compare fairly; within one
layer both order units identically); ``random`` is uniform noise from the given generator.

Exactness, which tests assert:

* Pruning is cumulative: what the module's current mask removed stays removed, the new mask is a
  subset of the old, only units still alive compete, and CR keeps referring to the full count
  (going from CR 2 to CR 4 removes another quarter).
* Ties are broken by position (layer order, then unit index), so counts are exact even when many
  scores are equal.
* global: one threshold over every eligible unit. Unstructured: exactly ``round(total / cr)``
  weights are kept. Structured (the original's ``_prune_magnitude_global_struct``): of the ``U``
  eligible units, ``round((1 - 1/cr) * U)`` are pruned (so ``U - round((1 - 1/cr) * U)`` are kept,
  ``round(U / cr)`` but for ties at one half), ranked by mean ``|w|`` across the layers; the
  weight sparsity that results is much lower than ``1 - 1/cr`` where dense layers hold most of the
  weights (the MNIST CNN's are 96 % dense). Whole layers can disappear (the original's VGG-11
  lost layers to global filter pruning); :func:`sparsity_report` flags them in ``layer_removed``.
* local: every eligible layer keeps ``1/cr`` of its own units to within one unit. The per-layer
  counts are the largest-remainder split of ``round(sum units / cr)``, so for unstructured
  pruning the model total is exactly ``round(total / cr)`` as well. Under structured pruning
  without ``prune_dense_neurons`` the dense layers keep everything, so the model-level kept
  fraction is *not* ``1/cr``; :func:`sparsity_report` shows the true number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune

from prunerob.catalog import CRITERIA, SCOPES, STRUCTURES
from prunerob.models import prunable_modules

__all__ = [
    "CRITERIA",
    "SCOPES",
    "STRUCTURES",
    "PruningTargetWarning",
    "apply_masks",
    "compute_masks",
    "count_units",
    "current_masks",
    "load_pruned_state",
    "make_permanent",
    "sparse_bytes",
    "sparsity_report",
    "target_kept",
]


class PruningTargetWarning(UserWarning):
    """The requested kept count cannot be reached with this structure (or cannot be un-pruned)."""


# --------------------------------------------------------------------------------------------
# Units: every structure is a 2-D view of the weight whose rows are the units.


def _weight_units(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.reshape(-1, 1)


def _kernel_units(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dim() > 2:  # conv: one row per (out, in) kernel
        return tensor.reshape(tensor.shape[0] * tensor.shape[1], -1)
    return tensor.reshape(tensor.shape[0], -1)  # dense: one row per output neuron


def _filter_units(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.reshape(tensor.shape[0], -1)  # conv filter or dense output neuron


_UNITS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "unstructured": _weight_units,
    "kernel": _kernel_units,
    "filter": _filter_units,
}


def _is_conv(module: nn.Module) -> bool:
    return _weight_parameter(module).dim() > 2


def _eligible(module: nn.Module, structure: str, prune_dense_neurons: bool, is_output: bool = False) -> bool:
    # The output layer's rows are the class logits: removing one removes a class, so neuron
    # pruning never touches it (its single weights are pruned like any others when unstructured).
    if structure == "unstructured" or _is_conv(module):
        return True
    return prune_dense_neurons and not is_output


# --------------------------------------------------------------------------------------------
# Scores: one per criterion, the same for both scopes; higher means keep.


def _magnitude_scores(units: torch.Tensor, *, across_layers: bool, generator: torch.Generator | None) -> torch.Tensor:
    magnitude = units.detach().abs().float()
    # Across layers units differ in size, so the mean compares them fairly; within a layer the
    # L1 norm (the original's) orders them identically.
    return magnitude.mean(dim=1) if across_layers else magnitude.sum(dim=1)


def _random_scores(units: torch.Tensor, *, across_layers: bool, generator: torch.Generator | None) -> torch.Tensor:
    # Drawn on the generator's device (CPU by default) so a seed gives the same masks anywhere.
    device = generator.device if generator is not None else torch.device("cpu")
    scores = torch.rand(units.shape[0], generator=generator, device=device)
    return scores.to(units.device)


_SCORES: dict[str, Callable[..., torch.Tensor]] = {
    "magnitude": _magnitude_scores,
    "random": _random_scores,
}


# --------------------------------------------------------------------------------------------
# Thresholds: pick the best-ranked units.


def _keep_closest_prefix(scores: torch.Tensor, sizes: torch.Tensor, budget: int) -> torch.Tensor:
    """Keep the best-scored units whose summed size is closest to ``budget`` (ties: lower index first).

    ``sizes`` are positive; with all sizes 1 this keeps exactly ``min(budget, n)`` units.
    """
    keep = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if scores.numel() == 0 or budget <= 0:
        return keep
    order = torch.sort(scores, descending=True, stable=True).indices
    cumulative = torch.cumsum(sizes[order], dim=0)
    n_keep = int((cumulative <= budget).sum())
    if n_keep < cumulative.numel():
        under = budget - (int(cumulative[n_keep - 1]) if n_keep > 0 else 0)
        over = int(cumulative[n_keep]) - budget
        if over < under:
            n_keep += 1
    keep[order[:n_keep]] = True
    return keep


def _largest_remainder(sizes: list[int], cr: float, caps: list[int]) -> list[int]:
    """Split ``round(sum(sizes) / cr)`` into per-layer counts, each floor or ceil of ``size / cr``.

    A count never exceeds its cap (what is still alive: pruning is cumulative).
    """
    quotas = [size / cr for size in sizes]
    counts = [min(math.floor(q), cap) for q, cap in zip(quotas, caps)]
    short = round(sum(sizes) / cr) - sum(counts)
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - math.floor(quotas[i])), i))
    for i in by_remainder:
        if short <= 0:
            break
        if counts[i] < min(math.ceil(quotas[i]), caps[i]):
            counts[i] += 1
            short -= 1
    return counts


@dataclass
class _Candidates:
    """The eligible units of one layer: scores, and how many weights each still keeps."""

    name: str
    scores: torch.Tensor  # one per unit
    alive: torch.Tensor  # weights still kept per unit (0 = already pruned)


def _select_global(
    candidates: list[_Candidates], cr: float, *, total: int, ineligible_kept: int
) -> dict[str, torch.Tensor]:
    """Global unstructured pruning: the ``round(total / cr)`` weights of highest score survive."""
    budget = round(total / cr) - ineligible_kept
    live = [c.alive > 0 for c in candidates]
    scores = torch.cat([c.scores[m] for c, m in zip(candidates, live)]) if candidates else torch.zeros(0)
    sizes = torch.cat([c.alive[m] for c, m in zip(candidates, live)]) if candidates else torch.zeros(0)
    available = int(sizes.sum())
    if budget > available:
        _warn_cannot_unprune(cr, total, ineligible_kept + available)
    keep_live = _keep_closest_prefix(scores, sizes, budget)
    return _split_kept(candidates, live, keep_live)


def _select_local(
    candidates: list[_Candidates], cr: float, *, total: int, ineligible_kept: int
) -> dict[str, torch.Tensor]:
    live = [c.alive > 0 for c in candidates]
    counts = _largest_remainder([c.scores.numel() for c in candidates], cr, [int(m.sum()) for m in live])
    kept: dict[str, torch.Tensor] = {}
    for candidate, mask, count in zip(candidates, live, counts):
        keep = torch.zeros_like(mask)
        ones = torch.ones(int(mask.sum()), dtype=torch.long, device=mask.device)
        keep[mask] = _keep_closest_prefix(candidate.scores[mask], ones, count)
        kept[candidate.name] = keep
    return kept


def _select_global_units(
    candidates: list[_Candidates], cr: float, *, total: int, ineligible_kept: int
) -> dict[str, torch.Tensor]:
    """Global structured pruning as the original defined it: CR counts the *units* of the layers the
    structure can prune (conv kernels or filters; hidden dense neurons too with
    ``prune_dense_neurons``), and ``round((1 - 1/cr) * units)`` of them are pruned, ranked together
    across those layers; the layers it cannot prune keep every weight."""
    n_units = sum(c.scores.numel() for c in candidates)
    budget = n_units - round((1 - 1 / cr) * n_units)
    live = [c.alive > 0 for c in candidates]
    scores = torch.cat([c.scores[m] for c, m in zip(candidates, live)]) if candidates else torch.zeros(0)
    if budget > scores.numel():
        warnings.warn(
            f"CR {cr:g} asks to keep {budget} of {n_units} units but only {scores.numel()} are left "
            "unpruned; pruning is cumulative and never restores units",
            PruningTargetWarning,
            stacklevel=3,
        )
    keep_live = _keep_closest_prefix(scores, torch.ones_like(scores, dtype=torch.long), budget)
    return _split_kept(candidates, live, keep_live)


def _split_kept(
    candidates: list[_Candidates], live: list[torch.Tensor], keep_live: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per layer, which units are kept, from one decision per live unit across all layers."""
    kept: dict[str, torch.Tensor] = {}
    start = 0
    for candidate, mask in zip(candidates, live):
        keep = torch.zeros_like(mask)
        n_live = int(mask.sum())
        keep[mask] = keep_live[start : start + n_live]
        start += n_live
        kept[candidate.name] = keep
    return kept


_SELECT: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "global": _select_global,
    "local": _select_local,
}


def _warn_cannot_unprune(cr: float, total: int, kept: int) -> None:
    warnings.warn(
        f"CR {cr:g} asks to keep {round(total / cr)} of {total} weights but only {kept} are left "
        "unpruned; pruning is cumulative and never restores weights",
        PruningTargetWarning,
        stacklevel=4,
    )


# --------------------------------------------------------------------------------------------
# Public API


def _check_choice(kind: str, value: object, valid: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")


def _check_cr(cr: float) -> None:
    if isinstance(cr, bool) or not isinstance(cr, (int, float)) or not math.isfinite(cr) or cr < 1:
        raise ValueError(f"cr must be a finite number >= 1 (keep 1/cr of the weights), got {cr!r}")


def target_kept(model: nn.Module, cr: float) -> int:
    """The number of prunable weights CR ``cr`` asks to keep: ``round(total_prunable / cr)``."""
    _check_cr(cr)
    return round(sum(_weight_parameter(m).numel() for _, m in prunable_modules(model)) / cr)


def compute_masks(
    model: nn.Module,
    *,
    structure: str,
    scope: str,
    criterion: str,
    cr: float,
    generator: torch.Generator | None = None,
    prune_dense_neurons: bool = False,
) -> dict[str, torch.Tensor]:
    """Boolean masks (True = keep), shaped like each prunable module's weight, keyed by module name.

    Keeps ``1/cr`` of the units the method counts (see the module docstring), cumulatively on top of the masks the model already
    carries; see the module docstring for what is exact under each structure and scope.
    ``generator`` seeds the ``random`` criterion (``None``: torch's global RNG). The model is
    not modified.
    """
    _check_choice("structure", structure, STRUCTURES)
    _check_choice("scope", scope, SCOPES)
    _check_choice("criterion", criterion, CRITERIA)
    _check_cr(cr)
    to_units = _UNITS[structure]
    score = _SCORES[criterion]
    modules = prunable_modules(model)
    old = current_masks(model)
    total = sum(mask.numel() for mask in old.values())
    candidates: list[_Candidates] = []
    ineligible_kept = 0
    output_name = modules[-1][0] if modules and not _is_conv(modules[-1][1]) else None
    for name, module in modules:
        if not _eligible(module, structure, prune_dense_neurons, is_output=name == output_name):
            ineligible_kept += int(old[name].sum())
            continue
        units = to_units(_effective_weight(module))
        scores = score(units, across_layers=scope == "global", generator=generator)
        alive = to_units(old[name]).sum(dim=1)
        candidates.append(_Candidates(name, scores, alive))
    select = _select_global_units if scope == "global" and structure != "unstructured" else _SELECT[scope]
    keep_units = select(candidates, cr, total=total, ineligible_kept=ineligible_kept)
    masks = {}
    for name, _module in modules:
        mask = old[name]
        if name in keep_units:
            mask = (to_units(mask) & keep_units[name].unsqueeze(1)).reshape(mask.shape)
        masks[name] = mask.clone()
    return masks


def count_units(model: nn.Module, structure: str, prune_dense_neurons: bool = False) -> tuple[int, int]:
    """(units, units kept) of the layers ``structure`` prunes: what its CR counts.  Unstructured:
    weights of every prunable layer; kernel or filter: conv kernels or filters (and hidden dense
    neurons with ``prune_dense_neurons``); a unit is kept while any of its weights is."""
    _check_choice("structure", structure, STRUCTURES)
    modules = prunable_modules(model)
    output_name = modules[-1][0] if modules and not _is_conv(modules[-1][1]) else None
    n_units = n_kept = 0
    for name, module in modules:
        if not _eligible(module, structure, prune_dense_neurons, is_output=name == output_name):
            continue
        units = _UNITS[structure](_kept_mask(module))
        n_units += units.shape[0]
        n_kept += int(units.any(dim=1).sum())
    return n_units, n_kept


def _is_pruned(module: nn.Module) -> bool:
    """Whether ``module.weight`` is reparametrised by torch.nn.utils.prune."""
    return "weight_orig" in dict(module.named_parameters(recurse=False)) and "weight_mask" in dict(
        module.named_buffers(recurse=False)
    )


def _tensor(module: nn.Module, name: str) -> torch.Tensor:
    """``module.<name>`` (``weight``, ``weight_orig``, ``weight_mask``): torch types an attribute
    looked up by name as ``Tensor | Module``; these are always tensors."""
    return cast(torch.Tensor, getattr(module, name))


def _weight_parameter(module: nn.Module) -> torch.Tensor:
    """The trainable weight tensor: ``weight_orig`` when pruned, else ``weight``."""
    return _tensor(module, "weight_orig") if _is_pruned(module) else _tensor(module, "weight")


def _effective_weight(module: nn.Module) -> torch.Tensor:
    # Computed from weight_orig: module.weight is only refreshed by a forward pass, so it is stale
    # right after an optimizer step.
    if _is_pruned(module):
        return (_tensor(module, "weight_orig") * _tensor(module, "weight_mask")).detach()
    return _tensor(module, "weight").detach()


def _refresh_weight(module: nn.Module) -> None:
    # What torch.nn.utils.prune's forward pre-hook does, so module.weight is right before a forward.
    module.weight = _tensor(module, "weight_orig") * _tensor(module, "weight_mask")


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The boolean ``weight_mask`` of every prunable module (all True where not pruned)."""
    return {
        name: _tensor(module, "weight_mask").detach().bool()
        if _is_pruned(module)
        else torch.ones_like(_tensor(module, "weight"), dtype=torch.bool)
        for name, module in prunable_modules(model)
    }


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Make each named module's ``weight_mask`` equal the given mask.

    A module not yet pruned gets ``torch.nn.utils.prune.custom_from_mask``; an already pruned one
    has its mask buffer overwritten in place, so masks never stack and ``weight_orig`` stays the
    same Parameter (an optimizer built before keeps working). Modules not named keep their state.
    """
    modules = dict(prunable_modules(model))
    for name, mask in masks.items():
        module = modules.get(name)
        if module is None:
            raise ValueError(f"{name!r} is not a prunable module; valid: {', '.join(modules)}")
        weight = _weight_parameter(module)
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, weight has {tuple(weight.shape)}")
        mask = mask.detach().to(device=weight.device, dtype=weight.dtype)
        if _is_pruned(module):
            with torch.no_grad():
                _tensor(module, "weight_mask").copy_(mask)
            _refresh_weight(module)
        else:
            prune.custom_from_mask(module, "weight", mask)


def load_pruned_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a state dict saved from a (possibly) pruned model into a model of the same architecture.

    A module whose ``weight_mask`` is in ``state_dict`` is pruned with that mask first (so its
    ``weight_orig``/``weight_mask`` keys exist); a pruned module whose state is a plain ``weight``
    (dense, or exported by :func:`make_permanent`) has its pruning removed. Then a strict
    ``load_state_dict``. Returns the model.
    """
    for name, module in prunable_modules(model):
        prefix = f"{name}." if name else ""
        if f"{prefix}weight_mask" in state_dict:
            apply_masks(model, {name: state_dict[f"{prefix}weight_mask"]})
        elif _is_pruned(module):
            prune.remove(module, "weight")
    model.load_state_dict(state_dict)
    for _, module in prunable_modules(model):
        if _is_pruned(module):
            _refresh_weight(module)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every mask into its weight (``torch.nn.utils.prune.remove``): plain weights with zeros."""
    for module in model.modules():
        if _is_pruned(module):
            prune.remove(module, "weight")
    return model


def _kept_mask(module: nn.Module) -> torch.Tensor:
    # Without a mask (e.g. after make_permanent) the zeros of the weight are what was pruned.
    if _is_pruned(module):
        return _tensor(module, "weight_mask").detach().bool()
    return _tensor(module, "weight").detach() != 0


def sparsity_report(model: nn.Module, cr: float | None = None) -> pd.DataFrame:
    """Measured sparsity: one row per prunable layer, then a ``total`` row.

    Columns: ``layer``, ``kind`` (conv/dense/total), ``shape`` (tuple of ints; None for total),
    ``n_weights``, ``n_kept``, ``kept_fraction``, ``sparsity``, ``n_out`` / ``n_out_kept``
    (output channels or neurons with any weight kept), ``layer_removed`` (nothing kept; on the
    total row: any layer removed), ``n_params`` / ``n_params_kept`` (all parameters: weight and
    bias of the layer; on the total row every parameter of the model, BatchNorm and shortcuts
    included), ``target_kept`` (total row only, when ``cr`` is given).

    Kept means "in the mask" for a pruned module and "non-zero" for one without a mask (as after
    :func:`make_permanent`).
    """
    rows = []
    prunable_params = 0
    for name, module in prunable_modules(model):
        kept = _kept_mask(module)
        n_kept = int(kept.sum())
        bias = getattr(module, "bias", None)
        n_bias = bias.numel() if isinstance(bias, torch.Tensor) else 0
        prunable_params += kept.numel() + n_bias
        rows.append(
            {
                "layer": name,
                "kind": "conv" if kept.dim() > 2 else "dense",
                "shape": tuple(kept.shape),
                "n_weights": kept.numel(),
                "n_kept": n_kept,
                "n_out": kept.shape[0],
                "n_out_kept": int(kept.reshape(kept.shape[0], -1).any(dim=1).sum()),
                "layer_removed": n_kept == 0,
                "n_params": kept.numel() + n_bias,
                "n_params_kept": n_kept + n_bias,
            }
        )
    layers = pd.DataFrame(rows)
    n_weights = int(layers["n_weights"].sum()) if rows else 0
    n_kept = int(layers["n_kept"].sum()) if rows else 0
    all_params = sum(p.numel() for p in model.parameters())
    total = {
        "layer": "total",
        "kind": "total",
        "shape": None,
        "n_weights": n_weights,
        "n_kept": n_kept,
        "n_out": int(layers["n_out"].sum()) if rows else 0,
        "n_out_kept": int(layers["n_out_kept"].sum()) if rows else 0,
        "layer_removed": bool(layers["layer_removed"].any()) if rows else False,
        "n_params": all_params,
        "n_params_kept": all_params - n_weights + n_kept,
    }
    report = pd.concat([layers, pd.DataFrame([total])], ignore_index=True)
    report["kept_fraction"] = report["n_kept"] / report["n_weights"]
    report["sparsity"] = 1.0 - report["kept_fraction"]
    report["target_kept"] = pd.array([None] * len(report), dtype="Int64")
    if cr is not None:
        report.loc[report.index[-1], "target_kept"] = target_kept(model, cr)
    report["layer_removed"] = report["layer_removed"].astype(bool)
    columns = [
        "layer", "kind", "shape", "n_weights", "n_kept", "kept_fraction", "sparsity", "n_out",
        "n_out_kept", "layer_removed", "n_params", "n_params_kept", "target_kept",
    ]  # fmt: skip
    return report[columns]


def sparse_bytes(model: nn.Module) -> dict[str, int]:
    """Storage of the model's parameters, dense versus two sparse encodings of the prunable weights.

    ``dense``: every parameter at its dtype's size. ``coo``: kept prunable weights as values plus
    one int32 flat index each. ``bitmask``: kept values plus one bit per prunable weight (padded
    to whole bytes per layer). Non-prunable parameters (biases, BatchNorm, shortcuts) count dense
    in all three; ``other`` is their share.
    """
    prunable_dense = coo = bitmask = 0
    prunable_ids = set()
    for _, module in prunable_modules(model):
        kept = _kept_mask(module)
        weight = _weight_parameter(module)
        prunable_ids.add(id(weight))
        itemsize = weight.element_size()
        n_kept = int(kept.sum())
        prunable_dense += kept.numel() * itemsize
        coo += n_kept * (itemsize + 4)
        bitmask += n_kept * itemsize + math.ceil(kept.numel() / 8)
    other = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in prunable_ids)
    return {
        "dense": prunable_dense + other,
        "coo": coo + other,
        "bitmask": bitmask + other,
        "prunable_dense": prunable_dense,
        "prunable_coo": coo,
        "prunable_bitmask": bitmask,
        "other": other,
    }
