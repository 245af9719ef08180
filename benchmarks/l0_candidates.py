"""Candidate L0 default sets worked out from the runs kept in benchmarks/attack_samples (an attack the
store lacks runs and is kept): the default set with `l0_ensemble` at another preset, each against the
strongest set, on the first 300 MNIST test images (README, "Benchmarks", 2026-12-06).

    PRUNEROB_DATA=../shared/data .venv/bin/python benchmarks/l0_candidates.py PRUNE_DIR CR [CR ...]

PRUNE_DIR: the folder of the CNN's checkpoints (artifacts/prune/prune-444cda422a34); prints, per CR and
candidate, how far it stands above the strongest set (points, at which budget) and its robust accuracy.
"""

import sys
from pathlib import Path

from prunerob import bench
from prunerob.spec import AttackSpec

folder, crs = Path(sys.argv[1]), sys.argv[2:]
sets = bench.attack_sets()
default, strongest = sets["default"]["L0"], sets["strongest"]["L0"]


def with_ensemble(preset: str) -> list:
    return [AttackSpec(attack=s.attack, preset=preset, eps=s.eps) if s.attack == "l0_ensemble" else s for s in default]


chosen = {
    "default": {"L0": default},
    "l0_ensemble strong": {"L0": with_ensemble("strong")},
    "l0_ensemble default": {"L0": with_ensemble("default")},
    "strongest": {"L0": strongest},
}
for cr in crs:
    r = bench.bench_attacks_on(
        folder / f"cr{cr}.pt", 300, device="cpu", throughput_n=10, rounds=1, sets=chosen,
        samples_dir=Path(__file__).parent / "attack_samples",
    )  # fmt: skip
    for name in chosen:
        acc = r[name]["L0"]["robust_acc"]
        above = bench.default_vs_strongest(acc, r["strongest"]["L0"]["robust_acc"])
        print(f"CR {cr} {name:20s} {100 * above['largest_excess']:.1f} points above at {above['at_eps']}:",
              {e: round(a, 3) for e, a in acc.items()}, flush=True)  # fmt: skip
