"""RobustBench model-zoo entries as dense models: load from a local model folder, prune, reload, attack.

CIFAR-10 and the zoo's weights are not on this machine: the data is fake and shaped like CIFAR-10,
and the checkpoint is a zoo architecture with random weights, saved the way RobustBench's files are
(a ``state_dict`` entry whose keys carry DataParallel's ``module.`` prefix) in RobustBench's folder
layout ``<model dir>/cifar10/Linf/<name>.pt``.
"""

import dataclasses
import importlib.util
import sys

import pytest
import torch

from prunerob import _autoattack_shim, data, models, prune, stages, zoo
from prunerob.spec import AttackStage, PruneStage, SpecError, TrainStage

# A WideResNet-28-4 (5.8 M weights): the smallest CIFAR-10 Linf zoo entry, and of the family of the
# paper profile's entries (WRN-28-10), with the same 1x1 shortcuts.
NAME = "Ding2020MMA"
ARCH = f"rb:Linf:{NAME}"


@pytest.fixture
def fake_cifar10(monkeypatch):
    """CIFAR-10 replaced by 20 training and 4 test images of its shape (uint8, 3x32x32): few, as a
    WideResNet on CPU is slow."""

    def load(root, train, download):
        g = torch.Generator().manual_seed(int(train))
        n = 20 if train else 4
        return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10

    monkeypatch.setitem(data.DATASETS, "cifar10", dataclasses.replace(data.DATASETS["cifar10"], load=load))


@pytest.fixture
def zoo_checkpoint(tmp_path, monkeypatch):
    """The zoo architecture with random weights (BatchNorm statistics included), saved in the zoo's
    layout under a temp model dir; returns the model it was made from."""
    torch.manual_seed(0)
    model = zoo.build(ARCH, "cifar10")
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "robustbench" / "cifar10" / "Linf" / f"{NAME}.pt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    monkeypatch.setenv("PRUNEROB_ROBUSTBENCH_DIR", str(tmp_path / "robustbench"))
    return model.eval()


def test_shim_lets_robustbench_import_and_its_autoattack_says_it_is_missing():
    if not _autoattack_shim.is_stub() and importlib.util.find_spec("autoattack") is not None:
        pytest.skip("the real AutoAttack is installed: no stub needed")
    _autoattack_shim.install()
    import robustbench
    from robustbench.utils import load_model  # noqa: F401 - what the zoo needs

    assert robustbench.load_model is load_model and _autoattack_shim.is_stub(sys.modules["autoattack"])
    from autoattack import AutoAttack
    from autoattack.state import EvaluationState

    with pytest.raises(_autoattack_shim.AutoAttackMissing, match="real AutoAttack is not installed.*pip install"):
        AutoAttack(torch.nn.Identity(), norm="Linf", eps=8 / 255)
    with pytest.raises(_autoattack_shim.AutoAttackMissing, match="from_disk"):
        EvaluationState.from_disk("state.json")
    assert _autoattack_shim.install()  # idempotent


@pytest.mark.parametrize(
    "params, words",
    [
        (
            {"dataset": "cifar10", "arch": "rb:Linf:NoSuchModel"},
            ["'NoSuchModel'", "valid:", "Carmon2019Unlabeled", "Standard"],
        ),
        ({"dataset": "mnist", "arch": "rb:Linf:Standard"}, ["dataset must be one of cifar10", "'mnist'"]),
        ({"dataset": "cifar10", "arch": "rb:Linfty:Standard"}, ["'Linfty'", "Linf, L2, corruptions"]),
        ({"dataset": "cifar10", "arch": "rb:Standard"}, ["rb:<threat model>:<zoo name>"]),
        ({"arch": "wrn"}, ["arch='wrn'", "cnn", "rb:<threat model>:<RobustBench zoo name>"]),
    ],
)
def test_bad_zoo_names_say_what_is_valid(params, words):
    with pytest.raises(SpecError) as err:
        TrainStage.from_params(**params)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_prunable_layers_skip_shortcuts_and_layers_the_forward_never_calls():
    carmon = zoo.build("rb:Linf:Carmon2019Unlabeled", "cifar10")  # carries an unused block, sub_block1
    names = [n for n, _ in models.prunable_modules(carmon)]
    assert names[0] == "conv1" and names[-1] == "fc" and len(names) == 3 * 4 * 2 + 2
    assert not any("sub_block1" in n or "Shortcut" in n for n in names)


def test_zoo_model_loads_prunes_and_reloads_identically(out_dirs, fake_cifar10, zoo_checkpoint):
    stage = PruneStage.from_params(dataset="cifar10", arch=ARCH, crs=[1, 2], finetune_max_epochs=0)
    x, y = data.load(stage.data).eval_subset(4)
    with torch.no_grad():
        expected = zoo_checkpoint(x)

    train = stages.run_train(stage.upstream, device="cpu", progress=False).iloc[0]
    assert train["arch"] == ARCH and train["epochs"] == 0
    assert train["clean_acc"] == pytest.approx((expected.argmax(1) == y).float().mean().item())
    assert train["n_prunable"] == models.count_prunable(zoo_checkpoint)
    dense = stages.load_model(stages.train_checkpoint(stage.upstream))
    assert type(dense) is type(zoo_checkpoint)
    torch.testing.assert_close(dense(x), expected, rtol=0, atol=0)  # the zoo's weights, BatchNorm included

    table = stages.run_prune(stage, device="cpu", progress=False)
    n = models.count_prunable(zoo_checkpoint)
    assert table["n_kept"].tolist() == [n, round(n / 2)]  # global magnitude: exactly 1/CR kept
    pruned = stages.load_model(stages.prune_checkpoint(stage, 2))
    again = stages.load_model(stages.prune_checkpoint(stage, 2))
    torch.testing.assert_close(pruned(x), again(x), rtol=0, atol=0)
    kept = sum(int(m.sum()) for m in prune.current_masks(pruned).values())
    assert kept == round(n / 2)
    dense_cr1 = stages.load_model(stages.prune_checkpoint(stage, 1))
    torch.testing.assert_close(dense_cr1(x), expected, rtol=0, atol=0)


def test_fine_tuning_a_pruned_zoo_model_keeps_its_masks(out_dirs, fake_cifar10, zoo_checkpoint):
    # one epoch (one step, 6 images): BatchNorm in train mode, the masked weights stay zero
    stage = PruneStage.from_params(
        dataset="cifar10",
        arch=ARCH,
        n_train=6,
        crs=[1, 2],
        finetune_max_epochs=1,
        structure="filter",
        scope="local",
        batch_size=6,
    )
    stages.run_train(stage.upstream, device="cpu", progress=False)
    table = stages.run_prune(stage, device="cpu", progress=False)
    assert table["finetune_epochs"].tolist() == [0, 1]
    model = stages.load_model(stages.prune_checkpoint(stage, 2))
    for name, module in models.prunable_modules(model):
        assert bool((module.weight[~module.weight_mask.bool()] == 0).all()), name


def test_missing_zoo_weights_name_the_expected_file(out_dirs, fake_cifar10, tmp_path, monkeypatch):
    folder = tmp_path / "rb"
    (folder / "cifar10" / "Linf").mkdir(parents=True)
    (folder / "cifar10" / "Linf" / f"{NAME}.pt").write_text("<html>a failed Google Drive download</html>")
    monkeypatch.setenv("PRUNEROB_ROBUSTBENCH_DIR", str(folder))
    with pytest.raises(zoo.ZooError) as err:
        stages.run_train(TrainStage.from_params(dataset="cifar10", arch=ARCH), device="cpu", progress=False)
    assert str(folder / "cifar10" / "Linf" / f"{NAME}.pt") in str(err.value)


@pytest.mark.slow
def test_attack_stage_runs_on_a_pruned_zoo_model(out_dirs, fake_cifar10, zoo_checkpoint):
    stage = AttackStage.from_params(
        dataset="cifar10",
        arch=ARCH,
        crs=[1, 2],
        finetune_max_epochs=0,
        cr=2,
        attack="linf_pgd",
        eps=[8 / 255],
        n_samples=4,
        attack_batch_size=4,
    )
    stages.run_train(stage.upstream.upstream, device="cpu", progress=False)
    stages.run_prune(stage.upstream, device="cpu", progress=False)
    curve = stages.run_attack(stage, device="cpu", progress=False)
    assert curve["arch"].unique().tolist() == [ARCH] and bool(curve["all_checks_passed"].all())
