"""MkDocs hook: writes the backbone catalogue into ``backbones.md`` from the registry, at build time.

Every registered backbone (built-in or from an installed plugin) gets a row: its name, what it is,
its canonical taps (what ``all`` means) and how many taps it has, its weight sets and their licences.
Only public API is used: :func:`percept.list_backbones`, :func:`percept.create_backbone`, the
registry's entries and :mod:`percept.backbones.catalogue`. Backbones are built on PyTorch's ``meta``
device with ``weights=None`` (shapes do not depend on the weights, and nothing is allocated or
downloaded); one that cannot be built there is built on the CPU.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from unittest import mock

MARKER = "<!-- catalogue:backbones -->"
PRESETS_MARKER = "<!-- catalogue:presets -->"
TAPS_MARKER = re.compile(r"<!-- catalogue:taps ([\w.]+) -->")  # a table of one backbone's tap names


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _no_init(*args: Any, **kwargs: Any) -> Any:
    return args[0] if args else kwargs.get("tensor")


@contextlib.contextmanager
def _shapes_only() -> Iterator[None]:
    """Build on the meta device with torch.nn.init's initialisers turned off: a meta tensor has no
    values to fill, and filling them is most of the time a large network takes to build."""
    import torch

    inits = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    with contextlib.ExitStack() as stack:
        for name in inits:
            stack.enter_context(mock.patch.object(torch.nn.init, name, _no_init))
        stack.enter_context(torch.device("meta"))
        yield


def _build(name: str) -> Any:
    import percept

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: only the taps are read
        try:
            with _shapes_only():
                return percept.create_backbone(name, weights=None)
        except Exception:  # noqa: BLE001 - a backbone that copies constants cannot live on meta
            return percept.create_backbone(name, weights=None)


def _taps_cell(backbone: Any) -> str:
    canonical = list(backbone.canonical_taps)
    count = len(backbone.tap_names)
    shown = ", ".join(f"`{t}`" for t in canonical)
    return f"{shown} ({count} in all)" if shown else f"{count}"


def _weights_cells(name: str) -> tuple[str, str]:
    from percept.backbones.catalogue import weight_sets

    sets = weight_sets(name)
    if not sets:
        return "none", ""
    rows, licences = [], []
    for cfg in sets:
        details = "; ".join(d for d in (cfg.data, f"sha256 {cfg.checksum}..." if cfg.checksum else "") if d)
        aliases = "".join(f" = `{a}`" for a in getattr(cfg, "aliases", ()))  # "imagenet": the default set
        rows.append(f"`{cfg.tag}`{aliases} ({_cell(details)})" if details else f"`{cfg.tag}`{aliases}")
        if cfg.license and cfg.license not in licences:
            licences.append(cfg.license)
    return "<br>".join(rows), "<br>".join(_cell(lic) for lic in licences)


def backbone_catalogue() -> str:
    """The catalogue as Markdown: one table per plugin that registers backbones."""
    from percept.registry import get_registry

    registry = get_registry()
    groups: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for entry in sorted(registry.entries("backbone"), key=lambda e: e.name):
        if entry.prefix:
            groups[entry.plugin].append(
                (
                    f"`{entry.name}.<model>[.<tag>]`",
                    _cell(entry.description),
                    "the model's own (`percept taps` lists them)",
                    "the model's pretrained tags",
                    "as tagged",
                )
            )
            continue
        backbone = _build(entry.name)
        weights, licences = _weights_cells(entry.name)
        groups[entry.plugin].append(
            (f"`{entry.name}`", _cell(entry.description), _taps_cell(backbone), weights, licences)
        )
    builtin = {info.name for info in registry.plugins() if info.builtin}
    count = sum(len(rows) for rows in groups.values())
    out = [f"{count} backbones registered when these pages were built.", ""]
    for plugin in sorted(groups, key=lambda p: (p not in builtin, p)):
        title = f"{plugin.removeprefix('percept.builtin.')} (built-in)" if plugin in builtin else f"{plugin} (plugin)"
        out += [f"### {title}", ""]
        rows = groups[plugin]
        licences = {row[-1] for row in rows}
        if len(licences) == 1:  # one licence for the family: said once, above its table
            (licence,) = licences
            out += [f"Licence of the weights: {licence.replace('<br>', '; ')}." if licence else "No weights.", ""]
            out += ["| name | what it is | canonical taps | weights |", "|---|---|---|---|"]
            out += ["| " + " | ".join(row[:-1]) + " |" for row in rows]
        else:
            out += ["| name | what it is | canonical taps | weights | licence |", "|---|---|---|---|---|"]
            out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)


def preset_catalogue() -> str:
    """The presets as Markdown: name, description and the presets' own weight files."""
    from percept.backbones.catalogue import preset_weight_sets
    from percept.registry import get_registry

    out = ["| preset | what it is | its own weight files |", "|---|---|---|"]
    for entry in sorted(get_registry().entries("preset"), key=lambda e: e.name):
        files = [
            f"`{c.filename or c.tag}` ({_cell('; '.join(x for x in (c.data, c.license) if x))})"
            for c in preset_weight_sets(entry.name)
        ]
        out.append(f"| `{entry.name}` | {_cell(entry.description)} | {'<br>'.join(files) or '-'} |")
    return "\n".join(out)


_KINDS = {  # what a tap's module computes, as a reader of a tap table needs it
    "Conv2d": "convolution output, before its ReLU",
    "ReLU": "ReLU output",
    "ReLU6": "ReLU6 output",
    "MaxPool2d": "max-pool output",
    "AvgPool2d": "average-pool output",
    "AdaptiveAvgPool2d": "global average pool",
    "Sequential": "stage output (its last block's output)",
    "Fire": "Fire module output (squeeze, expand, after the ReLUs)",
    "BatchNorm2d": "batch-norm output, before its ReLU",
}


def _kind(backbone: Any, module: str) -> str:
    """What the module at ``module`` is (``"ReLU output"``), from its type; the type's name if not known."""
    if not module:
        return "the input image, normalised"
    try:
        found = backbone.model.get_submodule(module)
    except (AttributeError, LookupError):
        return "-"
    name = type(found).__name__
    return _KINDS.get(name, name)


def tap_table(name: str) -> str:
    """The taps of backbone ``name`` as Markdown: each distinct layer once, with every name that reads it
    (canonical first), its module, what it computes, its channels and its stride."""
    backbone = _build(name)
    layers: dict[int, list[Any]] = defaultdict(list)
    for info in backbone.feature_info:
        layers[info.index].append(info)
    out = [
        f"`{name}`: canonical taps (what `all` means) in bold; names on one row are one layer.",
        "",
        "| names | module | what it is | channels | stride |",
        "|---|---|---|---|---|",
    ]
    for index in sorted(layers):
        infos = sorted(layers[index], key=lambda i: not i.canonical)
        names = " = ".join(f"**`{i.name}`**" if i.canonical else f"`{i.name}`" for i in infos)
        first = infos[0]
        module = f"`{first.module}`" if first.module else "-"
        out.append(f"| {names} | {module} | {_kind(backbone, first.module)} | {first.channels} | {first.reduction} |")
    return "\n".join(out)


# Docstrings cross-reference in Sphinx's notation (:func:`percept.parse_spec`); mkdocstrings renders the
# role's name literally before the code span, which reads as noise: keep the code span only.
_SPHINX_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|exc|obj):(?=<code>)")


# ... and end a paragraph with reStructuredText's "::" before a literal block, which reads as a typo.
_LITERAL_MARK = re.compile(r"::</p>")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return _LITERAL_MARK.sub(":</p>", _SPHINX_ROLE.sub("", html))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, backbone_catalogue())
    if PRESETS_MARKER in markdown:
        markdown = markdown.replace(PRESETS_MARKER, preset_catalogue())
    return TAPS_MARKER.sub(lambda m: tap_table(m.group(1)), markdown)
