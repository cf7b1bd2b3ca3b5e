"""E-LPIPS (Kettunen et al. 2019): the presets ``e-lpips-vgg``, ``e-lpips-alex``, ``e-lpips-squeeze``.

Each is an LPIPS v0.1 pipeline (:mod:`percept.builtin.lpips`) inside E-LPIPS' random transformation
ensemble (:class:`percept.ensemble.Ensemble`: downscale, translation, flips, transpose, colour
permutation, colour gain and feature dropout, the same draw for both images, averaged over ``n``
draws). ``e-lpips-vgg`` is the same metric as the spec ``elpips(lpips-vgg)``; any other spec is wrapped
the same way (``elpips(vgg16:conv1,conv2,conv3/unit/l2)``, or ``ensemble="elpips"`` as a keyword).

How these presets differ from the published E-LPIPS (``mkettune/elpips``, TensorFlow 1):

- **Heads.** E-LPIPS-VGG retrained LPIPS' linear heads under the ensemble, on a VGG-16 whose max
  pooling is replaced by average pooling (``vgg_full_avg.npy``); its SqueezeNet variant likewise
  (``squeeze_full_maxpool.npy``). percept ships no E-LPIPS heads (they are not available here in a
  form percept may redistribute), so these presets use **LPIPS v0.1's heads on the ordinary networks**
  (max pooling), unless you pass your own heads with ``lin_weights=PATH`` (LPIPS' file format: one
  ``lin<i>.model.1.weight`` of shape ``(1, C, 1, 1)`` per tap, e.g. heads learned with ``percept learn``
  or converted from E-LPIPS' ``.npy`` files). Scores are therefore not E-LPIPS' published numbers.
- **Dropout** acts on the features at each tap, not at the input of every convolution, and flips,
  gains and permutations are drawn independently per image (see :mod:`percept.ensemble`).
- ``e-lpips-alex`` has no published counterpart: E-LPIPS was released for VGG and SqueezeNet.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

from percept.backbones.weights import WeightsArg
from percept.builtin.lpips import LPIPS_TITLES, create_lpips, lpips_record
from percept.ensemble import KEEP_PROBABILITY, Ensemble
from percept.hookspecs import hookimpl
from percept.pipeline import Pipeline


def create_elpips(
    net: str = "vgg",
    *,
    weights: WeightsArg = "imagenet",
    lin_weights: str | os.PathLike | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
    n: int | None = None,
    seed: int | None = None,
    keep: float = KEEP_PROBABILITY,
) -> Pipeline:
    """E-LPIPS' ensemble around LPIPS v0.1 over ``net`` (``"vgg"``, ``"alex"``, ``"squeeze"``).

    Args:
        net: the LPIPS network.
        weights: backbone weights (``"imagenet"``, a path, or ``None`` for random).
        lin_weights: linear heads in LPIPS' file format; default LPIPS v0.1's (not E-LPIPS' retrained ones).
        input_range: ``(0, 1)`` (default) or ``(-1, 1)``.
        n: draws averaged per call; ``None``: 1 for a loss call, 200 for a metric call (:class:`Ensemble`).
        seed: an int makes every call draw the same transformations; ``None``: fresh draws in a loss,
            seed 0 in a metric.
        keep: keep probability of the feature dropout.

    Returns:
        The pipeline: ``(N, 3, H, W)`` pairs (at least 8 pixels a side) in, ``(N,)`` distances out.

    Example:
        >>> metric = create_elpips("alex", weights=None, n=8, seed=0)  # doctest: +SKIP
        >>> metric(x, y)  # (N,) the mean over 8 transformations of LPIPS-alex  # doctest: +SKIP
    """
    pipeline = create_lpips(net, weights=weights, lin_weights=lin_weights, input_range=input_range)
    pipeline.ensemble = Ensemble(n=n, seed=seed, keep=keep)
    pipeline.spec = f"e-lpips-{net}"
    return pipeline


@hookimpl
def register_presets(register: Callable[..., None]) -> None:
    for net, title in LPIPS_TITLES.items():
        register(
            f"e-lpips-{net}",
            functools.partial(create_elpips, net),
            description=f"E-LPIPS' transformation ensemble around LPIPS v0.1 {title} (LPIPS' heads, not E-LPIPS')",
            pretrained=(lpips_record(net),),
        )


__all__: Sequence[str] = ("create_elpips",)
