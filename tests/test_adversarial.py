"""PGD adversarial training (Madry et al. 2018): the spec, the inner attack, the recipe on real MNIST."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from prunerob import attacks, stages
from prunerob.spec import PruneStage, SpecError, TrainSpec, TrainStage, stage_from_params
from prunerob.train import adversarial_evaluate, evaluate, fit, pgd_linf

PGD = dict(training="pgd", adv_eps=0.1, adv_steps=5)


def _subset(mnist, n_train, n_val=500, n_test=500):
    return type(mnist)(
        "mnist",
        mnist.train_x[:n_train],
        mnist.train_y[:n_train],
        mnist.val_x[:n_val],
        mnist.val_y[:n_val],
        mnist.test_x[:n_test],
        mnist.test_y[:n_test],
    )


def test_pgd_training_needs_a_radius_and_standard_training_takes_none():
    with pytest.raises(SpecError, match=r"adv_eps=0.0 must be in \(0, 1\] for training='pgd'"):
        TrainSpec(training="pgd")
    with pytest.raises(SpecError, match="apply to training='pgd' only.*valid trainings: standard, pgd"):
        TrainSpec(adv_eps=0.3)
    with pytest.raises(SpecError, match="training='madry' is not valid; valid: standard, pgd"):
        TrainSpec(training="madry")
    with pytest.raises(SpecError, match="finetune_training='pgd' is not valid; valid: same, standard"):
        stage_from_params("prune", {"finetune_training": "pgd"})
    assert TrainSpec(**PGD).step_size == pytest.approx(2.5 * 0.1 / 5)  # Madry's rule
    assert TrainSpec(**PGD, adv_step_size=0.01).step_size == 0.01


def test_new_fields_keep_every_standard_stage_id():
    # the ids hash only non-default fields: adding the adversarial fields renamed nothing
    assert TrainStage().canonical()["train"] == {}
    assert PruneStage().canonical()["prune"] == {}
    adv = TrainStage(train=TrainSpec(**PGD))
    assert adv.id != TrainStage().id and adv.canonical()["train"] == {"training": "pgd", "adv_eps": 0.1, "adv_steps": 5}


def test_fine_tuning_follows_the_dense_training_unless_told_otherwise():
    adv = PruneStage(train=TrainSpec(**PGD))
    assert stages.finetune_spec(adv) == adv.train and stages.training_label(adv) == "pgd (eps 0.1)"
    plain = dataclasses.replace(adv, prune=dataclasses.replace(adv.prune, finetune_training="standard"))
    assert not stages.finetune_spec(plain).adversarial
    assert stages.training_label(plain) == "pgd (eps 0.1), standard fine-tuning"
    assert stages.finetune_spec(PruneStage()) == TrainSpec() and stages.training_label(PruneStage()) == "standard"


def test_inner_pgd_stays_in_the_ball_raises_the_loss_and_leaves_weight_gradients_alone(trained_cnn, mnist):
    x = mnist.test_x[:200].float() / 255
    y = mnist.test_y[:200]
    for p in trained_cnn.parameters():
        p.grad = None
    adv = pgd_linf(trained_cnn, x, y, eps=0.1, steps=10, step_size=0.025, generator=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert all(p.grad is None for p in trained_cnn.parameters())
    with torch.no_grad():
        assert F.cross_entropy(trained_cnn(adv), y) > 3 * F.cross_entropy(trained_cnn(x), y)
    again = pgd_linf(trained_cnn, x, y, eps=0.1, steps=10, step_size=0.025, generator=torch.Generator().manual_seed(0))
    assert torch.equal(adv, again)  # seeded start, same examples


@pytest.mark.slow
def test_pgd_training_on_real_mnist_buys_robustness_that_a_stronger_attack_confirms(mnist):
    """Same data, seed and budget: the PGD-trained CNN keeps far more images under an independent
    100-step APGD at its radius than the standard one, while both stay accurate."""
    small = _subset(mnist, 4000)
    models = {}
    for training in ("standard", "pgd"):
        torch.manual_seed(0)
        model = stages.new_model("cnn", "mnist")
        spec = TrainSpec(max_epochs=2, batch_size=64, **(PGD if training == "pgd" else {}))
        hist = fit(model, small, spec, progress=False)
        if training == "pgd":  # robust early stopping: the monitored loss is the loss on PGD examples
            assert {"val_adv_acc", "val_clean_loss"} <= set(hist.rows[0])
            assert all(r["val_loss"] > r["val_clean_loss"] for r in hist.rows)
            assert hist.best_val_loss == pytest.approx(min(r["val_loss"] for r in hist.rows))
        models[training] = model
    x = small.test_x.float() / 255
    y = small.test_y
    robust = {}
    for training, model in models.items():
        _, clean = evaluate(model, small.test_x, y)
        assert clean > 0.85, (training, clean)
        model.requires_grad_(False)
        adv = attacks.get("linf_apgd").run(model, x, y, 0.1, **attacks.get("linf_apgd").presets["default"])
        with torch.no_grad():
            robust[training] = (model(adv).argmax(1) == y).float().mean().item()
        # the training recipe's own PGD is no stronger than APGD
        _, own = adversarial_evaluate(model, small.test_x, y, TrainSpec(**PGD))
        assert robust[training] <= own + 0.02
    assert robust["pgd"] > robust["standard"] + 0.15, robust


def test_attack_library_versions_need_no_pip_install_of_this_package(monkeypatch):
    import importlib.metadata as md

    import prunerob

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "version", missing)  # a checkout on PYTHONPATH, as on the GPU machine
    assert stages.library_version("prunerob") == prunerob.__version__
    assert stages.library_version("foolbox") == "unknown"
