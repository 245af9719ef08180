"""Behaviour of prunerob.models that the rest of the study relies on."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from prunerob.catalog import ARCHS
from prunerob.models import (
    build_model,
    count_prunable,
    prunable_modules,
)

SHAPES = ((1, 28, 28), (3, 32, 32), (3, 224, 224))
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _inputs(shape: tuple[int, int, int], batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, *shape)


def _is_shortcut(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_gives_finite_logits_for_every_input_shape(arch, shape) -> None:
    model = build_model(arch, shape).eval()
    with torch.no_grad():
        logits = model(_inputs(shape))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_num_classes_sets_the_output_layer(arch) -> None:
    model = build_model(arch, (3, 32, 32), num_classes=7).eval()
    with torch.no_grad():
        assert model(_inputs((3, 32, 32))).shape == (2, 7)
    _, output_layer = prunable_modules(model)[-1]
    assert isinstance(output_layer, nn.Linear) and output_layer.out_features == 7


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_the_input_in_train_mode(arch) -> None:
    # Attacks differentiate the loss with respect to the input.
    model = build_model(arch, (3, 32, 32)).train()
    x = _inputs((3, 32, 32)).requires_grad_()
    model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("arch", "shape", "expected"),
    [
        ("mlp", (1, 28, 28), 784 * 300 + 300 * 100 + 100 * 10),  # 266,200
        ("cnn", (1, 28, 28), 61_470),  # reported by Merkle et al. 2021
        ("cnn_original", (1, 28, 28), 61_470),
        ("resnet8", (3, 32, 32), 1_164_640),  # reported by Merkle et al. 2021
        ("vgg11", (3, 32, 32), 11_325_120),  # reported by Merkle et al. 2021
    ],
)
def test_prunable_counts_match_the_original_study(arch, shape, expected) -> None:
    assert count_prunable(build_model(arch, shape)) == expected


def test_resnet18_prunable_count_follows_its_layers() -> None:
    stem = 7 * 7 * 3 * 64
    widths = [64, 64, 64, 128, 128, 256, 256, 512, 512]
    blocks = sum(9 * cin * cout + 9 * cout * cout for cin, cout in zip(widths[:-1], widths[1:]))
    assert count_prunable(build_model("resnet18", (3, 32, 32))) == stem + blocks + 512 * 10


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_vgg11_dense_layers_are_2048_1024_10_for_every_input_size(shape) -> None:
    model = build_model("vgg11", shape)
    linears = [m for _, m in prunable_modules(model) if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 1024), (1024, 10)]


def test_cnn_flatten_size_follows_the_input_shape() -> None:
    first_dense = lambda shape: next(  # noqa: E731
        m for _, m in prunable_modules(build_model("cnn", shape)) if isinstance(m, nn.Linear)
    )
    assert first_dense((1, 28, 28)).in_features == 16 * 5 * 5
    assert first_dense((3, 32, 32)).in_features == 16 * 6 * 6


@pytest.mark.parametrize(("arch", "n_layers"), [("resnet8", 8), ("resnet18", 18)])
def test_resnet_shortcuts_are_excluded_and_depth_matches_the_name(arch, n_layers) -> None:
    model = build_model(arch, (3, 32, 32))
    shortcuts = [m for m in model.modules() if _is_shortcut(m)]
    assert len(shortcuts) == 3
    assert all(getattr(m, "prunable", True) is False for m in shortcuts)
    selected = prunable_modules(model)
    assert not any(_is_shortcut(m) for _, m in selected)
    assert len(selected) == n_layers


@pytest.mark.parametrize("arch", ARCHS)
def test_prunable_is_exactly_the_conv_and_linear_weights(arch) -> None:
    model = build_model(arch, (3, 32, 32))
    selected = prunable_modules(model)
    assert all(isinstance(m, (nn.Conv2d, nn.Linear)) for _, m in selected)
    # Independent count from parameter names: weights of rank > 1 are conv/linear kernels
    # (BatchNorm weights are rank 1, biases never end in ".weight").
    modules = dict(model.named_modules())
    expected = sum(
        p.numel()
        for name, p in model.named_parameters()
        if name.endswith(".weight") and p.dim() > 1 and not _is_shortcut(modules[name[: -len(".weight")]])
    )
    assert count_prunable(model) == expected
    assert count_prunable(model) < sum(p.numel() for p in model.parameters())


def test_prunable_modules_are_named_in_definition_order() -> None:
    names = [name for name, _ in prunable_modules(build_model("cnn", (1, 28, 28)))]
    assert names == ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]


def test_count_prunable_is_unchanged_by_torch_pruning() -> None:
    model = build_model("cnn", (1, 28, 28))
    for _, module in prunable_modules(model):
        prune.l1_unstructured(module, "weight", amount=0.5)
    assert count_prunable(model) == 61_470


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "cnn_original"])  # the replica does not normalize
def test_model_owns_its_normalization(arch) -> None:
    shape = (3, 32, 32)
    model = build_model(arch, shape, mean=CIFAR_MEAN, std=CIFAR_STD).eval()
    state = model.state_dict()
    assert state["normalize.mean"].shape == (1, 3, 1, 1)
    assert state["normalize.std"].shape == (1, 3, 1, 1)
    assert torch.allclose(state["normalize.mean"].flatten(), torch.tensor(CIFAR_MEAN))
    assert torch.allclose(state["normalize.std"].flatten(), torch.tensor(CIFAR_STD))

    x = _inputs(shape)
    mean = torch.tensor(CIFAR_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).reshape(1, 3, 1, 1)
    with torch.no_grad():
        normalized_inside = model(x)
        model.normalize.mean.zero_()
        model.normalize.std.fill_(1.0)
        normalized_outside = model((x - mean) / std)
    torch.testing.assert_close(normalized_inside, normalized_outside, rtol=1e-5, atol=1e-5)


def test_normalization_travels_with_the_state_dict() -> None:
    trained = build_model("cnn", (3, 32, 32), mean=CIFAR_MEAN, std=CIFAR_STD).eval()
    restored = build_model("cnn", (3, 32, 32)).eval()
    restored.load_state_dict(trained.state_dict())
    x = _inputs((3, 32, 32))
    with torch.no_grad():
        torch.testing.assert_close(restored(x), trained(x))


def test_default_normalization_is_identity() -> None:
    model = build_model("mlp", (1, 28, 28))
    x = _inputs((1, 28, 28))
    assert torch.equal(model.normalize(x), x)


@pytest.mark.parametrize(
    ("mean", "std"),
    [((0.5, 0.5), (0.2, 0.2, 0.2)), (CIFAR_MEAN, (0.2, 0.0, 0.2)), (CIFAR_MEAN, (0.2, -1.0, 0.2))],
)
def test_bad_normalization_is_rejected(mean, std) -> None:
    with pytest.raises(ValueError):
        build_model("cnn", (3, 32, 32), mean=mean, std=std)


def test_unknown_arch_lists_every_valid_name() -> None:
    with pytest.raises(ValueError) as error:
        build_model("x", (1, 28, 28))
    assert str(error.value) == "unknown architecture 'x'; valid: cnn, cnn_original, mlp, resnet18, resnet8, vgg11"


@pytest.mark.parametrize("shape", [(28, 28), (1, 0, 28), (1, 28, 28, 1)])
def test_malformed_input_shape_is_rejected(shape) -> None:
    with pytest.raises(ValueError):
        build_model("cnn", shape)


def test_input_too_small_for_cnn_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        build_model("cnn", (1, 6, 6))


@pytest.mark.parametrize("arch", ARCHS)
def test_channels_last_gives_the_same_output(arch) -> None:
    shape = (3, 32, 32)
    model = build_model(arch, shape, mean=CIFAR_MEAN, std=CIFAR_STD).eval()
    x = _inputs(shape)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        actual = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_the_original_cnn_is_layer_for_layer_the_authors_tensorflow_model() -> None:
    """SAME/VALID padding (28 -> 28 -> 14 -> 10 -> 5), TensorFlow's H, W, C flatten order, tanh
    hidden dense layers, Glorot-uniform weights and zero biases, no input normalization; the
    softmax wrapper (the original's attack wiring) keeps every prediction."""
    from prunerob.models import SoftmaxOutput

    model = build_model("cnn_original", (1, 28, 28), mean=[0.1307], std=[0.3081]).eval()
    assert [type(m).__name__ for m in model.classifier] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert model.features(torch.zeros(1, 1, 28, 28)).shape == (1, 16, 5, 5)
    assert float(model.normalize.mean.abs().sum()) == 0 and float((model.normalize.std - 1).abs().sum()) == 0
    for module in prunable_modules(model):
        weight, bias = module[1].weight, module[1].bias
        fan_in, fan_out = weight[0].numel(), weight.shape[0] * weight[0, 0].numel()
        assert float(weight.abs().max()) <= (6 / (fan_in + fan_out)) ** 0.5 + 1e-6
        assert float(bias.abs().sum()) == 0
    x = _inputs((1, 28, 28))
    with torch.no_grad():
        features = model.features(x)
        hwc = model.classifier(torch.flatten(features.permute(0, 2, 3, 1), 1))
        chw = model.classifier(torch.flatten(features, 1))
        torch.testing.assert_close(model(x), hwc)
        assert not torch.allclose(model(x), chw)
        logits = model(x)
        probs = SoftmaxOutput(model)(x)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(x)))
    assert torch.equal(probs.argmax(1), logits.argmax(1))


def test_prunable_weights_table_counts_every_architecture_on_every_data_set_and_marks_pairs():
    from prunerob import catalog, models

    table = models.prunable_weights_table(
        {"original": {("mnist", "cnn")}, "results": {("mnist", "cnn"), ("mnist", "mlp")}}
    )
    assert list(table.index) == list(catalog.ARCHS)
    cell = table.loc["cnn", ("prunable weights per data set", "mnist")]
    expected = models.count_prunable(models.build_model("cnn", (1, 28, 28)))
    assert cell == f"{expected:,} (original, results)"
    assert table.loc["mlp", ("prunable weights per data set", "mnist")].endswith("(results)")
    assert table.loc["cnn", ("", "description")]
