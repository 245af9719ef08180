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
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from prunerob import attacks as attack_registry
from prunerob.spec import AttackSpec
from prunerob.train import predict

BOX_TOL = 1e-6
UNBOUNDED_MAX_ACC = 0.01
EPS0_TOL = 1e-9
MISCLASSIFIED = "misclassified"  # source_attack of a sample wrong without an attack


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


def l0_channel_count(x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """The original's L0: changed input values, each colour channel counted."""
    return ((adv - x) != 0).flatten(1).sum(1).float()


def within(dist: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "L0":
        return dist <= eps
    return dist <= eps * (1 + 1e-6) + 1e-7


@contextlib.contextmanager
def attack_mode(model: nn.Module):
    """Eval mode (asserted on every forward), frozen parameters; both restored on exit."""
    was_training = model.training
    grads = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)

    def guard(module, _inputs):
        if module.training:
            raise RuntimeError("the model was switched to training mode during an attack")

    handle = model.register_forward_pre_hook(guard)
    try:
        yield model
    finally:
        handle.remove()
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
    if bool(todo.any()):
        adv_todo, src_todo = _batched_with_sources(
            lambda xb, yb: info.run(crafter, xb, yb, eps, **params), x[todo], y[todo], spec.attack_batch_size, info.name
        )
        adv[todo] = adv_todo
        for i, s in zip(todo.nonzero().flatten().tolist(), src_todo, strict=True):
            sources[i] = s
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
) -> AttackResult:
    """Robust accuracy over ``spec.eps`` (plus eps 0) on (x, y), and the sanity checks.

    Fixed attacks run once per epsilon (plus an unbounded sanity run); minimal attacks run once
    and give the curve from their per-sample distances.  ``source`` (transfer): the examples are
    crafted on ``source`` and verified, counted and checked on ``model``; the unbounded check does
    not apply (an attack on another model need not break this one).
    """
    info = attack_registry.get(spec.attack)
    run = {"fixed": _fixed_curve, "minimal": _minimal_curve}[info.kind]
    with attack_mode(model), attack_mode(source) if source is not None else contextlib.nullcontext():
        clean_pred = predict(model, x, spec.attack_batch_size).argmax(1)
        samples, curve, unbounded_acc = run(model, x, y, clean_pred, spec, info, input_shape, progress, source)
    clean_acc = _share(clean_pred == y)
    unbounded = attack_registry.unbounded_eps(info.norm, input_shape)
    return AttackResult(samples, curve, sanity_checks(curve, clean_acc, unbounded, unbounded_acc))


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
    if source is not None:
        return pd.concat(sample_rows, ignore_index=True), pd.DataFrame(curve_rows), None
    big_eps = attack_registry.unbounded_eps(info.norm, input_shape)
    big = run_fixed(model, x, y, spec, info, big_eps, todo=~broken, carried=carried)
    unbounded_acc = _share(clean_ok & ~(big["valid"] & (big["adv_pred"] != y)))
    return pd.concat(sample_rows, ignore_index=True), pd.DataFrame(curve_rows), unbounded_acc


def _minimal_curve(model, x, y, clean_pred, spec, info, input_shape, progress, source=None):
    """One run; a sample is robust at eps when its verified minimal distance exceeds eps.

    ``robust_acc_original_rule`` counts distance >= eps as robust, the rule that reproduces the
    original study's figures (for L0 it differs by one pixel; see the book).
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
    if bool(todo.any()):
        adv_todo, src_todo = _batched_with_sources(
            lambda xb, yb: info.run(crafter, xb, yb, **spec.preset_params),
            x[todo],
            y[todo],
            spec.attack_batch_size,
            info.name,
        )
        adv[todo] = adv_todo
        for i, s in zip(todo.nonzero().flatten().tolist(), src_todo, strict=True):
            sources[i] = s
    seconds = time.perf_counter() - start
    adv_pred = predict(model, adv, spec.attack_batch_size).argmax(1)
    dist = distances(x, adv, info.norm)
    in_box = inside_box(adv)
    found = clean_ok & in_box & (adv_pred != y)  # a verified adversarial example
    distance = torch.where(~clean_ok, torch.zeros_like(dist), torch.where(found, dist, torch.full_like(dist, np.inf)))
    grid = sorted({0.0, *map(float, spec.eps)})
    violations = int((~in_box).sum())
    curve = pd.DataFrame(
        [
            {
                "eps": eps,
                "robust_acc": _share(clean_ok & (distance > eps)),
                "robust_acc_original_rule": _share(clean_ok & (distance >= eps)) if eps > 0 else _share(clean_ok),
                "n": len(y),
                "violations": violations,
                "seconds": seconds,
            }
            for eps in grid
        ]
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
    unbounded_acc = None if source is not None else _share(clean_ok & ~found)
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


def white_box(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of white-box attacks."""
    return frame[frame["scenario"] == "white-box"]


def attack_runs(frame: pd.DataFrame) -> pd.Series:
    """A name per attack run: the attack, and for a transfer attack the CR it was crafted on."""
    transfer = frame["scenario"] == "transfer"
    if not transfer.any():
        return frame["attack"]
    source = frame.loc[transfer, "source_cr"]
    label = source.map({cr: f"{cr:g}" for cr in source.unique()})  # a dict maps a million rows at once
    return frame["attack"].where(~transfer, frame["attack"] + " from CR " + label.reindex(frame.index))


def worst_case_samples(samples: pd.DataFrame, eps_grid: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """Per checkpoint, norm, eps and sample: robust only if every attack of that norm that ran on
    it failed on it (the samples of every run of the checkpoint and norm, each once).
    ``eps_grid`` maps a norm to its epsilons (default: the epsilons its fixed attacks ran at; a norm
    with only minimal attacks needs its grid given, e.g. from the attack table's ``eps`` column)."""
    if not len(samples):  # no attack results (yet): a frame without the table's columns
        return pd.DataFrame(columns=["prune_id", "cr", "norm", "eps", "sample", "robust", "attacks"])
    parts = []
    needed = ["prune_id", "cr", "norm", "kind", "sample", "eps", "broken", "distance"]
    # grouping copies every column the frame holds (a fixed attack's rows need no distance)
    samples = samples[[c for c in needed if c in samples]].assign(run=attack_runs(samples))
    for (prune_id, cr, norm), group in samples.groupby(["prune_id", "cr", "norm"]):
        grid = np.asarray((eps_grid or {}).get(cast(str, norm)) or sorted(group["eps"].dropna().unique()), float)
        ids = np.unique(group["sample"].to_numpy())
        # robust[i, j]: sample ids[i] at budget grid[j]; a sample one run did not attack (transfer
        # runs attack fewer images) is not broken by that run
        robust = np.ones((len(ids), len(grid)), dtype=bool)
        for (run, kind), rows in group.groupby(["run", "kind"]):
            at = np.searchsorted(ids, rows["sample"].to_numpy())
            if kind == "minimal":
                np.logical_and.at(robust, at, rows["distance"].to_numpy(float)[:, None] > grid[None, :])
                continue
            # a verified example found inside a smaller ball also lies inside the larger one: at each
            # budget of the grid, a fixed run counts at the largest budget it ran that is not larger
            ran, broken = rows["eps"].to_numpy(float), rows["broken"].to_numpy(bool)
            budgets = np.unique(ran)
            pick = np.searchsorted(budgets, grid + 1e-12, side="right") - 1
            if (pick < 0).any():
                raise ValueError(
                    f"{run} ({norm}) ran at {budgets.tolist()}, nothing at or below {grid[pick < 0].min():g}: "
                    "a fixed attack has no result below its smallest budget"
                )
            for j, budget in enumerate(budgets[pick]):
                mine = ran == budget
                np.logical_and.at(robust[:, j], at[mine], ~broken[mine])
        names = "+".join(sorted(group["run"].unique()))
        parts.append(
            pd.DataFrame(
                {
                    "prune_id": prune_id,
                    "cr": cr,
                    "norm": norm,
                    "eps": np.repeat(grid, len(ids)),
                    "sample": np.tile(ids, len(grid)),
                    "robust": robust.T.ravel(),
                    "attacks": names,
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["prune_id", "cr", "norm", "eps", "sample", "robust", "attacks"])
    return pd.concat(parts, ignore_index=True)


def common_runs_only(samples: pd.DataFrame, attack: pd.DataFrame, by: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``samples`` and ``attack`` with, within each group of ``by`` (a model's columns without its
    seed: its seeds), only the attack runs every prune stage of the group faced.  A seed that ran
    more attacks would otherwise have a stronger worst case than the others, and their mean would
    mix two evaluations."""
    if not len(attack):
        return samples, attack
    runs = attack.assign(run=attack_runs(attack))
    keep = []
    for _, group in runs.groupby([k for k in by if k in runs], dropna=False):
        common = set.intersection(*(set(r["run"]) for _, r in group.groupby("prune_id")))
        keep.append(group[group["run"].isin(common)][["prune_id", "run"]].drop_duplicates())
    kept = pd.concat(keep, ignore_index=True)
    mark = lambda frame: frame.assign(run=attack_runs(frame)).merge(kept, on=["prune_id", "run"]).drop(columns="run")
    return mark(samples), mark(attack)


def eps_grids(attack: pd.DataFrame) -> dict[str, list[float]]:
    """Per norm, the budgets the attacks of ``attack`` (rows of the attack table) ran at: the grid a
    worst case over them is taken on."""
    if not len(attack):
        return {}
    return {cast(str, norm): sorted(rows["eps"].unique()) for norm, rows in attack.groupby("norm")}


def on_own_grids(worst_case, samples: pd.DataFrame, attack: pd.DataFrame) -> pd.DataFrame:
    """``worst_case(samples, grid)`` (``worst_case`` here, or ``scenarios.worst_case_samples``) for
    each prune stage's samples on the budgets of that stage's own attacks. Models attacked at
    different budgets (Fashion-MNIST's grid is not MNIST's) must not share one grid: a fixed attack
    has no result below its smallest budget, and a budget it never ran is no worst case over it."""
    parts = (
        [
            worst_case(rows, eps_grids(attack[attack["prune_id"] == prune_id]))
            for prune_id, rows in samples.groupby("prune_id", sort=True)
        ]
        if len(samples)
        else []
    )
    return pd.concat(parts, ignore_index=True) if parts else worst_case(samples.iloc[:0], {})


def worst_case(samples: pd.DataFrame, eps_grid: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """Per checkpoint and norm: robust accuracy at each eps when a sample counts as robust only if
    every attack of that norm failed on it (see ``worst_case_samples``)."""
    per_sample = worst_case_samples(samples, eps_grid)
    out = (
        per_sample.groupby(["prune_id", "cr", "norm", "eps", "attacks"], sort=False)["robust"]
        .agg(robust_acc="mean", n="size")
        .reset_index()
    )
    out["robust_acc"] = out["robust_acc"].astype(float)
    return out[["prune_id", "cr", "norm", "eps", "robust_acc", "n", "attacks"]]


def min_distance(samples: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint, norm and sample: the smallest distance of a verified adversarial example over
    every attack of that norm (0 if the clean sample is misclassified, inf if no attack succeeded).
    Fixed attacks contribute the distances of their verified successes."""
    ok = samples["success"].astype(bool) & samples["valid"].astype(bool)
    wrong = samples["clean_pred"] != samples["label"]
    d = samples["distance"].where(ok, np.inf).where(~wrong, 0.0)
    frame = samples.assign(distance=d)
    # pandas-stubs type this as a Series; with as_index=False it is a DataFrame
    return frame.groupby(["prune_id", "cr", "norm", "sample"], as_index=False)["distance"].min()  # type: ignore[return-value]


def dense_curve(samples: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """Accuracy vs epsilon on a fine grid from minimal attacks' per-sample distances, per stage.
    Stages of one attack, norm and CR (e.g. seeds) share one grid, so their curves average point
    by point; columns ``stage_id``, ``seed``, ``attack``, ``norm``,
    ``cr``, ``eps``, ``robust_acc``, ``n``."""
    rows = []
    minimal = white_box(samples)
    minimal = minimal[minimal["kind"] == "minimal"]
    for (attack, norm, cr), runs in minimal.groupby(["attack", "norm", "cr"]):
        d_all = runs["distance"].to_numpy()
        finite = d_all[np.isfinite(d_all)]
        top = float(np.quantile(finite, 0.98)) if len(finite) else 1.0
        grid = np.linspace(0, top * 1.05, points)
        for (stage_id, seed), group in runs.groupby(["stage_id", "seed"]):
            d = group["distance"].to_numpy()
            for eps in grid:
                rows.append(
                    {
                        "stage_id": stage_id,
                        "seed": seed,
                        "attack": attack,
                        "norm": norm,
                        "cr": cr,
                        "eps": float(eps),
                        "robust_acc": float((d > eps).mean()),
                        "n": len(d),
                    }
                )
    return pd.DataFrame(rows)


def fixed_minimal_agreement(attack_rows: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Where fixed and minimal attacks of one norm ran on one checkpoint at the same epsilon, the
    norm's fixed result (the strongest fixed attack there) and each minimal attack's robust accuracy
    should agree within ``tolerance``: a large gap means one kind is weak.

    One row per (fixed attack, minimal attack, eps): ``gap`` is that pair's fixed minus minimal
    robust accuracy (positive: the fixed attack left more samples standing), so a deliberately weak
    fixed attack (the original's PGD presets) shows its gap; ``strongest`` marks the row of the
    strongest fixed attack, whose gap decides ``agree`` for the whole group.
    """
    keys = ["prune_id", "cr", "norm", "eps"]
    columns = [*keys, "fixed", "minimal", "fixed_acc", "minimal_acc", "gap", "strongest", "agree"]
    rows = white_box(attack_rows)
    per_attack = lambda kind: (
        rows[rows["kind"] == kind].groupby([*keys, "attack"], sort=True)["robust_acc"].first().reset_index()
    )
    fixed, minimal = per_attack("fixed"), per_attack("minimal")
    if not len(fixed) or not len(minimal):
        return pd.DataFrame(columns=columns)
    # the strongest fixed attack at each budget: the lowest robust accuracy, the first by name on a tie
    best = fixed.loc[fixed.groupby(keys, sort=False)["robust_acc"].idxmin()]
    fixed = fixed.merge(best.rename(columns={"attack": "best", "robust_acc": "best_acc"}), on=keys)
    pairs = fixed.rename(columns={"attack": "fixed", "robust_acc": "fixed_acc"}).merge(
        minimal.rename(columns={"attack": "minimal", "robust_acc": "minimal_acc"}), on=keys
    )
    pairs = pairs.assign(
        fixed_acc=pairs["fixed_acc"].astype(float),
        minimal_acc=pairs["minimal_acc"].astype(float),
        gap=pairs["fixed_acc"].astype(float) - pairs["minimal_acc"].astype(float),
        strongest=pairs["fixed"] == pairs["best"],
        agree=(pairs["best_acc"] - pairs["minimal_acc"]).abs() <= tolerance,
    )
    return pairs.sort_values([*keys, "minimal", "fixed"], kind="stable")[columns].reset_index(drop=True)
