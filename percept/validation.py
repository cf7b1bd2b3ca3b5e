"""Input checks in one place: each error says what was expected and what came.

Looking at values (NaN/Inf, range) means reading a reduction of the input on the host. On the CPU that
costs one pass over the images and is done on every call. On a GPU it makes the host wait for the device
(a synchronisation, which stalls a training loop's pipelining), so there the values are checked for the
first :data:`VALUE_CHECK_FIRST` calls with each input shape, then on every :data:`VALUE_CHECK_EVERY`-th:
the mistakes these checks catch (0..255 data, ``[-1, 1]`` data, NaN from a diverging model) show in the
first batches or persist once they appear. Shapes, dtypes and sizes are checked on every call: they cost
nothing. Under ``torch.func`` transforms the values are read from the underlying tensor (all the mapped
slices at once), so the checks do not break ``vmap``.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import torch

from percept.errors import InputError

RANGE_TOLERANCE = 1e-3
VALUE_CHECK_FIRST = 3
"""Calls with each input shape whose values are checked on a device where reading them synchronises."""
VALUE_CHECK_EVERY = 50
"""After those, every this-many-th call is checked there."""

_value_calls: OrderedDict[tuple, int] = OrderedDict()
_value_lock = threading.Lock()
_VALUE_KEYS = 1024  # input signatures remembered (least recently seen dropped first)


def reads_synchronise(device: torch.device) -> bool:
    """Whether reading a value computed on ``device`` makes the host wait for it (every device but the CPU)."""
    return device.type not in ("cpu", "meta")


def value_check_due(x: torch.Tensor, name: str = "x") -> bool:
    """Whether this call's values of the input called ``name`` should be looked at (see the module
    docstring); counts the call.

    Example:
        >>> value_check_due(torch.rand(1, 3, 8, 8))  # on the CPU, always
        True
    """
    if not reads_synchronise(x.device):
        return True
    key = (name, tuple(x.shape), x.dtype, x.device)
    with _value_lock:
        calls = _value_calls.pop(key, 0)
        _value_calls[key] = calls + 1
        while len(_value_calls) > _VALUE_KEYS:
            _value_calls.popitem(last=False)
    return calls < VALUE_CHECK_FIRST or (calls - VALUE_CHECK_FIRST + 1) % VALUE_CHECK_EVERY == 0


def underlying(x: torch.Tensor) -> torch.Tensor:
    """The plain tensor beneath ``torch.func`` wrappers (vmap's batched tensor holds every mapped slice), or
    ``x`` itself."""
    functorch = torch._C._functorch
    if not hasattr(functorch, "is_functorch_wrapped_tensor"):  # pragma: no cover - older torch
        return x
    while functorch.is_functorch_wrapped_tensor(x):
        x = functorch.get_unwrapped(x)
    return x


def describe(x: torch.Tensor) -> str:
    return f"shape {tuple(x.shape)}, dtype {x.dtype}, device {x.device}"


def check_images(
    x: object,
    name: str = "x",
    *,
    channels: tuple[int, ...] = (1, 3),
    input_range: tuple[float, float] | None = (0.0, 1.0),
    min_size: int = 1,
    check_values: bool | str = "auto",
) -> torch.Tensor:
    """Check that ``x`` is a batch of images ``(N, C, H, W)`` and return it.

    Args:
        x: the tensor to check.
        name: how the message calls it (``"x"``, ``"y"``, ``"preds"``).
        channels: channel counts accepted.
        input_range: ``(low, high)`` the values must lie in (with a tolerance of 1e-3), or ``None``
            to skip the range check.
        min_size: smallest height and width the network needs.
        check_values: look at the values (NaN/Inf and range), one reduction over ``x``: ``True`` on every
            call, ``"auto"`` (default) on every call on the CPU and on a schedule where reading the result
            synchronises (:func:`value_check_due`), ``False`` never.

    Raises:
        InputError: wrong type, rank, channels, dtype, size, or values (NaN, Inf, out of range); values to
            check on the meta device, which has none.

    Example:
        >>> check_images(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """
    if not isinstance(x, torch.Tensor):
        raise InputError(f"expected {name} to be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
        raise InputError(f"expected {name} of shape (N, C, H, W), got {x.dim()} dimensions: {describe(x)}{hint}")
    if not x.is_floating_point():
        raise InputError(
            f"expected {name} to be a floating-point tensor (float32, float16, bfloat16 or float64) with values in "
            f"{_range_text(input_range)}, got {describe(x)}; convert with x.float() / 255 for 8-bit images"
        )
    if x.shape[0] == 0:
        raise InputError(f"expected {name} to hold at least one image, got an empty batch: {describe(x)}")
    if x.shape[1] not in channels:
        raise InputError(
            f"expected {name} with {' or '.join(map(str, channels))} channels in dimension 1 (N, C, H, W), "
            f"got {x.shape[1]}: {describe(x)}{_channels_hint(x, name, channels)}"
        )
    height, width = x.shape[-2:]
    if height < min_size or width < min_size:
        raise InputError(
            f"expected {name} of at least {min_size}x{min_size} pixels for the taps asked for, got {height}x{width}; "
            "resize the images up or ask for shallower taps"
        )
    if check_values == "auto":
        check_values = value_check_due(x, name)
    if check_values and x.device.type == "meta":
        raise InputError(
            f"{name} is on the meta device, which holds shapes but no values, so its values cannot be checked "
            f"({describe(x)}); pass real tensors, or check_inputs=False to run on shapes only"
        )
    if check_values:
        # One reduction: min and max propagate NaN, and an infinity is the min or the max.
        lo, hi = (float(v) for v in torch.aminmax(underlying(x).detach()))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(f"{name} holds NaN or Inf values: {describe(x)}")
        if input_range is not None:
            low, high = input_range
            if lo < low - RANGE_TOLERANCE or hi > high + RANGE_TOLERANCE:
                hint = ""
                if hi > 2 and high <= 1:
                    hint = "; it looks like 0..255 data: divide by 255"
                elif lo < -RANGE_TOLERANCE and low >= 0:
                    hint = "; it looks like [-1, 1] data: pass input_range=(-1, 1)"
                raise InputError(
                    f"expected {name} with values in {_range_text(input_range)}, got values in "
                    f"[{lo:.4g}, {hi:.4g}] ({describe(x)}){hint}"
                )
    return x


def _channels_hint(x: torch.Tensor, name: str, channels: tuple[int, ...]) -> str:
    """The fix for images with the wrong channel count: channels-last data, or RGBA.

    Example:
        >>> _channels_hint(torch.zeros(2, 32, 32, 3), "x", (1, 3))
        '; it looks like channels-last (N, H, W, C) data: pass x.permute(0, 3, 1, 2)'
        >>> _channels_hint(torch.zeros(2, 4, 32, 32), "x", (1, 3))
        '; it looks like RGBA: drop the alpha channel with x[:, :3]'
    """
    if x.shape[-1] in channels:
        return f"; it looks like channels-last (N, H, W, C) data: pass {name}.permute(0, 3, 1, 2)"
    if x.shape[1] == 4 and 3 in channels:
        return f"; it looks like RGBA: drop the alpha channel with {name}[:, :3]"
    if x.shape[-1] == 4 and 3 in channels:
        return f"; it looks like channels-last RGBA (N, H, W, 4) data: pass {name}.permute(0, 3, 1, 2)[:, :3]"
    return ""


def check_pair(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    """Check that two image batches have the same shape and device."""
    if x.shape != y.shape:
        raise InputError(
            f"expected {names[0]} and {names[1]} of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.device != y.device:
        raise InputError(f"expected {names[0]} and {names[1]} on the same device, got {x.device} and {y.device}")
    if x.dtype != y.dtype:
        raise InputError(f"expected {names[0]} and {names[1]} of the same dtype, got {x.dtype} and {y.dtype}")


def _range_text(input_range: tuple[float, float] | None) -> str:
    return "any range" if input_range is None else f"[{input_range[0]:g}, {input_range[1]:g}]"
