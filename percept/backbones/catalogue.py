"""The weights catalogue: one :class:`~percept.backbones.base.PretrainedCfg` per weight set a built-in
backbone can load, with where it comes from, its licence, the task and data it was trained on, the
input convention and the checksum where one is known.

Nothing is downloaded or imported at ``import percept``: the records are made when asked for, from
torchvision's weight enums (``torchvision.models.get_model_weights``; the file names carry the
first hex digits of the file's SHA-256, which :func:`percept.backbones.weights.fetch_url` checks,
for downloads and for files found in ``$PERCEPT_WEIGHTS_DIR`` alike) and from timm's pretrained
configurations. The presets' own files (LPIPS' linear heads, DISTS' alpha/beta, read from the copies
torchmetrics ships) have records too (:func:`preset_weight_sets`), with the SHA-256 of the published
file, which :func:`verify_preset_file` checks the installed copy against. ``percept list backbones
--weights`` and ``percept list presets --weights`` print them.

Example:
    >>> [c.tag for c in weight_sets("vgg16")]  # doctest: +SKIP
    ['imagenet1k_v1', 'imagenet1k_features']
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from percept.backbones.base import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg

HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub's convention: name-<sha256 prefix>.ext


def checksum_of(filename: str | None) -> str | None:
    """The SHA-256 prefix a torch.hub-style file name carries (``vgg16-397923af.pth`` -> ``397923af``).

    Example:
        >>> checksum_of("vgg16-397923af.pth"), checksum_of("model.safetensors")
        ('397923af', None)
    """
    match = HASH_IN_NAME.search(filename or "")
    return match.group(1) if match else None


def _torchvision_sets(name: str) -> list[PretrainedCfg]:
    import torchvision

    from percept.backbones.torchvision import FAMILIES, _data_of

    family = FAMILIES[name]
    mean, std = family.norm or (IMAGENET_MEAN, IMAGENET_STD)
    out = []
    for member in torchvision.models.get_model_weights(family.model or name):
        filename = member.url.rsplit("/", 1)[-1]
        meta = dict(member.meta)
        extra = {k: meta[k] for k in ("min_size", "num_params", "recipe") if k in meta}
        transforms = getattr(member.transforms, "keywords", {}) or {}
        if "crop_size" in transforms:
            extra["crop_size"] = transforms["crop_size"]
        out.append(
            PretrainedCfg(
                tag=member.name.lower(),
                source="torchvision",
                url=member.url,
                filename=filename,
                license="BSD-3-Clause (torchvision); the training data's terms apply to the weights",
                task=family.task,
                data=_data_of(member.name, family),
                mean=tuple(mean),
                std=tuple(std),
                checksum=checksum_of(filename),
                extra=extra,
            )
        )
    return out


def _timm_sets(name: str) -> list[PretrainedCfg]:
    import timm

    from percept.backbones.timm import CATALOGUE

    model, _, tag = name.partition(".")
    known = {entry[0]: entry for entry in CATALOGUE}
    full = name if tag else (timm.list_pretrained(f"{model}.*") or [model])[0]
    cfg = timm.models.get_pretrained_cfg(full)
    if cfg is None:
        return []
    _, task, data, _ = known.get(name, (name, "classification", "see the model card", ""))
    filename = cfg.hf_hub_filename or ("model.safetensors" if cfg.hf_hub_id else cfg.url and cfg.url.rsplit("/", 1)[-1])
    return [
        PretrainedCfg(
            tag=cfg.tag or "default",
            source=f"huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else (cfg.url or "timm"),
            url=cfg.url or None,
            filename=filename,
            license=cfg.license or "",
            task=task,
            data=data,
            mean=tuple(cfg.mean),
            std=tuple(cfg.std),
            checksum=checksum_of(cfg.url) if cfg.url and not cfg.hf_hub_id else None,
            extra={"input_size": cfg.input_size, "interpolation": cfg.interpolation, "crop_pct": cfg.crop_pct},
        )
    ]


@functools.cache
def weight_sets(name: str) -> tuple[PretrainedCfg, ...]:
    """Every weight set the built-in backbone ``name`` can load (empty for backbones without weights).

    Args:
        name: a registered backbone name (``"vgg16"``, ``"timm.vit_small_patch16_224.dino"``, ``"lab"``).

    Returns:
        The records, the default first for torchvision (the order of its enum).

    Example:
        >>> weight_sets("vgg16")[0].checksum  # doctest: +SKIP
        '397923af'
    """
    from percept.registry import get_registry

    entry = get_registry().get("backbone", name)
    if entry.plugin == "percept.backbones.torchvision":
        return tuple(_torchvision_sets(name))
    if entry.plugin == "percept.backbones.timm":
        return tuple(_timm_sets(name.partition(".")[2]))
    return ()


def weights_text(name: str) -> str:
    """One line for ``percept list backbones --weights``: each tag with its data, task, licence and checksum.

    Example:
        >>> weights_text("lab")
        '- (no weights)'
    """
    from percept.registry import get_registry

    entry = get_registry().get("backbone", name)
    if entry.prefix:
        return "the model's timm pretrained tags (timm.list_pretrained('<model>.*'))"
    sets = weight_sets(name)
    if not sets:
        return "- (no weights)" if entry.plugin == "percept.backbones.kornia" else "-"
    parts = []
    for i, cfg in enumerate(sets):
        torchvision_default = i == 0 and entry.plugin == "percept.backbones.torchvision"
        details = [cfg.data, cfg.task] + ([cfg.license] if cfg.source != "torchvision" and cfg.license else [])
        details += [f"sha256 {cfg.checksum}..."] if cfg.checksum else []
        label = f"imagenet (= {cfg.tag})" if torchvision_default else cfg.tag
        parts.append(f"{label} [{'; '.join(details)}]")
    return ", ".join(parts)


# -- the presets' own weight files ------------------------------------------------------------------

_LPIPS_SHA256 = {  # lpips 0.1.4's lpips/weights/v0.1/<net>.pth; torchmetrics ships the same bytes
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    "squeeze": "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
}
_DISTS_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"  # DISTS_pytorch 0.1 weights.pt


def _lpips_record(net: str) -> PretrainedCfg:
    from percept.presets import LPIPS_NETS, LPIPS_SCALE, LPIPS_SHIFT

    backbone, taps = LPIPS_NETS[net]
    return PretrainedCfg(
        tag="v0.1",
        source=f"torchmetrics/functional/image/lpips_models/{net}.pth (a copy of the lpips package's file)",
        url=f"https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth",
        filename=f"{net}.pth",
        license="BSD-2-Clause (LPIPS, Zhang et al. 2018); redistributed in torchmetrics (Apache-2.0)",
        task="linear heads: one non-negative weight per channel of each tap, fit to human 2AFC judgements",
        data="BAPPS 2AFC (Zhang 2018): 64x64 patches, traditional and CNN-based distortions",
        mean=LPIPS_SHIFT,
        std=LPIPS_SCALE,
        input_range=(-1.0, 1.0),
        extra={"backbone": backbone, "taps": tuple(taps), "keys": "lin<i>.model.1.weight, (1, C, 1, 1) each"},
        checksum=_LPIPS_SHA256[net],
    )


def _dists_record() -> PretrainedCfg:
    return PretrainedCfg(
        tag="v0.1",
        source="torchmetrics/functional/image/dists_models/weights.pt (a copy of DISTS_pytorch's weights.pt)",
        url="https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",
        filename="weights.pt",
        license="MIT (DISTS, Ding et al. 2020); redistributed in torchmetrics (Apache-2.0)",
        task="alpha/beta: structure and texture weights per channel of the image and 5 VGG16 (L2-pooling) stages",
        data="KADID-10k (Ding 2020): mean opinion scores of distorted images",
        extra={"backbone": "vgg16_l2pool", "keys": "alpha, beta: (1, 1475, 1, 1) each"},
        checksum=_DISTS_SHA256,
    )


def preset_weight_sets(name: str) -> tuple[PretrainedCfg, ...]:
    """The weight files a built-in preset reads besides its backbone's (empty for other presets).

    Args:
        name: a preset name (``"lpips-alex"``, ``"dists"``).

    Returns:
        One record per file: source, licence, what it holds, training data, input convention and the
        published file's SHA-256 (full 64 hex digits).

    Example:
        >>> cfg = preset_weight_sets("lpips-vgg")[0]
        >>> cfg.filename, cfg.checksum[:8], cfg.extra["backbone"]
        ('vgg.pth', 'a78928a0', 'vgg16')
    """
    if name.startswith("lpips-") and name[6:] in _LPIPS_SHA256:
        return (_lpips_record(name[6:]),)
    if name == "dists":
        return (_dists_record(),)
    return ()


def installed_preset_file(name: str) -> Path | None:
    """Where the installed copy of a built-in preset's weight file is (``None``: no such preset, or not installed).

    Example:
        >>> installed_preset_file("dists").name  # doctest: +SKIP
        'weights.pt'
    """
    from percept.errors import WeightsError

    try:
        if name.startswith("lpips-") and name[6:] in _LPIPS_SHA256:
            from percept.presets import torchmetrics_lpips_file

            return torchmetrics_lpips_file(name[6:])
        if name == "dists":
            from percept.presets_dists import torchmetrics_dists_file

            return torchmetrics_dists_file()
    except WeightsError:
        return None
    return None


def verify_preset_file(name: str, path: str | Path | None = None) -> bool | None:
    """Whether a preset's weight file (by default the installed copy) has the published SHA-256.

    Returns:
        ``True`` or ``False``; ``None`` when the preset has no record or no file is installed.

    Example:
        >>> verify_preset_file("lpips-alex")  # doctest: +SKIP
        True
    """
    records = preset_weight_sets(name)
    path = installed_preset_file(name) if path is None else Path(path)
    if not records or path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() == records[0].checksum


def preset_weights_text(name: str) -> str:
    """One line for ``percept list presets --weights``: each file with its data, licence, checksum and whether
    the installed copy matches it.

    Example:
        >>> preset_weights_text("map-selection")
        '-'
    """
    parts = []
    for cfg in preset_weight_sets(name):
        state = {True: "installed copy matches", False: "INSTALLED COPY DIFFERS", None: "not installed"}
        details = [cfg.data, cfg.license, f"sha256 {cfg.checksum[:12]}...", state[verify_preset_file(name)]]
        parts.append(f"{cfg.filename} {cfg.tag} [{'; '.join(details)}]")
    return ", ".join(parts) or "-"


__all__: Sequence[str] = (
    "checksum_of",
    "installed_preset_file",
    "preset_weight_sets",
    "preset_weights_text",
    "verify_preset_file",
    "weight_sets",
    "weights_text",
)
