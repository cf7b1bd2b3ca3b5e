"""percept-template: the smallest complete percept plugin (one distance, ``charbonnier``).

Example:
    >>> import torch
    >>> from percept_template import Charbonnier
    >>> Charbonnier()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)).tolist()
    [0.0]
"""

from percept_template.plugin import Charbonnier

__version__ = "0.1.0"

__all__ = ["Charbonnier"]
