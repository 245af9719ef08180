"""Shared fixtures: real MNIST from $PRUNEROB_DATA (CI: ../shared/data), outputs in temp folders."""

import hashlib
import os
from pathlib import Path

import pytest
import torch

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


def _train_cnn(mnist, n_train: int, max_epochs: int):
    from prunerob import stages
    from prunerob.spec import TrainSpec
    from prunerob.train import fit

    data = type(mnist)(
        "mnist",
        mnist.train_x[:n_train],
        mnist.train_y[:n_train],
        mnist.val_x[:1000],
        mnist.val_y[:1000],
        mnist.test_x,
        mnist.test_y,
    )
    torch.manual_seed(0)
    model = stages.new_model("cnn", "mnist")
    fit(model, data, TrainSpec(max_epochs=max_epochs, batch_size=128), progress=False)
    return model.eval()


N_TRAIN, EPOCHS = 12000, 2


@pytest.fixture(scope="session")
def trained_cnn(mnist, request):
    """A CNN trained for two epochs on the first 12,000 real MNIST training images (about 95 % test
    accuracy): what the attack and verification tests need, made in seconds. Cached between runs in
    pytest's cache folder, keyed by the code and torch version that made it (a fresh clone trains it)."""
    key = hashlib.sha256(
        b"".join((ROOT / "prunerob" / f).read_bytes() for f in ("models.py", "train.py", "data.py"))
        + torch.__version__.encode()
        + f"{torch.get_num_threads()} {N_TRAIN} {EPOCHS}".encode()
    ).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    folder = cache.mkdir("prunerob") if cache is not None else None
    path = folder / f"trained_cnn-{key}.pt" if folder is not None else None
    if path is not None and path.exists():
        from prunerob import stages

        model = stages.new_model("cnn", "mnist")
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    model = _train_cnn(mnist, n_train=N_TRAIN, max_epochs=EPOCHS)
    if path is not None:
        torch.save(model.state_dict(), path)
    return model


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
