"""Learning a perceptual metric: LPIPS' trainer for the taps of any backbone (``percept learn``).

- :func:`train_heads` (:mod:`.train`): heads and ranking network trained as ``lpips.Trainer`` trains them, on
  a 2AFC set; a frozen trunk's features computed once (:mod:`.features`).
- :mod:`.heads`: the arithmetic (:class:`LinearHeads`, :class:`RankingNet`, :func:`rank_loss`,
  :func:`clamp_like_lpips`, :func:`lpips_learning_rates`).
- :mod:`.files`: ``heads.json`` and :func:`heads_pipeline`, the ``learned-heads`` preset's factory.
- :mod:`.cli`: the ``percept learn`` command.

Example:
    >>> from percept.eval.learn import train_heads
    >>> result = train_heads(train_db, "alexnet", val=val_db)  # doctest: +SKIP
    >>> result.save("learned-alex")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Loaded on first use: `percept learn` registers through this package (percept --help imports
# percept.eval.learn.cli), and the trainer's modules import torch (benchmarks/cli_startup.py).
_LAZY = {
    "heads_pipeline": "percept.eval.learn.files",
    "read_heads": "percept.eval.learn.files",
    "seeded_backbone": "percept.eval.learn.files",
    "HeadsOptions": "percept.eval.learn.heads",
    "LinearHeads": "percept.eval.learn.heads",
    "RankingNet": "percept.eval.learn.heads",
    "clamp_like_lpips": "percept.eval.learn.heads",
    "lpips_learning_rates": "percept.eval.learn.heads",
    "rank_loss": "percept.eval.learn.heads",
    "unit_normalize_lpips": "percept.eval.learn.heads",
    "HeadsResult": "percept.eval.learn.train",
    "db_subsets": "percept.eval.learn.train",
    "train_heads": "percept.eval.learn.train",
}

if TYPE_CHECKING:  # pragma: no cover
    from percept.eval.learn.files import heads_backbone, heads_pipeline, read_heads, seeded_backbone
    from percept.eval.learn.heads import (
        HeadsOptions,
        LinearHeads,
        RankingNet,
        clamp_like_lpips,
        lpips_learning_rates,
        rank_loss,
        unit_normalize_lpips,
    )
    from percept.eval.learn.train import HeadsResult, db_subsets, train_heads


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'percept.eval.learn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "HeadsOptions",
    "HeadsResult",
    "LinearHeads",
    "RankingNet",
    "clamp_like_lpips",
    "db_subsets",
    "heads_backbone",
    "heads_pipeline",
    "lpips_learning_rates",
    "rank_loss",
    "read_heads",
    "seeded_backbone",
    "train_heads",
    "unit_normalize_lpips",
]
