"""The weights catalogue: every weight set a registered backbone or preset can load, read from the registry.

Each plugin, built-in or not, states its weight sets when it registers (``register(...,
pretrained=...)``, see :mod:`percept.hookspecs`): :class:`~percept.backbones.base.PretrainedCfg`
records with where the weights come from, their licence, the task and data they were trained on, the
input convention and the checksum where one is known. This module only reads them, so it imports no
built-in: records a plugin makes from its library (torchvision's weight enums, timm's pretrained
configurations) are made when asked for, never at ``import percept``. The presets' own files (LPIPS'
linear heads, DISTS' alpha/beta) carry the SHA-256 of the published file, which
:func:`verify_preset_file` checks the installed copy against. ``percept list backbones --weights`` and
``percept list presets --weights`` print them.

Example:
    >>> [c.tag for c in weight_sets("vgg16")]  # doctest: +SKIP
    ['imagenet1k_v1', 'imagenet1k_features']
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

from percept.backbones.base import PretrainedCfg
from percept.backbones.weights import checksum_of, package_file
from percept.errors import WeightsError
from percept.registry import Entry, get_registry

__all__: Sequence[str] = (
    "checksum_of",
    "checksum_text",
    "installed_preset_file",
    "preset_file_state",
    "preset_weight_sets",
    "preset_weights_text",
    "verify_preset_file",
    "weight_sets",
    "weights_lines",
    "weights_text",
)


def _records(entry: Entry) -> tuple[PretrainedCfg, ...] | None:
    """The records registered with ``entry``; ``None`` when its plugin stated none."""
    if entry.pretrained is None:
        return None
    return tuple(entry.pretrained() if callable(entry.pretrained) else entry.pretrained)


@functools.cache
def weight_sets(name: str) -> tuple[PretrainedCfg, ...]:
    """Every weight set the registered backbone ``name`` can load (empty for backbones without weights).

    Args:
        name: a registered backbone name (``"vgg16"``, ``"timm.vit_small_patch16_224.dino"``, ``"lab"``).

    Returns:
        The records its plugin registered, in the plugin's order (torchvision's: its enum's).

    Example:
        >>> weight_sets("vgg16")[0].checksum  # doctest: +SKIP
        '397923af'
    """
    return _records(get_registry().get("backbone", name)) or ()


def weights_text(name: str) -> str:
    """One line for ``percept list backbones --weights``: each tag with its data, task, licence and checksum.

    A set that another tag also loads reads ``imagenet (= imagenet1k_v2)``; a backbone whose plugin says it
    has no weights reads ``- (no weights)``, one whose plugin says nothing ``-``.

    Example:
        >>> weights_text("lab")
        '- (no weights)'
    """
    return ", ".join(weights_lines(name))


def weights_lines(name: str) -> list[str]:
    """One line per weight set of backbone ``name``, as ``percept list backbones --weights`` prints them under it.

    Each reads ``tag [data; task; licence; sha256 <prefix>...]``, with ``(installed: <distribution>)`` where an
    installed package ships the file.

    Example:
        >>> weights_lines("lab")
        ['- (no weights)']
    """
    entry = get_registry().get("backbone", name)
    if entry.prefix:
        return [f"the weight sets of each model it serves ({name}.<model>[.<tag>])"]
    records = _records(entry)
    if not records:
        return ["-" if records is None else "- (no weights)"]
    lines = []
    for cfg in records:
        details = [cfg.data, cfg.task] + ([cfg.license] if cfg.license else [])
        details += [f"sha256 {cfg.checksum}..."] if cfg.checksum else []
        label = f"{cfg.aliases[0]} (= {cfg.tag})" if cfg.aliases else cfg.tag
        shipped = f" (installed: {cfg.extra['installed']})" if cfg.extra.get("installed") else ""
        lines.append(f"{label} [{'; '.join(details)}]{shipped}")
    return lines


# -- the presets' own weight files ------------------------------------------------------------------


def preset_weight_sets(name: str) -> tuple[PretrainedCfg, ...]:
    """The weight files a preset reads besides its backbone's (empty for presets without any, or unknown names).

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
    registry = get_registry()
    if not registry.has("preset", name):
        return ()
    return _records(registry.get("preset", name)) or ()


def installed_preset_file(name: str) -> Path | None:
    """Where the installed copy of a preset's weight file is (``None``: no such file, or not installed).

    The record names it with ``extra["package_file"] = (package, path inside it)``.

    Example:
        >>> installed_preset_file("dists").name  # doctest: +SKIP
        'weights.pt'
    """
    records = preset_weight_sets(name)
    where = records[0].extra.get("package_file") if records else None
    if not where:
        return None
    try:
        return package_file(*where)
    except WeightsError:
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
    found = installed_preset_file(name) if path is None else Path(path)
    if not records or found is None or not found.is_file():
        return None
    return hashlib.sha256(found.read_bytes()).hexdigest() == records[0].checksum


def preset_weights_text(name: str) -> str:
    """One line for ``percept list presets --weights``: each file with its data, licence, checksum and whether
    the installed copy matches it.

    Example:
        >>> preset_weights_text("map-selection")
        '-'
    """
    parts = []
    for cfg in preset_weight_sets(name):
        details = [cfg.data, cfg.license, checksum_text(cfg), preset_file_state(name)]
        parts.append(f"{cfg.filename} {cfg.tag} [{'; '.join(details)}]")
    return ", ".join(parts) or "-"


_FILE_STATES = {True: "installed copy matches", False: "INSTALLED COPY DIFFERS", None: "not installed"}


def preset_file_state(name: str) -> str:
    """Whether the installed copy of preset ``name``'s weight file has the published SHA-256, in words.

    Example:
        >>> preset_file_state("map-selection")
        'not installed'
    """
    return _FILE_STATES[verify_preset_file(name)]


def checksum_text(cfg: PretrainedCfg) -> str:
    """A weight record's SHA-256, shortened for listings: ``"sha256 <12 hex digits>..."``.

    Example:
        >>> from percept.backbones.base import PretrainedCfg
        >>> checksum_text(PretrainedCfg(tag="v0.1", source="lpips", checksum="0123456789abcdef"))
        'sha256 0123456789ab...'
    """
    return f"sha256 {cfg.checksum[:12]}..." if cfg.checksum else "no published checksum"
