"""The original study's published result tables, summarized into one small tidy table.

Merkle, Samsinger and Schöttle published their results as 36 CSV files (repository
``FlorianMerkle/network-pruning-and-robustness``, ``Pipelines/final-results/``); this module reads
them and writes ``book/results/reference/merkle2021.parquet``, which is committed so the book can
put the original numbers beside the reproduced ones (cite the paper when showing them).

    python -m prunerob reference --source ../shared/reference/merkle2021

Conversions (see the source's README): PGD columns hold attack *success rates*, so robust accuracy
is 1 minus them; C&W (L2) and Brendel-Bethge (L0) columns hold per-sample minimal distances, from
which robust accuracy at a budget is the share of samples whose distance is at least it (the rule
that reproduces the authors' figures, ``rule = "original"``) or greater than it (the usual threat
model, ``rule = "threat_model"``).
"""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from prunerob import results

MODELS = {"CNN": ("mnist", "cnn"), "ResNet8": ("cifar10", "resnet8"), "VGG": ("cifar10", "vgg11"),
          "ResNet": ("imagenette", "resnet18")}
STRUCTURES = {"unstructured": "unstructured", "structured-kernel": "kernel", "structured-filter": "filter"}
PGD_GRIDS = {  # x/255, by the code at the commit that produced each file
    "CNN": (2, 4, 8, 16, 32), "ResNet8": (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
    "VGG": (0.5, 1, 2, 4, 8, 16, 32), "ResNet": (0.125, 0.25, 0.5, 1, 2, 4)}
L2_GRID = (0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
L0_GRID = (1, 2, 4, 8, 12, 16, 24, 32)
CITATION = "Merkle, Samsinger, Schöttle (2021), Pruning in the Face of Adversaries, arXiv:2108.08560"
FILE_NAME = re.compile(r"^(CNN|ResNet8|VGG|ResNet)-(magnitude|random)-(global|local)-(.+)\.csv$")


def reference_path() -> Path:
    """Fixed beside the code (not under $PRUNEROB_RESULTS): it is published data, not a result of ours."""
    return results.ROOT / "book" / "results" / "reference" / "merkle2021.parquet"


def _distances(cell: str) -> np.ndarray:
    """The per-sample distances: the first list inside a '([...], ...)' cell (empty if not run)."""
    match = re.match(r"\s*\(\s*\[([^\]]*)\]", cell or "")
    if not match or not match.group(1).strip():
        return np.array([])
    return np.array([float(v) for v in match.group(1).split(",")])


def summarize(source: Path) -> pd.DataFrame:
    rows = []
    files = sorted(p for p in Path(source).glob("*.csv") if FILE_NAME.match(p.name))
    if not files:
        raise FileNotFoundError(f"no result files like CNN-magnitude-global-unstructured.csv in {source}")
    csv.field_size_limit(1 << 30)
    for path in files:
        model, criterion, scope, structure = FILE_NAME.match(path.name).groups()
        dataset, arch = MODELS[model]
        with open(path, newline="") as fh:
            for order, rec in enumerate(csv.DictReader(fh)):
                cr = round(1 / (1 - float(rec["pruning_ratio"])))
                base = {"dataset": dataset, "arch": arch, "structure": STRUCTURES[structure], "scope": scope,
                        "criterion": criterion, "run": int(rec["iteration"]), "row": order, "cr": float(cr),
                        "clean_acc": float(rec["accuracy"]), "n_prunable": int(rec["total_params"]),
                        "n_kept": int(rec["params_left"]), "source": path.name}
                rows.append({**base, "attack": "clean", "norm": "", "eps": 0.0, "rule": "", "robust_acc":
                             float(rec["accuracy"])})
                success = ast.literal_eval(rec["pgd_linf"]) if rec["pgd_linf"].strip() else []
                for k, s in zip(PGD_GRIDS[model], success):
                    rows.append({**base, "attack": "linf_pgd", "norm": "Linf", "eps": k / 255, "rule": "",
                                 "robust_acc": 1 - float(s)})
                for attack, norm, grid, cell in (("l2_cw", "L2", L2_GRID, rec["cw_l2"]),
                                                 ("l0_bb", "L0", L0_GRID, rec["bb_l0"])):
                    d = _distances(cell)
                    if not len(d):
                        continue
                    for eps in grid:
                        rows.append({**base, "attack": attack, "norm": norm, "eps": float(eps), "rule": "original",
                                     "robust_acc": float((d >= eps).mean())})
                        rows.append({**base, "attack": attack, "norm": norm, "eps": float(eps),
                                     "rule": "threat_model", "robust_acc": float((d > eps).mean())})
    frame = pd.DataFrame(rows)
    frame["citation"] = CITATION
    return frame


def write(source: Path) -> Path:
    frame = summarize(source)
    path = reference_path()
    return results.atomic_write_bytes(path, lambda p: frame.to_parquet(p, index=False))


def load() -> pd.DataFrame:
    """The committed summary (empty if it was never written)."""
    frame = results.read_table_file(reference_path())
    return frame if frame is not None else pd.DataFrame()
