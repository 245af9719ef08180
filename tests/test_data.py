import numpy as np
import pytest
import torch

from prunerob import data
from prunerob.spec import AttackStage, DataSpec, SpecError


def test_mnist_splits_are_the_originals(mnist):
    # 90/10 split of the 60,000 training images: the last 6,000 validate (Keras validation_split)
    assert mnist.train_x.shape == (54000, 1, 28, 28) and mnist.train_x.dtype == torch.uint8
    assert mnist.val_x.shape == (6000, 1, 28, 28)
    assert mnist.test_x.shape == (10000, 1, 28, 28)
    full_x, full_y = data.load_split("mnist", True)
    assert torch.equal(mnist.val_y, full_y[54000:])
    # the known label counts of the test split
    assert torch.bincount(mnist.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_eval_subset_is_the_first_test_images_in_unit_range(mnist):
    x, y = mnist.eval_subset(1000)
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1 and x.max() == 1
    assert torch.equal(y, mnist.test_y[:1000])
    with pytest.raises(ValueError, match="exceeds the 10000 test images"):
        mnist.eval_subset(10001)


def test_fashion_mnist_loads_real_files():
    x, y = data.load_split("fashion_mnist", False)
    assert x.shape == (10000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [1000] * 10


def test_n_train_subsamples_training_only():
    s = data.load(DataSpec(dataset="mnist", n_train=500))
    assert len(s.train_y) == 500 and len(s.val_y) == 6000 and len(s.test_y) == 10000


def test_n_eval_keeps_the_first_validation_and_test_images_and_bounds_the_attacks_samples():
    full, s = data.load(DataSpec(dataset="mnist")), data.load(DataSpec(dataset="mnist", n_eval=300))
    assert len(s.train_y) == 54000 and len(s.val_y) == 300 and len(s.test_y) == 300
    assert torch.equal(s.val_x, full.val_x[:300]) and torch.equal(s.test_x, full.test_x[:300])
    with pytest.raises(SpecError, match=r"n_samples=500.*exceeds the 300 test images of mnist \(n_eval=300\)"):
        AttackStage.from_params(n_eval=300, n_samples=500)
    with pytest.raises(SpecError, match=r"n_eval=20000.*0 \.\. 10000"):
        DataSpec(dataset="mnist", n_eval=20000)


def test_missing_data_names_the_data_set_and_the_folder(tmp_path, monkeypatch):
    # torchvision's download cannot succeed here; on a user's machine it fails the same way offline
    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", no_network)
    monkeypatch.setattr("torchvision.datasets.utils.download_url", no_network)
    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", no_network)
    with pytest.raises(data.DataError) as err:
        data.load_split("fashion_mnist", True, root=tmp_path / "empty")
    assert "'fashion_mnist'" in str(err.value) and str(tmp_path / "empty") in str(err.value)
    assert "PRUNEROB_DATA" in str(err.value)


def test_cifar_layout_becomes_nchw():
    arr = np.random.default_rng(0).integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    x, y = data.cifar_arrays_to_tensors(arr, list(range(7)))
    assert x.shape == (7, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x[3, 1], torch.from_numpy(arr[3, :, :, 1]))
    assert y.tolist() == list(range(7))


def test_imagenette_loads_through_torchvision_from_a_folder_shaped_like_it(tmp_path):
    from PIL import Image

    wnids = ["n01440764", "n02102040"]
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in wnids:
            folder = tmp_path / "imagenette2-320" / split / wnid
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (320, 400, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")
    x, y = data.load_split("imagenette", False, root=tmp_path)
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.uint8
    assert sorted(y.tolist()) == [0, 0, 1, 1]
    assert (tmp_path / "imagenette-val-224.pt").exists()  # cached for the next load
    x2, _ = data.load_split("imagenette", False, root=tmp_path)
    assert torch.equal(x, x2)


def test_unknown_data_set_lists_valid_names():
    with pytest.raises(ValueError, match="valid: mnist, fashion_mnist, cifar10, imagenette"):
        data.info("svhn")
