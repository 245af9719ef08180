"""Robustness curves from attacks, with every adversarial example verified and sanity-checked.

Conventions (Foolbox's, which the original used):
* the model is in eval mode during attacks (asserted on every forward) and its mode is restored;
  its parameters are frozen (no weight gradients are computed) and restored;
* every candidate is checked: inside [0, 1], within its epsilon (fixed attacks) or at its recorded
  distance (minimal attacks), and misclassified when the model is run on it again.  A candidate that
  fails the box or distance check is a *violation*: it is counted and never credited to the attack;
* a sample misclassified without any perturbation is not robust at any epsilon;
* fixed attacks: robust accuracy at eps counts a sample as broken if any verified candidate at a
  budget <= eps broke it (a valid example inside a smaller ball is inside the larger one), so curves
  never rise with eps; a run at eps attacks only the samples still robust at the budgets
  below it (the others carry their verified candidate), so ``robust_acc_run`` equals ``robust_acc``;
* minimal attacks: one run gives each sample's smallest verified adversarial distance (0 if the
  clean sample is misclassified, infinite if none was found); a sample is robust at eps when that
  distance exceeds eps (an attacker with budget eps could use it);
* the samples table's ``source_attack`` names, per sample, the attack that produced the candidate:
  the attack itself, or for an ensemble (``l0_ensemble``, ``l2_ensemble``) the component whose
  candidate was smallest (the ensemble's own name where no component found one); a white-box attack
  does not attack a sample the model already misclassifies, whose source is ``misclassified``.

The tables these runs write are combined over attacks (worst case, smallest distance, agreement of
fixed and minimal attacks) in ``aggregate.py``, without torch.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from prunerob import aggregate
from prunerob import attacks as attack_registry
from prunerob.attacks import distances, inside_box
from prunerob.catalog import CONVERGENCE_CHECK, CURVE_CHECK
from prunerob.spec import AttackSpec
from prunerob.train import predict

UNBOUNDED_MAX_ACC = 0.01
# The convergence check of a minimal attack (white-box): its first CONVERGENCE_N clean-correct samples
# attacked again with twice the steps; it fails when the longer run finds a distance more than
# CONVERGENCE_GAIN smaller for more than CONVERGENCE_MAX of them (1 of 50): the attack had not
# finished optimising (catalog.CONVERGENCE_CHECK); and, per budget of the run, the share of those
# samples that the run counts robust and twice the steps break (the curve's shift there, on them;
# catalog.CURVE_CHECK), which fails above CONVERGENCE_MAX as well.
CONVERGENCE_N = 50
CONVERGENCE_GAIN = 0.05
CONVERGENCE_MAX = 0.02
EPS0_TOL = 1e-9
MISCLASSIFIED = "misclassified"  # source_attack of a sample wrong without an attack


def l0_channel_count(x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """The original's L0: changed input values, each colour channel counted."""
    return ((adv - x) != 0).flatten(1).sum(1).float()


def within(dist: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "L0":
        return dist <= eps
    return dist <= eps * (1 + 1e-6) + 1e-7


@contextlib.contextmanager
def attack_mode(model: nn.Module, channels_last: bool = True):
    """Eval mode (asserted on every forward), frozen parameters and, for a model with convolutions,
    the channels-last memory format (the same outputs up to float rounding; on a CPU the attack steps
    of the study's convolutional models run faster in it: ``bench memory-format``); all restored on
    exit."""
    was_training = model.training
    grads = [(p, p.requires_grad) for p in model.parameters()]
    convolutional = channels_last and any(isinstance(m, nn.Conv2d) for m in model.modules())
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    if convolutional:
        model.to(memory_format=torch.channels_last)

    def guard(module, _inputs):
        if module.training:
            raise RuntimeError("the model was switched to training mode during an attack")

    handle = model.register_forward_pre_hook(guard)
    try:
        yield model
    finally:
        handle.remove()
        if convolutional:
            model.to(memory_format=torch.contiguous_format)
        for p, flag in grads:
            p.requires_grad_(flag)
        model.train(was_training)


@dataclass
class AttackResult:
    samples: pd.DataFrame  # one row per (eps, sample) for fixed attacks; per sample for minimal ones
    curve: pd.DataFrame  # one row per eps
    checks: pd.DataFrame  # one row per sanity check


def _share(flags: torch.Tensor) -> float:
    """Exact share of True (integer counts, so equal sets give equal floats)."""
    return int(flags.sum()) / len(flags)


def zero_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> tuple:
    """``(correct, zero)`` per sample: whether the model classifies the clean image correctly, and
    whether the gradient of its margin (the largest other logit minus the true one) with respect to
    the input is exactly zero there.  A pruned ReLU network can leave every path from some inputs
    dead: an attack that starts at the input and follows the gradient (FMN, sigma-zero) never moves
    from such an image, and reads it as robust; a random start (APGD, PGD), a random direction where
    the gradient is zero (Foolbox's DDN) or an attack without gradients at the input can move.  A
    diagnosis of gradient masking by pruning, not an attack."""
    correct, zero = [], []
    with attack_mode(model):
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].clone().requires_grad_(True)
            yb = y[i : i + batch_size]
            logits = model(xb)
            true = logits.gather(1, yb[:, None]).squeeze(1)
            other = logits.scatter(1, yb[:, None], float("-inf")).amax(1)
            (grad,) = torch.autograd.grad((other - true).sum(), xb)
            correct.append(logits.argmax(1) == yb)
            zero.append((grad.flatten(1) == 0).all(1))
    return torch.cat(correct), torch.cat(zero)


def _batched(fn, x, y, batch_size):
    return torch.cat([fn(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def _batched_with_sources(fn, x, y, batch_size, name: str) -> tuple[torch.Tensor, list[str]]:
    """``_batched`` for attack runs, which return candidates or ``(candidates, source names)`` (an
    ensemble names, per sample, the component that gave its candidate); plain attacks are their own
    source."""
    advs: list[torch.Tensor] = []
    sources: list[str] = []
    for i in range(0, len(x), batch_size):
        out = fn(x[i : i + batch_size], y[i : i + batch_size])
        adv, src = out if isinstance(out, tuple) else (out, [name] * len(out))
        if len(src) != len(adv):
            raise RuntimeError(f"attack {name!r} named {len(src)} sources for {len(adv)} candidates")
        advs.append(adv)
        sources.extend(map(str, src))
    return torch.cat(advs), sources


def _attack_where(fn, x, y, todo, adv, sources, batch_size, name: str) -> None:
    """Runs ``fn`` in batches on the samples where ``todo`` holds and writes their candidates into
    ``adv`` and their source names into ``sources`` (both per sample, in place)."""
    if not bool(todo.any()):
        return
    adv_todo, src_todo = _batched_with_sources(fn, x[todo], y[todo], batch_size, name)
    adv[todo] = adv_todo
    for i, s in zip(todo.nonzero().flatten().tolist(), src_todo, strict=True):
        sources[i] = s


def run_fixed(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    info: attack_registry.AttackInfo,
    eps: float,
    source: nn.Module | None = None,
    todo: torch.Tensor | None = None,
    carried: tuple[torch.Tensor, list[str]] | None = None,
) -> dict[str, torch.Tensor | list[str]]:
    """One fixed-epsilon attack run, verified on ``model``; returns per-sample tensors (and the list
    of per-sample source attack names under ``source_attack``).  ``source``: the model the examples
    are crafted on (transfer; default ``model`` itself).  ``todo`` (a per-sample mask): only these
    samples are attacked; every other sample keeps its ``carried`` candidate and source (default:
    the input itself, named ``misclassified``).  Every candidate, attacked or carried, is verified."""
    params = spec.preset_params
    torch.manual_seed(spec.attack_seed)
    start = time.perf_counter()
    crafter = model if source is None else source
    if todo is None:
        todo = torch.ones(len(x), dtype=torch.bool, device=x.device)
    adv, sources = (x.clone(), [MISCLASSIFIED] * len(x)) if carried is None else (carried[0].clone(), list(carried[1]))
    _attack_where(
        lambda xb, yb: info.run(crafter, xb, yb, eps, **params),
        x,
        y,
        todo,
        adv,
        sources,
        spec.attack_batch_size,
        info.name,
    )
    seconds = time.perf_counter() - start
    adv_pred = predict(model, adv, spec.attack_batch_size).argmax(1)
    dist = distances(x, adv, info.norm)
    in_box = inside_box(adv)
    valid = in_box & within(dist, eps, info.norm)
    return {
        "adv": adv,
        "adv_pred": adv_pred,
        "distance": dist,
        "valid": valid,
        "l0_channels": l0_channel_count(x, adv),
        "seconds": torch.tensor(seconds),
        "source_attack": sources,
    }


def attack_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    input_shape: tuple[int, int, int],
    progress: bool = False,
    source: nn.Module | None = None,
    convergence: bool = True,
) -> AttackResult:
    """Robust accuracy over ``spec.eps`` (plus eps 0) on (x, y), and the sanity checks
    (``convergence``: with a minimal attack's convergence check, :func:`convergence_check`; the
    benchmarks, which time and compare attacks, leave it out).

    Fixed attacks run once per epsilon (plus an unbounded sanity run, except an attack with a
    ``max_budget``, which cannot reach it); minimal attacks run once
    and give the curve from their per-sample distances.  ``source`` (transfer): the examples are
    crafted on ``source`` and verified, counted and checked on ``model``; the unbounded check does
    not apply (an attack on another model need not break this one).
    """
    info = attack_registry.get(spec.attack)
    run = {"fixed": _fixed_curve, "minimal": _minimal_curve}[info.kind]
    with attack_mode(model), attack_mode(source) if source is not None else contextlib.nullcontext():
        clean_pred = predict(model, x, spec.attack_batch_size).argmax(1)
        samples, curve, unbounded_acc = run(model, x, y, clean_pred, spec, info, input_shape, progress, source)
        checked = convergence and info.kind == "minimal" and source is None
        converged = convergence_check(model, x, y, samples, spec, info) if checked else []
    clean_acc = _share(clean_pred == y)
    unbounded = attack_registry.unbounded_eps(info.norm, input_shape)
    checks = sanity_checks(curve, clean_acc, unbounded, unbounded_acc)
    if converged:
        checks = pd.concat([checks, pd.DataFrame(converged)], ignore_index=True)
    return AttackResult(samples, curve, checks)


def convergence_check(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    samples: pd.DataFrame,
    spec: AttackSpec,
    info,
    n: int = CONVERGENCE_N,
) -> list[dict]:
    """Incomplete optimisation (after Pintor et al. 2022), measured: a minimal attack's first ``n``
    clean-correct samples attacked again with every step count doubled (``attacks.doubled_steps``; an
    ensemble's components each), verified as the run was.  Two checks, each passing up to
    ``CONVERGENCE_MAX``: ``converged_at_twice_the_steps``, the share of them whose verified distance
    the longer run cuts by more than ``CONVERGENCE_GAIN`` (or finds where the run found none; it does
    not depend on the budgets), and ``curve_holds_at_twice_the_steps``, one row per budget of the run:
    the share of them robust at that budget by the run's distance (d > eps) and broken by the longer
    run's -- how far the robust accuracy read there would move.  An L0 distance is a whole number of
    pixels, so one pixel less is a cut of over 5 % below 20 pixels: the first check flags it, the
    second says whether a budget's count changes.  [] where the attack has no step count.  (A loss
    still falling in the last steps, Pintor's form, missed sigma-zero at 2,000 steps: its
    cosine-annealed step makes the last quarter quiet even where 6,000 steps find 6 points more.)
    The longer run's candidates are not used in the results."""
    params = attack_registry.doubled_steps(spec.preset_params)
    idx = np.flatnonzero((samples["clean_pred"] == samples["label"]).to_numpy())[:n]
    if params is None or not len(idx):
        return []
    torch.manual_seed(spec.attack_seed)
    at = torch.as_tensor(idx, device=x.device)
    cand, _ = _batched_with_sources(
        lambda xb, yb: info.run(model, xb, yb, **params), x[at], y[at], spec.attack_batch_size, info.name
    )
    longer = attack_registry.verified_distance(model, x[at], y[at], cand, info.norm).float().cpu().numpy()
    run = samples["distance"].to_numpy(dtype=np.float32)[idx]
    share = float((longer < run * (1 - CONVERGENCE_GAIN)).mean())
    rows = [
        {"check": CONVERGENCE_CHECK, "value": share, "expected": CONVERGENCE_MAX, "passed": share <= CONVERGENCE_MAX}
    ]
    for eps in sorted({float(e) for e in spec.eps if float(e) > 0}):
        moved = float(((run > eps) & (longer <= eps)).mean())
        rows.append(
            {
                "check": CURVE_CHECK,
                "value": moved,
                "expected": CONVERGENCE_MAX,
                "passed": moved <= CONVERGENCE_MAX,
                "eps": eps,
            }
        )
    return rows


def _sample_frame(y, clean_pred, adv_pred, **columns) -> pd.DataFrame:
    cols = {
        "sample": np.arange(len(y)),
        "label": y.cpu().numpy(),
        "clean_pred": clean_pred.cpu().numpy(),
        "adv_pred": adv_pred.cpu().numpy(),
    }
    cols.update({k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else v) for k, v in columns.items()})
    return pd.DataFrame(cols)


def _fixed_curve(model, x, y, clean_pred, spec, info, input_shape, progress, source=None):
    """One run per budget, smallest first.  A run attacks only the samples that are still robust
    (correct on the clean input, not broken at a smaller budget); every other sample keeps the
    candidate that broke it, which lies inside every larger ball, and is verified again.  A collapsed
    checkpoint therefore costs almost nothing.  The same holds for transfer (``source``): a candidate
    crafted on the source that fooled this model at a smaller budget fools it at the larger one."""
    from tqdm.auto import tqdm

    grid = sorted({0.0, *map(float, spec.eps)})
    clean_ok = clean_pred == y
    broken = ~clean_ok
    carried = None
    sample_rows, curve_rows = [], []
    for eps in tqdm(grid, desc=spec.attack, disable=not progress, leave=False):
        out = run_fixed(model, x, y, spec, info, eps, source, todo=~broken, carried=carried)
        success = (~clean_ok) | (out["valid"] & (out["adv_pred"] != y))
        broken = broken | success
        carried = (out["adv"], out["source_attack"])
        curve_rows.append(
            {
                "eps": eps,
                "robust_acc": _share(~broken),
                "robust_acc_run": _share(~success),
                "n": len(y),
                "violations": int((~out["valid"]).sum()),
                "seconds": float(out["seconds"]),
            }
        )
        sample_rows.append(
            _sample_frame(
                y,
                clean_pred,
                out["adv_pred"],
                eps=eps,
                success=success,
                broken=broken,
                valid=out["valid"],
                distance=out["distance"],
                l0_channels=out["l0_channels"],
                source_attack=out["source_attack"],
            )
        )
    if source is not None or info.max_budget is not None:  # no unbounded check: transfer, a bounded search
        return pd.concat(sample_rows, ignore_index=True), pd.DataFrame(curve_rows), None
    big_eps = attack_registry.unbounded_eps(info.norm, input_shape)
    big = run_fixed(model, x, y, spec, info, big_eps, todo=~broken, carried=carried)
    unbounded_acc = _share(clean_ok & ~(big["valid"] & (big["adv_pred"] != y)))
    return pd.concat(sample_rows, ignore_index=True), pd.DataFrame(curve_rows), unbounded_acc


def _minimal_curve(model, x, y, clean_pred, spec, info, input_shape, progress, source=None):
    """One run; a sample is robust at eps when its verified minimal distance exceeds eps.

    ``robust_acc_original_rule`` counts distance >= eps as robust, the rule that reproduces the
    original study's figures (for L0 it differs by one pixel; see the book).  An attack with a
    ``max_budget`` searches no further: the unbounded check is left out.
    """
    torch.manual_seed(spec.attack_seed)
    start = time.perf_counter()
    crafter = model if source is None else source
    clean_ok = clean_pred == y
    # White-box, a sample the model already gets wrong has distance 0 whatever the attack returns:
    # it is not attacked (a collapsed checkpoint costs almost nothing). A transfer attack crafts on
    # every sample, since the source model may classify it correctly.
    todo = clean_ok if source is None else torch.ones_like(clean_ok)
    adv, sources = x.clone(), [MISCLASSIFIED] * len(x)
    _attack_where(
        lambda xb, yb: info.run(crafter, xb, yb, **spec.preset_params),
        x,
        y,
        todo,
        adv,
        sources,
        spec.attack_batch_size,
        info.name,
    )
    seconds = time.perf_counter() - start
    adv_pred = predict(model, adv, spec.attack_batch_size).argmax(1)
    dist = distances(x, adv, info.norm)
    in_box = inside_box(adv)
    found = clean_ok & in_box & (adv_pred != y)  # a verified adversarial example
    distance = torch.where(~clean_ok, torch.zeros_like(dist), torch.where(found, dist, torch.full_like(dist, np.inf)))
    grid = sorted({0.0, *map(float, spec.eps)})
    violations = int((~in_box).sum())
    curve = aggregate.minimal_curve(clean_ok.cpu().numpy(), distance.cpu().numpy(), grid).assign(
        n=len(y), violations=violations, seconds=seconds
    )
    samples = _sample_frame(
        y,
        clean_pred,
        adv_pred,
        success=found | ~clean_ok,
        valid=in_box,
        distance=distance,
        l0_channels=torch.where(found, l0_channel_count(x, adv), torch.zeros_like(dist)),
        source_attack=sources,
    )
    unbounded_acc = None if source is not None or info.max_budget is not None else _share(clean_ok & ~found)
    return samples, curve, unbounded_acc


def sanity_checks(
    curve: pd.DataFrame, clean_acc: float, unbounded_eps: float, unbounded_acc: float | None
) -> pd.DataFrame:
    """The checks stored with every attack result (and shown in the book when one fails).
    ``unbounded_acc`` None (transfer attacks): the unbounded check does not apply and is left out."""
    acc = curve.sort_values("eps")["robust_acc"].to_numpy()
    at0 = curve.loc[curve["eps"] == 0, "robust_acc"]
    rows = [
        {
            "check": "eps0_equals_clean",
            "value": float(at0.iloc[0]) if len(at0) else float("nan"),
            "expected": clean_acc,
            "passed": bool(len(at0) and abs(at0.iloc[0] - clean_acc) <= EPS0_TOL),
        },
        {
            "check": "monotone_in_eps",
            "value": float(np.max(np.diff(acc), initial=0.0)),
            "expected": 0.0,
            "passed": bool(np.all(np.diff(acc) <= 0)),
        },
        {
            "check": "no_violations",
            "value": float(curve["violations"].sum()),
            "expected": 0.0,
            "passed": bool(curve["violations"].sum() == 0),
        },
    ]
    if unbounded_acc is not None:
        rows.insert(
            2,
            {
                "check": "unbounded_breaks_all",
                "value": unbounded_acc,
                "expected": UNBOUNDED_MAX_ACC,
                "passed": unbounded_acc <= UNBOUNDED_MAX_ACC,
                "eps": unbounded_eps,
            },
        )
    return pd.DataFrame(rows)
