"""Data sets as in-memory uint8 tensors (N, C, H, W); models see floats in [0, 1].

Small data sets are held whole in memory, on the training device, and batched by index: no
DataLoader, no per-step Python overhead.  The validation split is the last ``val_fraction`` of the
training split, as Keras' ``validation_split`` gave the original; the evaluation subset for attacks
is the first N test images, as in the original.

The data root is ``$PRUNEROB_DATA`` or, when unset, ``~/.cache/prunerob/data``.  A data set that is
not there is downloaded through torchvision; if that fails the error names the data set and the
folder.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from prunerob import catalog
from prunerob.catalog import IMAGENETTE_SIZE
from prunerob.spec import DataSpec


class DataError(RuntimeError):
    """A data set is missing and could not be downloaded."""


@dataclass(frozen=True)
class DatasetInfo(catalog.Dataset):
    """A catalog data set with its loader."""

    load: Callable[[Path, bool, bool], tuple[torch.Tensor, torch.Tensor]]  # (root, train, download)


def data_root() -> Path:
    env = os.environ.get("PRUNEROB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "prunerob" / "data"


def _mnist_like(cls_name: str):
    def load(root: Path, train: bool, download: bool):
        import torchvision.datasets as tvd

        cls = {"MNIST": tvd.MNIST, "FashionMNIST": tvd.FashionMNIST}[cls_name]
        ds = cls(str(root), train=train, download=download)
        return ds.data.unsqueeze(1).contiguous(), ds.targets.clone().long()

    return load


def cifar_arrays_to_tensors(data: np.ndarray, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's CIFAR layout (N, H, W, C) uint8 -> (N, C, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).contiguous()
    return x, torch.as_tensor(np.asarray(targets), dtype=torch.long)


def _load_cifar10(root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd

    ds = tvd.CIFAR10(str(root), train=train, download=download)
    return cifar_arrays_to_tensors(ds.data, ds.targets)


def _load_imagenette(root: Path, train: bool, download: bool):
    """Imagenette (320px version), every image resized to 224x224, cached as one tensor file."""
    import torchvision.datasets as tvd
    from torchvision.transforms import functional as F

    split = "train" if train else "val"
    cache = root / f"imagenette-{split}-{IMAGENETTE_SIZE}.pt"
    if cache.exists():
        blob = torch.load(cache)
        return blob["x"], blob["y"]
    ds = tvd.Imagenette(str(root), split=split, size="320px", download=download)
    xs, ys = [], []
    for img, label in ds:
        img = F.resize(img.convert("RGB"), [IMAGENETTE_SIZE, IMAGENETTE_SIZE], antialias=True)
        xs.append(F.pil_to_tensor(img))
        ys.append(label)
    x, y = torch.stack(xs), torch.tensor(ys, dtype=torch.long)
    tmp = cache.with_suffix(".pt.tmp")
    torch.save({"x": x, "y": y}, tmp)
    os.replace(tmp, cache)
    return x, y


# The loader of every data set of the catalog (a test checks that they cover it exactly).
LOADERS: dict[str, Callable[[Path, bool, bool], tuple[torch.Tensor, torch.Tensor]]] = {
    "mnist": _mnist_like("MNIST"),
    "fashion_mnist": _mnist_like("FashionMNIST"),
    "cifar10": _load_cifar10,
    "imagenette": _load_imagenette,
}

DATASETS: dict[str, DatasetInfo] = {
    name: DatasetInfo(**{f.name: getattr(facts, f.name) for f in fields(facts)}, load=LOADERS[name])
    for name, facts in catalog.DATASETS.items()
}


def info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]


def load_split(name: str, train: bool, root: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of a data set as uint8 (N, C, H, W) images and int64 labels."""
    ds = info(name)
    root = Path(root) if root is not None else data_root()
    try:
        return _read_split(name, train, root)
    except (RuntimeError, FileNotFoundError):
        pass  # not there yet: try torchvision's download
    existed = _folders(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints each mirror it tries
            return ds.load(root, train, True)
    except Exception as exc:  # noqa: BLE001 - any download failure ends in the same advice
        _remove_new_empty_folders(root, existed)  # a failed download leaves no empty MNIST/raw behind
        why = " ".join(str(exc).split()) or "no message"  # whole, on one line
        raise DataError(
            f"data set {name!r} is not in {root} and could not be downloaded ({type(exc).__name__}: {why}); "
            f"put torchvision's files for {name!r} under {root}, or set PRUNEROB_DATA to a folder that holds them"
        ) from None


@functools.lru_cache(maxsize=4)
def _read_split(name: str, train: bool, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A split already on disk, read once per process (a stage loads its data more than once, and
    parsing MNIST's files takes seconds); callers slice it and never write into it."""
    return info(name).load(root, train, False)


def check_available(name: str, root: Path | None = None) -> None:
    """Both splits of ``name`` are there (or could be downloaded now); else DataError, before any run."""
    for train in (True, False):
        load_split(name, train, root)


def _folders(root: Path) -> set[Path]:
    if not root.exists():
        return set()
    return {root, *(Path(d) / n for d, names, _ in os.walk(root) for n in names)}


def _remove_new_empty_folders(root: Path, existed: set[Path]) -> None:
    for folder in sorted(_folders(root) - existed, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()  # empty ones only
        except OSError:
            pass


@dataclass
class Splits:
    """Train / validation / test images (uint8, NCHW) and labels, on one device."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def info(self) -> DatasetInfo:
        return info(self.name)

    def to(self, device: torch.device | str) -> Splits:
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return Splits(self.name, **moved)

    def eval_subset(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n test images as floats in [0, 1], and their labels (the attacks' samples)."""
        if n > len(self.test_y):
            raise ValueError(f"n_samples={n} exceeds the {len(self.test_y)} test images of {self.name}")
        return to_float(self.test_x[:n]), self.test_y[:n]


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0)


def load(spec: DataSpec, root: Path | None = None) -> Splits:
    """The splits of ``spec``: the last ``val_fraction`` of the training split validates."""
    train_x, train_y = load_split(spec.dataset, True, root)
    test_x, test_y = load_split(spec.dataset, False, root)
    n_val = int(round(len(train_y) * spec.val_fraction))
    n_fit = len(train_y) - n_val
    fit_x, fit_y = train_x[:n_fit], train_y[:n_fit]
    if spec.n_train:
        fit_x, fit_y = fit_x[: spec.n_train], fit_y[: spec.n_train]
    val_x, val_y = train_x[n_fit:], train_y[n_fit:]
    if spec.n_eval:
        val_x, val_y, test_x, test_y = (t[: spec.n_eval] for t in (val_x, val_y, test_x, test_y))
    return Splits(spec.dataset, fit_x, fit_y, val_x, val_y, test_x, test_y)
