"""What percept-template registers (the entry point "template" points here): the distance ``charbonnier``, and the
preset ``template-example-heads``, an example of learned heads shipped as a file in the package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

import percept
from percept.plugin import Distance, InputError


class Charbonnier(Distance):
    """Charbonnier (smooth L1) distance: ``mean over C, H, W of sqrt((a - b)^2 + eps^2) - eps``.

    Quadratic for differences well below ``eps``, like L1 above it; 0 exactly when ``a == b``.

    Args:
        eps: the scale where quadratic turns into linear (> 0).

    Inputs are two ``(N, C, ...)`` feature tensors of the same shape; the output is ``(N,)``, >= 0.

    Example:
        >>> a = torch.zeros(1, 1, 2, 2)
        >>> round(Charbonnier(eps=1e-3)(a, a + 3).item(), 4)   # sqrt(9 + 1e-6) - 1e-3
        2.999
    """

    symmetric = True
    supports_spatial = False

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        if not (isinstance(eps, int | float) and eps > 0):
            raise InputError(f"eps must be a number > 0, got {eps!r}")
        self.eps = float(eps)

    def forward(self, a: torch.Tensor, b: torch.Tensor, *, spatial: bool = False) -> torch.Tensor:
        if spatial:
            raise InputError("the charbonnier distance has no spatial map (spatial=True)")
        if a.shape != b.shape or a.dim() < 2:
            raise InputError(
                f"expected two (N, C, ...) feature tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        sq = (a - b).square()
        # sqrt(sq + eps^2) - eps, rewritten so that it is exactly 0 at a == b and has no cancellation near it.
        per_element = sq / (torch.sqrt(sq + self.eps**2) + self.eps)
        return per_element.flatten(1).mean(dim=1)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def create_charbonnier(eps: float = 1e-3, **kwargs) -> Charbonnier:
    """Factory that percept calls to build the distance (``register`` takes the factory, not an instance)."""
    return Charbonnier(eps)


@percept.hookimpl
def register_distances(register: Callable[..., None]) -> None:
    register("charbonnier", create_charbonnier, description="Charbonnier (smooth L1) over channels and space")


EXAMPLE_HEADS = Path(__file__).resolve().parent / "learned" / "heads.json"


def create_example_heads(weights="imagenet", input_range=(0.0, 1.0), **kwargs) -> percept.Pipeline:
    """An EXAMPLE of shipping learned heads: ``percept learn``'s ``heads.json`` loaded by the ``learned-heads`` preset.

    The file in ``learned/`` was written by ``scripts/make_example_heads.py`` from random AlexNet weights and
    synthetic judgements: it shows the mechanics, it is not a perceptual metric. A real plugin ships the
    ``OUT/heads.json`` and ``OUT/heads.safetensors`` of ``percept learn`` on BAPPS or NIGHTS the same way.
    ``weights``: the recorded ones by default; others are refused unless they have the recorded checksum.
    """
    return percept.build_pipeline(
        "learned-heads", file=str(EXAMPLE_HEADS), weights=weights, input_range=input_range, **kwargs
    )


@percept.hookimpl
def register_presets(register: Callable[..., None]) -> None:
    register(
        "template-example-heads",
        create_example_heads,
        description="EXAMPLE learned heads shipped in a plugin (random AlexNet, synthetic data; not perceptual)",
    )
