"""Benchmarks: speed goals live here, never in timed tests.  Results go to ``benchmarks/*.json``.

    python -m prunerob bench prune [--arch vgg11]     time to compute and apply masks, every method and CR
    python -m prunerob bench attacks --checkpoint P   PGD throughput; default vs the original's attack set
        [--checkpoint Q ...] [--sets default,strongest,original]   several models; the strongest set too

Each JSON file holds the machine it ran on (cores, processor, torch and its threads), the command,
and one record per measurement (``bench attacks``: per checkpoint, with the load averages before and
after it); compare ratios measured in one run, not across runs.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prunerob import aggregate, catalog, models, prune, results
from prunerob.spec import CRITERIA, DEFAULT_CRS, SCOPES, STRUCTURES, SpecError, invalid

BENCH_DIR = results.ROOT / "benchmarks"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "tcmalloc": "tcmalloc" in os.environ.get("LD_PRELOAD", ""),
        "code_version": results.code_version(),
    }


def write(name: str, records: list[dict], command: str, out: Path | None = None, beside: str | None = None) -> Path:
    """``benchmarks/<name>.json`` (or ``out``): the records, the command, the machine and ``beside``,
    what else ran on the machine meanwhile as its user said (``bench --beside``; None: not said)."""
    path = out or BENCH_DIR / f"{name}.json"
    blob = {
        "benchmark": name,
        "command": command,
        "machine": machine(),
        "beside": beside,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "records": records,
    }
    results.atomic_write_bytes(path, lambda p: p.write_text(json.dumps(blob, indent=1) + "\n"))
    return path


def bench_prune(arch: str = "vgg11", input_shape=(3, 32, 32), crs=DEFAULT_CRS, seed: int = 0) -> list[dict]:
    """Seconds to compute and to apply masks at each CR of a cumulative schedule, for all 12 methods."""
    records = []
    for structure in STRUCTURES:
        for scope in SCOPES:
            for criterion in CRITERIA:
                torch.manual_seed(seed)
                model = models.build_model(arch, input_shape)
                gen = torch.Generator().manual_seed(seed)
                for cr in crs:
                    if cr == 1:
                        continue
                    t0 = time.perf_counter()
                    masks = prune.compute_masks(
                        model, structure=structure, scope=scope, criterion=criterion, cr=cr, generator=gen
                    )
                    t1 = time.perf_counter()
                    prune.apply_masks(model, masks)
                    t2 = time.perf_counter()
                    total = prune.sparsity_report(model).iloc[-1]
                    records.append(
                        {
                            "arch": arch,
                            "structure": structure,
                            "scope": scope,
                            "criterion": criterion,
                            "cr": cr,
                            "compute_s": t1 - t0,
                            "apply_s": t2 - t1,
                            "kept": float(total["kept_fraction"]),
                            "n_prunable": int(total["n_weights"]),
                        }
                    )
    return records


def summarize_prune(records: list[dict]) -> str:
    """Seconds to compute + apply masks per method, summed over the schedule, slowest first."""
    import pandas as pd

    frame = pd.DataFrame(records)
    frame["seconds"] = frame["compute_s"] + frame["apply_s"]
    table = frame.pivot_table(index=["structure", "scope", "criterion"], columns="cr", values="seconds")
    return table.round(3).to_string()


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _bare_steps(model, x, y, steps: int) -> None:
    """``steps`` bare forward + backward passes to the input: what any gradient attack step costs."""
    import torch.nn.functional as F

    for _ in range(steps):
        inp = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(inp), y), inp)


def throughput(model, x, y, steps: int = 40, repeats: int = 7) -> dict:
    """(a) Linf PGD (the registry's ``linf_pgd``, 40 steps) in sample-steps per second over a bare
    forward + backward to the input at the same batch (what any attack step costs); both warmed up,
    interleaved, best of ``repeats``."""

    from prunerob import attacks
    from prunerob import evaluate as ev

    pgd = attacks.get("linf_pgd")
    params = {**pgd.presets["original"], "steps": steps}

    def bare():
        _bare_steps(model, x, y, steps)

    def attack():
        pgd.run(model, x, y, 8 / 255, **params)

    with ev.attack_mode(model):
        bare(), attack()  # warm-up (allocator, kernels)
        t_bare, t_attack = float("inf"), float("inf")
        for _ in range(repeats):
            t_bare = min(t_bare, _time(bare, 1))
            t_attack = min(t_attack, _time(attack, 1))
    bare_rate, attack_rate = len(y) * steps / t_bare, len(y) * steps / t_attack
    return {
        "batch_size": len(y),
        "steps": steps,
        "bare_images_per_s": bare_rate,
        "pgd_sample_steps_per_s": attack_rate,
        "ratio": attack_rate / bare_rate,
    }


# The default attack set against the original's and the strongest the registry has, per norm.
# The default set: what the study runs on every pruned checkpoint, per norm (attack, preset); the
# book's robust accuracy of a norm is the per-sample worst case over its attacks that ran.  Chosen on
# the CNN's global magnitude unstructured checkpoints at CR 1, 16 and 64 (300 images) against the
# strongest set: Linf: FMN (500 steps) with APGD with 5 restarts at each budget (FMN alone stood up to
# 6.3 points above the strongest at 32/255, with APGD of one restart 1.7, with 5 restarts 0.3); L2: DDN
# (1,000 steps) and FMN-L2 per sample and APGD-L2 with 5 restarts at each budget (without APGD-L2 2.0
# points above at 1.5, CR 16; with one restart 1.7; with 5 restarts 0.0); L0: sigma-zero
# (6,000 steps) and PGD_0 with a budget search per sample (at 500 steps it stood 12.3 points above
# at CR 64; PGD_0 at each budget beside it changed 1 point at most; at 2,000 steps sigma-zero was
# not converged: 6 points above its 6,000-step reading at CR 64 and 4 px), with the two searches
# without gradients beside it, the exhaustive one-pixel search and the greedy search up to 4 px (on the
# original's CNN at CR 64 the gradient attacks left up to 14 points standing that one pixel breaks,
# benchmarks/onepixel.json; on the MLP at local CR 64 the greedy search broke 15 points more at 2 px),
# and Brendel-Bethge at the original's settings, an attack of another family (with the searches but
# without it the set stood 1.3 points above the strongest at CR 64 and 16; with it at most 0.7 at CR 1,
# 16 and 64, for 10-20 % more of the L0 time: benchmarks/attacks_default_vs_strongest.json).
DEFAULT_SET = {
    "Linf": (("linf_fmn", "strong"), ("linf_apgd", "strong")),
    "L2": (("l2_ensemble", "default"), ("l2_apgd", "strong")),
    "L0": (("l0_ensemble", "steps6000"), ("l0_onepixel", "default"), ("l0_greedy", "default"), ("l0_bb", "original")),
}
L2_EPS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
L0_EPS = (1, 2, 4, 8, 12, 16, 24, 32)
# Each attack's strongest preset (the strongest set): "strong" where there is one; otherwise the one
# with the most work.  Ensembles are left out: they only combine attacks that are in the set anyway.
STRONGEST_PRESETS = {
    "linf_pgd": "strong",  # 100 steps, 5 restarts
    "linf_apgd": "strong",  # 100 steps, 5 restarts
    "linf_fmn": "strong",  # 500 steps
    "l2_pgd": "strong",  # 100 steps, 5 restarts
    "l2_apgd": "strong",  # 100 steps, 5 restarts
    # steps1000, not strong (500): the same algorithm (Foolbox's DDN) with twice the steps, its step
    # size annealed and its radius adapted over 1,000 steps, keeping the smallest adversarial it saw;
    # l2_ensemble's default uses it on adversarially trained models, where 100 steps fell short
    "l2_ddn": "steps1000",
    "l2_fmn": "strong",  # 500 steps
    "l2_cw": "original",  # 9 binary search steps of 5,000 (fast: 5 of 200)
    "l0_pgd": "strong",  # 100 steps, 5 restarts
    "l0_onepixel": "default",  # its only preset, at the budget of one pixel (its max_budget)
    "l0_greedy": "default",  # its only preset, up to 4 pixels (its max_budget)
    "l0_pgd_min": "default",  # its only preset (PGD_0 at each budget is l0_pgd's job, at strong)
    "l0_sigma_zero": "steps12000",  # 12,000 steps (strong: 2,000, not converged; steps6000 moved by 2 points)
    "l0_fmn": "strong",  # 500 steps
    "l0_bb": "original",  # the original's settings: 30 binary search steps of 500
}


def attack_sets() -> dict[str, dict[str, list]]:
    """The default set (``DEFAULT_SET``: one minimal attack per norm, one run gives the whole curve,
    in L2 and L0 a per-sample ensemble of two; in Linf and L2 APGD with 5 restarts at each budget beside
    it, in L0 the one-pixel and greedy searches up to their ``max_budget``), the original's (PGD-40 at each eps, C&W and Brendel-Bethge at its
    settings) and the strongest (every attack of the norm in the registry, fixed and minimal, each at
    its strongest preset: ``STRONGEST_PRESETS``; fixed ones at the default set's budgets, up to their
    ``max_budget``).  The ``cpu``
    profile runs fixed-budget checks beside the default set (APGD, PGD_0, the original's PGD
    presets); they are not part of it."""
    from prunerob import attacks
    from prunerob.spec import PAPER_LINF_EPS, AttackSpec

    grids = {"Linf": PAPER_LINF_EPS, "L2": L2_EPS, "L0": L0_EPS}
    return {
        "default": {
            norm: [
                AttackSpec(attack=name, preset=preset, eps=attacks.get(name).within(grids[norm]))
                for name, preset in pairs
            ]
            for norm, pairs in DEFAULT_SET.items()
        },
        "original": {
            "Linf": [AttackSpec(attack="linf_pgd", eps=PAPER_LINF_EPS)],
            "L2": [AttackSpec(attack="l2_cw", eps=L2_EPS)],
            "L0": [AttackSpec(attack="l0_bb", eps=L0_EPS)],
        },
        "strongest": {
            norm: [
                AttackSpec(attack=name, preset=preset, eps=attacks.get(name).within(grid))
                for name, preset in STRONGEST_PRESETS.items()
                if attacks.get(name).norm == norm
            ]
            for norm, grid in grids.items()
        },
    }


def bench_attacks(
    model,
    x,
    y,
    input_shape,
    batch_size: int = 500,
    sets: dict | None = None,
    rounds: int = 1,
    once: tuple[str, ...] = ("strongest",),
    samples: SampleStore | None = None,
) -> dict:
    """(b) The whole three-norm evaluation with each attack set (``attack_sets()``: the default, the
    original's, the strongest) on the same samples: seconds, robust accuracy per eps (worst case over
    a set's attacks of a norm) and the median smallest verified distance.

    ``rounds`` > 1: the sets run in alternating rounds (default, original, default, ...) and each
    norm's seconds are the best over its rounds, so a slow spell of a shared machine does not land
    on one set only; robust accuracies come from the first round (every run is seeded).  The sets
    named in ``once`` (the strongest, whose accuracy matters and not its time) run in the first
    round only.

    In the first round an attack run that an earlier set of this call already ran (same attack,
    preset and budgets: the searches are in the default and the strongest set) is taken from it, and
    ``samples`` (a ``SampleStore``) keeps every run's per-sample results on disk and gives them back
    to a later call on the same checkpoint and images: a block that took any run so lists it in
    ``runs_taken`` (attack -> where from) and counts its seconds as measured then.

    With the default and the original's set: ``speedup`` (the original's seconds over the default
    set's, all three norms) and per norm ``no_weaker``.  With the default and the strongest set: per
    norm ``default_vs_strongest``: the largest excess of the default set's robust accuracy over the
    strongest set's at any budget, where, and whether it is at most 1 point (``within_1_point``)."""
    from prunerob import attacks
    from prunerob import evaluate as ev

    out: dict = {"n_samples": len(y), "batch_size": batch_size, "rounds": rounds}
    ran: dict[str, tuple] = {}  # the first round's runs by spec key: (samples, seconds, passed)
    for round_ in range(rounds):
        for name, per_norm in (sets or attack_sets()).items():
            if round_ and name in once:
                continue
            for norm, specs in per_norm.items():
                seconds, frames, passed, taken = 0.0, [], True, {}
                for spec in specs:
                    spec = _resized(spec, len(y), batch_size)
                    key = spec_key(spec)
                    stored = samples.get(spec) if samples is not None and not round_ else None
                    if not round_ and key in ran:
                        (run_samples, run_seconds, run_passed), taken[spec.attack] = ran[key], "this run"
                    elif stored is not None:
                        (run_samples, run_seconds, run_passed), taken[spec.attack] = stored[:3], stored[3]
                    else:
                        start = time.perf_counter()
                        res = ev.attack_curve(model, x, y, spec, input_shape, convergence=False)
                        run_seconds = time.perf_counter() - start
                        run_samples, run_passed = res.samples, bool(res.checks["passed"].all())
                        if samples is not None and not round_:
                            samples.put(spec, run_samples, run_seconds, run_passed)
                    if not round_:
                        ran.setdefault(key, (run_samples, run_seconds, run_passed))
                    seconds += run_seconds
                    info = attacks.get(spec.attack)
                    frames.append(
                        run_samples.assign(
                            attack=spec.attack,
                            kind=info.kind,
                            norm=norm,
                            prune_id="bench",
                            cr=1,
                            scenario="white-box",
                            source_cr=1.0,
                        )
                    )
                    passed &= run_passed
                if round_:
                    rec = out[name][norm]
                    rec["seconds_rounds"].append(seconds)
                    rec["seconds"] = min(rec["seconds_rounds"])
                    rec["checks_passed"] &= passed
                    continue
                frame = pd.concat(frames, ignore_index=True)
                grid = sorted({0.0, *map(float, specs[0].eps)})
                worst = aggregate.worst_case(frame, {norm: grid})
                dist = aggregate.min_distance(frame)["distance"]
                out.setdefault(name, {})[norm] = {
                    "attacks": [s.attack for s in specs],
                    "presets": [s.preset_name for s in specs],
                    "seconds": seconds,
                    "seconds_rounds": [seconds],
                    "robust_acc": dict(zip(map(float, worst["eps"]), map(float, worst["robust_acc"]))),
                    "median_distance": float(dist.median()),
                    "checks_passed": passed,
                    **per_attack(frame, norm, grid),
                    **({"runs_taken": taken} if taken else {}),
                }
    return compare_sets(out)


def spec_key(spec) -> str:
    """A digest of an attack run's whole parameter set (attack, preset, budgets, images, batch size)."""
    import hashlib

    return hashlib.sha256(json.dumps(spec.params(), sort_keys=True, default=str).encode()).hexdigest()[:16]


# what makes two attack stages the same run on the same checkpoint (besides the budgets of a fixed
# attack), and the per-sample columns a stored run keeps
SAME_RUN = ("attack", "preset", "n_samples", "attack_batch_size", "attack_seed", "attack_output")
STORE_COLUMNS = ("sample", "label", "clean_pred", "adv_pred", "eps", "success", "broken", "valid", "distance",
                 "l0_channels", "source_attack")  # fmt: skip


class SampleStore:
    """Every attack run's per-sample results of ``bench attacks`` on one checkpoint and image set, kept
    in a folder (``--samples``): ``<checkpoint>-<spec key>.parquet`` with a JSON beside it (the
    attack's parameters, seconds, whether its checks passed, device, code version, when), so that a set
    whose composition changes is worked out again from its attacks' runs instead of running them again.
    A run made on another kind of device counts as absent: its seconds and its float rounding are
    that device's (a run stored without a device was made on a CPU).  Files are written atomically;
    one that cannot be read counts as absent (and is written again).

    ``tables``: a run the results tables hold counts too (a white-box attack stage on this checkpoint
    fingerprint and device with the same attack, preset, images, batches, seed and output, and for a
    fixed-budget attack the same budgets: a minimal attack's per-sample distances do not depend on
    them), so that a benchmark on the images a sweep attacked runs only what the sweep did not."""

    def __init__(self, folder: Path, checkpoint_sha: str, device: str = "cpu", tables: bool = False):
        self.folder, self.checkpoint_sha, self.device = Path(folder), checkpoint_sha, device
        self.tables = tables

    def _path(self, spec) -> Path:
        return self.folder / f"{self.checkpoint_sha}-{spec_key(spec)}.parquet"

    def get(self, spec) -> tuple | None:
        """``(samples, seconds, checks passed, where from)`` of a stored run of ``spec``, else None."""
        path = self._path(spec)
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            if meta["params"] == json.loads(json.dumps(spec.params(), default=str)) and (
                meta.get("device", "cpu") == self.device
            ):
                return (
                    pd.read_parquet(path),
                    float(meta["seconds"]),
                    bool(meta["checks_passed"]),
                    f"{path} ({meta['when']})",
                )
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return self._from_tables(spec) if self.tables else None

    def _from_tables(self, spec) -> tuple | None:
        from prunerob import attacks

        attack = results.collect("attack")
        mine = attack[
            attack["checkpoint_sha"].eq(self.checkpoint_sha)
            & attack["device"].eq(self.device)
            & attack["scenario"].eq("white-box")
        ]
        if not len(mine):
            return None
        stages = results.collect("stages")
        want = {**spec.params(), "preset": spec.preset_name}
        minimal = attacks.get(spec.attack).kind == "minimal"
        for row in stages[stages["stage_id"].isin(set(mine["stage_id"]))].to_dict("records"):
            named = {**row, "preset": row["preset"] or next(iter(catalog.attack(spec.attack).presets))}
            same = all(named[k] == want[k] for k in SAME_RUN)
            eps = json.loads(str(row["eps"]))
            if not same or not (
                minimal or (len(eps) == len(want["eps"]) and np.allclose(eps, want["eps"], atol=1e-12))
            ):
                continue
            stage_id = str(row["stage_id"])
            path = results.table_path("samples", stage_id)
            try:
                frame = pd.read_parquet(path)
            except OSError:
                continue
            run = mine[mine["stage_id"] == stage_id]
            # a minimal attack's rows each carry its one run's seconds, a fixed attack's one budget's each
            seconds = float(run["seconds"].max() if minimal else run["seconds"].sum())
            kept = [c for c in STORE_COLUMNS if c in frame.columns]
            return frame[kept], seconds, bool(run["all_checks_passed"].all()), f"{path} (the tables)"
        return None

    def put(self, spec, samples: pd.DataFrame, seconds: float, passed: bool) -> None:
        path = self._path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        results.atomic_write_bytes(path, lambda p: samples.to_parquet(p, index=False))
        meta = {
            "params": json.loads(json.dumps(spec.params(), default=str)),
            "checkpoint_sha": self.checkpoint_sha,
            "seconds": seconds,
            "checks_passed": passed,
            "device": self.device,
            "code_version": results.code_version(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        results.atomic_write_bytes(path.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps(meta, indent=1)))


def compare_sets(out: dict) -> dict:
    """Adds to a record of ``bench_attacks`` what its sets' blocks say side by side: with the default
    and the original's set ``speedup`` and per norm ``no_weaker``; with the default and the strongest
    ``default_vs_strongest`` per norm."""
    if {"default", "original"} <= set(out):
        t_default = sum(v["seconds"] for v in out["default"].values())
        t_original = sum(v["seconds"] for v in out["original"].values())
        out["speedup"] = t_original / t_default
        out["no_weaker"] = {
            norm: {
                "robust_acc": all(
                    out["default"][norm]["robust_acc"][e] <= out["original"][norm]["robust_acc"][e] + 0.01
                    for e in out["default"][norm]["robust_acc"]
                ),
                "median_distance": out["default"][norm]["median_distance"] <= out["original"][norm]["median_distance"],
            }
            for norm in out["default"]
        }
    if {"default", "strongest"} <= set(out):
        out["default_vs_strongest"] = {
            norm: default_vs_strongest(out["default"][norm]["robust_acc"], out["strongest"][norm]["robust_acc"])
            for norm in out["default"]
            if norm in out["strongest"]
        }
    return out


def per_attack(samples: pd.DataFrame, norm: str, grid: list[float]) -> dict:
    """What each attack of a set (or each component of an ensemble, by the samples' ``source_attack``)
    found on its own: ``per_attack`` (attack -> robust accuracy per budget, the attack alone) and
    ``worst_from`` (attack -> the share of the samples some attack broke whose smallest verified
    distance it found; a tie goes to the attack run first)."""
    from prunerob.evaluate import MISCLASSIFIED

    source = samples["source_attack"] if "source_attack" in samples else samples["attack"]
    source = source.where(source.notna() & (source != MISCLASSIFIED), samples["attack"])
    frame = samples.assign(source=source)
    alone = {}
    if frame["attack"].nunique() > 1:
        for attack, own in frame.groupby("attack", sort=False):
            worst = aggregate.worst_case(own, {norm: grid})
            alone[str(attack)] = dict(zip(map(float, worst["eps"]), map(float, worst["robust_acc"])))
    # the samples some attack broke (aggregate's verification rule), misclassified ones left out
    d = aggregate.verified_distance(frame).where(frame["clean_pred"] == frame["label"], np.inf)
    best = frame.assign(d=d).loc[lambda f: np.isfinite(f["d"])]
    if not len(best):
        return {"per_attack": alone, "worst_from": {}}
    won = best.loc[best.groupby("sample", sort=False)["d"].idxmin(), "source"]
    return {"per_attack": alone, "worst_from": {str(k): float(v) for k, v in won.value_counts(normalize=True).items()}}


def default_vs_strongest(default: dict, strongest: dict) -> dict:
    """The default set's robust accuracy against the strongest set's over the budgets both have:
    the largest excess (default - strongest; <= 0 where the default set is no weaker anywhere), the
    budget where it is largest, and whether it is at most 1 point (with 1e-9 of rounding room: 10
    images of 1,000 count as 1 point)."""
    budgets = [e for e in default if e in strongest]
    if not budgets:
        raise ValueError(f"no budget in common: {list(default)} and {list(strongest)}")
    excess = {e: default[e] - strongest[e] for e in budgets}
    at = max(budgets, key=lambda e: excess[e])
    return {"largest_excess": excess[at], "at_eps": at, "within_1_point": bool(excess[at] <= 0.01 + 1e-9)}


def _resized(spec, n: int, batch_size: int):
    from prunerob.spec import AttackSpec

    return AttackSpec(**{**spec.params(), "n_samples": n, "attack_batch_size": batch_size})


MEMORY_FORMAT_ARCHS = {"cnn": "mnist", "cnn_original": "mnist", "resnet8": "fashion_mnist", "vgg11": "cifar10"}


def bench_memory_format(
    archs: list[str] | None = None, n: int = 500, steps: int = 10, rounds: int = 5, seed: int = 0
) -> list[dict]:
    """Per architecture (initialised with ``seed`` at its data set's input shape, ``n`` random images
    in [0, 1]): seconds per attack step in the contiguous and in the channels-last memory format,
    which ``evaluate.attack_mode`` uses for models with convolutions: a bare forward + backward to the
    input (what any gradient attack step costs) and one step of sigma-zero (the default L0 attack,
    the study's most expensive); the formats alternate, ``rounds`` rounds, best round each; and the
    largest logit difference between the two (float rounding, not a different model)."""
    archs = archs or list(MEMORY_FORMAT_ARCHS)
    for arch in archs:  # every name checked before any work
        if arch not in MEMORY_FORMAT_ARCHS:
            raise invalid("--arch", arch, MEMORY_FORMAT_ARCHS, why="is not an architecture with convolutions")
    return [_memory_format_record(arch, n, steps, rounds, seed) for arch in archs]


def _memory_format_record(arch: str, n: int, steps: int, rounds: int, seed: int) -> dict:
    from prunerob import attacks, stages
    from prunerob import evaluate as ev

    dataset = MEMORY_FORMAT_ARCHS[arch]
    torch.manual_seed(seed)
    model = stages.new_model(arch, dataset)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *catalog.DATASETS[dataset].input_shape), generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)

    def bare():
        _bare_steps(model, x, y, steps)

    def sigma_zero():
        attacks.get("l0_sigma_zero").run(model, x, y, steps=steps - 1)  # steps - 1 steps: steps forwards

    load_before = load()
    best = {(fmt, what): float("inf") for fmt in ("contiguous", "channels_last") for what in ("bare", "sigma_zero")}
    logits = {}
    for r in range(rounds + 1):  # round 0 warms up
        for fmt in ("contiguous", "channels_last"):
            with ev.attack_mode(model, channels_last=fmt == "channels_last"):
                if r == 0:
                    with torch.no_grad():
                        logits[fmt] = model(x)
                for what, fn in (("bare", bare), ("sigma_zero", sigma_zero)):
                    seconds = _time(fn, 1)
                    if r:
                        best[fmt, what] = min(best[fmt, what], seconds / steps)
    return {
        "arch": arch,
        "dataset": dataset,
        "n": n,
        "steps": steps,
        "rounds": rounds,
        **{f"{what}_s_per_step_{fmt}": best[fmt, what] for fmt, what in best},
        "speedup_bare": best["contiguous", "bare"] / best["channels_last", "bare"],
        "speedup_sigma_zero": best["contiguous", "sigma_zero"] / best["channels_last", "sigma_zero"],
        "max_abs_logit_difference": float((logits["contiguous"] - logits["channels_last"]).abs().max()),
        "load_before_after": [load_before, load()],
    }


BATCH_ARCHS = {"mlp": "mnist", **MEMORY_FORMAT_ARCHS}
BATCH_SIZES = (50, 100, 250, 500, 1000)


def bench_batch(
    archs: list[str] | None = None,
    sizes: tuple[int, ...] = BATCH_SIZES,
    steps: int = 5,
    rounds: int = 3,
    seed: int = 0,
) -> list[dict]:
    """Per architecture (initialised with ``seed``, random images in [0, 1] at its data set's input
    shape): the seconds per image of one sigma-zero step (the default set's most expensive attack)
    at each batch size in ``sizes``, as the attacks run it (``evaluate.attack_mode``: channels-last
    where the model has convolutions); the sizes alternate, ``rounds`` rounds, best round each.
    Whether attacking several checkpoints in one batch could pay: a per-image cost that falls with
    the batch has overhead to share, a flat one has none."""
    archs = archs or list(BATCH_ARCHS)
    for arch in archs:  # every name checked before any work
        if arch not in BATCH_ARCHS:
            raise invalid("--arch", arch, tuple(BATCH_ARCHS), why="is not an architecture of the study")
    return [_batch_record(arch, sorted(set(sizes)), steps, rounds, seed) for arch in archs]


def _batch_record(arch: str, sizes: list[int], steps: int, rounds: int, seed: int) -> dict:
    from prunerob import attacks, stages
    from prunerob import evaluate as ev

    dataset = BATCH_ARCHS[arch]
    torch.manual_seed(seed)
    model = stages.new_model(arch, dataset)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((max(sizes), *catalog.DATASETS[dataset].input_shape), generator=gen)
    y = torch.randint(0, 10, (max(sizes),), generator=gen)
    load_before = load()
    best = dict.fromkeys(sizes, float("inf"))
    sigma_zero = attacks.get("l0_sigma_zero")
    with ev.attack_mode(model):
        for r in range(rounds + 1):  # round 0 warms up
            for size in sizes:
                start = time.perf_counter()
                sigma_zero.run(model, x[:size], y[:size], steps=steps - 1)  # steps - 1 steps: steps forwards
                seconds = time.perf_counter() - start
                if r:
                    best[size] = min(best[size], seconds / (steps * size))
    largest = max(sizes)
    return {
        "arch": arch,
        "dataset": dataset,
        "steps": steps,
        "rounds": rounds,
        "s_per_image_step": {str(size): best[size] for size in sizes},
        "relative_to_largest": {str(size): best[size] / best[largest] for size in sizes},
        "load_before_after": [load_before, load()],
    }


GRADIENT_KEYS = ("arch", "seed", "training", "structure", "scope", "criterion", "prune_dense_neurons", "cr")


def bench_gradients(profile: str, archs: list[str] | None = None, n: int = 1000, echo=print) -> list[dict]:
    """Per checkpoint that the profile's attack tables measured (``archs``: of these architectures
    only), on the first ``n`` test images of its data set: how many it classifies correctly and how
    many of those have an exactly zero input gradient (``evaluate.zero_gradients``), with the
    checkpoint's identity (``GRADIENT_KEYS``, ``checkpoint_sha``) for setting them beside its attack
    results.  A checkpoint missing from the artifacts folder, whose tables carry no ``checkpoint_sha``,
    or whose fingerprint is not the tables', is left out and named (``echo``)."""
    from prunerob import data, profiles, stages
    from prunerob import evaluate as ev

    attack = profiles.profile_results("attack", profile)
    if archs:
        known = sorted(set(attack["arch"])) if len(attack) else []
        for arch in archs:  # every name checked before any work
            if arch not in known:
                raise invalid("--arch", arch, tuple(known), why=f"has no attack results in profile {profile!r}")
        attack = attack[attack["arch"].isin(archs)]
    if not len(attack):
        return []
    checkpoints = attack.drop_duplicates(["prune_id", "cr"]).sort_values(["arch", "prune_id", "cr"])
    images: dict = {}
    records = []
    for row in checkpoints.itertuples():
        path = results.artifacts_dir() / "prune" / row.prune_id / f"cr{row.cr:g}.pt"
        if not path.exists():
            echo(f"left out: {path} is missing")
            continue
        if not isinstance(row.checkpoint_sha, str):
            echo(f"left out: {path}: its tables carry no fingerprint to check it against")
            continue
        model = stages.load_model(path, torch.device("cpu"))
        sha = stages.model_fingerprint(model)
        if row.checkpoint_sha != sha:
            echo(f"left out: {path} has fingerprint {sha}, the tables {row.checkpoint_sha}")
            continue
        if row.dataset not in images:
            x, y = data.load_split(row.dataset, train=False)
            images[row.dataset] = (data.to_float(x[:n]), y[:n])
        correct, zero = ev.zero_gradients(model, *images[row.dataset])
        records.append(
            {
                "dataset": row.dataset,
                **{k: getattr(row, k) for k in GRADIENT_KEYS},
                "prune_id": row.prune_id,
                "checkpoint_sha": sha,
                "n": int(len(correct)),
                "correct": int(correct.sum()),
                "correct_zero_gradient": int((correct & zero).sum()),
            }
        )
    return records


def load() -> list[float] | None:
    """The machine's load averages over 1, 5 and 15 minutes (runnable processes, this one included;
    None where the system has none): what else ran beside a benchmark."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def choose_sets(names: str | list[str], norms: str | list[str] | None = None) -> dict[str, dict[str, list]]:
    """The attack sets named (``"default,original"`` or a list), in that order, each with the norms
    named (``"L0,L2"``; all three by default); SpecError naming the valid ones for an unknown or
    repeated name."""

    valid = attack_sets()
    chosen = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    for name in chosen:
        if name not in valid:
            raise invalid("--sets", name, tuple(valid), why="is not an attack set")
    if not chosen or len(set(chosen)) != len(chosen):
        raise invalid("--sets", ",".join(chosen), tuple(valid), why="must name each set once")
    every = tuple(valid["default"])  # the norms, in the order every set lists them
    picked = every if norms is None else [n.strip() for n in norms.split(",")] if isinstance(norms, str) else norms
    for norm in picked:
        if norm not in every:
            raise invalid("--norms", norm, every, why="is not a norm")
    if not picked or len(set(picked)) != len(picked):
        raise invalid("--norms", ",".join(picked), every, why="must name each norm once")
    return {name: {norm: valid[name][norm] for norm in every if norm in picked} for name in chosen}


def check_attack_bench(checkpoints: list[Path], n: int, rounds: int, throughput_n: int, device: str) -> None:
    """The inputs of ``bench attacks``, checked before any attack runs (one line each, as the rest of
    the CLI): at least one checkpoint, each readable (MissingUpstream otherwise) with a data set
    that is here, ``n`` and ``throughput_n`` within its test set, ``rounds`` >= 1, a device that exists."""
    from prunerob import catalog, data, stages
    from prunerob.spec import check_device

    if not checkpoints:
        raise SpecError("bench attacks needs --checkpoint PATH (a model saved by a train or prune stage)")
    check_device(device)
    for name, value in (("--n", n), ("--rounds", rounds), ("--throughput-n", throughput_n)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise invalid(name, value, why="must be an integer >= 1")
    for path in checkpoints:
        if not Path(path).is_file():
            raise SpecError(f"--checkpoint {path}: no such file (a model saved by a train or prune stage)")
        blob = stages._load_blob(Path(path))
        if not isinstance(blob, dict) or "dataset" not in blob or "arch" not in blob:
            raise SpecError(f"--checkpoint {path}: not a model saved by a train or prune stage")
        known = catalog.DATASETS.get(blob["dataset"])
        size = known.test_size if known is not None else None
        for name, value in (("--n", n), ("--throughput-n", throughput_n)):
            if size is not None and value > size:
                raise invalid(name, value, why=f"is more than the {size} test images of {blob['dataset']} ({path})")
        data.check_available(blob["dataset"])


def checkpoint_and_images(checkpoint: Path, n: int, device: str = "auto"):
    """``(device, model, saved blob, x, y)``: the checkpoint's model on the device and the first ``n``
    test images of its data set as floats in [0, 1], with their labels, on the same device."""
    from prunerob import data, stages
    from prunerob.train import select_device

    dev = select_device(device)
    model = stages.load_model(checkpoint, dev)
    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    x, y = data.load_split(blob["dataset"], train=False)
    return dev, model, blob, data.to_float(x[:n]).to(dev), y[:n].to(dev)


def bench_attacks_on(
    checkpoint: Path,
    n: int,
    device: str = "auto",
    throughput_n: int = 500,
    rounds: int = 3,
    sets: dict | None = None,
    samples_dir: Path | None = None,
) -> dict:
    """``throughput`` on the first ``throughput_n`` test images of the checkpoint's data set (one batch)
    and ``bench_attacks`` on the first ``n`` (``rounds`` alternating rounds, best seconds of each;
    ``sets``: as ``choose_sets`` returns them, by default the default and the original's set;
    ``samples_dir``: the folder of a ``SampleStore``).  ``load_before`` and ``load_after``: the
    machine's load averages (``load()``) before and after."""
    from prunerob import data

    load_before = load()
    dev, model, blob, x, y = checkpoint_and_images(checkpoint, max(n, throughput_n), device)
    info = data.info(blob["dataset"])
    chosen = sets if sets is not None else choose_sets("default,original")
    store = None
    if samples_dir is not None:
        from prunerob import stages

        # the fingerprint the tables use; a checkpoint saved without one gets it from its weights
        sha = identity(blob)["checkpoint_sha"] or stages.model_fingerprint(model)
        store = SampleStore(samples_dir, sha, dev.type, tables=True)
    return {
        "checkpoint": str(checkpoint),
        **identity(blob),
        "device": dev.type,
        "sets": list(chosen),
        "throughput": throughput(model, x[:throughput_n], y[:throughput_n]),
        **bench_attacks(model, x[:n], y[:n], info.input_shape, sets=chosen, rounds=rounds, samples=store),
        "load_before": load_before,
        "load_after": load(),
    }


def bench_convergence(
    checkpoint: Path, n: int, norms: str | None = None, device: str = "auto", echo=print, preset: str | None = None
) -> dict:
    """Whether each norm's default minimal attack (``DEFAULT_SET``) has converged, on more samples
    than a run's own check: the attack on the checkpoint's first ``n`` test images, then
    ``evaluate.convergence_check`` on every correctly classified one of them (twice the steps).  Per
    norm: ``robust_acc`` (the run's, per budget), ``robust_acc_twice_the_steps`` (the per-sample
    worst case of the run and the longer run), ``moved_points`` (their difference, the curve check's
    shift over all n images), ``distances_cut`` (share of the checked samples whose distance the
    longer run cut by over 5 %), ``seconds`` of the run and of the check.  ``preset``: the minimal
    attack at this preset instead of the default set's (one norm; ``minimal_at``)."""
    from prunerob import attacks, data
    from prunerob import evaluate as ev

    load_before = load()
    dev, model, blob, x, y = checkpoint_and_images(checkpoint, n, device)
    minimal = minimal_at(norms, preset)
    out: dict = {"checkpoint": str(checkpoint), **identity(blob), "device": dev.type, "n_samples": n, "norms": {}}
    for norm, spec in minimal.items():
        spec = _resized(spec, n, 500)
        start = time.perf_counter()
        res = ev.attack_curve(model, x, y, spec, data.info(blob["dataset"]).input_shape, convergence=False)
        ran = time.perf_counter() - start
        with ev.attack_mode(model):
            rows = ev.convergence_check(model, x, y, res.samples, spec, attacks.get(spec.attack), n=n)
        checked = int((res.samples["clean_pred"] == res.samples["label"]).sum())
        acc = dict(zip(res.curve["eps"].astype(float), res.curve["robust_acc"].astype(float)))
        moved = {float(r["eps"]): r["value"] * checked / n for r in rows if r["check"] == ev.CURVE_CHECK}
        out["norms"][norm] = {
            "attack": spec.attack,
            "preset": spec.preset_name,
            "n_checked": checked,
            "robust_acc": {str(e): a for e, a in acc.items()},
            "robust_acc_twice_the_steps": {str(e): a - moved.get(e, 0.0) for e, a in acc.items()},
            "moved_points": {str(e): round(100 * m, 2) for e, m in moved.items()},
            "distances_cut": next(r["value"] for r in rows if r["check"] == ev.CONVERGENCE_CHECK),
            "seconds": {"run": round(ran, 1), "twice_the_steps": round(time.perf_counter() - start - ran, 1)},
        }
        echo(json.dumps({"checkpoint": str(checkpoint), "norm": norm, **out["norms"][norm]}, indent=1))
    return {**out, "load_before": load_before, "load_after": load()}


def one_pixel_against_runs(clean_ok: np.ndarray, broken: np.ndarray, runs: dict[str, pd.DataFrame]) -> dict:
    """The 1-pixel budget of each L0 run (stage id -> its samples rows on images 0..n-1) held to the
    exhaustive one-pixel search (``broken``: the samples it broke, ``clean_ok``: correct without
    attack, both per image).  Per run and for the per-sample worst case over all of them: robust
    accuracy at 1 px, ``over_claim_points`` (images the run counts robust that one pixel breaks, per
    100 images) and ``beyond`` (images the run broke with one pixel that the search did not: a colour
    outside its values).  The search's own robust accuracy is ``robust_acc_exhaustive``."""
    n = len(clean_ok)
    exhaustive = clean_ok & ~broken

    def compare(robust: np.ndarray) -> dict:
        return {
            "robust_acc_1px": float(robust.mean()),
            "over_claim_points": round(100 * float((robust & broken).mean()), 2),
            "beyond": int((~robust & exhaustive).sum()),
        }

    out: dict = {"robust_acc_exhaustive": float(exhaustive.mean()), "runs": [], "worst_case": None}
    if runs:
        for stage_id, samples in runs.items():
            first = samples.iloc[0]
            out["runs"].append(
                {
                    "stage_id": stage_id,
                    "attack": first["attack"],
                    "preset": first["preset"],
                    **compare(robust_at(samples, 1.0, n)),
                }
            )
        worst = compare(robust_at(as_one_frame(runs), 1.0, n))
        out["worst_case"] = {"attacks": sorted({r["attack"] for r in out["runs"]}), **worst}
    return out


def as_one_frame(runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The runs' samples rows in one frame, each run its own attack (its stage id) for the worst case."""
    return pd.concat(runs.values(), ignore_index=True).assign(attack=lambda f: f["stage_id"])


def robust_at(samples: pd.DataFrame, budget: float, n: int) -> np.ndarray:
    """Per image 0..n-1: robust at ``budget`` by every run in ``samples`` (its worst case there)."""
    per = aggregate.worst_case_samples(samples, {"L0": [float(budget)]})
    robust = np.zeros(n, dtype=bool)
    robust[per["sample"].to_numpy(int)] = per["robust"].to_numpy(bool)
    return robust


def greedy_against_runs(clean_ok: np.ndarray, distance: np.ndarray, runs: dict[str, pd.DataFrame], pixels: int) -> dict:
    """The greedy pixel search (``distance``: the pixels its candidate changed, inf where it found none
    within ``pixels``) held to the per-sample worst case of the L0 runs at each budget of the L0 grid
    up to ``pixels``: ``robust_acc_greedy``, the runs' ``robust_acc`` and ``over_claim_points``
    (images the runs count robust that the greedy search breaks within the budget, per 100 images)."""
    n = len(clean_ok)
    both = as_one_frame(runs) if runs else None
    out = {}
    for budget in [b for b in L0_EPS if b <= pixels]:
        greedy = clean_ok & ~(distance <= budget)
        row = {"robust_acc_greedy": float(greedy.mean())}
        if both is not None:
            robust = robust_at(both, budget, n)
            row |= {
                "robust_acc": float(robust.mean()),
                "over_claim_points": round(100 * float((robust & ~greedy & clean_ok).mean()), 2),
            }
        out[str(budget)] = row
    return out


def l0_runs_on(sha: str | None, n: int) -> dict[str, pd.DataFrame]:
    """The white-box L0 runs of the results tables on the checkpoint with fingerprint ``sha`` that
    attacked at least its first ``n`` test images: stage id -> its samples rows of images 0..n-1."""
    if not sha:
        return {}
    attack = results.collect("attack")
    rows = attack[(attack["checkpoint_sha"] == sha) & (attack["norm"] == "L0") & (attack["n"] >= n)]
    runs = {}
    for stage_id in sorted(aggregate.white_box(rows)["stage_id"].unique()):
        samples = results.read_table_file(results.table_path("samples", stage_id))
        if samples is not None:
            runs[stage_id] = samples[samples["sample"] < n]
    return runs


def bench_onepixel(
    checkpoint: Path, n: int, device: str = "auto", values: tuple[float, ...] = (0.0, 1.0), pixels: int = 1
) -> dict:
    """The exhaustive one-pixel search (``attacks.one_pixel_search``) on the checkpoint's first ``n``
    test images (those it classifies correctly), its candidates verified with the model, held to
    every white-box L0 run of the results tables on the same checkpoint (its fingerprint) and images
    (``one_pixel_against_runs``): how far each run's 1-pixel robust accuracy over-claims.  ``pixels``
    > 1: the search goes on greedily up to that many pixels (its first round is the exhaustive one),
    and ``greedy`` holds the runs to it at each budget of the L0 grid up to ``pixels``
    (``greedy_against_runs``)."""
    from prunerob import attacks
    from prunerob import evaluate as ev
    from prunerob.train import predict

    load_before = load()
    dev, model, blob, x, y = checkpoint_and_images(checkpoint, n, device)
    with ev.attack_mode(model):
        clean_ok = predict(model, x, 500).argmax(1) == y
        start = time.perf_counter()
        cand = attacks.one_pixel_search(model, x[clean_ok], y[clean_ok], values, max_pixels=pixels)
        seconds = time.perf_counter() - start
        d = attacks.verified_distance(model, x[clean_ok], y[clean_ok], cand, "L0")
    distance = torch.full((n,), float("inf"), device=dev)
    distance[clean_ok] = d
    ident = identity(blob)
    ok, dist = clean_ok.cpu().numpy(), distance.cpu().numpy()
    runs = l0_runs_on(ident["checkpoint_sha"], n)
    greedy = {"pixels": pixels, "budgets": greedy_against_runs(ok, dist, runs, pixels)} if pixels > 1 else {}
    return {
        "checkpoint": str(checkpoint),
        **ident,
        "device": dev.type,
        "n_samples": n,
        "values": list(values),
        "clean_acc": float(ok.mean()),
        "seconds": round(seconds, 1),
        **one_pixel_against_runs(ok, ok & (dist <= 1), runs),
        **({"greedy": greedy} if greedy else {}),
        "load_before": load_before,
        "load_after": load(),
    }


def bench_onepixel_many(
    checkpoints: list[Path],
    n: int,
    device: str,
    out: Path | None,
    command: str,
    echo=print,
    beside: str | None = None,
    pixels: int = 1,
) -> Path:
    """``bench_onepixel`` on each checkpoint, inputs checked first; ``benchmarks/onepixel.json`` (or
    ``out``) is written after each checkpoint."""
    if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 1:
        raise invalid("--pixels", pixels, why="must be an integer >= 1")
    check_attack_bench(checkpoints, n, 1, 1, device)
    records: list[dict] = []
    path = out or BENCH_DIR / "onepixel.json"
    for checkpoint in checkpoints:
        records.append(bench_onepixel(Path(checkpoint), n, device, pixels=pixels))
        path = write("onepixel", records, command, out, beside)
        r = records[-1]
        worst = r["worst_case"]
        echo(
            f"{checkpoint}: one pixel (exhaustive) {100 * r['robust_acc_exhaustive']:.1f} % robust; "
            + (
                f"the tables' L0 runs ({', '.join(worst['attacks'])}) {100 * worst['robust_acc_1px']:.1f} %, "
                f"over-claim {worst['over_claim_points']:.1f} points"
                if worst
                else "no L0 run of the tables on this checkpoint"
            )
        )
        for budget, row in r.get("greedy", {}).get("budgets", {}).items():
            echo(
                f"  {budget} px: greedy search {100 * row['robust_acc_greedy']:.1f} % robust"
                + (f", the tables' runs {100 * row['robust_acc']:.1f} %" if "robust_acc" in row else "")
            )
    return path


def minimal_at(norms: str | None, preset: str | None = None) -> dict:
    """Per norm named (all three by default), the default set's minimal attack, at ``preset`` where
    one is given (then exactly one norm, and a preset that attack has; SpecError otherwise)."""
    from prunerob import attacks
    from prunerob.spec import AttackSpec

    minimal = {
        norm: next(s for s in specs if attacks.get(s.attack).kind == "minimal")
        for norm, specs in choose_sets("default", norms)["default"].items()
    }
    if preset is None:
        return minimal
    if len(minimal) != 1:
        raise invalid("--preset", preset, why="needs exactly one norm in --norms")
    return {norm: AttackSpec(**{**spec.params(), "preset": preset}) for norm, spec in minimal.items()}


def bench_convergence_many(
    checkpoints: list[Path],
    n: int,
    norms: str | None,
    device: str,
    out: Path | None,
    command: str,
    echo=print,
    preset: str | None = None,
    beside: str | None = None,
) -> Path:
    """``bench_convergence`` on each checkpoint, inputs checked first; the JSON is written after each
    checkpoint (a run stopped part way keeps what finished)."""
    minimal_at(norms, preset)
    check_attack_bench(checkpoints, n, 1, 1, device)
    records: list[dict] = []
    path = out or BENCH_DIR / "convergence.json"
    for checkpoint in checkpoints:
        records.append(bench_convergence(Path(checkpoint), n, norms, device, echo, preset))
        path = write("convergence", records, command, out, beside)
    return path


def bench_attacks_many(
    checkpoints: list[Path],
    n: int,
    device: str = "auto",
    throughput_n: int = 500,
    rounds: int = 3,
    sets: str = "default,original",
    out: Path | None = None,
    command: str = "",
    echo=print,
    norms: str | None = None,
    reuse_strongest: list[Path] | None = None,
    beside: str | None = None,
    reuse: list[Path] | None = None,
    samples_dir: Path | None = None,
) -> Path:
    """``bench_attacks_on`` for each checkpoint in turn, one record each, into one JSON file
    (``benchmarks/attacks.json`` unless ``out``) written again after every checkpoint, so that a
    long run stopped part way keeps the checkpoints it finished.  Inputs are checked first
    (``check_attack_bench``, ``choose_sets``).  ``reuse_strongest``: earlier ``bench attacks``
    JSON files whose strongest-set blocks for the same checkpoint and images are taken instead of run
    again; ``reuse``: the same for every set's blocks (default, original, strongest), each where the
    block ran what the set names now (``blocks_from``; reused blocks are marked ``reused_from``);
    ``samples_dir``: a ``SampleStore`` folder, which keeps and gives back each attack run."""
    chosen = choose_sets(sets, norms)
    if samples_dir is not None and Path(samples_dir).exists() and not Path(samples_dir).is_dir():
        raise SpecError(f"--samples {samples_dir}: is a file; it must be a folder (made if missing)")
    check_attack_bench(checkpoints, n, rounds, throughput_n, device)
    earlier = {"strongest": [r for path in reuse_strongest or [] for r in read_records(path)]}
    for path in reuse or []:
        rows = read_records(path, "--reuse")
        for name in chosen:
            earlier.setdefault(name, []).extend(rows)
    records: list[dict] = []
    path = out or BENCH_DIR / "attacks.json"
    for checkpoint in checkpoints:
        sha = identity(torch.load(checkpoint, map_location="cpu", weights_only=True))["checkpoint_sha"]
        reused = {
            name: blocks_from(earlier.get(name, []), Path(checkpoint), sha, n, name, per_norm)
            for name, per_norm in chosen.items()
        }
        to_run = {name: {norm: specs for norm, specs in per_norm.items() if norm not in reused[name]}
                  for name, per_norm in chosen.items()}  # fmt: skip
        todo = {k: v for k, v in to_run.items() if v}
        record = bench_attacks_on(Path(checkpoint), n, device, throughput_n, rounds, todo, samples_dir=samples_dir)
        for name, blocks in reused.items():
            for norm, block in blocks.items():
                record.setdefault(name, {})[norm] = block
        record["sets"] = list(chosen)
        any_reused = any(reused.values())
        records.append(compare_sets(record) if any_reused else record)  # bench_attacks compared what it ran
        path = write("attacks", records, command, out, beside)
        echo(json.dumps({"checkpoint": str(checkpoint), **summary(records[-1])}, indent=1))
    return path


def read_records(path: Path, option: str = "--reuse-strongest") -> list[dict]:
    """The records of an earlier benchmark JSON, each set's blocks marked ``reused_from`` (the file);
    SpecError (one line) if it cannot be read."""

    try:
        blob = json.loads(Path(path).read_text())
        for r in blob["records"]:
            for name in r.get("sets", []):
                for block in r.get(name, {}).values():
                    block.setdefault("reused_from", f"{path} ({blob.get('when', '?')})")
                    # JSON keys are text; a record made now keys its budgets by number
                    block["robust_acc"] = {float(k): v for k, v in block.get("robust_acc", {}).items()}
                    for attack, acc in block.get("per_attack", {}).items():
                        block["per_attack"][attack] = {float(k): v for k, v in acc.items()}
        return list(blob["records"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"{option} {path}: not a benchmark JSON with records ({exc})") from None


def identity(blob: dict) -> dict:
    """What a saved model says it is, for a benchmark record: its ``cr`` and ``checkpoint_sha`` (None
    where it does not say)."""
    meta = blob.get("meta", {})
    return {"cr": meta.get("cr"), "checkpoint_sha": meta.get("row", {}).get("checkpoint_sha")}


def blocks_from(records: list[dict], checkpoint: Path, sha: str | None, n: int, name: str, specs: dict) -> dict:
    """Set ``name``'s blocks (norm -> block) of the earlier records for this checkpoint (``sha`` its
    fingerprint) on the same ``n`` images: matched by fingerprint where both have one, else by path
    (a record written before records carried the sha); {} when there is none.  A block counts only
    if it ran the attacks and presets that ``specs`` (norm -> specs, the set as it is now) names: a
    block of an earlier definition of the set (another preset of one attack) is run again."""
    want = {norm: [[s.attack, s.preset] for s in per_norm] for norm, per_norm in specs.items()}
    blocks: dict = {}
    for r in records:
        same = (
            r.get("checkpoint_sha") == sha
            if r.get("checkpoint_sha") and sha
            else r.get("checkpoint") == str(checkpoint)
        )
        if same and r.get("n_samples") == n:
            for norm, block in r.get(name, {}).items():
                if [list(p) for p in zip(block.get("attacks", []), block.get("presets", []))] == want.get(norm):
                    blocks.setdefault(norm, block)  # the first file named wins
    return blocks


def summary(record: dict) -> dict:
    """What a record of ``bench_attacks_on`` says in short: throughput ratio, speedup, no_weaker and
    default_vs_strongest, where the sets measured them."""
    keys = ("throughput", "speedup", "no_weaker", "default_vs_strongest", "load_before", "load_after")
    return {k: record[k] for k in keys if k in record}


def bench_sweep(profile: str, workers: int = 2, grid_checkpoints: int = 73) -> list[dict]:
    """Attack cost measured in a profile's own runs (not a timed test): per model and attack run, the
    stage seconds (attack itself, from the attack tables) and the papermill seconds of the whole
    stage (kernel start, data, model and tables included, from the run records), as median and sum
    over the checkpoints attacked; and per model the default set's cost per checkpoint (the sum of
    default attacks' median stage times) projected onto ``grid_checkpoints`` checkpoints on
    ``workers`` workers (the original's MNIST grid: 12 methods x 6 CRs + the dense model = 73), and
    beside it the measured sum of those attacks' runs on the checkpoints they attacked, over the
    workers (``checkpoints_measured``: the fewest checkpoints any of them ran on).
    Machine load is not controlled: the records say what else ran only where the sweep record does.
    The last record is :func:`profile_total`."""
    from prunerob import profiles

    attack = profiles.profile_results("attack", profile)
    if not len(attack):
        return [profile_total(profile, workers)]
    stages = attack.drop_duplicates("stage_id").copy()
    stages["papermill_seconds"] = [_papermill_seconds("attack", sid) for sid in stages["stage_id"]]
    defaults = {f"{name}/{preset}" for pairs in DEFAULT_SET.values() for name, preset in pairs}
    records = []
    for (arch, training, attack_name, preset, output), g in stages.groupby(
        ["arch", "training", "attack", "preset", "attack_output"], dropna=False
    ):
        records.append(
            {
                "arch": arch,
                "training": training,
                "attack": attack_name,
                "preset": preset,
                "attack_output": output,
                "checkpoints": int(len(g)),
                "stage_seconds_median": float(g["stage_seconds"].median()),
                "stage_seconds_sum": float(g["stage_seconds"].sum()),
                "papermill_seconds_median": float(g["papermill_seconds"].median()),
                "papermill_seconds_sum": float(g["papermill_seconds"].sum()),
                "code_versions": sorted(g["code_version"].unique()),
                "default_set": f"{attack_name}/{preset}" in defaults,
            }
        )
    frame = pd.DataFrame(records)
    for (arch, training), g in frame[frame["default_set"]].groupby(["arch", "training"]):
        if len(g) == len(defaults):
            per = float(g["papermill_seconds_median"].sum())
            records.append(
                {
                    "arch": arch,
                    "training": training,
                    "projection": f"default set on {grid_checkpoints} checkpoints, {workers} workers",
                    "seconds_per_checkpoint_stage": float(g["stage_seconds_median"].sum()),
                    "seconds_per_checkpoint_papermill": per,
                    "projected_minutes": per * grid_checkpoints / workers / 60,
                    # what the profile's runs of the default set took, summed: the grid's measured
                    # time where every default attack ran on all its checkpoints (those at chance
                    # are cheap, so this is below the projection from the medians)
                    "checkpoints_measured": int(g["checkpoints"].min()),
                    "measured_minutes": float(g["papermill_seconds_sum"].sum()) / workers / 60,
                }
            )
    return [*records, profile_total(profile, workers)]


def _papermill_seconds(kind: str, stage_id: str) -> float:
    """The whole stage's seconds as papermill recorded them in its run record (kernel start, data,
    model and tables included); NaN without a readable record."""
    import nbformat

    from prunerob import results as res

    try:
        nb = nbformat.read(res.runs_dir() / kind / f"{stage_id}.ipynb", as_version=4)
        return float(nb.metadata.get("papermill", {}).get("duration") or "nan")
    except (OSError, ValueError):
        return float("nan")


def profile_total(profile: str, workers: int = 2) -> dict:
    """What the whole profile costs from nothing, read from its own run records: per kind (train,
    prune, attack) the stages and the sum of their papermill seconds, the total in hours and over
    ``workers`` workers kept busy, and the stages without a run record (not yet run, or run where no
    record was kept). The runs ran on the machines and beside the load of their day."""
    from prunerob import profiles

    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    missing = 0
    for st in profiles.expand(profiles.load_profile(profile)):
        d = _papermill_seconds(st.kind, st.id)
        counts[st.kind] = counts.get(st.kind, 0) + 1
        if math.isnan(d):
            missing += 1
        else:
            seconds[st.kind] = seconds.get(st.kind, 0.0) + d
    total = sum(seconds.values())
    return {
        "profile": profile,
        "total": f"every stage of the profile from nothing, {workers} workers",
        "stages": counts,
        "stages_without_run_record": missing,
        "hours_by_kind": {k: v / 3600 for k, v in seconds.items()},
        "hours": total / 3600,
        "hours_on_workers": total / 3600 / max(workers, 1),
    }
