"""Learned heads on disk: ``DIR/heads.json`` (what was learned, from what, how well) and its tensor file.

``heads.json`` holds the provenance: the backbone, its build options and input normalisation, the taps and
their channels, the backbone weights (a tag, a file, or ``random:SEED`` for random weights) and their
checksum (:func:`percept.backbones.weights.state_dict_checksum`), the data (database, path, subsets, number
of triplets), the training options, the held-out 2AFC score before and after, percept's version and, where
percept has it, the metric's signature. The heads themselves are in ``heads.safetensors`` (or ``heads.pt``, a
plain dict of tensors read with ``weights_only=True``, where safetensors is not installed), with the ranking
network and, for a tuned trunk, the trunk. Both files are written atomically (:mod:`percept.io`).

:func:`heads_pipeline` rebuilds the metric: ``PerceptualLoss("learned-heads", file="DIR/heads.json")``. It
builds the backbone with the recorded weights and refuses any network whose checksum differs from the
recorded one (another tag, another file, other random weights), naming both checksums and the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from percept.backbones.base import Backbone
from percept.errors import InputError, WeightsError

FORMAT = "percept-learned-heads/1"
LPIPS_BACKBONES = ("alexnet", "vgg16", "squeezenet1_1")
GIVEN = "given"
TUNED = "tuned"


def seeded_backbone(name: str, seed: int, **options: Any) -> Backbone:
    """``create_backbone(name, weights="random:SEED")``: random weights that the same name and seed draw again.

    Example:
        >>> from percept.backbones.weights import state_dict_checksum
        >>> a, b = seeded_backbone("alexnet", 3), seeded_backbone("alexnet", 3)  # doctest: +SKIP
        >>> state_dict_checksum(a.model) == state_dict_checksum(b.model)  # doctest: +SKIP
        True
    """
    from percept.backbones.factory import create_backbone

    return create_backbone(name, weights=f"random:{int(seed)}", **options)


def backbone_options(backbone: Backbone) -> dict[str, Any]:
    """The build options to record for ``backbone`` (``resize=True`` for a network resized to its input size)."""
    return {"resize": True} if backbone.resize else {}


def normalization_record(backbone: Backbone) -> dict[str, list[float]]:
    """The backbone's input normalisation: ``mean``, ``std`` and the ``domain`` they apply on."""
    return {"mean": backbone.mean.flatten().tolist(), "std": backbone.std.flatten().tolist(),
            "domain": list(backbone.norm_domain)}  # fmt: skip


def weights_record(backbone: Backbone, weights: Any) -> dict[str, Any]:
    """``{"source", "checksum"}`` of the network's weights, built from ``weights``.

    ``source`` is what rebuilds them: a tag, a path, ``"random:SEED"`` for random weights
    (:func:`percept.backbones.factory.reproducible_weights`), or ``"given"`` for a network passed in built,
    whose weights cannot be told (reloading it then needs ``weights=`` with the same checksum).
    """
    from percept.backbones.factory import reproducible_weights
    from percept.backbones.weights import state_dict_checksum

    source = reproducible_weights(backbone, weights)
    return {"source": GIVEN if source is None else str(source), "checksum": state_dict_checksum(backbone.model)}


def write_heads(folder: str | os.PathLike, record: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> Path:
    """Write ``folder/heads.json`` (``record`` plus the tensor file's name and SHA-256) and the tensor file.

    Returns:
        The path of ``heads.json``.

    Example:
        >>> write_heads("out", {"format": FORMAT, ...}, {"heads.0": w})  # doctest: +SKIP
        PosixPath('out/heads.json')
    """
    from percept.io import ensure_output_folder, write_bytes, write_text

    folder = ensure_output_folder(folder)
    plain = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    try:
        from safetensors.torch import save as save_safetensors

        name, data = "heads.safetensors", save_safetensors(plain)
    except ImportError:  # pragma: no cover - safetensors comes with timm; torch.save otherwise
        buffer = io.BytesIO()
        torch.save(plain, buffer)
        name, data = "heads.pt", buffer.getvalue()
    write_bytes(folder / name, data)
    full = {**record, "tensors": name, "tensors_sha256": hashlib.sha256(data).hexdigest()}
    path = folder / "heads.json"
    write_text(path, json.dumps(full, indent=1, default=str) + "\n")
    return path


def read_heads(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read ``heads.json`` and its tensor file (checked against the recorded SHA-256): ``(record, tensors)``.

    Raises:
        InputError: a missing or malformed file, a field missing, a tensor file changed since it was written.

    Example:
        >>> read_heads("/nonexistent/heads.json")
        Traceback (most recent call last):
        ...
        percept.errors.InputError: learned-heads file '/nonexistent/heads.json' does not exist
    """
    path = Path(path)
    if path.is_dir():
        path = path / "heads.json"
    if not path.is_file():
        raise InputError(f"learned-heads file '{path}' does not exist")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read learned-heads file '{path}': {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f"'{path}' is not a learned-heads file (expected JSON with format {FORMAT!r})")
    for key in ("backbone", "taps", "channels", "weights", "normalization", "tensors", "tensors_sha256"):
        if key not in record:
            raise InputError(f"learned-heads file '{path}' has no field {key!r}")
    tensor_path = path.parent / str(record["tensors"])
    if not tensor_path.is_file():
        raise InputError(f"learned-heads file '{path}' names '{tensor_path}', which does not exist")
    data = tensor_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record["tensors_sha256"]:
        raise InputError(f"'{tensor_path}' has changed since '{path}' was written (its SHA-256 differs)")
    if tensor_path.suffix == ".safetensors":
        from safetensors.torch import load as load_safetensors

        tensors = load_safetensors(data)
    else:
        tensors = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    heads = [tensors.get(f"heads.{i}") for i in range(len(record["taps"]))]
    for i, (head, channels) in enumerate(zip(heads, record["channels"], strict=True)):
        if head is None or head.numel() != channels:
            raise InputError(f"'{tensor_path}': head {i} is missing or has not {channels} weights")
        if not torch.isfinite(head).all() or (head < 0).any():
            raise InputError(f"'{tensor_path}': head {i} holds negative or non-finite weights")
    return record, tensors


def _build(record: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], weights: Any, input_range) -> Backbone:
    """The recorded backbone: built with ``weights`` (``"from-file"``: as recorded) and the recorded options."""
    from percept.backbones.factory import create_backbone

    name, options, recorded = record["backbone"], dict(record.get("backbone_options") or {}), record["weights"]
    if weights != "from-file":
        return create_backbone(name, weights=weights, input_range=input_range, **options)
    source = recorded.get("source")
    if source == TUNED:
        net = create_backbone(name, weights=None, input_range=input_range, **options)
        net.model.load_state_dict({k[len("trunk.") :]: v for k, v in tensors.items() if k.startswith("trunk.")})
        return net
    if source in (GIVEN, None):
        raise WeightsError(
            f"the backbone of '{record.get('_path')}' was passed in as a built network; pass the same weights "
            f"(weights=<tag or file>; checksum {recorded['checksum']})"
        )
    return create_backbone(name, weights=source, input_range=input_range, **options)


def heads_backbone(file: str | os.PathLike, *, weights: Any = "from-file", input_range=(0.0, 1.0)) -> Backbone:
    """The network a ``heads.json`` was learned on: built with the recorded weights and normalisation, checked.

    The sweep, select, finetune and visualize commands take ``--backbone DIR/heads.json`` through this: they
    then run on exactly the network the heads were learned on.

    Args:
        file: ``DIR/heads.json`` (or ``DIR``).
        weights: ``"from-file"`` (the recorded weights); anything else must have the recorded checksum.
        input_range: the range of the images passed.

    Raises:
        WeightsError: the network's weights are not those the heads were learned with (both checksums named).

    Example:
        >>> heads_backbone("learned/heads.json").name  # doctest: +SKIP
        'alexnet'
    """
    record, tensors = read_heads(file)
    return _checked_backbone(file, record, tensors, weights, input_range)


def _checked_backbone(file, record: dict[str, Any], tensors, weights: Any, input_range) -> Backbone:
    from percept.backbones.weights import state_dict_checksum

    record["_path"] = str(file)
    backbone = _build(record, tensors, weights, input_range)
    got, expected = state_dict_checksum(backbone.model), record["weights"]["checksum"]
    if got != expected:
        raise WeightsError(
            f"the heads in '{file}' were learned on {record['backbone']} weights {expected}; the network built "
            f"(weights={weights!r}) has {got}. Use the recorded weights ({record['weights'].get('source')!r})."
        )
    norm = record["normalization"]
    return backbone.set_normalization(norm["mean"], norm["std"], domain=tuple(norm["domain"]))


def heads_pipeline(file: str | os.PathLike, *, weights: Any = "from-file", input_range=(0.0, 1.0)):
    """The learned metric of a ``heads.json``: LPIPS' arithmetic with the learned heads on the recorded network.

    Args:
        file: ``DIR/heads.json`` (or ``DIR``), written by ``percept learn`` or :meth:`HeadsResult.save`.
        weights: ``"from-file"`` (the recorded weights); anything else (a tag, a path, ``None``) is built and
            must have the recorded checksum.
        input_range: the range of the images passed.

    Returns:
        A :class:`~percept.pipeline.Pipeline`: ``sum_taps mean_hw sum_c w_c (u_x - u_y)^2``.

    Raises:
        WeightsError: the network's weights are not those the heads were learned with (both checksums named).

    Example:
        >>> metric = heads_pipeline("learned/heads.json")  # doctest: +SKIP
        >>> metric(x, y).shape  # doctest: +SKIP
        torch.Size([4])
    """
    from percept.builtin.distances import L2
    from percept.pipeline import Pipeline
    from percept.readouts.base import ChannelWeightedReadout

    record, tensors = read_heads(file)
    backbone = _checked_backbone(file, record, tensors, weights, input_range)
    taps = list(record["taps"])
    readouts = [
        ChannelWeightedReadout(c, tensors[f"heads.{i}"].reshape(-1), normalize=True)
        for i, c in enumerate(record["channels"])
    ]
    spec = f"learned-heads({record['backbone']}:{','.join(taps)})"
    return Pipeline(backbone, taps, readouts, L2(), spec=spec)
