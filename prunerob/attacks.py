"""Attack registry: the catalog's attacks (norm-first names, two kinds, presets: ``catalog.py``), each
with its run function, adapters over the attack libraries.

* ``fixed`` attacks take an epsilon and return one candidate per sample inside that ball; a curve
  needs one run per epsilon.
* ``minimal`` attacks look for the smallest perturbation that changes the prediction; one run gives
  the whole robust-accuracy-vs-epsilon curve (robust at eps if the found distance exceeds eps).

An ensemble (``l0_ensemble``, ``l2_ensemble``) is a minimal attack too: per sample, the smallest
verified candidate over its component attacks; its run returns ``(candidates, source names)`` and
the samples table records, per sample, the component that gave the candidate (``source_attack``).

Adapters only produce candidates.  Whether a candidate counts is decided in ``evaluate.py``, which
checks every one (box, distance, prediction) with the model itself, measuring with ``distances`` and
``inside_box`` (here, since the ensembles check their components' candidates the same way).  Attacks
never normalize: models own their normalization and take inputs in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from prunerob import catalog

BOX_TOL = 1e-6


@dataclass(frozen=True)
class AttackInfo(catalog.Attack):
    """A catalog attack (name, norm, kind, library, presets, ...) with the function that runs it."""

    # fixed: (model, x, y, eps, **params); minimal: (model, x, y, **params).  Returns the candidates, or
    # (candidates, source names) where a run combines attacks (evaluate.py's source_attack column)
    run: Callable[..., torch.Tensor | tuple[torch.Tensor, list[str]]] = field(kw_only=True)


def distances(x: torch.Tensor, adv: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample distance in ``norm``; L0 counts changed pixels (a pixel = all channels at one place)."""
    d = (adv - x).flatten(2) if norm == "L0" else (adv - x).flatten(1)
    if norm == "Linf":
        return d.abs().amax(1)
    if norm == "L2":
        return d.norm(dim=1)
    if norm == "L0":
        return (d != 0).any(1).sum(1).float()
    raise ValueError(f"unknown norm {norm!r}; valid: L0, L2, Linf")


def inside_box(adv: torch.Tensor) -> torch.Tensor:
    """Per sample: every value of the candidate inside [0, 1] (to within ``BOX_TOL``)."""
    return (adv >= -BOX_TOL).flatten(1).all(1) & (adv <= 1 + BOX_TOL).flatten(1).all(1)


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
        attack = cls(**params)
        if init == "dataset":  # the original started Brendel-Bethge from other evaluation images
            starter = fb.attacks.DatasetAttack()
            starter.feed(fmodel, x)
            # what Brendel-Bethge does with an init_attack, done here (the same draws): a collapsed model
            # (one class for every image) leaves a sample of that class no image of another class to
            # start from, and Foolbox then fails the whole batch; such a sample gets no candidate (the
            # input itself, which verification rejects), the others are attacked as before
            starts = starter.run(fmodel, x, fb.criteria.Misclassification(y))
            ok = fmodel(starts).argmax(-1) != y
            adv = x.clone()
            if ok.any():
                _, adv[ok], _ = attack(fmodel, x[ok], y[ok], epsilons=None, starting_points=starts[ok])
            return adv.detach()
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


def one_pixel_search(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    values: tuple[float, ...] = (0.0, 1.0),
    chunk_values: int = 1 << 22,
    max_pixels: int = 1,
) -> torch.Tensor:
    """Exhaustive one-pixel search: every pixel of the image set to every colour whose channels each take
    one of ``values`` (MNIST with ``[0, 1]``: black and white; RGB: the cube's 8 corners), one forward
    pass per variant, in batches of about ``chunk_values`` input values.  Returns, per sample, the first
    misclassified variant (pixel order, then colour order), the input itself where none is: for every
    budget of at least one pixel the best single-pixel change of that family, a strong check of the
    1-pixel budget that a gradient attack cannot miss by optimisation (it can only miss a colour
    outside ``values``).  Cost: pixels x colours forward passes per sample.  The registry's
    ``l0_onepixel``; ``bench onepixel`` holds the tables' 1-pixel results to it.

    ``max_pixels`` > 1: a greedy search beyond one pixel, without gradients: where no variant is
    misclassified, the one with the smallest margin (true logit minus the largest other) is kept and
    the next round tries every pixel not yet changed on it, up to ``max_pixels`` changed pixels
    (``max_pixels`` x the cost; an upper bound on each sample's L0 distance, not its minimum)."""
    n, c = x.shape[:2]
    n_pixels = x[0, 0].numel()
    levels = torch.tensor(values, dtype=x.dtype, device=x.device)
    colours = torch.cartesian_prod(*[levels] * c).view(-1, c)  # (colours, channels)
    variants = n_pixels * len(colours)
    chunk = max(1, min(variants, chunk_values // x[0].numel()))
    out = x.clone()
    with torch.no_grad():
        for i in range(n):
            current = x[i].clone()
            changed = torch.zeros(n_pixels, dtype=torch.bool, device=x.device)
            for _ in range(max_pixels):
                best, best_margin, found = None, float("inf"), False
                for start in range(0, variants, chunk):
                    idx = torch.arange(start, min(start + chunk, variants), device=x.device)
                    pixel, colour = idx // len(colours), idx % len(colours)
                    if max_pixels > 1:  # a changed pixel is not changed again; a variant equal to the point is none
                        same = (current.view(c, n_pixels)[:, pixel].T == colours[colour]).all(1)
                        keep = ~changed[pixel] & ~same
                        pixel, colour = pixel[keep], colour[keep]
                        if not len(pixel):
                            continue
                    batch = current.expand(len(pixel), *x.shape[1:]).clone()
                    batch.view(len(pixel), c, n_pixels)[torch.arange(len(pixel), device=x.device), :, pixel] = colours[
                        colour
                    ]
                    logits = model(batch)
                    wrong = (logits.argmax(1) != y[i]).nonzero()
                    if len(wrong):
                        out[i] = batch[wrong[0, 0]]
                        found = True
                        break
                    if max_pixels > 1:
                        margin = logits[:, y[i]] - logits.scatter(1, y[i].expand(len(pixel), 1), float("-inf")).amax(1)
                        j = int(margin.argmin())
                        if float(margin[j]) < best_margin:
                            best_margin, best = float(margin[j]), (batch[j].clone(), int(pixel[j]))
                if found or best is None:
                    break
                current, changed[best[1]] = best[0], True
    return out


def _l0_onepixel(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, values: list[float]
) -> torch.Tensor:
    """``one_pixel_search`` as a fixed attack: at a budget of one pixel (the catalog's ``max_budget``)."""
    if int(eps) < 1:
        return x.clone()
    return one_pixel_search(model, x, y, tuple(values))


def _l0_greedy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, values: list[float], max_pixels: int
) -> torch.Tensor:
    """``one_pixel_search`` going on greedily up to ``max_pixels`` pixels, as a minimal attack whose
    distances are known up to ``max_pixels`` (the catalog's ``max_budget``)."""
    return one_pixel_search(model, x, y, tuple(values), max_pixels=max_pixels)


def verified_distance(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cand: torch.Tensor, norm: str
) -> torch.Tensor:
    """Per sample: the candidate's distance where it is a verified adversarial (in the box,
    misclassified on a re-run), inf elsewhere -- the checks of evaluate.py."""
    with torch.no_grad():
        wrong = model(cand).argmax(1) != y
    dist = distances(x, cand, norm)
    return torch.where(wrong & inside_box(cand), dist, torch.full_like(dist, float("inf")))


def _component_params(attack: str, preset: str | dict) -> dict:
    """An ensemble component's parameters: its preset's, by name, or given whole (doubled_steps)."""
    return dict(catalog.attack(attack).presets[preset]) if isinstance(preset, str) else dict(preset)


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
            params = _component_params(attack, preset)
            if attack == "l0_pgd_min":
                params["known"] = best_d
            cand = get(attack).run(model, x, y, **params)
            if isinstance(cand, tuple):
                cand = cand[0]
            d = verified_distance(model, x, y, cand, norm)
            better = d < best_d
            best = torch.where(better.view(-1, *[1] * (x.dim() - 1)), cand, best)
            best_d = torch.where(better, d, best_d)
            for i in better.nonzero().flatten().tolist():
                source[i] = attack
        return best, source

    return run


def doubled_steps(params: dict) -> dict | None:
    """An attack's parameters with every iteration count (``steps``) doubled, an ensemble's components
    each given as ``[attack, parameters]``; None where nothing has a step count.  For the convergence
    check of evaluate.py: an attack whose result still changes with twice the steps had not finished
    optimising (Pintor et al. 2022's incomplete-optimisation indicator, measured by re-running)."""
    if "components" in params:
        comps = []
        for attack, preset in params["components"]:
            own = _component_params(attack, preset)
            comps.append([attack, doubled_steps(own) or own])
        changed = any("steps" in p for _, p in comps)
        return {**params, "components": comps} if changed else None
    return {**params, "steps": 2 * int(params["steps"])} if "steps" in params else None


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


# The function that runs each attack of the catalog (a test checks that they cover it exactly).
RUNS: dict[str, Callable[..., torch.Tensor | tuple[torch.Tensor, list[str]]]] = {
    "linf_pgd": _pgd("PGD"),
    "linf_apgd": _apgd("Linf"),
    "l2_pgd": _pgd("PGDL2"),
    "l2_apgd": _apgd("L2"),
    "linf_fmn": _foolbox_minimal("LInfFMNAttack"),
    "l2_ddn": _foolbox_minimal("DDNAttack"),
    "l2_ensemble": _minimal_ensemble("l2_ensemble", "L2"),
    "l2_fmn": _foolbox_minimal("L2FMNAttack"),
    "l2_cw": _foolbox_minimal("L2CarliniWagnerAttack"),
    "l0_pgd": _l0_pgd,
    "l0_onepixel": _l0_onepixel,
    "l0_greedy": _l0_greedy,
    "l0_pgd_min": _l0_pgd_min,
    "l0_sigma_zero": _l0_sigma_zero,
    "l0_ensemble": _minimal_ensemble("l0_ensemble", "L0"),
    "l0_fmn": _foolbox_minimal("L0FMNAttack"),
    "l0_bb": _foolbox_minimal("L0BrendelBethgeAttack"),
}

# The registry: every catalog attack with its run function, in the catalog's order.
ATTACKS: dict[str, AttackInfo] = {
    name: AttackInfo(**{f.name: getattr(entry, f.name) for f in fields(entry)}, run=RUNS[name])
    for name, entry in catalog.ATTACKS.items()
}


def get(name: str) -> AttackInfo:
    catalog.attack(name)  # an unknown name raises SpecError listing the valid ones
    return ATTACKS[name]


def unbounded_eps(norm: str, input_shape: tuple[int, ...]) -> float:
    """A budget that covers the whole input box: any image is reachable, accuracy must collapse."""
    c, h, w = input_shape
    return {"Linf": 1.0, "L2": float((c * h * w) ** 0.5), "L0": float(h * w)}[norm]
