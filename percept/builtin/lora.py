"""Low-rank adaptation (LoRA, Hu et al. 2022) of a transformer's attention, and the learned-embedding file.

:class:`LoRALinear` wraps a frozen ``nn.Linear`` ``W`` as ``W x + (alpha / r) B A dropout(x)``, with ``A``
``(r, in)`` drawn as ``peft`` draws it (Kaiming-uniform, ``a = sqrt(5)``) and ``B`` ``(out, r)`` zero, so a
freshly adapted network computes exactly what the frozen one did. :func:`apply_lora` puts one on every
``nn.Linear`` whose name is in ``targets`` (DreamSim: ``qkv``, the attention's query-key-value projection of
timm's and DINO's blocks; torchvision's ViT fuses it inside ``nn.MultiheadAttention`` and has none).

A metric tuned by ``percept learn --method lora`` (:mod:`percept.eval.learn.embedding`) is saved as
``DIR/embedding.json`` (members, readout, the base weights and their checksum, the LoRA configuration, the
data and held-out 2AFC) beside ``DIR/lora.safetensors`` (the ``A`` and ``B`` matrices), and reloaded with
``PerceptualLoss("learned-embedding", file="DIR/embedding.json")``, which refuses other base weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from percept.backbones.weights import state_dict_checksum
from percept.builtin.embedding import EmbeddingEnsemble, embedding_pipeline, member_backbone
from percept.errors import InputError, SpecError, WeightsError
from percept.pipeline import Pipeline

FORMAT = "percept-learned-embedding/1"
RANDOM = "random"


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: ``y = W x + b + (alpha / rank) B A dropout(x)``.

    Args:
        base: the linear layer adapted (kept frozen).
        rank: ``r``, the inner dimension of ``B A``.
        alpha: the scale numerator (``scaling = alpha / rank``).
        dropout: dropout probability on the update's input (active in training mode only).

    Example:
        >>> base = nn.Linear(4, 6)
        >>> lora = LoRALinear(base, rank=2, alpha=8.0)
        >>> x = torch.rand(3, 4)
        >>> bool(torch.equal(lora(x), base(x)))  # B starts at zero
        True
    """

    def __init__(self, base: nn.Linear, rank: int = 16, alpha: float = 8.0, dropout: float = 0.0) -> None:
        super().__init__()
        if int(rank) < 1:
            raise SpecError(f"LoRA rank must be a positive integer, got {rank!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise SpecError(f"LoRA dropout must be in [0, 1), got {dropout!r}")
        self.base = base.requires_grad_(False)
        self.rank, self.alpha = int(rank), float(alpha)
        self.scaling = self.alpha / self.rank
        self.dropout = nn.Dropout(float(dropout)) if dropout else nn.Identity()
        self.lora_A = nn.Linear(base.in_features, self.rank, bias=False, device=base.weight.device)
        self.lora_B = nn.Linear(self.rank, base.out_features, bias=False, device=base.weight.device)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(self.dropout(x))) * self.scaling

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}"


def apply_lora(
    module: nn.Module, *, rank: int = 16, alpha: float = 8.0, dropout: float = 0.0, targets: Sequence[str] = ("qkv",)
) -> list[str]:
    """Replace every ``nn.Linear`` of ``module`` whose own name is in ``targets`` by a :class:`LoRALinear`.

    Only the LoRA matrices require gradients afterwards; everything else in ``module`` is frozen.

    Returns:
        The module paths adapted, in order.

    Raises:
        SpecError: no such layer (the message names the linear layers' names that exist).

    Example:
        >>> net = nn.Sequential()
        >>> net.add_module("qkv", nn.Linear(4, 12))
        >>> apply_lora(net, rank=2)
        ['qkv']
    """
    found = [
        (path, sub)
        for path, sub in module.named_modules()
        if isinstance(sub, nn.Linear) and path.rsplit(".", 1)[-1] in targets and not _inside_lora(module, path)
    ]
    if not found:
        names = sorted({p.rsplit(".", 1)[-1] for p, m in module.named_modules() if isinstance(m, nn.Linear)})
        raise SpecError(
            f"no linear layer named {list(targets)} to adapt with LoRA; the network's linear layers are named "
            f"{names[:12] or 'nothing'} (torchvision's ViT keeps its attention inside nn.MultiheadAttention: use a "
            "timm model)"
        )
    module.requires_grad_(False)
    for path, linear in found:
        parent_path, _, name = path.rpartition(".")
        parent = module.get_submodule(parent_path) if parent_path else module
        # The same mode as the layer it wraps: a frozen network in eval mode stays without dropout.
        setattr(parent, name, LoRALinear(linear, rank, alpha, dropout).train(linear.training))
    return [path for path, _ in found]


def _inside_lora(root: nn.Module, path: str) -> bool:
    parts = path.split(".")
    return any(isinstance(root.get_submodule(".".join(parts[:i])), LoRALinear) for i in range(1, len(parts)))


def lora_layers(module: nn.Module) -> list[LoRALinear]:
    """Every :class:`LoRALinear` inside ``module``.

    Example:
        >>> net = nn.Sequential()
        >>> net.add_module("qkv", nn.Linear(4, 12))
        >>> _ = apply_lora(net, rank=2)
        >>> [layer.rank for layer in lora_layers(net)]
        [2]
    """
    return [m for m in module.modules() if isinstance(m, LoRALinear)]


def lora_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """``{path.lora_A.weight | path.lora_B.weight: tensor}`` of every LoRA layer in ``module`` (detached, CPU).

    Example:
        >>> net = nn.Sequential()
        >>> net.add_module("qkv", nn.Linear(4, 12))
        >>> _ = apply_lora(net, rank=2)
        >>> {k: tuple(v.shape) for k, v in lora_tensors(net).items()}
        {'qkv.lora_A.weight': (2, 4), 'qkv.lora_B.weight': (12, 2)}
    """
    return {
        name: value.detach().cpu().contiguous()
        for name, value in module.state_dict().items()
        if ".lora_A." in name or ".lora_B." in name
    }


def load_lora_tensors(module: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Copy LoRA matrices saved by :func:`lora_tensors` into ``module`` (adapted the same way); exact key match.

    Raises:
        InputError: keys or shapes that do not match the adapted network.

    Example:
        >>> load_lora_tensors(tuned_copy, lora_tensors(tuned))  # doctest: +SKIP
    """
    own = {k: v for k, v in module.state_dict().items() if ".lora_A." in k or ".lora_B." in k}
    if set(own) != set(tensors):
        missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        raise InputError(f"LoRA tensors do not fit the network: missing {missing[:4]}, unexpected {extra[:4]}")
    with torch.no_grad():
        for key, value in tensors.items():
            target = module.get_parameter(key)
            if target.shape != value.shape:
                raise InputError(f"LoRA tensor {key!r}: expected shape {tuple(target.shape)}, got {tuple(value.shape)}")
            target.copy_(value)


def build_embedding_metric(
    members: Sequence[str],
    *,
    weights: Any = "imagenet",
    seed: int | None = None,
    center: bool = True,
    normalize_each: bool = False,
    size: int | None = 224,
    normalization: Sequence[Sequence[Sequence[float]]] | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
    spec: str = "embedding-ensemble",
) -> Pipeline:
    """The embedding metric of ``members`` (see :func:`percept.builtin.embedding.create_embedding_ensemble`).

    ``weights=None`` with a ``seed`` draws the random weights after ``torch.manual_seed(seed)`` (the global RNG
    is left as it was), so the same members and seed give the same network; ``normalization`` gives each
    member's ``(mean, std)`` (DreamSim's), else each keeps its weights' own.

    Example:
        >>> m = build_embedding_metric(["timm.vit_tiny_patch16_224:cls"], weights=None, seed=0)  # doctest: +SKIP
        >>> m.backbone.members[0][1]  # doctest: +SKIP
        'cls'
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        built = [member_backbone(m, weights) for m in members]
    norms: list[Any] = list(normalization) if normalization else [None] * len(built)
    for (backbone, _), norm in zip(built, norms, strict=True):
        if norm is not None:
            backbone.set_normalization(norm[0], norm[1])
    ensemble = EmbeddingEnsemble(built, normalize_each=normalize_each, input_range=input_range, size=size)
    return embedding_pipeline(ensemble, center=center, spec=spec)


def base_checksum(pipeline: Pipeline) -> str:
    """The checksum of an embedding metric's networks without their LoRA matrices (what a file is learned on).

    Example:
        >>> before = base_checksum(metric)  # doctest: +SKIP
        >>> _ = apply_lora(metric.backbone)  # doctest: +SKIP
        >>> base_checksum(metric) == before  # doctest: +SKIP
        True
    """
    wrapped = {f"{path}.base." for path, m in pipeline.backbone.named_modules() if isinstance(m, LoRALinear)}
    state = {}
    for key, value in pipeline.backbone.state_dict().items():
        if ".lora_A." in key or ".lora_B." in key:
            continue
        for prefix in wrapped:  # a wrapped layer's own weights, under their names before wrapping
            if key.startswith(prefix):
                key = prefix[: -len("base.")] + key[len(prefix) :]
        state[key] = value
    return state_dict_checksum(state)


def write_embedding(folder: str | os.PathLike, record: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> Path:
    """Write ``folder/embedding.json`` (``record`` plus the tensor file's name and SHA-256) and ``lora.safetensors``.

    Example:
        >>> write_embedding("out", {"format": FORMAT, ...}, lora_tensors(pipeline))  # doctest: +SKIP
        PosixPath('out/embedding.json')
    """
    from percept.io import ensure_output_folder, write_bytes, write_text

    folder = ensure_output_folder(folder)
    plain = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    try:
        from safetensors.torch import save as save_safetensors

        name, data = "lora.safetensors", save_safetensors(plain)
    except ImportError:  # pragma: no cover - safetensors comes with timm
        buffer = io.BytesIO()
        torch.save(plain, buffer)
        name, data = "lora.pt", buffer.getvalue()
    write_bytes(folder / name, data)
    path = folder / "embedding.json"
    full = {**record, "tensors": name, "tensors_sha256": hashlib.sha256(data).hexdigest()}
    write_text(path, json.dumps(full, indent=1, default=str) + "\n")
    return path


def read_embedding(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read ``embedding.json`` and its tensor file (checked against the recorded SHA-256): ``(record, tensors)``.

    Raises:
        InputError: a missing or malformed file, another format, or a tensor file changed since it was written.

    Example:
        >>> record, tensors = read_embedding("tuned/embedding.json")  # doctest: +SKIP
        >>> record["lora"]["rank"]  # doctest: +SKIP
        16
    """
    path = Path(path)
    if path.is_dir():
        path = path / "embedding.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read learned-embedding file '{path}': {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        got = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise InputError(f"'{path}' is not a learned-embedding file: expected format {FORMAT!r}, got {got!r}")
    for key in ("members", "lora", "weights", "tensors", "tensors_sha256"):
        if key not in record:
            raise InputError(f"learned-embedding file '{path}' lacks the field {key!r}")
    data = (path.parent / record["tensors"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != record["tensors_sha256"]:
        raise InputError(f"'{path.parent / record['tensors']}' changed since '{path}' was written (SHA-256 differs)")
    if record["tensors"].endswith(".safetensors"):
        from safetensors.torch import load as load_safetensors

        return record, load_safetensors(data)
    return record, torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def load_embedding(
    file: str | os.PathLike | None = None, *, weights: Any = "from-file", input_range: tuple[float, float] = (0.0, 1.0)
) -> Pipeline:
    """The ``learned-embedding`` preset: the metric a LoRA run saved, on the base weights it was learned with.

    Args:
        file: ``DIR/embedding.json`` (or ``DIR``) written by ``percept learn --method lora``.
        weights: ``"from-file"`` or ``"imagenet"`` (``PerceptualLoss``'s default): the recorded source (a tag, a
            file, or random weights with their seed); another weights argument for the base networks must give
            the same weights.
        input_range: the range of the images passed.

    Raises:
        WeightsError: the base networks' checksum differs from the recorded one (names both).
        InputError: a missing, malformed or altered file.

    Example:
        >>> m = PerceptualMetric("learned-embedding", file="out/embedding.json")  # doctest: +SKIP
    """
    if file is None:
        raise InputError("learned-embedding needs file='DIR/embedding.json' (written by `percept learn --method lora`)")
    record, tensors = read_embedding(file)
    recorded = record["weights"]
    # PerceptualLoss's default weights ("imagenet") mean the recorded ones here; other weights must match them.
    source = recorded.get("source") if weights in ("from-file", "imagenet") else weights
    pipeline = build_embedding_metric(
        record["members"],
        weights=None if source in (None, RANDOM) else source,
        seed=recorded.get("seed") if source in (None, RANDOM) else None,
        center=bool(record.get("center", True)),
        normalize_each=bool(record.get("normalize_each", False)),
        size=record.get("size"),
        normalization=record.get("normalization"),
        input_range=input_range,
        spec="learned-embedding",
    )
    got = base_checksum(pipeline)
    if got != recorded.get("checksum"):
        raise WeightsError(
            f"'{file}' was learned on base weights {recorded.get('checksum')} (source {recorded.get('source')!r}), "
            f"but the networks built here have {got}: pass the weights it was learned with"
        )
    lora = record["lora"]
    apply_lora(
        pipeline.backbone, rank=lora["rank"], alpha=lora["alpha"], dropout=lora.get("dropout", 0.0),
        targets=tuple(lora.get("targets", ("qkv",))),
    )  # fmt: skip
    load_lora_tensors(pipeline.backbone, tensors)
    pipeline.backbone.requires_grad_(False)
    return pipeline


__all__: Sequence[str] = (
    "FORMAT",
    "LoRALinear",
    "apply_lora",
    "base_checksum",
    "build_embedding_metric",
    "load_embedding",
    "load_lora_tensors",
    "lora_layers",
    "lora_tensors",
    "read_embedding",
    "write_embedding",
)
