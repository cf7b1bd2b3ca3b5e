"""Sliced Wasserstein distance between feature distributions: a readout that projects, a distance that sorts.

A tap's features ``(N, C, H, W)`` are, for each sample, ``M = H * W`` points in ``R^C``. The
readout :class:`SlicedProjection` projects them onto ``K`` unit directions ``u_k`` fixed by a seed,
giving ``(N, K, H, W)``. The distance :class:`SlicedWasserstein` treats each of the ``K`` channels of
its inputs as ``M`` samples of a 1-D distribution; between two 1-D empirical distributions of
``M`` samples each, the ``p``-Wasserstein distance to the power ``p`` is the mean of
``|sort(a)_i - sort(b)_i|^p``. Averaged over the ``K`` slices:

    swd_p(a, b) = 1/K sum_k 1/M sum_i |sort(a_k)_i - sort(b_k)_i|^p

The value is the ``p``-th power (no root), so it is differentiable at ``a == b`` where it is 0.
Gradients flow through the sort (to the entries it picked). Reference: Heitz, Vanhoey, Chambon and
Belcour, "A Sliced Wasserstein Loss for Neural Texture Synthesis", CVPR 2021.
"""

from __future__ import annotations

import torch

from percept.plugin import Distance, InputError, Readout, SpecError


def random_directions(channels: int, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` random unit vectors in ``R^channels``, the same for the same seed on every machine.

    Args:
        channels: dimension ``C`` of the space (>= 1).
        count: number ``K`` of directions (>= 1).
        seed: seed of the CPU generator that draws them.

    Returns:
        ``(count, channels)`` float32, each row of norm 1 (uniform on the sphere).

    Example:
        >>> u = random_directions(3, 5, seed=1)
        >>> u.shape, bool(torch.allclose(u.norm(dim=1), torch.ones(5)))
        (torch.Size([5, 3]), True)
    """
    if not isinstance(channels, int) or channels < 1:
        raise InputError(f"channels must be an int >= 1, got {channels!r}")
    if not isinstance(count, int) or count < 1:
        raise InputError(f"the number of projections must be an int >= 1, got {count!r}")
    g = torch.Generator().manual_seed(int(seed))
    u = torch.randn(count, channels, generator=g, dtype=torch.float64)
    return (u / u.norm(dim=1, keepdim=True)).float()


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, *, p: int = 2) -> torch.Tensor:
    """Per-sample distance between the 1-D distributions held in each channel of ``a`` and ``b``.

    Args:
        a, b: ``(N, K, *S)`` tensors of the same shape; channel ``k`` of sample ``n`` is read as
            ``M = prod(S)`` samples of a 1-D distribution (``(N, K)`` means ``M = 1``).
        p: 1 or 2; the result is the ``p``-Wasserstein distance to the power ``p``.

    Returns:
        ``(N,)``: ``1/K sum_k 1/M sum_i |sort(a_k)_i - sort(b_k)_i|^p``, >= 0, 0 exactly when the
        channels hold the same values in any order. Float32 for half-precision inputs.

    Raises:
        InputError: shapes differ, fewer than 2 dimensions, non-float input, or ``p`` not 1 or 2.

    Example:
        >>> a = torch.tensor([[[0.0, 1.0, 2.0]]])          # N=1, K=1, M=3
        >>> sliced_wasserstein(a, a.flip(-1)).tolist()     # same values, other order
        [0.0]
        >>> sliced_wasserstein(a, a + 0.5).tolist()        # shifted by 0.5: 0.5^2
        [0.25]
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise InputError(f"expected two tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.shape != b.shape:
        raise InputError(f"expected features of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() < 2:
        raise InputError(f"expected features (N, K, ...) with at least 2 dimensions, got shape {tuple(a.shape)}")
    if not (a.is_floating_point() and b.is_floating_point()):
        raise InputError(f"expected floating-point features, got {a.dtype} and {b.dtype}")
    if p not in (1, 2):
        raise InputError(f"p must be 1 or 2, got {p!r}")
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    sa = a.reshape(a.shape[0], a.shape[1], -1).to(dtype).sort(dim=-1).values
    sb = b.reshape(b.shape[0], b.shape[1], -1).to(dtype).sort(dim=-1).values
    diff = sa - sb
    per_slice = diff.square() if p == 2 else diff.abs()
    return per_slice.mean(dim=(1, 2))


class SlicedProjection(Readout):
    """Projects each pixel's channel vector onto ``K`` fixed random unit directions.

    Args:
        channels: channels ``C`` of the tap.
        projections: number ``K`` of directions; default ``C`` (as in Heitz et al.).
        seed: seed of the directions; the same seed gives the same directions everywhere.

    Inputs are ``(N, C, H, W)`` (or ``(N, C)``), outputs ``(N, K, H, W)`` (or ``(N, K)``), in the
    input's dtype. The directions are a buffer, not a parameter: nothing here trains.

    Example:
        >>> r = SlicedProjection(8, projections=4, seed=0)
        >>> r(torch.rand(2, 8, 5, 5)).shape
        torch.Size([2, 4, 5, 5])
    """

    fusable = False
    trainable = False

    def __init__(self, channels: int, projections: int | None = None, *, seed: int = 0) -> None:
        super().__init__()
        self.channels = channels
        self.seed = int(seed)
        directions = random_directions(channels, channels if projections is None else projections, self.seed)
        self.register_buffer("directions", directions, persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not isinstance(features, torch.Tensor) or features.dim() < 2:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise InputError(f"expected features (N, C, ...) with C = {self.channels}, got {shape}")
        if features.shape[1] != self.channels:
            raise InputError(
                f"this readout was built for {self.channels} channels, got features of shape {tuple(features.shape)}"
            )
        u = self.directions.to(dtype=features.dtype, device=features.device)
        return torch.einsum("kc,nc...->nk...", u, features)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, projections={self.directions.shape[0]}, seed={self.seed}"


class SlicedWasserstein(Distance):
    """Sliced ``p``-Wasserstein distance (to the power ``p``) between the channels' value distributions.

    Args:
        p: 2 (default: squared 2-Wasserstein per slice) or 1.

    See :func:`sliced_wasserstein` for the formula. Symmetric; no spatial map (it compares whole
    distributions, not places).

    Example:
        >>> d = SlicedWasserstein()
        >>> a = torch.rand(3, 4, 6, 6)
        >>> d(a, a[..., torch.randperm(6), :]).abs().max().item() < 1e-7   # rows shuffled: same distribution
        True
    """

    symmetric = True
    supports_spatial = False

    def __init__(self, p: int = 2) -> None:
        super().__init__()
        if p not in (1, 2):
            raise InputError(f"p must be 1 or 2, got {p!r}")
        self.p = p

    def forward(self, a: torch.Tensor, b: torch.Tensor, *, spatial: bool = False) -> torch.Tensor:
        if spatial:
            raise SpecError("the sliced Wasserstein distance compares whole distributions and has no spatial map")
        return sliced_wasserstein(a, b, p=self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
