"""Weights that do not depend on the processor: train and prune stages run with portable CPU math.

The same stage gave other weights on an AVX-512 Intel and an AVX2 AMD processor; a stage started by
`stage` or `sweep` runs torch's default kernels and MKL in its reproducible mode. Another processor is
imitated here by restricting MKL's instruction set (MKL_ENABLE_INSTRUCTIONS), which changes the
weights of a native run but must not change a portable one. (This holds on one processor's instruction
sets; an AMD EPYC gave other weights than an Intel Xeon with portable math too: see the README.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from prunerob import stages
from prunerob.spec import TrainStage

TINY = {"dataset": "mnist", "arch": "mlp", "seed": 0, "max_epochs": 1, "n_train": 2000}


def test_a_process_without_portable_math_is_refused_before_any_work(out_dirs, monkeypatch):
    monkeypatch.delenv(stages.NATIVE_MATH_VAR, raising=False)
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT" and os.environ.get("MKL_CBWR") == "COMPATIBLE":
        pytest.skip("this test process already runs with portable math")
    with pytest.raises(RuntimeError) as err:
        stages.run_train(TrainStage.from_params(**TINY), device="cpu", progress=False)
    line = str(err.value)
    assert "\n" not in line and "ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE" in line
    assert stages.NATIVE_MATH_VAR in line
    assert not any(out_dirs["results"].rglob("*.parquet")) and not any(out_dirs["artifacts"].rglob("*.pt"))


def _train(tmp_path, name: str, extra_env: dict, portable: bool) -> str:
    """The train stage's checkpoint fingerprint, run in a fresh process: through `prunerob stage`
    (portable math), or by calling its body with the processor's own kernels."""
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_ENABLE_INSTRUCTIONS", stages.NATIVE_MATH_VAR)}
    env |= extra_env | {f"PRUNEROB_{d.upper()}": str(tmp_path / name / d) for d in ("results", "artifacts", "runs")}
    if portable:
        command = ["-m", "prunerob", "stage", "train", *[a for k, v in TINY.items() for a in ("-p", f"{k}={v}")]]
    else:
        env[stages.NATIVE_MATH_VAR] = "1"
        command = [
            "-c",
            "from prunerob import stages; from prunerob.spec import TrainStage; "
            f"stages.run_train(TrainStage.from_params(**{TINY!r}), device='cpu', progress=False)",
        ]
    subprocess.run([sys.executable, *command], env=env, check=True, capture_output=True)
    (table,) = (tmp_path / name / "results" / "train").glob("*.parquet")
    return str(pd.read_parquet(table)["checkpoint_sha"].iloc[0])


@pytest.mark.slow
def test_a_train_stage_gives_the_same_weights_whatever_the_processors_instruction_set(tmp_path):
    # another processor, imitated: torch's AVX2 kernels instead of this machine's best, MKL limited
    isas = {
        "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
        "sse": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    }
    native = {name: _train(tmp_path, f"native-{name}", env, portable=False) for name, env in isas.items()}
    if native["avx2"] == native["sse"]:
        # e.g. an AVX2-only AMD EPYC (2026-12-07): its own kernels are the imitated ones, and MKL limited
        # to SSE4.2 gave the same weights, so there is no other processor to imitate here
        pytest.skip(
            f"the imitated instruction sets give this processor's native run one set of weights ({native['sse']})"
        )
    portable = {name: _train(tmp_path, f"portable-{name}", env, portable=True) for name, env in isas.items()}
    assert portable["avx2"] == portable["sse"]
