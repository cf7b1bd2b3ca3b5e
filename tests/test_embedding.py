"""Embedding metrics: class-token and embedding taps, cosine on vectors, the ``center`` readout, ensembles."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from percept import PerceptualLoss, PerceptualMetric, build_pipeline
from percept.builtin.distances import Cosine
from percept.builtin.dreamsim import create_embedding_ensemble
from percept.builtin.embedding import Center, EmbeddingEnsemble, create_embedding_backbone, is_projection
from percept.errors import SpecError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TINY = "timm.vit_tiny_patch16_224"


def _random(build, *args, seed: int = 0, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        return build(*args, **kwargs)


@pytest.fixture(scope="module")
def tiny():
    return _random(create_embedding_backbone, TINY, weights=None)


def _images(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_taps_are_vectors_of_the_model(tiny):
    x = _images()
    out = tiny(x, ["cls", "pooled", "embedding"])
    assert tiny.tap_names == ["cls", "pooled", "embedding"] and tiny.canonical_taps == ["embedding"]
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (2, 192, 1, 1) for k in out}
    model, h = tiny.model, tiny.preprocess(x)
    tokens = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(h))))
    for block in model.blocks:
        tokens = block(tokens)
    torch.testing.assert_close(out["cls"].flatten(1), tokens[:, 0])  # before the final norm
    torch.testing.assert_close(out["pooled"].flatten(1), model.norm(tokens)[:, 0])
    torch.testing.assert_close(out["embedding"], out["pooled"])  # a classifier: no projection
    assert [t.channels for t in tiny.feature_info] == [192, 192, 192]


def test_cls_alone_matches_cls_with_the_rest(tiny):
    x = _images(seed=1)
    torch.testing.assert_close(tiny(x, ["cls"])["cls"], tiny(x, ["cls", "embedding"])["cls"])


def test_torchvision_vit_pooled_is_its_forward_before_the_head():
    bb = _random(create_embedding_backbone, "vit_b_32", weights=None)
    x = _images(1, 64)
    pooled = bb(x, ["pooled"])["pooled"].flatten(1)
    # torchvision's forward at 224 gives encoder.ln's class token (heads are dropped)
    x224 = _images(1, 224)
    torch.testing.assert_close(bb(x224, ["pooled"])["pooled"].flatten(1), bb.model(bb.preprocess(x224)))
    assert pooled.shape == (1, 768) and bb.tap_names == ["cls", "pooled", "embedding"]


def test_cosine_on_vectors_is_one_minus_cos():
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    expected = 1 - F.cosine_similarity(a, b, dim=1)
    torch.testing.assert_close(Cosine()(a, b), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(Cosine()(a[:, :, None, None], b[:, :, None, None]), expected, atol=1e-6, rtol=0)


def test_center_readout_gives_pearson():
    a, b = torch.randn(4, 9, 1, 1), torch.randn(4, 9, 1, 1)
    ca, cb = Center()(a), Center()(b)
    torch.testing.assert_close(ca.mean(dim=1), torch.zeros(4, 1, 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(ca.norm(dim=1), torch.ones(4, 1, 1))
    pearson = torch.stack(
        [torch.corrcoef(torch.stack([u.flatten(), v.flatten()]))[0, 1] for u, v in zip(a, b, strict=True)]
    )
    torch.testing.assert_close(Cosine()(ca, cb), 1 - pearson, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", [f"embed.{TINY}:cls/raw/cosine", f"embed.{TINY}:embedding/center/cosine"])
def test_spec_identical_images_give_zero_and_gradients_flow(spec):
    loss = _random(PerceptualLoss, spec, weights=None, reduction="none")
    x, y = _images(seed=2), _images(seed=3)
    assert loss(x, x).abs().max().item() < 1e-6
    x.requires_grad_(True)
    d = loss(x, y)
    assert d.shape == (2,) and bool((d > 0).all()) and bool((d <= 2).all())
    d.sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and x.grad.abs().sum() > 0


def test_ensemble_concatenates_and_normalises(tiny):
    other = _random(create_embedding_backbone, TINY, weights=None, seed=1)
    x = _images(seed=4)
    plain = EmbeddingEnsemble([(tiny, "cls"), (other, "embedding")])
    joined = plain(x)["embedding"].flatten(1)
    parts = [tiny(x, ["cls"])["cls"].flatten(1), other(x, ["embedding"])["embedding"].flatten(1)]
    torch.testing.assert_close(joined, torch.cat(parts, dim=1))
    assert plain.feature_info[0].channels == 384
    each = EmbeddingEnsemble([(tiny, "cls"), (other, "embedding")], normalize_each=True)(x)["embedding"].flatten(1)
    torch.testing.assert_close(each[:, :192].norm(dim=1), torch.ones(2))
    torch.testing.assert_close(each[:, 192:].norm(dim=1), torch.ones(2))
    torch.testing.assert_close(each, torch.cat([F.normalize(p, dim=1) for p in parts], dim=1))


def test_ensemble_preset_is_one_minus_cos_of_centred_concatenation():
    members = [f"{TINY}:cls", f"embed.{TINY}:embedding"]
    metric = _random(build_pipeline, "embedding-ensemble", members=members, weights=None, size=32)
    x, y = _images(seed=5, size=40), _images(seed=6, size=40)
    with torch.no_grad():
        got = metric(x, y)
        ex, ey = (metric.backbone(v)["embedding"].flatten(1) for v in (x, y))
    ex, ey = ex - ex.mean(1, keepdim=True), ey - ey.mean(1, keepdim=True)
    torch.testing.assert_close(got, 1 - F.cosine_similarity(ex, ey, dim=1), atol=1e-5, rtol=0)
    assert metric(x, x).abs().max().item() < 1e-6
    assert [t for _, t in metric.backbone.members] == ["cls", "embedding"]


def test_ensemble_as_a_metric():
    metric = _random(PerceptualMetric, "embedding-ensemble", members=[f"{TINY}:cls"], weights=None, size=32)
    metric.update(_images(seed=7), _images(seed=8))
    assert 0 < float(metric.compute()) <= 2


def test_errors_name_the_problem():
    with pytest.raises(SpecError, match="vit_tiny_patch16_224"):
        create_embedding_backbone("timm.vit_tiny_patch16_22", weights=None)
    with pytest.raises(SpecError, match="vision transformers"):
        _random(create_embedding_backbone, "timm.resnet10t", weights=None)
    with pytest.raises(SpecError, match="vit_b_16"):
        create_embedding_backbone("vit_b_61", weights=None)
    with pytest.raises(SpecError, match="one weights argument per member"):
        create_embedding_ensemble([f"{TINY}:cls"], weights=[None, None])
    with pytest.raises(SpecError, match="tap"):
        _random(create_embedding_ensemble, [f"{TINY}:clss"], weights=None)


def test_projection_rule():
    class Head(torch.nn.Module):
        num_classes = 512

    assert is_projection("vit_base_patch16_clip_224.openai", Head())
    assert not is_projection("vit_base_patch16_clip_224.openai_ft_in1k", Head())
    assert not is_projection("vit_small_patch16_224.dino", Head())
