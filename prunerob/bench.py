"""Benchmarks: speed goals live here, never in timed tests.  Results go to ``benchmarks/*.json``.

    python -m prunerob bench prune [--arch vgg11]     time to compute and apply masks, every method and CR
    python -m prunerob bench attacks --checkpoint P   attack throughput; default vs the original's attack set

Each JSON file holds the machine it ran on (cores, processor, torch and its threads), the command,
and one record per measurement; compare ratios measured in one run, not across runs.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from prunerob import models, prune, results
from prunerob.spec import CRITERIA, DEFAULT_CRS, SCOPES, STRUCTURES

BENCH_DIR = results.ROOT / "benchmarks"


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "tcmalloc": "tcmalloc" in os.environ.get("LD_PRELOAD", ""), "code_version": results.code_version()}


def write(name: str, records: list[dict], command: str, out: Path | None = None) -> Path:
    path = out or BENCH_DIR / f"{name}.json"
    blob = {"benchmark": name, "command": command, "machine": machine(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "records": records}
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
                    masks = prune.compute_masks(model, structure=structure, scope=scope, criterion=criterion,
                                                cr=cr, generator=gen)
                    t1 = time.perf_counter()
                    prune.apply_masks(model, masks)
                    t2 = time.perf_counter()
                    total = prune.sparsity_report(model).iloc[-1]
                    records.append({"arch": arch, "structure": structure, "scope": scope, "criterion": criterion,
                                    "cr": cr, "compute_s": t1 - t0, "apply_s": t2 - t1,
                                    "kept": float(total["kept_fraction"]), "n_prunable": int(total["n_weights"])})
    return records


def summarize_prune(records: list[dict]) -> str:
    """Seconds to compute + apply masks per method, summed over the schedule, slowest first."""
    import pandas as pd

    frame = pd.DataFrame(records)
    frame["seconds"] = frame["compute_s"] + frame["apply_s"]
    table = frame.pivot_table(index=["structure", "scope", "criterion"], columns="cr", values="seconds")
    return table.round(3).to_string()


def _bare_rate(model, x, y, batch_size: int, repeats: int = 3) -> float:
    """Images per second of a plain forward + backward to the input (what any attack step costs)."""
    import torch.nn.functional as F

    xb, yb = x[:batch_size].clone(), y[:batch_size]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(5):
            inp = xb.clone().requires_grad_(True)
            loss = F.cross_entropy(model(inp), yb)
            torch.autograd.grad(loss, inp)
        best = min(best, time.perf_counter() - start)
    return 5 * len(xb) / best


def bench_attacks(model, x, y, input_shape, batch_size: int = 500) -> dict:
    """(a) PGD throughput over the bare forward+backward rate; (b) the default attack set against the
    original's (PGD-40 at each eps, C&W and Brendel-Bethge at their presets) on the same samples."""
    from prunerob import attacks
    from prunerob import evaluate as ev
    from prunerob.spec import PAPER_LINF_EPS, AttackSpec

    out: dict = {"n_samples": len(y), "batch_size": batch_size}
    with ev.attack_mode(model):
        bare = _bare_rate(model, x, y, min(batch_size, len(y)))
    pgd = AttackSpec(attack="linf_pgd", eps=(8 / 255,), n_samples=len(y), attack_batch_size=batch_size)
    with ev.attack_mode(model):
        start = time.perf_counter()
        ev.run_fixed(model, x, y, pgd, attacks.get("linf_pgd"), 8 / 255)
        seconds = time.perf_counter() - start
    steps = pgd.preset_params["steps"]
    out["throughput"] = {"bare_images_per_s": bare, "pgd_sample_steps_per_s": len(y) * steps / seconds,
                         "ratio": len(y) * steps / seconds / bare}
    l2_eps = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    l0_eps = (1, 2, 4, 8, 12, 16, 24, 32)
    sets = {
        "default": [("Linf", AttackSpec(attack="linf_fmn", eps=PAPER_LINF_EPS)),
                    ("L2", AttackSpec(attack="l2_ddn", eps=l2_eps)),
                    ("L0", AttackSpec(attack="l0_fmn", eps=l0_eps))],
        "original": [("Linf", AttackSpec(attack="linf_pgd", eps=PAPER_LINF_EPS)),
                     ("L2", AttackSpec(attack="l2_cw", eps=l2_eps)),
                     ("L0", AttackSpec(attack="l0_bb", eps=l0_eps))],
    }
    for name, specs in sets.items():
        out[name] = {}
        for norm, spec in specs:
            spec = AttackSpec(**{**spec.params(), "n_samples": len(y), "attack_batch_size": batch_size})
            start = time.perf_counter()
            res = ev.attack_curve(model, x, y, spec, input_shape)
            seconds = time.perf_counter() - start
            d = res.samples.drop_duplicates("sample", keep="last")["distance"] if "distance" in res.samples else None
            out[name][norm] = {
                "attack": spec.attack, "seconds": seconds,
                "robust_acc": dict(zip(map(float, res.curve["eps"]), map(float, res.curve["robust_acc"]))),
                "median_distance": float(d.median()) if d is not None and res.samples.get("eps") is None else None,
                "checks_passed": bool(res.checks["passed"].all()),
            }
    t_default = sum(v["seconds"] for v in out["default"].values())
    t_original = sum(v["seconds"] for v in out["original"].values())
    out["speedup"] = t_original / t_default
    out["no_weaker"] = {
        norm: all(out["default"][norm]["robust_acc"][e] <= out["original"][norm]["robust_acc"][e] + 0.01
                  for e in out["default"][norm]["robust_acc"])
        for norm in ("Linf", "L2", "L0")}
    return out


def bench_attacks_on(checkpoint: Path, n: int, device: str = "auto") -> dict:
    """``bench_attacks`` on the first ``n`` test images of the checkpoint's data set."""
    from prunerob import data, stages
    from prunerob.train import select_device

    dev = select_device(device)
    model = stages.load_model(checkpoint, dev)
    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    info = data.info(blob["dataset"])
    x, y = data.load_split(blob["dataset"], train=False)
    x, y = data.to_float(x[:n]).to(dev), y[:n].to(dev)
    return {"checkpoint": str(checkpoint), "device": dev.type, **bench_attacks(model, x, y, info.input_shape)}
