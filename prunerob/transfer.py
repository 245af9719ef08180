"""Transfer attacks in the tables: white-box against transfer robust accuracy, per compression rate.

A transfer run (``scenario`` = ``transfer``) crafted its examples on the checkpoint at ``source_cr``
and verified them on the one at ``cr`` (see ``evaluate.attack_curve``).  ``curves`` lines up, for one
attack of one pruning run, the three views the book compares: white-box on each checkpoint, crafted on
the dense model and run on each pruned one, and crafted on each pruned model and run on the dense one.
"""

from __future__ import annotations

import pandas as pd

from prunerob import stats

LABELS = {
    "white": "white-box: crafted on the model itself",
    "from_dense": "crafted on the dense model, run on the pruned one",
    "to_dense": "crafted on the pruned model, run on the dense one",
}


def curves(samples: pd.DataFrame, attack: str, dense_cr: float = 1.0) -> pd.DataFrame:
    """Robust accuracy of the fixed-budget ``attack`` per CR and eps in the three views (column
    ``method``: LABELS), on the images every run of it attacked (runs may differ in ``n_samples``),
    with 95 % Wilson intervals (``low``, ``high``) and the image count ``n``.  The CR-1 point of both
    transfer views is the dense model's white-box run (transfer from a model to itself is the
    white-box attack); the pruned-to-dense view is placed at the source's CR.  Empty when
    ``attack`` has no rows.  ``samples``: the per-sample table of one pruning run."""
    rows = samples[samples["attack"] == attack]
    if not len(rows):
        return pd.DataFrame()
    common = rows.groupby("stage_id")["sample"].max().min()
    rows = rows[rows["sample"] <= common]
    acc = (
        rows.assign(robust=~rows["broken"].astype(bool))
        .groupby(["scenario", "source_cr", "cr", "norm", "eps"], as_index=False)
        .agg(robust_acc=("robust", "mean"), n=("robust", "size"))
    )
    white = acc[acc["scenario"] == "white-box"]
    dense_white = white[white["cr"] == dense_cr]
    tr = acc[acc["scenario"] == "transfer"]
    from_dense = pd.concat([dense_white, tr[tr["source_cr"] == dense_cr]])
    to_dense = tr[(tr["cr"] == dense_cr) & (tr["source_cr"] != dense_cr)]
    to_dense = pd.concat([dense_white, to_dense.assign(cr=to_dense["source_cr"])])
    out = pd.concat(
        [
            white.assign(method=LABELS["white"]),
            from_dense.assign(method=LABELS["from_dense"]),
            to_dense.assign(method=LABELS["to_dense"]),
        ],
        ignore_index=True,
    )
    out = out[["method", "cr", "eps", "norm", "robust_acc", "n"]].sort_values(["method", "cr", "eps"])
    low, high = stats.wilson_interval((out["robust_acc"] * out["n"]).round(), out["n"])
    return out.assign(low=low, high=high).reset_index(drop=True)
