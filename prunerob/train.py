"""Training and fine-tuning with the original's recipe, on whatever device there is.

Adam (lr 1e-3), early stopping on validation loss with the best weights restored; for CIFAR-10 and
Imagenette also ReduceLROnPlateau (factor 0.3, patience 12), early-stopping patience 15, and
flip + pad-and-crop augmentation.  Pruned models fine-tune through the same function: their masks
(torch.nn.utils.prune) keep pruned weights at zero whatever the optimizer does.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prunerob.data import Splits, to_float
from prunerob.spec import TrainSpec, check_device

SMALL_PATIENCE = 5
LARGE_PATIENCE = 15
LARGE_LR_FACTOR = 0.3
LARGE_LR_PATIENCE = 12


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; anything else must be a device this machine has
    (:func:`prunerob.spec.check_device` says what is valid)."""
    if check_device(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and 4-pixel pad-and-crop (scaled to the image size), per image."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)[None, :]  # (n, h)
    cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]  # (n, w)
    idx = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits for images (uint8 or float in [0, 1]) in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        outs = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            outs.append(model(to_float(xb) if xb.dtype == torch.uint8 else xb.float()))
        return torch.cat(outs) if outs else torch.empty(0)
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) on the given images."""
    logits = predict(model, x, batch_size)
    y = y.to(logits.device)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def pgd_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Linf PGD from a uniform random start (Madry et al. 2018), for adversarial training.

    Only the input's gradient is computed (``autograd.grad``): the parameters' ``.grad`` stay as
    they were, and the model stays in the mode the caller put it in.  ``x`` is float in [0, 1].
    """
    noise = torch.rand(x.shape, generator=generator).to(x.device) if generator is not None else torch.rand_like(x)
    delta = (noise * 2 - 1) * eps
    adv = (x + delta).clamp(0, 1).detach()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + step_size * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1).detach()
    return adv


def adversarial_evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: TrainSpec,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """(loss, accuracy) on the training recipe's PGD examples of ``x`` (eval mode, mode restored)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            xb = to_float(xb) if xb.dtype == torch.uint8 else xb.float()
            yb = y[i : i + batch_size].to(device)
            adv = pgd_linf(model, xb, yb, spec.adv_eps, spec.adv_steps, spec.step_size, generator)
            with torch.no_grad():
                logits = model(adv)
            total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits.argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    return total_loss / max(len(y), 1), correct / max(len(y), 1)


@dataclass
class History:
    epochs: int = 0
    best_epoch: int = 0
    best_val_loss: float = math.inf
    seconds: float = 0.0
    rows: list[dict] = field(default_factory=list)  # one per epoch: epoch, train_loss, val_loss, val_acc, lr


def fit(
    model: nn.Module,
    splits: Splits,
    spec: TrainSpec,
    *,
    max_epochs: int | None = None,
    large: bool = False,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train ``model`` in place on ``splits`` (already on the model's device) until early stopping.

    The best weights by validation loss are restored at the end.  ``max_epochs`` overrides the
    spec's (fine-tuning uses a smaller budget).  With ``spec.training == "pgd"`` every batch is
    replaced by its PGD examples and the validation loss is the loss on PGD examples of the
    validation split (a fixed attack seed per epoch, so epochs compare on the same noise).
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    generator = seed_everything(spec.seed)
    # fused Adam: one kernel per step on CUDA instead of one per parameter
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=spec.lr, fused=device.type == "cuda")
    sched = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=LARGE_LR_FACTOR, patience=LARGE_LR_PATIENCE)
        if large
        else None
    )
    patience = spec.patience or (LARGE_PATIENCE if large else SMALL_PATIENCE)
    epochs = spec.max_epochs if max_epochs is None else max_epochs
    hist = History()
    best_state = copy.deepcopy(model.state_dict())

    def validation() -> dict[str, float]:
        val_loss, val_acc = evaluate(model, splits.val_x, splits.val_y)
        out = {"val_loss": val_loss, "val_acc": val_acc}
        if spec.adversarial:  # robust early stopping: the loss on the validation split's PGD examples
            adv_gen = torch.Generator().manual_seed(spec.seed + 1)
            out["val_clean_loss"] = val_loss
            out["val_loss"], out["val_adv_acc"] = adversarial_evaluate(
                model, splits.val_x, splits.val_y, spec, generator=adv_gen
            )
        return out

    if epochs > 0:  # the starting point is a candidate too (fine-tuning may not improve on it)
        hist.best_val_loss = validation()["val_loss"]
    start = time.perf_counter()
    n = len(splits.train_y)
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        total = torch.zeros((), device=device)  # summed on the device: no sync per step
        for i in range(0, n, spec.batch_size):
            idx = order[i : i + spec.batch_size]
            xb = to_float(splits.train_x[idx])
            if large:
                xb = augment(xb, generator)
            yb = splits.train_y[idx]
            if spec.adversarial:
                xb = pgd_linf(model, xb, yb, spec.adv_eps, spec.adv_steps, spec.step_size, generator)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        val = validation()
        val_loss, val_acc = val["val_loss"], val["val_acc"]
        if sched is not None:
            sched.step(val_loss)
        hist.rows.append(
            {"epoch": epoch, "train_loss": total.item() / max(n, 1), **val, "lr": opt.param_groups[0]["lr"]}
        )
        hist.epochs = epoch
        bar.set_postfix(val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.4f}")
        if val_loss < hist.best_val_loss:
            hist.best_val_loss, hist.best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - hist.best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    hist.seconds = time.perf_counter() - start
    return hist
