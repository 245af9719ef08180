"""Attack registry: norm-first names, two kinds, adapters over the attack libraries.

* ``fixed`` attacks take an epsilon and return one candidate per sample inside that ball; a curve
  needs one run per epsilon.
* ``minimal`` attacks look for the smallest perturbation that changes the prediction; one run gives
  the whole robust-accuracy-vs-epsilon curve (robust at eps if the found distance exceeds eps).

An ensemble (``l0_ensemble``, ``l2_ensemble``) is a minimal attack too: per sample, the smallest
verified candidate over its component attacks; its run returns ``(candidates, source names)`` and
the samples table records, per sample, the component that gave the candidate (``source_attack``).

Adapters only produce candidates.  Whether a candidate counts is decided in ``evaluate.py``, which
checks every one (box, distance, prediction) with the model itself.  Attacks never normalize:
models own their normalization and take inputs in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunerob.spec import SpecError


@dataclass(frozen=True)
class AttackInfo:
    name: str
    norm: str  # L0, L2 or Linf
    kind: str  # fixed or minimal
    library: str  # the python package doing the work (its version goes into every result row)
    presets: dict[str, dict[str, Any]]
    # fixed: (model, x, y, eps, **params); minimal: (model, x, y, **params).  Returns the candidates, or
    # (candidates, source names) where a run combines attacks (evaluate.py's source_attack column)
    run: Callable[..., torch.Tensor | tuple[torch.Tensor, list[str]]]
    description: str = ""
    reference: str = ""
    params_doc: dict[str, str] = field(default_factory=dict)


def _pgd(torchattacks_class: str) -> Callable[..., torch.Tensor]:
    """torchattacks PGD in one norm; restarts keep, per sample, the first misclassified candidate."""

    def run(
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        *,
        steps: int,
        rel_stepsize: float,
        random_start: bool,
        restarts: int,
    ) -> torch.Tensor:
        import torchattacks

        if eps == 0:
            return x.clone()
        cls = {"PGD": torchattacks.PGD, "PGDL2": torchattacks.PGDL2}[torchattacks_class]
        atk = cls(model, eps=eps, alpha=eps * rel_stepsize, steps=steps, random_start=random_start)
        best = atk(x, y)
        for _ in range(restarts - 1):
            with torch.no_grad():
                still_correct = model(best).argmax(1) == y
            if not still_correct.any():
                break
            best = torch.where(still_correct[:, None, None, None], atk(x, y), best)
        return best

    return run


def _foolbox_minimal(attack_class: str) -> Callable[..., torch.Tensor]:
    """A Foolbox 3 minimization attack: returns its smallest adversarial candidate per sample."""

    def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **params) -> torch.Tensor:
        import foolbox as fb

        params = dict(params)
        init = params.pop("init", None)
        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        cls = {
            "LInfFMNAttack": fb.attacks.LInfFMNAttack,
            "L2FMNAttack": fb.attacks.L2FMNAttack,
            "L0FMNAttack": fb.attacks.L0FMNAttack,
            "DDNAttack": fb.attacks.DDNAttack,
            "L2CarliniWagnerAttack": fb.attacks.L2CarliniWagnerAttack,
            "L0BrendelBethgeAttack": fb.attacks.L0BrendelBethgeAttack,
        }[attack_class]
        if init == "dataset":  # the original started Brendel-Bethge from other evaluation images
            starter = fb.attacks.DatasetAttack()
            starter.feed(fmodel, x)
            params["init_attack"] = starter
        attack = cls(**params)
        _, adv, _ = attack(fmodel, x, y, epsilons=None)
        return adv.detach()

    return run


def _project_l0_box(delta: torch.Tensor, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Project perturbations onto {at most k changed pixels} x {x + delta in [0, 1]} (Croce and Hein
    2019): clip to the box, then keep the k pixels (k per sample) whose clipped change gains the most."""
    clipped = torch.minimum(torch.maximum(delta, -x), 1 - x)
    gain = (delta**2 - (delta - clipped) ** 2).sum(1).flatten(1)  # per pixel, over channels
    rank = gain.argsort(dim=1, descending=True).argsort(dim=1)  # exactly k kept, ties broken by index
    keep = (rank < k.view(-1, 1)) & (gain > 0)
    return clipped * keep.view(len(x), 1, *x.shape[2:])


def _pgd0_core(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    k: torch.Tensor,
    *,
    steps: int,
    step_size: float,
    restarts: int,
    random_start: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD_0 at k pixels per sample; returns (candidates, found).  Samples leave the batch as soon as
    they are misclassified; a candidate is the first misclassified point over steps and restarts."""
    import torch.nn.functional as F

    best = x.clone()
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for restart in range(restarts):
        idx = (~found).nonzero().flatten()
        if not len(idx):
            break
        xa, ya, ka = x[idx], y[idx], k[idx]
        delta = torch.zeros_like(xa)
        if random_start and restart > 0:
            delta = _project_l0_box(torch.rand_like(xa) * 2 - 1, xa, ka)
        for step in range(steps + 1):
            adv = (xa + delta).requires_grad_(step < steps)
            logits = model(adv)
            wrong = logits.argmax(1) != ya
            if wrong.any():
                best[idx[wrong]] = adv.detach()[wrong]
                found[idx[wrong]] = True
                keep = ~wrong
                idx, xa, ya, ka, delta = idx[keep], xa[keep], ya[keep], ka[keep], delta[keep]
                if not len(idx) or step == steps:
                    break
                adv = (xa + delta).requires_grad_(True)
                logits = model(adv)
            if step == steps:
                break
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, ya, reduction="sum"), adv)
            grad = grad / grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = _project_l0_box(delta + step_size * grad, xa, ka)
    return best, found


def _l0_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int,
    step_size: float,
    restarts: int,
    random_start: bool,
) -> torch.Tensor:
    """PGD_0 (Croce and Hein 2019): L1-normalized gradient steps projected onto at most ``eps`` changed
    pixels inside the box."""
    if int(eps) == 0:
        return x.clone()
    k = torch.full((len(x),), int(eps), device=x.device)
    return _pgd0_core(model, x, y, k, steps=steps, step_size=step_size, restarts=restarts, random_start=random_start)[0]


def _l0_pgd_min(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    step_size: float,
    restarts: int,
    random_start: bool,
    first_k: int = 1,
    known: torch.Tensor | None = None,
) -> torch.Tensor:
    """Minimal L0 from PGD_0: a per-sample search over the number of pixels k (``first_k``, then
    doubling until the first success, then bisection); returns the candidate at the smallest k where
    PGD_0 succeeded (the input itself where it never did).  ``known`` (per sample, pixels of an
    adversarial example found by another attack; inf where none): the search only tries budgets
    below it, so it returns the input itself where it finds nothing smaller."""
    n_pixels = x[0, 0].numel()
    lo = torch.zeros(len(x), dtype=torch.long, device=x.device)  # PGD_0 failed (or k = 0)
    hi = torch.full_like(lo, n_pixels + 1)  # succeeded (n_pixels + 1: not yet)
    if known is not None:
        hi = torch.where(torch.isfinite(known), known.clamp(max=n_pixels + 1).nan_to_num(0).long(), hi)
    best = x.clone()
    first = True
    while bool((hi - lo > 1).any()):
        todo = (hi - lo > 1).nonzero().flatten()
        mid = (lo[todo] + hi[todo].clamp(max=n_pixels)) // 2
        mid = torch.where(
            hi[todo] > n_pixels,
            torch.minimum(2 * lo[todo] + 1, torch.full_like(mid, n_pixels)),
            mid.clamp(min=lo[todo] + 1),
        )  # doubling until the first success
        if first:
            mid = torch.minimum(torch.full_like(mid, min(max(first_k, 1), n_pixels)), hi[todo] - 1)
            first = False
        cand, ok = _pgd0_core(
            model, x[todo], y[todo], mid, steps=steps, step_size=step_size, restarts=restarts, random_start=random_start
        )
        hi[todo[ok]] = mid[ok]
        best[todo[ok]] = cand[ok]
        failed = todo[~ok]
        lo[failed] = mid[~ok]
        lo[failed[mid[~ok] >= n_pixels]] = n_pixels + 1  # not even every pixel: give up on it
        hi[failed[mid[~ok] >= n_pixels]] = n_pixels + 2
    return best


def _pixel_l0(delta: torch.Tensor) -> torch.Tensor:
    """Changed pixels per sample (a pixel changed in any channel counts once), as evaluate.py counts."""
    return (delta != 0).any(1).flatten(1).sum(1)


def _l0_sigma_zero(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float = 1.0,
    sigma: float = 1e-3,
    threshold: float = 0.3,
    threshold_factor: float = 0.01,
) -> torch.Tensor:
    """sigma-zero (Cina et al. 2025): gradient descent on a smooth L0 approximation plus a clipped loss.

    Per sample, minimizes ``max(z_y - max_{j != y} z_j, 0) + l0_sigma(delta) / n_pixels`` with Adam
    (L-inf-normalized gradients, learning rate cosine-annealed from ``lr`` to ``lr / 10``), clips
    ``x + delta`` to the box after every step and zeroes every pixel whose largest change is below a
    per-sample threshold, raised by ``threshold_factor * lr_t`` while the sample is adversarial and
    lowered while it is not.  The L0 approximation counts pixels, as this project's L0 does:
    ``l0_sigma = sum over pixels of s / (s + sigma)`` with ``s`` the pixel's squared change summed over
    channels (the reference code sums ``delta^2 / (delta^2 + sigma)`` over values, the same on
    one-channel images).  Returns the adversarial point with the fewest changed pixels seen over the
    steps (the input itself where none was adversarial).  Runs on the device of ``x``.
    """
    import math

    n, n_pixels = len(x), x[0, 0].numel()

    def view(t: torch.Tensor) -> torch.Tensor:  # per sample -> broadcast over the sample's values
        return t.view(n, *[1] * (x.dim() - 1))

    delta = torch.zeros_like(x, requires_grad=True)
    exp_avg, exp_avg_sq = torch.zeros_like(x), torch.zeros_like(x)
    beta1, beta2 = 0.9, 0.999
    best = x.clone()
    best_l0 = torch.full((n,), n_pixels + 1, dtype=torch.long, device=x.device)
    tau = torch.full((n,), float(threshold), device=x.device)
    eta = lr
    for i in range(steps + 1):  # the last forward only checks the last step's point
        adv = x + delta
        logits = model(adv)
        is_adv = logits.argmax(1) != y
        l0 = _pixel_l0(delta.detach())
        better = is_adv & (l0 < best_l0)
        best_l0 = torch.where(better, l0, best_l0)
        best = torch.where(view(better), adv.detach(), best)
        if i == steps:
            break
        true_logit = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.scatter(1, y[:, None], float("-inf"))
        dl = (true_logit - others.amax(1)).clamp(min=0)
        s = delta.square().sum(1)  # per pixel, over channels
        l0_approx = (s / (s + sigma)).flatten(1).sum(1) / n_pixels
        (grad,) = torch.autograd.grad((dl + l0_approx).sum(), delta)
        grad = grad / view(grad.flatten(1).abs().amax(1).clamp(min=1e-12))
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq / (1 - beta2 ** (i + 1))).sqrt_().add_(1e-8)
        with torch.no_grad():
            delta.addcdiv_(exp_avg, denom, value=-eta / (1 - beta1 ** (i + 1)))
            delta.copy_((x + delta).clamp(0, 1) - x)
            eta = 0.1 * lr + 0.9 * lr * (1 + math.cos(math.pi * (i + 1) / steps)) / 2
            tau = (tau + torch.where(is_adv, threshold_factor * eta, -threshold_factor * eta)).clamp(0, 1)
            keep = delta.abs().amax(1, keepdim=True) >= view(tau)  # per pixel: its largest change
            delta.mul_(keep)
    return best


def _verified(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cand: torch.Tensor, norm: str) -> torch.Tensor:
    """Per sample: the candidate's distance where it is a verified adversarial (in the box,
    misclassified on a re-run), inf elsewhere -- the checks of evaluate.py."""
    from prunerob import evaluate as ev

    with torch.no_grad():
        wrong = model(cand).argmax(1) != y
    dist = ev.distances(x, cand, norm)
    return torch.where(wrong & ev.inside_box(cand), dist, torch.full_like(dist, float("inf")))


def _minimal_ensemble(name: str, norm: str) -> Callable[..., tuple[torch.Tensor, list[str]]]:
    """Per sample, the smallest verified adversarial over ``components`` (``[attack, preset]`` pairs,
    run in order).  An L0 component ``l0_pgd_min`` only searches budgets below the best distance
    found so far.  Returns ``(candidates, source names)``: the component that gave each candidate
    (``name`` itself where none found one; the candidate is then the input)."""

    def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, components) -> tuple[torch.Tensor, list[str]]:
        best = x.clone()
        best_d = torch.full((len(x),), float("inf"), device=x.device)
        source = [name] * len(x)
        for attack, preset in components:
            info = get(attack)
            params = dict(info.presets[preset])
            if attack == "l0_pgd_min":
                params["known"] = best_d
            cand = info.run(model, x, y, **params)
            if isinstance(cand, tuple):
                cand = cand[0]
            d = _verified(model, x, y, cand, norm)
            better = d < best_d
            best = torch.where(better.view(-1, *[1] * (x.dim() - 1)), cand, best)
            best_d = torch.where(better, d, best_d)
            for i in better.nonzero().flatten().tolist():
                source[i] = attack
        return best, source

    return run


def _apgd(norm: str) -> Callable[..., torch.Tensor]:
    """torchattacks' APGD (Croce and Hein 2020) in one norm: step-size free PGD that keeps the best
    point it visited, the usual stronger check of a fixed-budget evaluation."""

    def run(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int, n_restarts: int, loss: str
    ) -> torch.Tensor:
        import torchattacks

        if eps == 0:
            return x.clone()
        atk = torchattacks.APGD(model, norm=norm, eps=eps, steps=steps, n_restarts=n_restarts, loss=loss, seed=0)
        return atk(x, y).detach()

    return run


ATTACKS: dict[str, AttackInfo] = {
    "linf_pgd": AttackInfo(
        name="linf_pgd",
        norm="Linf",
        kind="fixed",
        library="torchattacks",
        run=_pgd("PGD"),
        presets={
            # Foolbox 3's LinfPGD defaults, which the original used: 40 steps of eps/30, random start.
            "original": {"steps": 40, "rel_stepsize": 1 / 30, "random_start": True, "restarts": 1},
            "strong": {"steps": 100, "rel_stepsize": 1 / 30, "random_start": True, "restarts": 5},
        },
        description="Projected gradient descent in the Linf ball (Madry et al. 2018)",
        reference="madry2018",
    ),
    "linf_apgd": AttackInfo(
        name="linf_apgd",
        norm="Linf",
        kind="fixed",
        library="torchattacks",
        run=_apgd("Linf"),
        presets={
            "default": {"steps": 100, "n_restarts": 1, "loss": "ce"},
            "strong": {"steps": 100, "n_restarts": 5, "loss": "ce"},
        },
        description="Auto-PGD with cross-entropy loss (Croce and Hein 2020), the stronger Linf check",
        reference="croce2020",
    ),
    "l2_pgd": AttackInfo(
        name="l2_pgd",
        norm="L2",
        kind="fixed",
        library="torchattacks",
        run=_pgd("PGDL2"),
        presets={
            # Foolbox 3's L2PGD defaults: 50 steps of 0.025 * eps, random start.
            "original": {"steps": 50, "rel_stepsize": 0.025, "random_start": True, "restarts": 1},
            "strong": {"steps": 100, "rel_stepsize": 0.05, "random_start": True, "restarts": 5},
        },
        description="Projected gradient descent in the L2 ball (Madry et al. 2018)",
        reference="madry2018",
    ),
    "l2_apgd": AttackInfo(
        name="l2_apgd",
        norm="L2",
        kind="fixed",
        library="torchattacks",
        run=_apgd("L2"),
        presets={
            "default": {"steps": 100, "n_restarts": 1, "loss": "ce"},
            "strong": {"steps": 100, "n_restarts": 5, "loss": "ce"},
        },
        description="Auto-PGD in the L2 ball with cross-entropy loss (Croce and Hein 2020), the stronger L2 check",
        reference="croce2020",
    ),
    "linf_fmn": AttackInfo(
        name="linf_fmn",
        norm="Linf",
        kind="minimal",
        library="foolbox",
        run=_foolbox_minimal("LInfFMNAttack"),
        presets={"default": {"steps": 100}, "strong": {"steps": 500}},
        description="Fast Minimum-Norm attack, Linf (Pintor et al. 2021): one run gives the whole curve",
        reference="pintor2021",
    ),
    "l2_ddn": AttackInfo(
        name="l2_ddn",
        norm="L2",
        kind="minimal",
        library="foolbox",
        run=_foolbox_minimal("DDNAttack"),
        # steps1000 (l2_ensemble's DDN): on a small PGD-fine-tuned MNIST CNN (Linf 0.3, one pass over 6,000
        # images; clean 0.67), 200 images, robust accuracy at L2 0.5 / 1 / 1.5 / 2 / 2.5 / 3: default
        # .515 / .39 / .295 / .235 / .145 / .065, steps1000 .515 / .39 / .29 / .235 / .125 / .06,
        # l2_apgd .51 / .39 / .295 / .225 / .145 / .07 (8.6 times default's seconds on a loaded machine)
        presets={"default": {"steps": 100}, "strong": {"steps": 500}, "steps1000": {"steps": 1000}},
        description="Decoupled Direction and Norm attack, L2 (Rony et al. 2019)",
        reference="rony2019",
    ),
    "l2_ensemble": AttackInfo(
        name="l2_ensemble",
        norm="L2",
        kind="minimal",
        library="foolbox",
        run=_minimal_ensemble("l2_ensemble", "L2"),
        # fast (standard training): DDN at 100 steps. On the dense MNIST CNN (seed 0, first 200 test
        # images, one thread) robust accuracy at L2 0.5 / 1 / 1.5 / 2 / 2.5: default (DDN 1000 steps)
        # .91 / .705 / .28 / .04 / .005 in 33 s; its components at 100 steps: DDN .91 / .71 / .285 / .045
        # / .005 (4.6 s), FMN-L2 1 / .86 / .83 / .475 / .12 (4.7 s). On adversarially trained models DDN
        # needs its 1,000 steps (see l2_ddn): use default there.
        presets={
            "default": {"components": [["l2_ddn", "steps1000"], ["l2_fmn", "default"]]},
            "fast": {"components": [["l2_ddn", "default"], ["l2_fmn", "default"]]},
        },
        description="Per sample, the smallest verified L2 adversarial over DDN and FMN-L2; the samples "
        "table's source_attack names the component",
        reference="rony2019",
    ),
    "l2_fmn": AttackInfo(
        name="l2_fmn",
        norm="L2",
        kind="minimal",
        library="foolbox",
        run=_foolbox_minimal("L2FMNAttack"),
        presets={"default": {"steps": 100}, "strong": {"steps": 500}},
        description="Fast Minimum-Norm attack, L2 (Pintor et al. 2021)",
        reference="pintor2021",
    ),
    "l2_cw": AttackInfo(
        name="l2_cw",
        norm="L2",
        kind="minimal",
        library="foolbox",
        run=_foolbox_minimal("L2CarliniWagnerAttack"),
        presets={
            # the original's settings: loose distances (large step, large initial constant)
            "original": {"binary_search_steps": 9, "steps": 5000, "stepsize": 1.0, "initial_const": 100.0},
            "fast": {"binary_search_steps": 5, "steps": 200, "stepsize": 0.01, "initial_const": 1.0},
        },
        description="Carlini-Wagner L2 attack with a binary search over its constant (Carlini and Wagner 2017)",
        reference="carlini2017",
    ),
    "l0_pgd": AttackInfo(
        name="l0_pgd",
        norm="L0",
        kind="fixed",
        library="prunerob",
        run=_l0_pgd,
        presets={
            # step size from Croce and Hein's code (120000/255 with L1-normalized gradients); two runs of
            # 50 steps (the second from a random start) beat one of 100 at the same cost on the dense
            # MNIST CNN: robust accuracy at 4 / 8 / 12 pixels 0.81 / 0.39 / 0.06 against 0.84 / 0.42 / 0.09
            "default": {"steps": 50, "step_size": 120000 / 255, "restarts": 2, "random_start": True},
            "strong": {"steps": 100, "step_size": 120000 / 255, "restarts": 5, "random_start": True},
        },
        description="PGD in the L0 ball of changed pixels, projected onto the box (Croce and Hein 2019)",
        reference="croce2019",
    ),
    "l0_pgd_min": AttackInfo(
        name="l0_pgd_min",
        norm="L0",
        kind="minimal",
        library="prunerob",
        run=_l0_pgd_min,
        # first_k 8: the search starts at 8 pixels, not 1 (the same distances in 0.56 of the model
        # calls on the dense MNIST CNN: rounds at 1 and 3 pixels fail for almost every image)
        presets={
            "default": {"steps": 50, "step_size": 120000 / 255, "restarts": 2, "random_start": True, "first_k": 8}
        },  # as l0_pgd's default
        description="PGD_0 with a per-sample search over the number of pixels (from first_k, doubling, then "
        "bisection): a minimal L0 attack as strong as PGD_0 at every budget it tried",
        reference="croce2019",
    ),
    "l0_sigma_zero": AttackInfo(
        name="l0_sigma_zero",
        norm="L0",
        kind="minimal",
        library="prunerob",
        run=_l0_sigma_zero,
        presets={
            # the reference code's lr, sigma, threshold and 0.01 threshold factor.  Steps measured on the
            # first 300 MNIST test images against the CNN (1 epoch) pruned to CR 8 (global magnitude
            # unstructured, not fine-tuned; clean 0.96), one CPU thread on a shared 2-core machine, robust
            # accuracy at 2 / 4 / 8 / 16 px (seconds): 100 steps .90 / .74 / .34 / .05 (8 s), 200 steps
            # .89 / .70 / .30 / .04 (17 s), 300 steps .89 / .69 / .28 / .03 (24 s), 500 steps
            # .89 / .69 / .27 / .03 (57 s), 1000 steps .89 / .67 / .23 / .02 (150 s); l0_pgd_min (default)
            # .90 / .71 / .30 / .04 (18 s).  500 steps: most of 1000's gain at 8 px for under half its
            # time (about 3 minutes for 1,000 images on one thread)
            "default": {"steps": 500, "lr": 1.0, "sigma": 1e-3, "threshold": 0.3, "threshold_factor": 0.01},
            "strong": {"steps": 2000, "lr": 1.0, "sigma": 1e-3, "threshold": 0.3, "threshold_factor": 0.01},
        },
        description="sigma-zero (Cina et al. 2025): Adam on a smooth approximation of the number of changed "
        "pixels plus a clipped difference of logits, with an adaptive per-sample threshold that "
        "zeroes small changes; keeps the adversarial point with the fewest changed pixels",
        reference="cina2025",
    ),
    "l0_ensemble": AttackInfo(
        name="l0_ensemble",
        norm="L0",
        kind="minimal",
        library="prunerob",
        run=_minimal_ensemble("l0_ensemble", "L0"),
        presets={"default": {"components": [["l0_sigma_zero", "default"], ["l0_pgd_min", "default"]]}},
        description="Per sample, the fewest changed pixels of a verified adversarial example over sigma-zero "
        "and PGD_0 with a budget search (run second, searching only below sigma-zero's distance); "
        "the samples table's source_attack names the component",
        reference="cina2025",
    ),
    "l0_fmn": AttackInfo(
        name="l0_fmn",
        norm="L0",
        kind="minimal",
        library="foolbox",
        run=_foolbox_minimal("L0FMNAttack"),
        presets={"default": {"steps": 100}, "strong": {"steps": 500}},
        description="Fast Minimum-Norm attack, L0 (Pintor et al. 2021)",
        reference="pintor2021",
    ),
    "l0_bb": AttackInfo(
        name="l0_bb",
        norm="L0",
        kind="minimal",
        library="foolbox",
        run=_foolbox_minimal("L0BrendelBethgeAttack"),
        presets={
            # the original's settings, started from other evaluation images (Foolbox's DatasetAttack)
            "original": {"binary_search_steps": 30, "steps": 500, "lr": 1e7, "init": "dataset"},
            "fast": {"binary_search_steps": 10, "steps": 100, "lr": 1e7, "init": "dataset"},
        },
        description="Brendel-Bethge L0 attack (Brendel et al. 2019), the original's L0 attack; needs numba",
        reference="brendel2019",
    ),
}


def get(name: str) -> AttackInfo:
    if name not in ATTACKS:
        raise SpecError(f"attack={name!r} is not valid; valid: {', '.join(ATTACKS)}")
    return ATTACKS[name]


def unbounded_eps(norm: str, input_shape: tuple[int, ...]) -> float:
    """A budget that covers the whole input box: any image is reachable, accuracy must collapse."""
    c, h, w = input_shape
    return {"Linf": 1.0, "L2": float((c * h * w) ** 0.5), "L0": float(h * w)}[norm]


def preset_fingerprints() -> dict[str, str]:
    """``attack/preset`` -> a hash of the preset's parameter values.  Attack stage ids hash the
    preset's *name*, not its values, so a preset edited in place would let old results pass for new
    ones; ``tests/presets.lock.json`` pins these fingerprints and a test fails on any change."""
    import hashlib
    import json

    return {
        f"{name}/{preset}": hashlib.sha256(json.dumps(params, sort_keys=True, default=repr).encode()).hexdigest()[:12]
        for name, info in ATTACKS.items()
        for preset, params in info.presets.items()
    }
