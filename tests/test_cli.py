"""The CLI stops bad input before any kernel starts: one line naming what was wrong and the valid
values, exit status 2, no traceback, nothing written."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from prunerob import cli, data


def _run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _nothing_written(out_dirs):
    return not any(d.exists() and any(d.iterdir()) for d in out_dirs.values())


@pytest.mark.parametrize(
    "argv, words",
    [
        (["stage", "attack", "-p", "attack=l0_pgd", "-p", "eps=[2.5, 8.7]"], ["eps=[2.5, 8.7]", "positive integers"]),
        (["stage", "attack", "-p", "attack=l0_onepixel", "-p", "eps=[1, 2]"], ["eps=[1, 2]", "budgets up to 1"]),
        (["stage", "attack", "-p", "attack=l0_greedy", "-p", "eps=[4, 16]"], ["eps=[4, 16]", "budgets up to 4"]),
        (["stage", "prune", "-p", "crs=4"], ["crs=4 must be a list, e.g. [1, 2, 4]"]),
        (["stage", "attack", "-p", "eps=0.1"], ["eps=0.1 must be a list"]),
        (["stage", "attack", "-p", "n_samples=20000"], ["n_samples=20000", "10000 test images of mnist"]),
        (["stage", "train", "--device", "tpu"], ["device='tpu'", "valid: auto, cpu, cuda, cuda:N"]),
        (["sweep", "--profile", "smoke", "--device", "cuda:99"], ["device='cuda:99'"]),
        (["sweep", "--profile", "smoke", "--workers", "0"], ["--workers=0", "an integer >= 1"]),
        (["sweep", "--profile", "smok"], ["--profile='smok'", "smoke", "cpu"]),
        (["sweep", "--profile", "smoke", "--stop-after", "0"], ["--stop-after=0.0", "a number of hours > 0"]),
        (
            ["sweep", "--profile", "smoke", "--stop-after", "1", "--scheduler", "tcp://127.0.0.1:9"],
            ["--stop-after=1.0", "local pool"],
        ),
        (["sweep", "--profile", "smoke", "--finish-by", "-1"], ["--finish-by=-1.0", "a number of hours > 0"]),
        (
            ["sweep", "--profile", "smoke", "--stop-after", "1", "--finish-by", "2"],
            ["--stop-after=1.0 and --finish-by=2.0: give one of the two"],
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(argv, words, out_dirs, capsys):
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err
    assert _nothing_written(out_dirs)


@pytest.mark.parametrize(
    "args, words",
    [
        ([], ["bench attacks needs --checkpoint PATH"]),
        (["--checkpoint", "{tmp}/missing.pt"], ["--checkpoint {tmp}/missing.pt: no such file"]),
        (
            ["--checkpoint", "{tmp}/model.pt", "--checkpoint", "{tmp}/missing.pt"],
            ["--checkpoint {tmp}/missing.pt: no such file"],
        ),
        (
            ["--checkpoint", "{tmp}/missing.pt", "--sets", "default,strongst"],
            ["--sets='strongst' is not an attack set", "valid: default, original, strongest"],
        ),
        (["--checkpoint", "{tmp}/model.pt", "--sets", "default,default"], ["must name each set once"]),
        (["--checkpoint", "{tmp}/model.pt", "--norms", "L0,L3"], ["--norms='L3' is not a norm", "valid: Linf, L2, L0"]),
        (["--checkpoint", "{tmp}/model.pt", "--rounds", "0"], ["--rounds=0 must be an integer >= 1"]),
        (["--checkpoint", "{tmp}/model.pt", "--n", "20000"], ["--n=20000", "10000 test images of mnist"]),
        (["--checkpoint", "{tmp}/model.pt", "--device", "tpu"], ["device='tpu'"]),
        (["--checkpoint", "{tmp}/garbled.pt"], ["{tmp}/garbled.pt is unreadable"]),
        (["--checkpoint", "{tmp}/other.pt"], ["{tmp}/other.pt: not a model saved by a train or prune stage"]),
    ],
)
def test_bench_attacks_checks_its_input_before_any_attack(args, words, tmp_path, capsys):
    import torch

    torch.save({"arch": "cnn", "dataset": "mnist", "state_dict": {}}, tmp_path / "model.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    (tmp_path / "garbled.pt").write_bytes(b"not a checkpoint")
    out = tmp_path / "attacks.json"
    argv = ["bench", "attacks", *(a.format(tmp=tmp_path) for a in args), "--out", str(out)]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w.format(tmp=tmp_path) in err, err
    assert not out.exists()


def test_stage_names_the_upstream_stage_to_run_first(out_dirs, capsys):
    code, _, err = _run(["stage", "attack", "-p", "arch=mlp", "-p", "crs=[1, 2]", "-p", "cr=2"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "CR 2 checkpoint of prune stage prune-" in err and "is missing" in err
    assert "python -m prunerob stage prune -p 'arch=mlp' -p 'crs=[1,2]'" in err
    assert _nothing_written(out_dirs)


def test_missing_data_names_the_data_set_and_folder_and_leaves_no_folder(out_dirs, tmp_path, monkeypatch, capsys):
    root = tmp_path / "no-data"
    monkeypatch.setenv("PRUNEROB_DATA", str(root))
    offline = dataclasses.replace(data.DATASETS["mnist"], load=_offline(data.DATASETS["mnist"].load))
    monkeypatch.setitem(data.DATASETS, "mnist", offline)
    code, _, err = _run(["stage", "train", "-p", "max_epochs=1"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "data set 'mnist' is not in" in err and str(root) in err
    assert "no internet here (and more words after it)" in err  # the library's text, whole
    assert not root.exists()  # no empty MNIST/raw left behind
    assert _nothing_written(out_dirs)


def _offline(load):
    def run(root, train, download):
        if download:
            (root / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does
            raise RuntimeError("Error downloading: no internet here (and more words after it)")
        return load(root, train, download)

    return run


def test_profiles_lists_every_profile_and_marks_a_broken_one(tmp_path, monkeypatch, capsys):
    from prunerob import profiles

    for name in ("smoke", "cpu"):
        (tmp_path / f"{name}.yaml").write_text((profiles.PROFILES_DIR / f"{name}.yaml").read_text())
    (tmp_path / "broken.yaml").write_text("grid:\n  - dataset: mnist\n    arch: [cnn, mlp\n")
    monkeypatch.setenv("PRUNEROB_PROFILES", str(tmp_path))
    code, out, _ = _run(["profiles"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["broken", "cpu", "smoke"]
    assert "BROKEN" in lines[0] and "broken.yaml, line" in lines[0]


def test_the_real_cli_prints_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "prunerob", "stage", "prune", "-p", "crs=4"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: crs=4 must be a list, e.g. [1, 2, 4]"
    assert "Traceback" not in result.stderr


def test_a_failed_stage_line_is_its_whole_last_error_line():
    from papermill.exceptions import PapermillExecutionError

    from prunerob import runs

    message = "the data set is " + "much " * 200 + "too small"  # longer than any cut
    exc = PapermillExecutionError(
        5, 5, "stages.run_train(stage)", "ValueError", message, ["\x1b[0;31mTraceback\x1b[0m", "..."]
    )
    assert runs.last_error_line(exc) == f"ValueError: {message}"
    assert runs.last_error_line(RuntimeError("first\nsecond line, whole\n")) == "RuntimeError: second line, whole"


def test_stage_kernels_start_without_the_tcp_warning_and_stream_progress():
    """The kernel's log level hides ipykernel's "running over TCP without encryption" warning; a
    stage's progress bars reach the terminal through papermill's stderr_file."""
    import inspect

    from prunerob import runs

    assert "--IPKernelApp.log_level=ERROR" in runs.KERNEL_ARGS
    source = inspect.getsource(runs.execute_stage)
    assert "extra_arguments=KERNEL_ARGS" in source and "stderr_file=" in source


@pytest.mark.slow
def test_relative_output_folders_are_taken_from_the_commands_working_folder(tmp_path):
    """``PRUNEROB_RESULTS=results python -m prunerob stage ...`` writes under ./results, as a user
    reads it: the stage's kernel (working folder book/experiments) gets the folder made absolute; the
    run record goes beside the results (./runs), never over the committed book/runs."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PRUNEROB_RUNS"}
    env |= {"PRUNEROB_RESULTS": "results", "PRUNEROB_ARTIFACTS": "artifacts"}
    params = ["-p", "arch=mlp", "-p", "n_train=500", "-p", "n_eval=200", "-p", "max_epochs=1"]
    proc = subprocess.run(
        [sys.executable, "-m", "prunerob", "stage", "train", *params],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (table,) = (tmp_path / "results" / "train").glob("train-*.parquet")
    assert (tmp_path / "artifacts" / "train" / f"{table.stem}.pt").exists()
    assert (tmp_path / "runs" / "train" / f"{table.stem}.ipynb").exists()
    experiments = Path(__file__).resolve().parents[1] / "book" / "experiments"
    assert not (experiments / "results").exists() and not (experiments / "artifacts").exists()
