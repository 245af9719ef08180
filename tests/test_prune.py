"""Behaviour of prunerob.prune that the study relies on: exact sparsity, nested masks, zeros that
stay zero, masks that survive a save and an export."""

from __future__ import annotations

import io
import itertools
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunerob.models import build_model, count_prunable, prunable_modules
from prunerob.prune import (
    CRITERIA,
    SCOPES,
    STRUCTURES,
    PruningTargetWarning,
    apply_masks,
    compute_masks,
    count_units,
    current_masks,
    load_pruned_state,
    make_permanent,
    sparse_bytes,
    sparsity_report,
    target_kept,
)

SCHEDULE = (1, 2, 4, 8, 16, 32, 64)
SHAPES = {"cnn": (1, 28, 28), "resnet8": (3, 32, 32), "vgg11": (3, 32, 32), "mlp": (1, 28, 28)}
COMBOS = list(itertools.product(STRUCTURES, SCOPES, CRITERIA))


def _model(arch: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(arch, SHAPES[arch]).eval()


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d)


def _units(mask: torch.Tensor, structure: str, conv: bool) -> torch.Tensor:
    """Rows = units, written independently of prune.py."""
    if structure == "unstructured":
        return mask.reshape(-1, 1)
    if structure == "kernel" and conv:
        return mask.flatten(0, 1).flatten(1)
    return mask.flatten(1)


def _eligible(module: nn.Module, structure: str, dense_neurons: bool, is_output: bool = False) -> bool:
    return structure == "unstructured" or _is_conv(module) or (dense_neurons and not is_output)


def _kept(masks: dict[str, torch.Tensor]) -> int:
    return sum(int(m.sum()) for m in masks.values())


def _prune(model: nn.Module, cr: float, **method) -> tuple[dict[str, torch.Tensor], list]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        masks = compute_masks(model, cr=cr, **method)
    apply_masks(model, masks)
    return masks, [w for w in caught if issubclass(w.category, PruningTargetWarning)]


# ------------------------------------------------------------------------------------------
# Exact sparsity over a cumulative schedule, every method, on the real architectures.

# Dense-neuron pruning matters on the CNN (96 % dense weights); ResNet8's one dense layer is
# 0.2 % of its weights, so there it runs once per structure and scope.
# ResNet8's cases take seconds each (sorting 1.2 M weights per CR): the slow tier runs them.
SCHEDULE_CASES = [
    pytest.param(
        arch, structure, scope, criterion, dense_neurons, marks=[pytest.mark.slow] if arch == "resnet8" else []
    )
    for arch in ("cnn", "resnet8")
    for structure, scope, criterion in COMBOS
    for dense_neurons in (False, True)
    if not (dense_neurons and (structure == "unstructured" or (arch == "resnet8" and criterion == "random")))
]


@pytest.mark.parametrize(("arch", "structure", "scope", "criterion", "dense_neurons"), SCHEDULE_CASES)
def test_cumulative_schedule_keeps_the_documented_count(arch, structure, scope, criterion, dense_neurons):
    """CR 1..64 applied cumulatively: nested masks, whole slices, and the kept count the docstring
    promises (exact for unstructured -- so local random unstructured on ResNet8 reaches 1/64, unlike
    the original's ~21 %; within half a unit for global structured; within one unit per layer for
    local; for global structured, CR counts the eligible units, as the original's code did)."""
    model = _model(arch)
    modules = dict(prunable_modules(model))
    total = count_prunable(model)
    output = list(modules)[-1]
    eligible = {n for n, m in modules.items() if _eligible(m, structure, dense_neurons, n == output)}
    ineligible_total = sum(modules[n].weight.numel() for n in modules if n not in eligible)
    generator = torch.Generator().manual_seed(1)
    previous = current_masks(model)
    for cr in SCHEDULE:
        masks, caught = _prune(
            model, cr, structure=structure, scope=scope, criterion=criterion,
            generator=generator, prune_dense_neurons=dense_neurons,
        )  # fmt: skip
        now = current_masks(model)
        assert set(now) == set(modules)
        for name in modules:
            assert torch.equal(now[name], masks[name].bool())
            assert not bool((now[name] & ~previous[name]).any()), f"{name} regrew weights at CR {cr}"
            units = _units(now[name], structure, _is_conv(modules[name]))
            assert bool((units.all(dim=1) | ~units.any(dim=1)).all()), f"{name}: partial unit"
            if name not in eligible:
                assert bool(now[name].all()), f"{name} is not eligible but was pruned"
        kept = _kept(now)
        target = round(total / cr)
        assert target_kept(model, cr) == target
        if structure == "unstructured":
            assert kept == target
            assert not caught
        elif scope == "global":
            # The original's definition: CR counts the eligible units, round((1 - 1/CR) * U) pruned.
            n_units, n_units_kept = count_units(model, structure, dense_neurons)
            assert n_units_kept == n_units - round((1 - 1 / cr) * n_units), (n_units, n_units_kept, cr)
            assert kept >= ineligible_total
            assert not caught
        if scope == "local":
            for name in eligible:
                units = _units(now[name], structure, _is_conv(modules[name]))
                assert abs(int(units.any(dim=1).sum()) - units.shape[0] / cr) < 1, (name, cr)
            assert not caught
        report = sparsity_report(model, cr)
        assert int(report["n_kept"].iloc[-1]) == kept
        assert report["kept_fraction"].iloc[-1] == pytest.approx(kept / total)
        assert int(report["target_kept"].iloc[-1]) == target
        previous = now


def test_structured_local_without_dense_neurons_reports_the_true_fraction():
    # The CNN is 96 % dense weights: conv-only structured pruning cannot reach 1/CR overall.
    model = _model("cnn")
    for cr in SCHEDULE:
        _prune(model, cr, structure="filter", scope="local", criterion="magnitude")
    report = sparsity_report(model).set_index("layer")
    assert report.loc["total", "kept_fraction"] > 0.9
    assert bool(report.loc["features.0", "layer_removed"])  # 6 filters / 64 rounds to none
    assert bool(report.loc["total", "layer_removed"])


def test_unstructured_ignores_dense_neuron_flag():
    model = _model("cnn")
    plain = compute_masks(model, structure="unstructured", scope="global", criterion="magnitude", cr=8)
    flagged = compute_masks(
        model, structure="unstructured", scope="global", criterion="magnitude", cr=8, prune_dense_neurons=True
    )
    assert all(torch.equal(plain[n], flagged[n]) for n in plain)


@pytest.mark.parametrize("structure", ["kernel", "filter"])
def test_dense_layers_pruned_by_row_only_when_asked(structure):
    model = _model("cnn")
    for dense_neurons in (False, True):
        masks = compute_masks(
            model, structure=structure, scope="local", criterion="magnitude", cr=4, prune_dense_neurons=dense_neurons
        )
        output = prunable_modules(model)[-1][0]
        for name, module in prunable_modules(model):
            if isinstance(module, nn.Linear):
                rows = masks[name]
                if dense_neurons and name != output:  # the output layer's rows are classes: never pruned
                    assert bool((rows.all(dim=1) | ~rows.any(dim=1)).all())
                    assert abs(int(rows.any(dim=1).sum()) - rows.shape[0] / 4) < 1
                else:
                    assert bool(rows.all())


def test_shortcuts_are_never_pruned():
    model = _model("resnet8")
    masks, _ = _prune(model, 4, structure="filter", scope="global", criterion="magnitude")
    assert set(masks) == {name for name, _ in prunable_modules(model)}
    shortcuts = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert shortcuts
    assert all(not hasattr(m, "weight_mask") for m in shortcuts)


# ------------------------------------------------------------------------------------------
# Scores, ties, randomness.


def test_global_magnitude_threshold_is_one_cut_across_layers():
    model = _model("cnn")
    masks, _ = _prune(model, 16, structure="unstructured", scope="global", criterion="magnitude")
    kept = torch.cat([m.weight.detach()[masks[n]].abs() for n, m in prunable_modules(model)])
    pruned = torch.cat([m.weight_orig.detach()[~masks[n]].abs() for n, m in prunable_modules(model)])
    assert float(kept.min()) >= float(pruned.max())


def test_global_structured_score_is_mean_magnitude_local_is_l1():
    # Two conv layers of different kernel sizes: layer a has big kernels (5x5) with small mean,
    # layer b small kernels (1x1 would be a shortcut: use 3x3) with a larger mean.
    model = nn.Sequential(nn.Conv2d(1, 4, 5, bias=False), nn.Conv2d(4, 4, 3, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(0.1)  # L1 per kernel 2.5, mean 0.1
        model[1].weight.fill_(0.2)  # L1 per kernel 1.8, mean 0.2
        model[1].weight[0, 0] = 0.15  # one weaker kernel in b
    # 4 kernels in a, 16 in b: CR 20/16 keeps 16 kernels (global structured CR counts units)
    masks = compute_masks(model, structure="kernel", scope="global", criterion="magnitude", cr=20 / 16)
    # Mean |w| ranks all of b above a, so b is kept whole and a goes.
    assert bool(masks["1"].all()) and not bool(masks["0"].any())
    local = compute_masks(model, structure="kernel", scope="local", criterion="magnitude", cr=16)
    kernels_b = local["1"].flatten(0, 1).flatten(1).any(dim=1)
    assert int(kernels_b.sum()) == 1 and not bool(kernels_b[0])  # the weaker kernel (L1) goes first


@pytest.mark.parametrize(("structure", "scope"), list(itertools.product(STRUCTURES, SCOPES)))
def test_ties_break_deterministically_with_exact_counts(structure, scope):
    model = _model("cnn")
    for _, module in prunable_modules(model):
        nn.init.zeros_(module.weight)
    method = dict(structure=structure, scope=scope, criterion="magnitude", prune_dense_neurons=True)
    first = compute_masks(model, cr=8, **method)
    second = compute_masks(model, cr=8, **method)
    assert all(torch.equal(first[n], second[n]) for n in first)
    if structure == "unstructured":
        assert _kept(first) == round(count_prunable(model) / 8)
        # Equal scores: the earliest positions win.
        flat = torch.cat([first[n].flatten() for n, _ in prunable_modules(model)]) if scope == "global" else None
        if flat is not None:
            assert bool(flat[: round(count_prunable(model) / 8)].all())


@pytest.mark.parametrize(("structure", "scope"), list(itertools.product(STRUCTURES, SCOPES)))
def test_random_masks_reproduce_with_a_seed_and_differ_across_seeds(structure, scope):
    model = _model("cnn")

    def masks(seed: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return compute_masks(
            model, structure=structure, scope=scope, criterion="random", cr=4,
            generator=generator, prune_dense_neurons=True,
        )  # fmt: skip

    a, b, c = masks(0), masks(0), masks(1)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_random_restricted_to_kept_units_and_cumulative():
    model = _model("cnn")
    generator = torch.Generator().manual_seed(3)
    first, _ = _prune(model, 2, structure="unstructured", scope="local", criterion="random", generator=generator)
    second, _ = _prune(model, 4, structure="unstructured", scope="local", criterion="random", generator=generator)
    assert all(not bool((second[n] & ~first[n]).any()) for n in first)
    assert _kept(second) == round(count_prunable(model) / 4)


# ------------------------------------------------------------------------------------------
# Masks in use: training, saving, exporting.


def _train(model: nn.Module, steps: int, shape: tuple[int, int, int], seed: int = 0) -> None:
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-2)
    model.train()
    for _ in range(steps):
        x, y = torch.rand(8, *shape), torch.randint(0, 10, (8,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()


@pytest.mark.parametrize(("arch", "structure"), [("cnn", "unstructured"), ("resnet8", "kernel"), ("cnn", "filter")])
def test_pruned_weights_stay_zero_under_adam_with_weight_decay(arch, structure):
    model = _model(arch)
    for cr in (2, 4, 8):
        _prune(model, cr, structure=structure, scope="global", criterion="magnitude", prune_dense_neurons=True)
    masks = current_masks(model)
    before = {n: m.weight_orig.detach().clone() for n, m in prunable_modules(model)}
    _train(model, 5, SHAPES[arch])
    with torch.no_grad():
        model(torch.rand(1, *SHAPES[arch]))  # the prune hook refreshes module.weight
    for name, module in prunable_modules(model):
        assert torch.equal(current_masks(model)[name], masks[name])
        assert bool((module.weight[~masks[name]] == 0).all()), name
        if masks[name].any():
            assert not torch.equal(module.weight_orig[masks[name]], before[name][masks[name]]), "no training?"


def test_masks_come_from_current_weights_even_before_a_forward():
    # After an optimizer step module.weight is stale until the next forward pass.
    model = _model("cnn")
    _prune(model, 2, structure="unstructured", scope="global", criterion="magnitude")
    _train(model, 3, SHAPES["cnn"])
    stale = compute_masks(model, structure="unstructured", scope="global", criterion="magnitude", cr=4)
    with torch.no_grad():
        model(torch.rand(1, *SHAPES["cnn"]))
    fresh = compute_masks(model, structure="unstructured", scope="global", criterion="magnitude", cr=4)
    assert all(torch.equal(stale[n], fresh[n]) for n in stale)


def test_apply_masks_replaces_rather_than_stacks():
    model = _model("cnn")
    name, module = prunable_modules(model)[1]
    weight = module.weight
    first = torch.rand(module.weight.shape) > 0.5
    second = torch.rand(module.weight.shape) > 0.5  # not a subset of the first
    apply_masks(model, {name: first})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert module.weight_orig is weight
    apply_masks(model, {name: second})
    assert torch.equal(module.weight_mask, second.float())
    assert torch.equal(module.weight, module.weight_orig * second)
    hooks = [h for h in module._forward_pre_hooks.values() if isinstance(h, torch_prune.BasePruningMethod)]
    assert len(hooks) == 1 and not isinstance(hooks[0], torch_prune.PruningContainer)
    assert module.weight_orig is weight  # the optimizer still holds the live parameter
    assert any(p is weight for group in optimizer.param_groups for p in group["params"])


def test_apply_masks_rejects_unknown_modules_and_wrong_shapes():
    model = _model("cnn")
    with pytest.raises(ValueError, match="not a prunable module.*features.0"):
        apply_masks(model, {"nope": torch.ones(1)})
    with pytest.raises(ValueError, match="shape"):
        apply_masks(model, {"features.0": torch.ones(2, 2)})


@pytest.mark.parametrize(("arch", "structure"), [("cnn", "unstructured"), ("resnet8", "kernel")])
def test_state_dict_round_trip_gives_identical_logits(arch, structure):
    model = _model(arch)
    for cr in (2, 4):
        _prune(model, cr, structure=structure, scope="local", criterion="magnitude")
    _train(model, 2, SHAPES[arch])
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = load_pruned_state(_model(arch, seed=5), torch.load(buffer))
    x = torch.rand(4, *SHAPES[arch])
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))
    assert all(torch.equal(a, b) for a, b in zip(current_masks(model).values(), current_masks(fresh).values()))
    # Pruning goes on from the restored masks.
    masks, _ = _prune(fresh, 8, structure=structure, scope="local", criterion="magnitude")
    assert all(not bool((masks[n] & ~current_masks(model)[n]).any()) for n in masks)


def test_load_pruned_state_accepts_a_permanent_export_into_a_pruned_model():
    model = _model("cnn")
    _prune(model, 4, structure="unstructured", scope="global", criterion="magnitude")
    exported = make_permanent(_model("cnn"))
    target = _model("cnn", seed=2)
    _prune(target, 2, structure="unstructured", scope="global", criterion="random")
    load_pruned_state(target, exported.state_dict())
    assert not any(hasattr(m, "weight_mask") for m in target.modules())
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(target(x), exported(x))


def test_make_permanent_keeps_logits_and_leaves_plain_weights_with_zeros():
    model = _model("resnet8")
    for cr in (2, 4, 8):
        _prune(model, cr, structure="unstructured", scope="global", criterion="magnitude")
    masks = current_masks(model)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        exported = make_permanent(model)
        after = exported(x)
    assert torch.equal(before, after)
    assert not any(k.endswith(("weight_orig", "weight_mask")) for k in exported.state_dict())
    for name, module in prunable_modules(exported):
        assert isinstance(module.weight, nn.Parameter)
        assert bool((module.weight[~masks[name]] == 0).all())
    assert int(sparsity_report(exported)["n_kept"].iloc[-1]) == _kept(masks)


# ------------------------------------------------------------------------------------------
# Reports.


def test_sparsity_report_rows_columns_and_removed_layers():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.mul_(1e-3)  # global filter pruning takes this layer first
    masks, _ = _prune(model, 4, structure="filter", scope="global", criterion="magnitude")
    report = sparsity_report(model)
    assert list(report["layer"]) == ["0", "1", "4", "total"]
    assert list(report["kind"]) == ["conv", "conv", "dense", "total"]
    assert report.loc[0, "shape"] == (4, 1, 3, 3)
    assert list(report["layer_removed"]) == [False, True, False, True]
    assert list(report["n_weights"]) == [36, 144, 8, 188]
    assert int(report.loc[3, "n_kept"]) == _kept(masks)
    assert report.loc[1, "sparsity"] == 1.0
    all_params = sum(p.numel() for p in model.parameters())
    assert int(report.loc[3, "n_params"]) == all_params
    assert int(report.loc[3, "n_params_kept"]) == all_params - 188 + _kept(masks)
    assert report["target_kept"].isna().all()


def test_vgg11_global_filter_pruning_can_remove_whole_layers():
    # As in the original, where VGG-11 lost layers at CR 2 under global filter pruning. A fresh
    # VGG-11's deep layers are alike, so one is made weaker, as training can leave it.
    model = _model("vgg11")
    with torch.no_grad():
        model.features[24].weight.mul_(0.1)
    masks, caught = _prune(model, 2, structure="filter", scope="global", criterion="magnitude")
    report = sparsity_report(model, 2).set_index("layer")
    assert not caught
    assert bool(report.loc["features.24", "layer_removed"])
    assert bool(report.loc["total", "layer_removed"])
    n_units, n_units_kept = count_units(model, "filter")
    assert n_units_kept == n_units - round(0.5 * n_units)


def test_sparse_bytes():
    layer = nn.Linear(4, 4)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0] = True
    model = nn.Sequential(layer)
    apply_masks(model, {"0": mask})
    sizes = sparse_bytes(model)
    assert sizes["prunable_dense"] == 16 * 4
    assert sizes["prunable_coo"] == 4 * (4 + 4)
    assert sizes["prunable_bitmask"] == 4 * 4 + 2
    assert sizes["other"] == 4 * 4  # the bias
    assert sizes["dense"] == 64 + 16 and sizes["coo"] == 32 + 16 and sizes["bitmask"] == 18 + 16


# ------------------------------------------------------------------------------------------
# Names and values.


@pytest.mark.parametrize(
    ("field", "bad", "valid"),
    [("structure", "channel", STRUCTURES), ("scope", "layer", SCOPES), ("criterion", "snip", CRITERIA)],
)
def test_bad_names_raise_listing_valid_choices(field, bad, valid):
    method = {"structure": "unstructured", "scope": "global", "criterion": "magnitude", field: bad}
    with pytest.raises(ValueError) as error:
        compute_masks(_model("cnn"), cr=2, **method)
    message = str(error.value)
    assert repr(bad) in message and field in message
    assert all(name in message for name in valid)


@pytest.mark.parametrize("cr", [0.5, 0, -2, float("nan"), float("inf"), "2", True])
def test_bad_cr_raises(cr):
    with pytest.raises(ValueError, match="cr"):
        compute_masks(_model("cnn"), structure="unstructured", scope="global", criterion="magnitude", cr=cr)


def test_lowering_cr_cannot_unprune_and_warns():
    model = _model("cnn")
    _prune(model, 8, structure="unstructured", scope="global", criterion="magnitude")
    masks, caught = _prune(model, 2, structure="unstructured", scope="global", criterion="magnitude")
    assert _kept(masks) == round(count_prunable(model) / 8)
    assert caught


@pytest.mark.parametrize("scope", ["global", "local"])
def test_neuron_pruning_never_removes_a_class(scope):
    model = _model("cnn")
    output_name, output = prunable_modules(model)[-1]
    generator = torch.Generator().manual_seed(0)
    for cr in SCHEDULE:
        masks, _ = _prune(
            model,
            cr,
            structure="filter",
            scope=scope,
            criterion="random",
            generator=generator,
            prune_dense_neurons=True,
        )
    assert bool(masks[output_name].all())  # every logit row keeps all its weights
