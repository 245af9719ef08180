"""The study's architectures (five, and the original's CNN exactly as its code defined it) and an explicit registry ``name -> constructor``.

The architectures follow the original study, Merkle et al. 2021, "Pruning in the Face of
Adversaries" (arXiv:2108.08560): an MLP, a LeNet-5-like CNN, a pre-activation ResNet-8, a
VGG-11 variant and a pre-activation ResNet-18.

Conventions every model here keeps:

* Inputs are in [0, 1]. Each model owns its normalization: a :class:`Normalize` module at its
  front holds ``mean`` and ``std`` as buffers, so they travel with ``state_dict()`` and attacks
  never have to know about them.
* Prunable weights are the weights of every ``nn.Conv2d`` and ``nn.Linear``, output layer
  included; biases, BatchNorm parameters and 1x1 projection shortcuts are not. A module that is
  excluded carries the attribute ``prunable = False``; :func:`prunable_modules` honours it.
* Only memory-format-agnostic ops are used (``torch.flatten``, never ``.view``), so every model
  runs unchanged in ``torch.channels_last``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from prunerob import catalog

__all__ = [
    "ARCHITECTURES",
    "CNN",
    "CNNOriginal",
    "MLP",
    "Normalize",
    "PreActBlock",
    "ResNet18",
    "ResNet8",
    "SoftmaxOutput",
    "VGG11",
    "build_model",
    "count_prunable",
    "prunable_modules",
]

InputShape = tuple[int, int, int]


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` with ``mean`` and ``std`` stored as buffers.

    Buffers have shape ``(1, C, 1, 1)``. ``None`` means identity (mean 0, std 1).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        channels: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        mean_t = _channel_vector("mean", mean, channels, default=0.0)
        std_t = _channel_vector("std", std, channels, default=1.0)
        if not bool(torch.all(std_t > 0)):
            raise ValueError(f"std must be positive in every channel, got {std_t.flatten().tolist()}")
        self.register_buffer("mean", mean_t.reshape(1, channels, 1, 1))
        self.register_buffer("std", std_t.reshape(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def _channel_vector(name: str, values: Sequence[float] | None, channels: int, default: float) -> torch.Tensor:
    if values is None:
        return torch.full((channels,), default, dtype=torch.float32)
    tensor = torch.as_tensor(values, dtype=torch.float32).flatten()
    if tensor.numel() != channels:
        raise ValueError(f"{name} needs one value per input channel ({channels}), got {tensor.numel()}")
    if not bool(torch.all(torch.isfinite(tensor))):
        raise ValueError(f"{name} must be finite, got {tensor.tolist()}")
    return tensor


class MLP(nn.Module):
    """Fully connected 784-300-100-10 network with ReLU (Merkle et al. 2021, arXiv:2108.08560).

    The input width is ``C * H * W`` of ``input_shape`` (784 for MNIST).
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int = 10,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.normalize = Normalize(channels, mean, std)
        self.fc1 = nn.Linear(channels * height * width, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.normalize(x), 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class CNN(nn.Module):
    """LeNet-5-like CNN (Merkle et al. 2021, arXiv:2108.08560).

    conv 5x5 C->6 (padding 2), ReLU, maxpool 2; conv 5x5 6->16, ReLU, maxpool 2; dense
    400-120-84-10 with ReLU. The first dense layer's width follows the input shape (400 on
    28x28 inputs).
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int = 10,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        channels = input_shape[0]
        self.normalize = Normalize(channels, mean, std)
        self.features, self.classifier = _lenet(input_shape, num_classes, hidden=nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))
        return self.classifier(torch.flatten(x, 1))


class CNNOriginal(nn.Module):
    """The original study's CNN layer for layer, as its TensorFlow code of 2020-12 defined it
    (``Pipelines/helperfiles/models.py`` and ``layers.py``; ../shared/reference/merkle2021/README.md),
    defects included, so the book can measure what they change:

    conv 5x5 C->6, padding SAME, ReLU; maxpool 2x2 stride 2, padding SAME; conv 5x5 6->16, padding
    VALID, ReLU; maxpool 2x2, VALID; flatten in TensorFlow's (height, width, channel) order; dense
    400->120 and 120->84 with **tanh** (the layer asked for ReLU but returned ``tf.nn.tanh``);
    dense 84->10. Glorot-uniform weights, zero biases, no input normalization (the original fed
    [0, 1] pixels as they are).

    The original's model ended in a softmax and its attacks received those probabilities as if
    they were logits. This module returns logits like every model here (training on them is the
    same cross-entropy); :class:`SoftmaxOutput` wraps a model to attack it the original's way.
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int = 10,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        channels = input_shape[0]
        self.normalize = Normalize(channels)  # identity: the original did not normalize
        # SAME padding for the first conv and its pool (a window may run off the edge), VALID after
        self.features, self.classifier = _lenet(input_shape, num_classes, hidden=nn.Tanh, first_pool_ceil=True)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)  # Keras' glorot_uniform
                if module.bias is not None:  # every layer of this model has one
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))
        x = torch.flatten(x.permute(0, 2, 3, 1), 1)  # TensorFlow's flatten order: H, W, C
        return self.classifier(x)


class SoftmaxOutput(nn.Module):
    """A model whose output is its softmax: how the original handed its models to the attacks
    (Foolbox treated the probabilities as logits, which flattens every margin and gradient).
    Same predictions as the wrapped model; for attacking only, never for training."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def _lenet(
    input_shape: InputShape, num_classes: int, *, hidden: type[nn.Module], first_pool_ceil: bool = False
) -> tuple[nn.Sequential, nn.Sequential]:
    """The LeNet-5-like layers both CNNs share: conv 5x5 C->6 (padding 2, i.e. SAME), ReLU, maxpool
    2; conv 5x5 6->16, ReLU, maxpool 2; dense 400-120-84-classes with ``hidden`` activations."""
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 6, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=first_pool_ceil),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    flat = _flat_features(features, input_shape)
    classifier = nn.Sequential(nn.Linear(flat, 120), hidden(), nn.Linear(120, 84), hidden(), nn.Linear(84, num_classes))
    return features, classifier


def _flat_features(features: nn.Module, input_shape: InputShape) -> int:
    # A dummy forward rather than LazyLinear: the parameter count (and so every pruning mask)
    # must be known, and fixed, as soon as the model exists.
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *input_shape))
    except RuntimeError as error:
        raise ValueError(f"input shape {tuple(input_shape)} is too small for this architecture") from error
    if out.numel() == 0:
        raise ValueError(f"input shape {tuple(input_shape)} is too small for this architecture")
    return int(out[0].numel())


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016): BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3.

    When the stride or the channel count changes, the shortcut is a 1x1 convolution, which is
    marked ``prunable = False`` as in the original study.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            # setattr: Module.__setattr__ is typed for tensors and modules only
            setattr(self.shortcut, "prunable", False)  # noqa: B010

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        # The projection sees the pre-activated input, as in He et al.'s pre-activation design,
        # so both paths start from the same normalized signal.
        identity = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


class ResNet8(nn.Module):
    """Pre-activation ResNet-8 (Merkle et al. 2021, arXiv:2108.08560).

    conv 3x3 stride 2 (C->32) + ReLU; three pre-activation blocks with stride 2 to 64, 128 and
    256 channels (1x1 stride-2 shortcuts, not prunable); BN-ReLU; global average pool; dense
    256-10. 1,164,640 prunable weights on 3x32x32 inputs.
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int = 10,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        channels = input_shape[0]
        self.normalize = Normalize(channels, mean, std)
        self.conv1 = nn.Conv2d(channels, 32, 3, stride=2, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.layer1 = PreActBlock(32, 64, stride=2)
        self.layer2 = PreActBlock(64, 128, stride=2)
        self.layer3 = PreActBlock(128, 256, stride=2)
        # Pre-activation blocks end on a bare convolution; this BN-ReLU gives the head a
        # normalized, rectified input.
        self.bn = nn.BatchNorm2d(256)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(self.normalize(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.pool(self.relu(self.bn(x)))
        return self.fc(torch.flatten(x, 1))


class VGG11(nn.Module):
    """VGG-11 variant (Merkle et al. 2021, arXiv:2108.08560).

    Eight 3x3 convolutions without bias (64, 128, 256, 256, 512, 512, 512, 512), each followed by
    ReLU then BatchNorm; maxpool 2 after convolutions 2, 4, 6 and 8; dense 2048-1024-10 with ReLU.
    11,325,120 prunable weights for 3-channel inputs.

    Deviation for other input sizes: the original's 2048 is 512x2x2 on 32x32 inputs. An
    ``AdaptiveAvgPool2d((2, 2))`` before flattening keeps the dense layers 2048-1024-10 for
    every input size (it is the identity on 32x32 inputs, so CIFAR-10 is unchanged; on 28x28
    it upsamples the 1x1 map, on 224x224 it averages the 14x14 map).
    """

    CHANNELS = (64, 128, 256, 256, 512, 512, 512, 512)
    POOL_AFTER = frozenset({2, 4, 6, 8})

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int = 10,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        channels = input_shape[0]
        self.normalize = Normalize(channels, mean, std)
        layers: list[nn.Module] = []
        in_channels = channels
        for index, out_channels in enumerate(self.CHANNELS, start=1):
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.ReLU(),
                nn.BatchNorm2d(out_channels),
            ]
            if index in self.POOL_AFTER:
                layers.append(nn.MaxPool2d(2))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 2 * 2, 1024),
            nn.ReLU(),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(self.normalize(x)))
        return self.classifier(torch.flatten(x, 1))


class ResNet18(nn.Module):
    """Pre-activation ResNet-18 (Merkle et al. 2021, arXiv:2108.08560; He et al. 2016).

    Stem: conv 7x7 stride 2 (C->64), BN, ReLU, maxpool 3x3 stride 2. Eight pre-activation blocks
    64, 64, 128 (stride 2), 128, 256 (stride 2), 256, 512 (stride 2), 512, with non-prunable 1x1
    shortcuts where stride or channels change; BN-ReLU; global average pool; dense 512-10.
    """

    STAGES = ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1))

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int = 10,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        channels = input_shape[0]
        self.normalize = Normalize(channels, mean, std)
        self.conv1 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        blocks: list[nn.Module] = []
        in_channels = 64
        for out_channels, stride in self.STAGES:
            blocks.append(PreActBlock(in_channels, out_channels, stride))
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(512)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        x = self.pool(self.relu(self.bn(self.blocks(x))))
        return self.fc(torch.flatten(x, 1))


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "cnn": CNN,
    "cnn_original": CNNOriginal,
    "resnet8": ResNet8,
    "vgg11": VGG11,
    "resnet18": ResNet18,
}


def build_model(
    arch: str,
    input_shape: tuple[int, int, int],
    num_classes: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Build architecture ``arch`` for inputs of shape ``(C, H, W)`` in [0, 1].

    ``mean`` and ``std`` (one value per channel) go into the model's :class:`Normalize` buffers;
    ``None`` means identity. Raises ``ValueError`` for an unknown ``arch``, listing valid names.
    """
    constructor = ARCHITECTURES.get(arch) if isinstance(arch, str) else None
    if constructor is None:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(sorted(ARCHITECTURES))}")
    try:
        shape = tuple(operator.index(d) for d in input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be three positive ints (C, H, W), got {input_shape!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return constructor(shape, num_classes=num_classes, mean=mean, std=std)


def prunable_modules(model: nn.Module) -> list[tuple[str, nn.Conv2d | nn.Linear]]:
    """``(qualified name, module)`` for every prunable Conv2d and Linear, in definition order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear)) and getattr(module, "prunable", True)
    ]


def count_prunable(model: nn.Module) -> int:
    """Number of prunable weights (zeros included): the ``weight`` of each prunable module."""
    # ``module.weight`` exists both before and after torch.nn.utils.prune reparametrizes it.
    return sum(module.weight.numel() for _, module in prunable_modules(model))


def prunable_weights_table(marks: dict[str, set[tuple[str, str]]]) -> pd.DataFrame:
    """Every architecture (rows) with the first line of its docstring and its prunable weights on
    every data set of the catalog (columns; 'input too small' where it cannot take the input), each
    count followed by the ``marks`` whose (dataset, arch) pairs hold it, e.g. '(original, results)'."""
    rows = []
    for arch, constructor in ARCHITECTURES.items():
        row = {"architecture": arch, "description": (constructor.__doc__ or "").strip().splitlines()[0]}
        for name, d in catalog.DATASETS.items():
            try:
                model = build_model(arch, d.input_shape, d.num_classes, d.mean, d.std)
            except ValueError:
                row[name] = "input too small"
                continue
            marked = [mark for mark, pairs in marks.items() if (name, arch) in pairs]
            row[name] = f"{count_prunable(model):,}" + (f" ({', '.join(marked)})" if marked else "")
        rows.append(row)
    table = pd.DataFrame(rows).set_index("architecture")
    table.columns = pd.MultiIndex.from_tuples(
        [("", "description")] + [("prunable weights per data set", c) for c in table.columns[1:]]
    )
    return table
