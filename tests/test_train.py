import pytest
import torch

from prunerob import stages
from prunerob.spec import TrainSpec
from prunerob.train import augment, evaluate, fit, select_device


@pytest.mark.slow
def test_cnn_learns_real_mnist_to_97_percent_in_one_epoch(mnist):
    from conftest import _train_cnn

    model = _train_cnn(mnist, n_train=len(mnist.train_x), max_epochs=1)
    _, acc = evaluate(model, mnist.test_x, mnist.test_y)
    assert acc >= 0.97


def test_the_tests_cnn_learns_real_mnist_to_94_percent(trained_cnn, mnist):
    _, acc = evaluate(trained_cnn, mnist.test_x, mnist.test_y)
    assert acc >= 0.94


def test_early_stopping_restores_the_best_weights(mnist):
    small = type(mnist)(
        "mnist",
        mnist.train_x[:512],
        mnist.train_y[:512],
        mnist.val_x[:512],
        mnist.val_y[:512],
        mnist.test_x[:10],
        mnist.test_y[:10],
    )
    model = stages.new_model("mlp", "mnist")
    hist = fit(model, small, TrainSpec(max_epochs=40, patience=2, lr=1e-2, batch_size=32), progress=False)
    assert hist.epochs < 40  # stopped early: a 512-image set overfits quickly at lr 1e-2
    assert hist.epochs - hist.best_epoch == 2
    val_loss, _ = evaluate(model, small.val_x, small.val_y)
    assert val_loss == pytest.approx(hist.best_val_loss, rel=1e-5)
    assert min(r["val_loss"] for r in hist.rows) == pytest.approx(hist.best_val_loss)


def test_same_seed_same_weights(mnist):
    small = type(mnist)(
        "mnist",
        mnist.train_x[:256],
        mnist.train_y[:256],
        mnist.val_x[:64],
        mnist.val_y[:64],
        mnist.test_x[:10],
        mnist.test_y[:10],
    )
    outs = []
    for _ in range(2):
        torch.manual_seed(123)  # model init is seeded by the caller (run_train seeds through fit)
        model = stages.new_model("cnn", "mnist")
        fit(model, small, TrainSpec(max_epochs=1, seed=5), progress=False)
        outs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(outs[0], outs[1])


def test_augmentation_flips_and_shifts_within_the_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 32, 32)
    y = augment(x, g)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.equal(x, y)
    # every output is a translated (and maybe flipped) copy: its non-padded pixels come from the input
    same = [(torch.isin(y[i].flatten(), x[i].flatten()) | (y[i].flatten() == 0)).all() for i in range(64)]
    assert all(same)


def test_device_choice():
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="valid: auto, cpu, cuda, cuda:N"):
        select_device("tpu")
