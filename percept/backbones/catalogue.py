"""The weights catalogue: one :class:`~percept.backbones.base.PretrainedCfg` per weight set a built-in
backbone can load, with where it comes from, its licence, the task and data it was trained on, the
input convention and the checksum where one is known.

Nothing is downloaded or imported at ``import percept``: the records are made when asked for, from
torchvision's weight enums (``torchvision.models.get_model_weights``; the file names carry the
first hex digits of the file's SHA-256, which :func:`percept.backbones.weights.fetch_url` checks,
for downloads and for files found in ``$PERCEPT_WEIGHTS_DIR`` alike) and from timm's pretrained
configurations. ``percept list backbones --weights`` prints them.

Example:
    >>> [c.tag for c in weight_sets("vgg16")]  # doctest: +SKIP
    ['imagenet1k_v1', 'imagenet1k_features']
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

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


__all__: Sequence[str] = ("checksum_of", "weight_sets", "weights_text")
