"""Cheaper routes to sigma-zero's 6,000-step reading, measured on 2026-12-04 (README, "Benchmarks"):
warm restarts from the best point, a greedy revert of changed pixels, another learning rate; and on
2026-12-06, stopping a sample early once its best distance stops falling.

    PRUNEROB_DATA=../shared/data .venv/bin/python benchmarks/sigma_zero_routes.py MODE CHECKPOINT

MODE: ``greedy`` (2,000 steps, then changed pixels reverted one at a time while the point stays
adversarial), ``restart`` (1,000 steps, then warm restarts of 1,000 from the best point), ``params``
(2,000 steps at lr 3), ``patience`` (6,000 steps with every sample's improvements traced; per
patience P, a sample stopped P steps after its last improvement keeps the distance it had then: the
samples' dynamics are independent, so the trace gives each patience's result and its cost in
sample-steps; prints them). First 300 MNIST test images, one thread; prints the seconds and the robust
accuracy at 1 / 2 / 4 / 8 / 12 px (robust iff the verified distance exceeds the budget).
"""

import inspect
import sys
import time

import torch

from prunerob import attacks, data, stages

torch.set_num_threads(1)
mode, checkpoint = sys.argv[1], sys.argv[2]
model = stages.load_model(checkpoint, torch.device("cpu"))
model.requires_grad_(False)
x, y = data.load_split("mnist", train=False)
x, y = data.to_float(x[:300]), y[:300]
ok = model(x).argmax(1) == y


def report(tag: str, adv: torch.Tensor, t0: float) -> None:
    d = attacks.verified_distance(model, x, y, adv, "L0")
    d = torch.where(ok, d, torch.zeros_like(d))
    acc = {e: round(float((d > e).float().mean()), 4) for e in (1, 2, 4, 8, 12)}
    print(mode, tag, round(time.time() - t0), acc, flush=True)


def greedy_revert(adv: torch.Tensor, rounds: int = 40) -> torch.Tensor:
    """Per sample and round: the first changed pixel whose revert leaves the point adversarial is
    reverted; stops when no sample has such a pixel."""
    adv = adv.clone()
    for _ in range(rounds):
        changed = ((adv - x) != 0).any(1).flatten(1).nonzero()  # (sample, pixel) pairs
        found = torch.zeros(len(x), dtype=torch.bool)
        best = adv.clone()
        for chunk in changed.split(4096):
            s, p = chunk[:, 0], chunk[:, 1]
            trial = adv[s].clone().flatten(2)
            rows = torch.arange(len(s))
            trial[rows, :, p] = x[s].flatten(2)[rows, :, p]
            trial = trial.view(-1, *x.shape[1:])
            with torch.no_grad():
                wrong = model(trial).argmax(1) != y[s]
            for j in wrong.nonzero().flatten().tolist():
                if not found[s[j]]:
                    found[s[j]] = True
                    best[s[j]] = trial[j]
        if not found.any():
            break
        adv = torch.where(found.view(-1, 1, 1, 1), best, adv)
    return adv


def rewritten(argument: str, line: str, new_lines: str):
    """attacks._l0_sigma_zero with one more keyword ``argument`` (default None) and ``line`` of its
    body replaced by ``new_lines``."""
    src = inspect.getsource(attacks._l0_sigma_zero)
    src = src.replace(
        "threshold_factor: float = 0.01,\n) -> torch.Tensor:",
        f"threshold_factor: float = 0.01,\n    {argument}=None,\n) -> torch.Tensor:",
    )
    assert line in src, line
    namespace = dict(attacks.__dict__)
    exec(src.replace(line, new_lines), namespace)  # noqa: S102 - the library's own function, one line changed
    return namespace["_l0_sigma_zero"]


def warm_startable():
    """sigma-zero with an ``init`` point (its perturbation starts at ``init - x``)."""
    return rewritten(
        "init",
        "delta = torch.zeros_like(x, requires_grad=True)",
        "delta = (torch.zeros_like(x) if init is None else (init - x)).requires_grad_(True)",
    )


def traced():
    """sigma-zero with a ``trace`` list: (step, sample, pixels) of every improvement."""
    line = "best_l0 = torch.where(better, l0, best_l0)"
    return rewritten(
        "trace", line, line + "\n        trace.extend((i, j, int(l0[j])) for j in better.nonzero().flatten().tolist())"
    )


def patience_table(trace: list, steps: int = 6000) -> None:
    """Per patience: the share of the full run's sample-steps it costs and the robust accuracy it
    loses (points, of all 300 images) at each budget."""
    hist: dict[int, list] = {}
    for i, j, l0 in trace:
        hist.setdefault(j, []).append((i, l0))
    attacked = int(ok.sum())
    full = {j: h[-1][1] for j, h in hist.items()}
    for patience in (500, 1000, 2000, 3000):
        kept, cost = {}, (attacked - len(hist)) * steps
        for j, h in hist.items():
            stop, kept[j] = min(h[-1][0] + patience, steps), h[-1][1]
            for (s0, v0), (s1, _) in zip(h, h[1:]):
                if s1 - s0 > patience:
                    stop, kept[j] = s0 + patience, v0
                    break
            cost += stop
        lost = {e: round(100 * sum((kept[j] > e) - (full[j] > e) for j in hist) / len(x), 2) for e in (1, 2, 4, 8, 12)}
        print(
            mode,
            f"patience {patience}: {cost / (attacked * steps):.2f} of the sample-steps, points lost",
            lost,
            flush=True,
        )


t0 = time.time()
if mode == "greedy":
    adv = attacks._l0_sigma_zero(model, x, y, steps=2000)
    report("2000 steps", adv, t0)
    report("2000 steps + revert", greedy_revert(adv), t0)
elif mode == "restart":
    sigma_zero = warm_startable()
    adv = sigma_zero(model, x, y, steps=1000)
    report("1000", adv, t0)
    for k in (2, 3):
        adv = sigma_zero(model, x, y, steps=1000, init=adv)
        report(f"{k} x 1000", adv, t0)
elif mode == "params":
    report("2000 steps, lr 3", attacks._l0_sigma_zero(model, x, y, steps=2000, lr=3.0), t0)
elif mode == "patience":
    trace: list = []
    adv = traced()(model, x[ok], y[ok], steps=6000, trace=trace)
    full = x.clone()
    full[ok] = adv
    report("6000 steps", full, t0)
    patience_table(trace)
else:
    sys.exit(f"unknown mode {mode!r}; valid: greedy, restart, params, patience")
