"""SSIM between feature maps: ``ssim``, one minus the mean structural similarity of corresponding channels.

``d(a, b) = 1 - mean_c SSIM(a_c, b_c)`` per sample, with SSIM as Wang et al. (2004) and MATLAB's
``ssim`` on doubles: a Gaussian window of side 11 and sigma 1.5 (shrunk to the largest odd side that
fits a small map), computed where the window fits ("valid"), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``
with ``L = 1``. Read off raw features (``vgg16:relu1_2/raw/ssim``) it is the per-map comparison the
deep-feature IQA studies select maps with; the research toolkit's ``ssim`` measure is this distance.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from percept.distances.base import Distance, check_global
from percept.errors import InputError
from percept.hookspecs import hookimpl
from percept.ops.windows import gaussian_window


def ssim_per_map(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0, window: int = 11) -> torch.Tensor:
    """SSIM between corresponding feature maps, one value per map.

    Args:
        a: ``(1 or N, C, H, W)`` features (a batch of one is broadcast, as a reference).
        b: ``(N, C, H, W)`` features.
        data_range: ``L`` in ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``.
        window: Gaussian window side (sigma 1.5), shrunk to the largest odd size that fits the map;
            the SSIM map is computed where the window fits ("valid") and averaged.

    Returns:
        ``(N, C)`` SSIM in [-1, 1] (1: identical maps), float32 (float64 for float64 input).

    Example:
        >>> x = torch.rand(2, 4, 16, 16)
        >>> torch.allclose(ssim_per_map(x, x), torch.ones(2, 4))
        True
    """
    if a.dim() != 4 or b.dim() != 4 or a.shape[1:] != b.shape[1:] or a.shape[0] not in (1, b.shape[0]):
        raise InputError(f"expected two (N, C, H, W) feature maps of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    dtype = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    a, b = a.to(dtype), b.to(dtype)
    n, c, h, w = b.shape
    size = min(window, h, w)
    size = size if size % 2 == 1 else size - 1
    g = gaussian_window(size, 1.5, device=b.device, dtype=dtype)
    a = a.expand(n, -1, -1, -1)

    # The five local statistics go through one depthwise (separable) Gaussian convolution.
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    k = 5 * c
    blurred = F.conv2d(stacked, g.view(1, 1, 1, -1).expand(k, 1, 1, size), groups=k)
    blurred = F.conv2d(blurred, g.view(1, 1, -1, 1).expand(k, 1, size, 1), groups=k)
    mu_a, mu_b, aa, bb, ab = blurred.split(c, dim=1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    saa, sbb, sab = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.mean(dim=(2, 3))


class SSIMDistance(Distance):
    """One minus the mean SSIM of corresponding channels: ``(N, C, H, W), (N, C, H, W) -> (N,)``, in [0, 2].

    ``(N, C)`` vectors (a descriptor readout's) count as ``1 x 1`` maps: per channel
    ``(2 a b + C1) / (a^2 + b^2 + C1)``.

    Example:
        >>> a = torch.rand(2, 3, 16, 16)
        >>> SSIMDistance()(a, a).abs().max().item() < 1e-6
        True
    """

    symmetric = True
    supports_spatial = False

    def forward(self, a: torch.Tensor, b: torch.Tensor, *, spatial: bool = False) -> torch.Tensor:
        check_global("ssim", a, b, spatial)
        if a.dim() == 2:  # vectors from a descriptor readout count as 1x1 maps, as for the other distances
            a, b = a[:, :, None, None], b[:, :, None, None]
        return 1 - ssim_per_map(a, b).mean(dim=1)


@hookimpl
def register_distances(register: Callable[..., None]) -> None:
    register("ssim", lambda **kwargs: SSIMDistance(), description="1 - mean SSIM between corresponding feature maps")
