"""Measure what docs/migration.md states: percept against lpips, torchmetrics, DISTS_pytorch and piq (and
pyiqa and BasicSR where they are importable), with the same weights.

Every peer gets the same backbone weights as percept (random, copied from percept's network: nothing
is downloaded) and the published heads where it needs them (LPIPS v0.1 heads and DISTS alpha/beta, the
files torchmetrics installs). The images are natural photographs that scikit-image ships (astronaut,
chelsea, coffee), 96 x 96 crops, each against a copy with Gaussian noise or blur: the lpips and
DISTS_pytorch packages ship no test images of their own (their repositories' ``imgs/`` are not in the
wheels).

Each row: the peer, what it computes, the percept spec compared, and either the largest absolute
difference (``same``: the numbers agree) or the factor ``peer / percept`` with its spread over the
pairs (``factor``: a difference of scale, constant for a given image size).

Run: ``python benchmarks/migration_check.py`` (about a minute on 2 CPU cores); ``--markdown`` prints
the table as docs/migration.md shows it. ``tests/test_migration.py`` asserts every row.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch

import percept

SIZE = 96


@dataclass
class Row:
    peer: str
    what: str
    spec: str
    kind: str  # "same" (max abs difference) or "factor" (peer / percept)
    value: float  # the max abs difference, or the median factor
    spread: float  # for a factor: max relative deviation of the per-pair factors from the median
    expected: str  # the factor as a formula, or the tolerance
    target: float  # the factor stated, or the tolerance on the difference


def images(size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: distorted and reference crops, ``(6, 3, size, size)`` in ``[0, 1]``, float32."""
    from skimage import data

    refs = []
    for name in ("astronaut", "chelsea", "coffee"):
        img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float() / 255
        img = torch.nn.functional.interpolate(img[None], size=(2 * size, 2 * size), mode="area")[0]
        refs.append(img[:, size // 2 : size // 2 + size, size // 2 : size // 2 + size])
    y = torch.stack(refs).repeat(2, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    noisy = (y[:3] + 0.08 * torch.randn(y[:3].shape, generator=g)).clamp(0, 1)
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 256).expand(3, 1, 5, 5)
    blurred = torch.nn.functional.conv2d(torch.nn.functional.pad(y[3:], (2, 2, 2, 2), mode="reflect"), kernel, groups=3)
    return torch.cat([noisy, blurred]), y


def build(spec: str, **kwargs) -> percept.Pipeline:
    """A percept pipeline with random backbone weights (seeded), warnings about them silenced."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", percept.RandomWeightsWarning)
        return percept.build_pipeline(spec, weights=None, **kwargs).eval()


def same(peer: str, what: str, spec: str, ours: torch.Tensor, theirs: torch.Tensor, tol: float) -> Row:
    diff = (ours.double() - theirs.double().flatten()).abs().max().item()
    return Row(peer, what, spec, "same", diff, 0.0, f"<= {tol:.0e}", tol)


def factor(
    peer: str, what: str, spec: str, ours: torch.Tensor, theirs: torch.Tensor, formula: str, target: float
) -> Row:
    ratios = theirs.double().flatten() / ours.double()
    median = ratios.median().item()
    return Row(peer, what, spec, "factor", median, (ratios / median - 1).abs().max().item(), formula, target)


def _features_key(ref_key: str) -> str:
    parts = ref_key.split(".")  # lpips: slice2.4.weight; torchmetrics' squeeze: slices.1.4.weight
    return ".".join(parts[2:] if parts[0] == "slices" else parts[1:])


def _pyiqa_module(name: str):
    """``pyiqa.archs.<name>``, or ``None`` where pyiqa is not installed (it is not a test dependency: its
    requirements include transformers, bitsandbytes and opencv)."""
    try:
        return importlib.import_module(f"pyiqa.archs.{name}")
    except ImportError:
        return None


def lpips_rows(x: torch.Tensor, y: torch.Tensor) -> list[Row]:
    import lpips
    from torchmetrics.functional.image import lpips as tm_lpips

    rows = []
    for net in ("alex", "vgg"):
        ours = build(f"lpips-{net}")
        features = ours.backbone.model.features.state_dict()
        with torch.no_grad():
            d = ours(x, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # lpips 0.1.4 calls torchvision with pretrained=
            refs = {
                "lpips": lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False),
                "torchmetrics": tm_lpips._LPIPS(pretrained=True, net=net, pnet_rand=True),
            }
            pyiqa_lpips = _pyiqa_module("lpips_arch")
            if pyiqa_lpips is not None:  # the lpips code, copied: it takes the lpips module's state as it is
                arch = {"alex": "alexnet", "vgg": "vgg16"}[net]  # it asks torchvision for weights even so
                unpatched = getattr(pyiqa_lpips.models, arch)
                with mock.patch.object(pyiqa_lpips.models, arch, lambda *a, _f=unpatched, **k: _f(weights=None)):
                    refs["pyiqa"] = pyiqa_lpips.LPIPS(pretrained=False, net=net, pnet_rand=True)
        for name, ref in refs.items():
            if name == "pyiqa":
                ref.load_state_dict(refs["lpips"].state_dict())
            else:
                ref.eval().net.load_state_dict({k: features[_features_key(k)] for k in ref.net.state_dict()})
            with torch.no_grad():
                theirs = ref(x, y, normalize=True)
            what = {"torchmetrics": "LearnedPerceptualImagePatchSimilarity", "pyiqa": "create_metric('lpips')"}.get(
                name, "LPIPS(net=...)"
            )
            rows.append(same(name, f"{what}, {net}", f"lpips-{net}", d, theirs, 1e-7))
    return rows


def dists_rows(x: torch.Tensor, y: torch.Tensor) -> list[Row]:
    from DISTS_pytorch import DISTS_pt
    from torchmetrics.functional.image import dists as tm_dists

    ours = build("dists")
    vgg = SimpleNamespace(features=copy.deepcopy(ours.backbone.model.features).requires_grad_(False))
    with torch.no_grad():
        d = ours(x, y)
    published = Path(DISTS_pt.__file__).with_name("weights.pt")  # the same bytes torchmetrics ships
    with mock.patch.object(DISTS_pt.models, "vgg16", lambda *a, **k: vgg):
        official = DISTS_pt.DISTS(load_weights=False)
    alpha_beta = torch.load(published, weights_only=True)
    official.alpha.data, official.beta.data = alpha_beta["alpha"], alpha_beta["beta"]
    with mock.patch.object(tm_dists, "vgg16", lambda *a, **k: vgg):
        network = tm_dists.DISTSNetwork(load_weights=True)
    refs = {"DISTS_pytorch": official.eval(), "torchmetrics": network.eval()}
    pyiqa_dists = _pyiqa_module("dists_arch")
    if pyiqa_dists is not None:  # DISTS_pytorch's code, copied: it takes that module's state as it is
        with mock.patch.object(pyiqa_dists.models, "vgg16", lambda *a, **k: vgg):
            refs["pyiqa"] = pyiqa_dists.DISTS(pretrained=False).eval()
        refs["pyiqa"].load_state_dict(official.state_dict())
    rows = []
    for name, ref in refs.items():
        with torch.no_grad():
            theirs = ref(x, y).reshape(-1)
        what = {"torchmetrics": "DeepImageStructureAndTextureSimilarity", "pyiqa": "create_metric('dists')"}.get(
            name, "DISTS()"
        )
        rows.append(same(name, what, "dists", d, theirs, 2e-7))
    # The same computation in float64 shows the float32 figure is rounding, not a different formula.
    with torch.no_grad():
        d64 = copy.deepcopy(ours).double()(x.double(), y.double())
        theirs64 = copy.deepcopy(official).double()(x.double(), y.double()).reshape(-1)
    rows.append(same("DISTS_pytorch", "DISTS(), both in float64", "dists", d64, theirs64, 1e-8))
    return rows


def _piq_content(
    cls: Callable, features: torch.nn.Module, layers: tuple[str, ...] = ("15",), **kwargs
) -> torch.nn.Module:
    """piq's loss on a copy of percept's VGG16 ``features``; ``layers`` are its indices ("15" is relu3_3)."""
    weights = [1.0] * len(layers)
    return cls(
        feature_extractor=copy.deepcopy(features), layers=layers, weights=weights, reduction="none", **kwargs
    ).eval()


def piq_rows(x: torch.Tensor, y: torch.Tensor) -> list[Row]:
    import piq
    import piq.perceptual

    rows = []
    content = build("vgg16:conv3")
    features = content.backbone.model.features
    with torch.no_grad():
        theirs = _piq_content(piq.ContentLoss, features)(x, y)
        rows.append(factor("piq", "ContentLoss() (relu3_3, mse)", "vgg16:conv3", content(x, y), theirs, "C = 256", 256))
        exact = build("vgg16:conv3/raw/l2")
        exact.backbone.model.load_state_dict(content.backbone.model.state_dict())
        rows.append(same("piq", "ContentLoss() (relu3_3, mse)", "vgg16:conv3/raw/l2", exact(x, y), theirs, 1e-7))
        theirs = _piq_content(piq.ContentLoss, features, layers=("3", "15"))(x, y)
        exact = build("vgg16:conv1,conv3/raw/l2")
        exact.backbone.model.load_state_dict(content.backbone.model.state_dict())
        what = "ContentLoss(layers=(relu1_2, relu3_3))"
        rows.append(same("piq", what, "vgg16:conv1,conv3/raw/l2", exact(x, y), theirs, 1e-7))
        theirs = _piq_content(piq.StyleLoss, features)(x, y)
        hw = (x.shape[-2] // 4) * (x.shape[-1] // 4)  # relu3_3 runs at a quarter of the input's size
        for spec in ("vgg16:conv3/gram", "vgg16:conv3/raw/style"):
            style = build(spec)
            style.backbone.model.load_state_dict(content.backbone.model.state_dict())
            rows.append(
                factor("piq", "StyleLoss() (relu3_3, mse)", spec, style(x, y), theirs, f"(H·W)² = {hw}²", hw**2)
            )

    lpips_vgg = build("lpips-vgg")
    heads = [r.weight.detach().reshape(1, -1, 1, 1).clone() for r in lpips_vgg.readouts]
    vgg = copy.deepcopy(lpips_vgg.backbone.model)
    with (
        mock.patch.object(piq.perceptual, "vgg16", lambda *a, **k: vgg),
        mock.patch.object(torch.hub, "load_state_dict_from_url", lambda *a, **k: heads),
    ):
        ref = piq.LPIPS(reduction="none").eval()
    with torch.no_grad():
        rows.append(same("piq", "LPIPS() (VGG16 only)", "lpips-vgg", lpips_vgg(x, y), ref(x, y), 1e-7))
    return rows


def piq_dists_row(x: torch.Tensor, y: torch.Tensor) -> Row:
    """piq's DISTS on a plain VGG16 (max pooling), which it turns into DISTS' network (L2 pooling) itself."""
    import piq
    import piq.perceptual

    ours = build("dists")
    alpha = torch.cat([r.alpha.reshape(1, -1) for r in ours.readouts], 1)[..., None, None]
    beta = torch.cat([r.beta.reshape(1, -1) for r in ours.readouts], 1)[..., None, None]
    import torchvision

    plain = torchvision.models.vgg16(weights=None).features  # max pooling, which piq turns into average pooling
    convs = {k: v for k, v in ours.backbone.model.features.state_dict().items() if k in plain.state_dict()}
    plain.load_state_dict(convs)
    vgg = SimpleNamespace(features=plain)
    with (
        mock.patch.object(piq.perceptual, "vgg16", lambda *a, **k: vgg),
        mock.patch.object(torch.hub, "load_state_dict_from_url", lambda *a, **k: {"alpha": alpha, "beta": beta}),
    ):
        ref = piq.DISTS(reduction="none").eval()
    with torch.no_grad():
        d, theirs = ours(x, y), ref(x, y)
    return same("piq", "DISTS()", "dists", d, theirs, 2e-7)


def _import_basicsr():
    """``basicsr.losses.basic_loss``, or ``None`` where BasicSR is not installed.

    BasicSR 1.4.2 (the latest release) imports ``torchvision.transforms.functional_tensor``, which
    torchvision removed in 0.17; its users alias the old module to ``torchvision.transforms.functional``,
    as done here, to import it at all.
    """
    import sys

    if importlib.util.find_spec("basicsr") is None:
        return None
    import torchvision.transforms.functional

    sys.modules.setdefault("torchvision.transforms.functional_tensor", torchvision.transforms.functional)
    return importlib.import_module("basicsr.losses.basic_loss")


def basicsr_rows(x: torch.Tensor, y: torch.Tensor) -> list[Row]:
    """BasicSR's ``PerceptualLoss({"conv5_4": 1.0}, vgg_type="vgg19", criterion="l1")``, batch mean."""
    basic_loss = _import_basicsr()
    if basic_loss is None:
        return []
    import torchvision

    ours = build("vgg19:conv5_4/raw/l1")
    vgg_arch = importlib.import_module("basicsr.archs.vgg_arch")
    random_vgg19 = torchvision.models.vgg19
    with mock.patch.object(vgg_arch.vgg, "vgg19", lambda *a, **k: random_vgg19(weights=None)):
        ref = basic_loss.PerceptualLoss({"conv5_4": 1.0}, vgg_type="vgg19", criterion="l1").eval()
    theirs_convs = [m for m in ref.vgg.vgg_net if isinstance(m, torch.nn.Conv2d)]
    our_convs = [m for m in ours.backbone.model.features if isinstance(m, torch.nn.Conv2d)]
    for a, b in zip(theirs_convs, our_convs[: len(theirs_convs)], strict=True):  # BasicSR stops at conv5_4
        a.load_state_dict(b.state_dict())
    with torch.no_grad():
        percep, _ = ref(x, y)
        mine = ours(x, y).mean()  # BasicSR's L1Loss averages over the batch too
    return [
        same("BasicSR", "PerceptualLoss({'conv5_4': 1}, vgg19, l1)", "vgg19:conv5_4/raw/l1", mine[None], percep, 1e-7)
    ]


def measure(size: int = SIZE) -> list[Row]:
    """Every row of the table, in the order docs/migration.md shows them."""
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    x, y = images(size)
    return [*lpips_rows(x, y), *dists_rows(x, y), *piq_rows(x, y), piq_dists_row(x, y), *basicsr_rows(x, y)]


def markdown(rows: list[Row]) -> str:
    lines = [
        "| peer | what | percept spec | measured | stated |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r.kind == "same":
            measured = f"max abs diff {r.value:.1e}"
        else:
            measured = f"peer / percept = {r.value:.6g} (pairs within {r.spread:.0e})"
        lines.append(f"| {r.peer} | {r.what} | `{r.spec}` | {measured} | {r.expected} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=SIZE, help="crop side in pixels (default %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    rows = measure(args.size)
    if args.markdown:
        print(markdown(rows))
    else:
        for r in rows:
            print(f"{r.peer:14s} {r.what:46s} {r.spec:24s} {r.kind:8s} {r.value:.6g} (spread {r.spread:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
