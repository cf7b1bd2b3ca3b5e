"""The ``dreamsim`` preset against DreamSim.

Without the ``dreamsim`` package: the preset's arithmetic against DreamSim's formulas (its ``model.py``): each
member normalises its input with its own mean and std, DINO's feature is the class token after the last block
before the final norm, CLIP's is the final norm's class token through the projection, the three are concatenated,
centred and divided by their norm, and the distance is ``1 - cos``.

With ``dreamsim`` 0.2.1 installed (``pip install dreamsim==0.2.1``; kept out of the test extra: it pulls
transformers, accelerate, open_clip_torch and peft), the package's own ``PerceptualModel`` is built offline: its
checkpoints are files it reads from ``cache_dir`` (written here from percept's random timm weights, converted to
DreamSim's layout), and its DINO network comes through ``torch.hub.load('facebookresearch/dino:main', ...)``,
which reads a cached hub folder without a download when one exists (one is written here, building DINO's
``vit_base``: DreamSim's copy of DINO's ``vision_transformer.py``). Then both compute on the same weights, with
and without the same LoRA matrices.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F

from percept.builtin.dreamsim import DREAMSIM_NORMALIZATION, create_dreamsim
from percept.builtin.lora import apply_lora

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def dreamsim_pipeline():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        pipeline = create_dreamsim(weights=None)
    for backbone, _ in pipeline.backbone.members:
        head = getattr(backbone.model, "head", None)
        if isinstance(head, torch.nn.Linear):  # OpenAI's and OpenCLIP's projections have no bias
            torch.nn.init.zeros_(head.bias)
    return pipeline


def _images(n: int = 2, size: int = 224, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _formula_embedding(pipeline, x: torch.Tensor) -> torch.Tensor:
    """DreamSim's ``embed`` written out from its source, on the timm networks of ``pipeline``."""
    parts = []
    for (backbone, tap), (mean, std) in zip(pipeline.backbone.members, DREAMSIM_NORMALIZATION, strict=True):
        model = backbone.model
        h = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        tokens = model.norm_pre(model._pos_embed(model.patch_embed(h)))
        for block in model.blocks:
            tokens = block(tokens)
        if tap == "cls":  # extract_descriptors(layer=11)[..., 0, :]: the block's output, no final norm
            parts.append(tokens[:, 0])
        else:  # model(x) @ proj: the final norm's class token, projected
            parts.append(model.head(model.norm(tokens)[:, 0]))
    embed = torch.cat(parts, dim=-1)
    embed = embed - embed.mean(dim=1, keepdim=True)  # normalize_embedding
    return embed / embed.norm(dim=1, keepdim=True)


@pytest.mark.slow
def test_dreamsim_preset_follows_dreamsims_formulas(dreamsim_pipeline):
    x, y = _images(1, seed=1), _images(1, seed=2)
    with torch.no_grad():
        ex, ey = _formula_embedding(dreamsim_pipeline, x), _formula_embedding(dreamsim_pipeline, y)
        expected = 1 - F.cosine_similarity(ex, ey, dim=-1)
        got = dreamsim_pipeline(x, y)
    assert ex.shape == (1, 768 + 512 + 512)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def _dino_layout(state: dict, clip: bool) -> dict:
    """A timm ViT's weights under DINO's ``vision_transformer.py`` names (DreamSim's CLIP-as-DINO for ``clip``)."""
    out = {k: v.clone() for k, v in state.items() if not k.startswith(("head.", "norm_pre.", "fc_norm."))}
    if clip:  # ln_pre sits where DINO has pos_drop; CLIP's patch embedding has no bias
        out["pos_drop.weight"], out["pos_drop.bias"] = state["norm_pre.weight"], state["norm_pre.bias"]
        out["patch_embed.proj.bias"] = torch.zeros(state["patch_embed.proj.weight"].shape[0])
        out["proj"] = state["head.weight"].t().contiguous()
    return out


HUBCONF = """
from dreamsim.feature_extraction.vision_transformer import vit_base


def dino_vitb16(pretrained=True, **kwargs):
    return vit_base(patch_size=16, num_classes=0, **kwargs)
"""


def _write_dreamsim_cache(folder, pipeline) -> None:
    """The files ``dreamsim.dreamsim(dreamsim_type="ensemble")`` reads, holding ``pipeline``'s weights."""
    (clip, _), (open_clip, _) = [(b, t) for b, t in pipeline.backbone.members[1:]]
    hub = folder / "facebookresearch_dino_main"
    hub.mkdir(parents=True)
    (hub / "hubconf.py").write_text(HUBCONF)
    head = {}
    shapes = {"mlp.0": (2048, 768), "mlp.2": (2048, 2048), "mlp.4": (256, 2048)}
    for name, shape in shapes.items():
        head[f"module.head.{name}.weight"] = torch.zeros(shape)
        head[f"module.head.{name}.bias"] = torch.zeros(shape[0])
    head["module.head.last_layer.weight"] = torch.zeros(2048, 256)
    torch.save({"student": head}, folder / "dino_vitb16_pretrain.pth")
    torch.save({"state_dict": _dino_layout(clip.model.state_dict(), True)}, folder / "clip_vitb16_pretrain.pth.tar")
    state = _dino_layout(open_clip.model.state_dict(), True)
    torch.save({"state_dict": state}, folder / "open_clip_vitb16_pretrain.pth.tar")
    (folder / "ensemble_lora").mkdir()
    config = {"r": 16, "lora_alpha": 8, "lora_dropout": 0.3, "bias": "none", "target_modules": ["qkv"]}
    (folder / "ensemble_lora" / "adapter_config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dreamsim_pipeline):
    pytest.importorskip("dreamsim", reason="dreamsim 0.2.1 not installed (kept out of the test extra: heavy deps)")
    import dreamsim

    folder = tmp_path_factory.mktemp("dreamsim_cache")
    _write_dreamsim_cache(folder, dreamsim_pipeline)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = dreamsim.dreamsim(pretrained=False, device="cpu", cache_dir=str(folder), dreamsim_type="ensemble")
    dino = dreamsim_pipeline.backbone.members[0][0].model
    base = model.base_model.model
    state = {
        k.replace("attn.qkv.", "attn.qkv.base_layer."): v for k, v in _dino_layout(dino.state_dict(), False).items()
    }
    missing, unexpected = base.extractor_list[0].model.load_state_dict(state, strict=False)
    assert not unexpected and all("lora_" in k for k in missing)
    return model


@pytest.mark.slow
def test_dreamsim_preset_equals_the_dreamsim_package(reference, dreamsim_pipeline):
    x, y = _images(seed=3), _images(seed=4)
    with torch.no_grad():
        expected = reference(x, y)
        got = dreamsim_pipeline(x, y)
    assert expected.shape == got.shape == (2,)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_lora_equals_peft_on_dreamsim(reference, dreamsim_pipeline):
    """The same nonzero LoRA matrices in peft's DreamSim and in percept's LoRA give the same distances."""
    import copy

    tuned = copy.deepcopy(dreamsim_pipeline)
    paths = apply_lora(tuned.backbone, rank=16, alpha=8.0, dropout=0.3)
    assert len(paths) == 36  # three ViT-B, twelve blocks each
    generator = torch.Generator().manual_seed(5)
    peft_state = {}
    with torch.no_grad():
        for path in paths:
            member, block = path.split(".")[1], path.split(".model.blocks.")[1].split(".")[0]
            key = f"base_model.model.extractor_list.{member}.model.blocks.{block}.attn.qkv"
            for part in ("lora_A", "lora_B"):
                param = tuned.backbone.get_parameter(f"{path}.{part}.weight")
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
                peft_state[f"{key}.{part}.default.weight"] = param.clone()
        _, unexpected = reference.load_state_dict(peft_state, strict=False)
    assert not unexpected
    reference.eval()
    x, y = _images(seed=6), _images(seed=7)
    with torch.no_grad():
        torch.testing.assert_close(tuned(x, y), reference(x, y), atol=1e-5, rtol=0)
