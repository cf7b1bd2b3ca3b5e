"""percept-swd: the sliced Wasserstein distance between deep-feature distributions, for percept.

Registers the readout ``sliced`` (:class:`SlicedProjection`) and the distance ``swd``
(:class:`SlicedWasserstein`) through the entry point ``swd`` of the group ``percept``.

Example:
    >>> import torch
    >>> from percept_swd import sliced_wasserstein
    >>> a = torch.rand(2, 4, 8, 8)
    >>> sliced_wasserstein(a, a).tolist()
    [0.0, 0.0]
"""

from percept_swd.sliced import SlicedProjection, SlicedWasserstein, random_directions, sliced_wasserstein

__version__ = "0.1.0"

__all__ = ["SlicedProjection", "SlicedWasserstein", "random_directions", "sliced_wasserstein"]
