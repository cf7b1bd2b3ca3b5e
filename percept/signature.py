"""Signatures: one line saying what produced a number, as sacrebleu's do for BLEU.

A reported LPIPS cannot be matched without knowing the input range ([0, 1] or [-1, 1]), the network,
the version of the heads, any resize and the weights. :func:`signature` writes all of it in one
``|``-separated line::

    lpips-alex|v0.1|range=0,1|resize=none|weights=sha256:5c2f1a9b0d3e|heads=sha256:0a9e41c7d2b8|percept=0.1.0

Fields, in order:

- the spec (``vgg16:conv3/unit/l2``) or preset (``lpips-alex``) the metric was built from;
- for a preset, its version: the tag of its recorded weights (``v0.1`` for LPIPS and DISTS), absent for
  a spec string, whose text says everything;
- ``range=LO,HI``: the range the metric expects its images in;
- ``resize=none``, or ``resize=HxW-<interpolation>`` when the network resizes every input (``resize=True``),
  or what the caller resized the images to (the ``resize`` argument: ``percept score --resize``);
- ``weights=sha256:<12 hex>``: the backbone network's weights
  (:func:`percept.backbones.weights.state_dict_checksum`), preceded by ``random,seed=S,`` for random
  weights drawn with seed ``S`` (``weights="random:S"`` rebuilds them);
- ``heads=sha256:<12 hex>``, only where the metric holds tensors or layer weights of its own beyond the
  backbone (LPIPS' linear heads, a selection's maps, fine-tuned channel weights);
- ``ensemble=...``: E-LPIPS' ensemble settings, only for an ensemble;
- ``percept=<version>``.

Two numbers with the same signature were computed the same way and can be compared; a checksum
prefix of 12 hex digits names the weights for a reader, and :func:`signature_record` holds the full
checksums for files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from percept._version import read_version

SHORT_HEX = 12  # hex digits of a checksum shown in the signature line (the record keeps all 64)


def _pipeline_of(obj: Any):
    """The :class:`~percept.pipeline.Pipeline` behind a loss, a metric or a pipeline."""
    from percept.pipeline import Pipeline

    if isinstance(obj, Pipeline):
        return obj
    pipeline = getattr(obj, "pipeline", None)
    if isinstance(pipeline, Pipeline):
        return pipeline
    raise TypeError(f"signature: expected a PerceptualLoss, PerceptualMetric or Pipeline, got {type(obj).__name__}")


def _backbones(module: nn.Module) -> Iterator[Any]:
    from percept.backbones.base import Backbone

    for sub in module.modules():
        if isinstance(sub, Backbone):
            yield sub


def _number(x: float) -> str:
    return f"{float(x):g}"


def _preset_version(name: str) -> str | None:
    """The version of the preset ``name``: the tag of its first weight record (``"v0.1"``), else ``None``."""
    from percept.errors import SpecError
    from percept.registry import get_registry

    registry = get_registry()
    try:
        if not registry.has("preset", name):
            return None
        pretrained = registry.get("preset", name).pretrained
    except SpecError:
        return None
    records = pretrained() if callable(pretrained) else pretrained
    tags = [getattr(r, "tag", None) for r in records or ()]
    return next((str(t) for t in tags if t), None)


def _own_tensors(pipeline: Any) -> list[tuple[str, torch.Tensor]]:
    """The pipeline's persistent tensors outside the backbone (readouts' heads, a distance's weights)."""
    out: list[tuple[str, torch.Tensor]] = []
    for prefix, part in (("readouts", pipeline.readouts), ("distance", pipeline.distance)):
        if isinstance(part, nn.Module):
            out.extend((f"{prefix}.{k}", v) for k, v in part.state_dict().items() if isinstance(v, torch.Tensor))
    return out


def _heads_checksum(pipeline: Any) -> str | None:
    """SHA-256 over the pipeline's own tensors and its layer weights; ``None`` when it has no tensors and all
    layer weights are 1 (nothing beyond the spec text and the backbone)."""
    from percept.backbones.weights import state_dict_checksum

    tensors = _own_tensors(pipeline)
    layer_weights = [float(w) for w in pipeline.layer_weights]
    if not tensors and all(w == 1.0 for w in layer_weights):
        return None
    state = dict(tensors)
    state["layer_weights"] = torch.tensor(layer_weights, dtype=torch.float64)
    return state_dict_checksum(state)


def _resize_text(module: nn.Module, resize: Any) -> str:
    """``none``; the caller's resize (``64``, ``64x48``); the network's own (``224x224-bilinear``); or both
    (``64+224x224-bilinear``: images resized to 64, then the network resizes them to 224 x 224)."""
    parts = []
    if resize is not None and resize is not False:
        if isinstance(resize, Sequence) and not isinstance(resize, str):
            parts.append("x".join(str(int(v)) for v in resize))
        else:
            parts.append(str(resize))
    for backbone in _backbones(module):
        if getattr(backbone, "resize", False) and getattr(backbone, "input_size", None):
            h, w = backbone.input_size
            parts.append(f"{h}x{w}-{backbone.interpolation}")
    return "+".join(dict.fromkeys(parts)) or "none"


def _weights_checksum(backbone: nn.Module) -> str:
    """One checksum of the network(s): the backbone's ``model`` (a plain Backbone) or the whole backbone."""
    from percept.backbones.weights import state_dict_checksum

    model = getattr(backbone, "model", None)
    return state_dict_checksum(model if isinstance(model, nn.Module) else backbone)


def _seed(module: nn.Module) -> int | str | None:
    """The seed of the random weights in ``module`` (several seeds comma-separated), ``None`` for none."""
    seeds = [b.random_seed for b in _backbones(module) if getattr(b, "random_seed", None) is not None]
    if not seeds:
        return None
    return seeds[0] if len(set(seeds)) == 1 else ",".join(str(s) for s in seeds)


def _ensemble_text(ensemble: Any) -> str:
    """E-LPIPS settings as ``n:auto,seed:auto,keep:0.99,scale:8,offset:7`` (``auto``: chosen per call)."""

    def text(value: Any) -> str:
        return "auto" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    names = (("n", "n"), ("seed", "seed"), ("keep", "keep"), ("scale", "max_scale"), ("offset", "max_offset"))
    return ",".join(f"{short}:{text(getattr(ensemble, attr, None))}" for short, attr in names)


def _cache_key(pipeline: Any) -> tuple:
    """Changes when any tensor of the pipeline is replaced or modified in place (``_version``)."""
    return tuple((id(t), t._version, t.data_ptr()) for t in (*pipeline.parameters(), *pipeline.buffers()))


def signature_record(obj: Any, *, resize: Any = None) -> dict[str, Any]:
    """The fields of :func:`signature` with full checksums, for result files.

    Args:
        obj: a :class:`~percept.PerceptualLoss`, :class:`~percept.PerceptualMetric` or
            :class:`~percept.pipeline.Pipeline`.
        resize: what the caller resized the images to before scoring (``percept score --resize``), if
            anything; the network's own ``resize=True`` is found without it.

    Returns:
        ``{"spec", "version", "range", "resize", "weights", "seed", "heads", "ensemble", "percept"}``:
        ``weights`` and ``heads`` are ``"sha256:<64 hex>"`` (``heads`` ``None`` where the metric has
        none), ``seed`` the seed of random weights or ``None``, ``version`` ``None`` for a spec string.

    Raises:
        TypeError: ``obj`` is none of these.

    Example:
        >>> from percept import PerceptualLoss
        >>> rec = signature_record(PerceptualLoss("alexnet:conv1", weights="random:0"))  # doctest: +SKIP
        >>> rec["seed"], rec["weights"][:7], rec["range"]  # doctest: +SKIP
        (0, 'sha256:', '0,1')
    """

    pipeline = _pipeline_of(obj)
    key = (_cache_key(pipeline), str(resize))
    cached = getattr(pipeline, "_signature_cache", None)
    if cached is not None and cached[0] == key:
        return dict(cached[1])
    spec = pipeline.spec
    inner = spec[len("elpips(") : -1] if pipeline.ensemble is not None and spec.startswith("elpips(") else spec
    ensemble = pipeline.ensemble
    record = {
        "spec": spec,
        "version": _preset_version(inner),
        "range": ",".join(_number(v) for v in pipeline.input_range),
        "resize": _resize_text(pipeline, resize),
        "weights": _weights_checksum(pipeline.backbone),
        "seed": _seed(pipeline),
        "heads": _heads_checksum(pipeline),
        "ensemble": None if ensemble is None else _ensemble_text(ensemble),
        "percept": read_version(),
    }
    pipeline._signature_cache = (key, dict(record))
    return record


def format_signature(record: dict[str, Any], *, short: bool = True) -> str:
    """The line :func:`signature` prints, from a :func:`signature_record` (``short``: 12 hex digits per checksum).

    Example:
        >>> format_signature({"spec": "lpips-alex", "version": "v0.1", "range": "0,1", "resize": "none",
        ...                   "weights": "sha256:" + "ab" * 32, "seed": None, "heads": None, "percept": "0.1.0"})
        'lpips-alex|v0.1|range=0,1|resize=none|weights=sha256:abababababab|percept=0.1.0'
    """

    def digest(text: str) -> str:
        return text[: len("sha256:") + SHORT_HEX] if short and text.startswith("sha256:") else text

    weights = digest(record["weights"])
    if record.get("seed") is not None:
        weights = f"random,seed={record['seed']},{weights}"
    fields = [record["spec"]]
    if record.get("version"):
        fields.append(str(record["version"]))
    fields += [f"range={record['range']}", f"resize={record['resize']}", f"weights={weights}"]
    if record.get("heads"):
        fields.append(f"heads={digest(record['heads'])}")
    if record.get("ensemble"):
        fields.append(f"ensemble={record['ensemble']}")
    fields.append(f"percept={record['percept']}")
    return "|".join(fields)


def signature(obj: Any, *, resize: Any = None, short: bool = True) -> str:
    """What produced a number, in one line: spec or preset and version, input range, resize, weights, percept.

    Args:
        obj: a :class:`~percept.PerceptualLoss`, :class:`~percept.PerceptualMetric` or
            :class:`~percept.pipeline.Pipeline`.
        resize: what the caller resized images to before scoring, if anything (see :func:`signature_record`).
        short: checksums cut to 12 hex digits (default); ``False`` writes all 64.

    Returns:
        ``"<spec>[|<version>]|range=LO,HI|resize=...|weights=[random,seed=S,]sha256:...[|heads=sha256:...]``
        ``[|ensemble=...]|percept=<version>"``; the module docstring explains each field.

    Raises:
        TypeError: ``obj`` is none of these.

    Example:
        >>> from percept import PerceptualMetric
        >>> signature(PerceptualMetric("lpips-alex"))  # doctest: +SKIP
        'lpips-alex|v0.1|range=0,1|resize=none|weights=sha256:5c2f1a9b0d3e|heads=sha256:0a9e41c7d2b8|percept=0.1.0'
        >>> signature(PerceptualMetric("alexnet:conv1", weights="random:0"))  # doctest: +SKIP
        'alexnet:conv1|range=0,1|resize=none|weights=random,seed=0,sha256:...|percept=0.1.0'
    """
    return format_signature(signature_record(obj, resize=resize), short=short)


def backbone_record(backbone: nn.Module, *, resize: Any = None) -> dict[str, Any]:
    """:func:`signature_record`'s fields for a bare backbone (the toolkit's sweeps, selections and fine-tuning,
    which score a network's taps without a pipeline): its name as ``spec``, no version, heads or ensemble.

    Example:
        >>> from percept.backbones.factory import create_backbone
        >>> backbone_record(create_backbone("alexnet", weights="random:0"), resize=64)["resize"]  # doctest: +SKIP
        '64'
    """
    return {
        "spec": str(getattr(backbone, "name", type(backbone).__name__)),
        "version": None,
        "range": ",".join(_number(v) for v in getattr(backbone, "input_range", (0.0, 1.0))),
        "resize": _resize_text(backbone, resize),
        "weights": _weights_checksum(backbone),
        "seed": _seed(backbone),
        "heads": None,
        "ensemble": None,
        "percept": read_version(),
    }


def backbone_signature(backbone: nn.Module, *, resize: Any = None, short: bool = True) -> str:
    """The signature line of a bare backbone (:func:`backbone_record`), e.g.
    ``alexnet|range=0,1|resize=64|weights=random,seed=0,sha256:635fed76fce9|percept=0.1.0``.

    Example:
        >>> from percept.backbones.factory import create_backbone
        >>> backbone_signature(create_backbone("alexnet", weights="random:0"))  # doctest: +SKIP
        'alexnet|range=0,1|resize=none|weights=random,seed=0,sha256:635fed76fce9|percept=0.1.0'
    """
    return format_signature(backbone_record(backbone, resize=resize), short=short)


COMMENT = "# signature: "  # how a CSV or TSV file's first lines carry signatures


def write_signed_csv(table: Any, path: Any, signatures: Sequence[str], **to_csv_kwargs: Any) -> None:
    """Write a pandas table as CSV (whole or not at all, :func:`percept.io.atomic_write`) after one comment line
    ``# signature: ...`` per signature; read it back with ``pandas.read_csv(path, comment="#")``, and the
    signatures with :func:`read_signatures`.

    Example:
        >>> import pandas as pd, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
        >>> write_signed_csv(pd.DataFrame({"a": [1]}), path, ["x|range=0,1"], index=False)
        >>> open(path).read().splitlines()
        ['# signature: x|range=0,1', 'a', '1']
        >>> read_signatures(path), pd.read_csv(path, comment="#")["a"].tolist()
        (['x|range=0,1'], [1])
    """
    from percept.io import atomic_write

    with atomic_write(path, "w", newline="") as f:
        for text in dict.fromkeys(signatures):
            f.write(f"{COMMENT}{text}\n")
        table.to_csv(f, **to_csv_kwargs)


def read_signatures(path: Any) -> list[str]:
    """The signatures in the leading ``# signature: ...`` lines of a file (:func:`write_signed_csv`, the TSV of
    ``percept score``).

    Example:
        >>> read_signatures(__file__)
        []
    """
    found = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith(COMMENT):
                break
            found.append(line[len(COMMENT) :].rstrip("\n"))
    return found


def parse_signature(text: str) -> dict[str, str]:
    """The fields of a signature line: ``{"spec": ..., "version": ... (if any), "range": ..., ...}``.

    Example:
        >>> parse_signature("lpips-alex|v0.1|range=0,1|resize=none|weights=sha256:ab|percept=0.1.0")["version"]
        'v0.1'
    """
    parts = text.strip().split("|")
    out = {"spec": parts[0]}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if eq:
            out[key] = value
        else:
            out["version"] = part
    return out


__all__ = [
    "backbone_record",
    "backbone_signature",
    "format_signature",
    "parse_signature",
    "read_signatures",
    "signature",
    "signature_record",
    "write_signed_csv",
]
