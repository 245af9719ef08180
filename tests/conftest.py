"""Shared fixtures: real MNIST from $PRUNEROB_DATA (CI: ../shared/data), outputs in temp folders."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if "PRUNEROB_DATA" not in os.environ and SHARED_DATA.exists():
    os.environ["PRUNEROB_DATA"] = str(SHARED_DATA)
# Tests that call a train or prune stage's body in this process (with torch's fastest kernels) accept
# weights that depend on the processor; stages run through `stage` or `sweep` start their kernels
# with portable math all the same (the kernel manager drops this), and test_portable_math checks it.
os.environ.setdefault("PRUNEROB_NATIVE_MATH", "1")


@pytest.fixture
def out_dirs(tmp_path, monkeypatch):
    """Results, checkpoints and run records go to a temp folder, never into the repository."""
    dirs = {name: tmp_path / name for name in ("results", "artifacts", "runs")}
    monkeypatch.setenv("PRUNEROB_RESULTS", str(dirs["results"]))
    monkeypatch.setenv("PRUNEROB_ARTIFACTS", str(dirs["artifacts"]))
    monkeypatch.setenv("PRUNEROB_RUNS", str(dirs["runs"]))
    return dirs


@pytest.fixture(scope="session")
def mnist():
    from prunerob import data
    from prunerob.spec import DataSpec

    return data.load(DataSpec(dataset="mnist"))


@pytest.fixture(scope="session")
def trained_cnn(mnist):
    """A CNN trained for one epoch on real MNIST (about 97 % test accuracy)."""
    from prunerob import stages
    from prunerob.spec import TrainSpec
    from prunerob.train import fit

    model = stages.new_model("cnn", "mnist")
    fit(model, mnist, TrainSpec(max_epochs=1, batch_size=128), progress=False)
    return model.eval()


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """The smoke profile run from nothing through the real sweep (papermill, process pool)."""
    from prunerob import sweep

    base = tmp_path_factory.mktemp("smoke")
    env = {
        "PRUNEROB_RESULTS": base / "results",
        "PRUNEROB_ARTIFACTS": base / "artifacts",
        "PRUNEROB_RUNS": base / "runs",
        "PRUNEROB_PROFILE": "smoke",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, str(v))
        summary = sweep.run("smoke", progress=False)
        yield {"summary": summary, **env}


@pytest.fixture(scope="session")
def smoke_book(smoke_study, tmp_path_factory):
    """The whole book built (-W -n --keep-going) on the smoke study's tables; returns the html dir."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "jupyter-book"),
            "build",
            "-W",
            "-n",
            "--keep-going",
            "--path-output",
            str(out),
            str(ROOT),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return out / "_build" / "html"
