"""LPIPS' trainer (Zhang et al. 2018), exactly, for the taps of any backbone: linear heads fit to 2AFC judgements.

The metric learned is LPIPS v0.1's: per tap, the channel vectors are unit-normalised (``f / (||f|| + 1e-10)``),
their squared difference goes through dropout (p 0.5, during training) and a non-negative 1x1 head, is averaged
over space, and the taps are summed::

    d(x, y) = sum_taps mean_hw sum_c w_c (u_x - u_y)_c^2,        w_c >= 0

The heads are trained as ``lpips.Trainer`` trains them (``lpips/trainer.py``, ``train.py`` in
PerceptualSimilarity): the distances ``d0 = d(ref, p0)`` and ``d1 = d(ref, p1)`` of each triplet go through
LPIPS' ranking network (``Dist2LogitLayer``: ``cat(d0, d1, d0 - d1, d0 / (d1 + .1), d1 / (d0 + .1))`` through
1x1 convolutions 5 -> 32 -> 32 -> 1, LeakyReLU(0.2), sigmoid), whose output is fit to the fraction of people
who chose ``p1`` with binary cross-entropy; heads and ranking network share one Adam (lr 1e-4, betas
(0.5, 0.999)), batches of 50 shuffled triplets, ``epochs`` epochs at the base rate then ``decay_epochs`` of
linear decay (:func:`lpips_learning_rates`), and after every step the weights are clamped to ``>= 0``
(:func:`clamp_like_lpips`).

Two quirks of the reference, kept or named:

- lpips clamps *every* 1x1 convolution inside its LPIPS module after each step, not only the heads: with a
  SqueezeNet trunk that includes the fire modules' 1x1 convolutions, even when the trunk is frozen (so
  lpips' "frozen" SqueezeNet changes after the first step). percept clamps the heads always and the trunk's
  1x1 convolutions only when the trunk is tuned (``tune_trunk=True``); a frozen trunk stays as it was.
  The ranking network's 1x1 convolutions live outside that module and are never clamped, in both.
- lpips sets the training images ``requires_grad=True``, so every step back-propagates through the whole
  frozen trunk to the pixels; nothing uses that gradient. percept computes a frozen trunk's features once
  (:mod:`percept.eval.learn.features`) and each step costs only the heads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from percept.errors import InputError, SpecError

INITS = ("random", "lpips")
RANK_EPS = 0.1  # Dist2LogitLayer's eps in d0 / (d1 + eps)


@dataclass
class HeadsOptions:
    """How :func:`train_heads` trains (LPIPS' defaults).

    Attributes:
        taps: tap names (``None``: the backbone's canonical taps; the LPIPS taps for alexnet/vgg16).
        weights: backbone weights when the backbone is given by name (``"imagenet"``, a tag, a file,
            ``"random:SEED"``, or ``None``: random, ``"random:<seed>"``).
        epochs: epochs at the base learning rate (lpips' ``nepoch``, 5).
        decay_epochs: then epochs of linear decay to 0 (lpips' ``nepoch_decay``, 5).
        lr: Adam's base learning rate.
        betas: Adam's betas.
        batch_size: triplets per step, shuffled every epoch.
        dropout: dropout (p 0.5) before each head, as lpips' ``NetLinLayer``.
        tune_trunk: train the backbone too (features are then computed at every step).
        init: ``"random"`` (PyTorch's default initialisation of a 1x1 conv, as lpips) or ``"lpips"``
            (LPIPS v0.1's published heads; alexnet, vgg16 and squeezenet1_1 on LPIPS' taps only).
        size: images are resized to ``size`` x ``size`` (bilinear, antialiased) before the network; ``None``
            keeps them (they must then share one size).
        lpips_scaling: LPIPS' input arithmetic (images to [-1, 1], then its shift and scale) instead of the
            backbone's own normalisation; ``None``: for alexnet, vgg16 and squeezenet1_1 only.
        seed: seeds the initial heads and ranking network, random backbone weights, the shuffling and dropout.
        device: where to train.
        progress: progress bars (tqdm).
        cache: a folder for an on-disk float16 feature cache (sets larger than memory); ``None``: in memory.
        feature_batch: images per forward pass when features are computed.
    """

    taps: Sequence[str] | None = None
    weights: Any = "imagenet"
    epochs: int = 5
    decay_epochs: int = 5
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 50
    dropout: bool = True
    tune_trunk: bool = False
    init: str = "random"
    size: int | None = 64
    lpips_scaling: bool | None = None
    seed: int = 0
    device: str = "cpu"
    progress: bool = False
    cache: str | None = None
    feature_batch: int = 64

    def check(self) -> HeadsOptions:
        """Raise :class:`~percept.errors.InputError` on an option out of range; return ``self``.

        Example:
            >>> HeadsOptions(epochs=-1).check()
            Traceback (most recent call last):
            ...
            percept.errors.InputError: epochs must be an integer >= 0, got -1
        """
        for name, low in (("epochs", 0), ("decay_epochs", 0), ("batch_size", 1), ("feature_batch", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.epochs + self.decay_epochs < 1:
            raise InputError("epochs + decay_epochs must be at least 1, got 0 epochs in all")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr must be a finite number > 0, got {self.lr!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise InputError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.init not in INITS:
            raise SpecError(f"init must be one of {list(INITS)}, got {self.init!r}")
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise InputError(f"size must be an integer >= 1 or None, got {self.size!r}")
        return self


def with_options(options: HeadsOptions | None, overrides: Mapping[str, Any]) -> HeadsOptions:
    """``options`` (default :class:`HeadsOptions`) with ``overrides`` applied, checked; unknown names are refused.

    Example:
        >>> with_options(None, {"epochs": 2}).epochs
        2
    """
    names = {f.name for f in fields(HeadsOptions)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        from percept.errors import unknown_name

        raise TypeError(unknown_name("option", unknown[0], sorted(names), context="of train_heads"))
    return replace(options or HeadsOptions(), **overrides).check()


def lpips_learning_rates(lr: float, epochs: int, decay_epochs: int) -> list[float]:
    """The learning rate of each epoch, in lpips' own arithmetic (``train.py`` + ``Trainer.update_learning_rate``).

    Epochs ``1..epochs + 1`` run at ``lr``; after each epoch ``e > epochs`` the rate drops by ``lr / decay_epochs``
    (a repeated float subtraction, as lpips does it), so the last epoch runs at ``lr / decay_epochs``.

    Returns:
        ``epochs + decay_epochs`` rates, the first epoch's first.

    Example:
        >>> [round(r * 1e4, 6) for r in lpips_learning_rates(1e-4, 2, 4)]
        [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    """
    rates, current = [], lr
    for epoch in range(1, epochs + decay_epochs + 1):
        rates.append(current)
        if epoch > epochs:
            current = current - lr / decay_epochs
    return rates


class RankingNet(nn.Module):
    """LPIPS' ``Dist2LogitLayer``: from two distances to the probability that people chose ``p1``.

    ``cat(d0, d1, d0 - d1, d0 / (d1 + 0.1), d1 / (d0 + 0.1))`` through 1x1 convolutions 5 -> 32 -> 32 -> 1 with
    LeakyReLU(0.2) between them and a sigmoid at the end. The state-dict keys are lpips' (``model.0.weight``, ...).

    Example:
        >>> net = RankingNet()
        >>> net(torch.rand(4, 1, 1, 1), torch.rand(4, 1, 1, 1)).shape
        torch.Size([4, 1, 1, 1])
    """

    def __init__(self, mid: int = 32) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(5, mid, 1, bias=True),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(mid, mid, 1, bias=True),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(mid, 1, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 1, 1)`` distances each -> ``(N, 1, 1, 1)`` probabilities in (0, 1)."""
        return self.model(torch.cat((d0, d1, d0 - d1, d0 / (d1 + RANK_EPS), d1 / (d0 + RANK_EPS)), dim=1))


def rank_loss(net: RankingNet, d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor) -> torch.Tensor:
    """LPIPS' ``BCERankingLoss``: BCE between ``net(d0, d1)`` and the judge fraction, in lpips' arithmetic.

    lpips maps the judge to ``2j - 1`` and back (``(t + 1) / 2``) before the BCE; the same round trip is made
    here so that the targets are the same floats.

    Example:
        >>> d = torch.rand(3, 1, 1, 1)
        >>> rank_loss(RankingNet(), d, d, torch.tensor([0.0, 0.5, 1.0])).item() > 0
        True
    """
    target = (1.0 * judge).view(d0.size()) * 2.0 - 1.0
    return F.binary_cross_entropy(net(d0, d1), (target + 1.0) / 2.0)


def unit_normalize_lpips(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """lpips' ``normalize_tensor``: ``f / (sqrt(sum_c f^2) + eps)`` per pixel, ``(N, C, H, W)`` in and out.

    Example:
        >>> u = unit_normalize_lpips(torch.tensor([[[[3.0]], [[4.0]]]]))
        >>> u.flatten().tolist()
        [0.6000000238418579, 0.800000011920929]
    """
    return features / (torch.sqrt(torch.sum(features**2, dim=1, keepdim=True)) + eps)


class LinearHeads(nn.Module):
    """One non-negative 1x1 head per tap (lpips' ``NetLinLayer``: dropout then a 1x1 conv without bias).

    Args:
        channels: channels of each tap, in tap order.
        initial: ``(C,)`` starting weights per tap; ``None``: PyTorch's default 1x1-conv initialisation
            (``nn.Conv2d(C, 1, 1, bias=False)``, drawn from the global RNG as lpips draws it).
        dropout: dropout (p 0.5) before each head while training.

    Example:
        >>> heads = LinearHeads([4, 2])
        >>> d = heads([torch.rand(3, 4, 5, 5), torch.rand(3, 2, 2, 2)])
        >>> d.shape
        torch.Size([3, 1, 1, 1])
    """

    def __init__(self, channels: Sequence[int], initial: Sequence[torch.Tensor] | None = None, *, dropout=True):
        super().__init__()
        if initial is None:
            initial = [nn.Conv2d(c, 1, 1, bias=False).weight.detach() for c in channels]
        if len(initial) != len(channels):
            raise ValueError(f"expected {len(channels)} initial heads, got {len(initial)}")
        self.weights = nn.ParameterList(
            [
                nn.Parameter(w.detach().float().reshape(1, c, 1, 1).clone())
                for w, c in zip(initial, channels, strict=True)
            ]
        )
        self.dropout = bool(dropout)

    def forward(self, diffs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Squared differences per tap ``(N, C, h, w)`` (or their spatial means ``(N, C)``, without dropout) to
        distances ``(N, 1, 1, 1)``."""
        total: torch.Tensor | int = 0
        for diff, w in zip(diffs, self.weights, strict=True):
            if diff.dim() == 2:  # spatially averaged already: exact when there is no dropout (the head is linear)
                if self.dropout and self.training:
                    raise ValueError("spatially averaged differences need dropout=False")
                total = total + (diff @ w.reshape(-1, 1)).view(-1, 1, 1, 1)
                continue
            # lpips: mean_hw(conv1x1(dropout(diff))). The 1x1 conv and the mean are linear, so the mean is taken
            # first and the head is a (C,) dot product: the same number up to float rounding, ~10x less work.
            x = F.dropout(diff, 0.5, training=self.dropout and self.training)
            total = total + (x.mean([2, 3]) @ w.reshape(-1, 1)).view(-1, 1, 1, 1)
        assert isinstance(total, torch.Tensor)
        return total

    def as_vectors(self) -> list[torch.Tensor]:
        """The heads as ``(C,)`` tensors (detached, on the CPU), in tap order."""
        return [w.detach().reshape(-1).cpu().clone() for w in self.weights]


def clamp_like_lpips(*modules: nn.Module) -> None:
    """Clamp to ``>= 0``, in place, the weight of every 1x1 convolution in ``modules`` and every head.

    lpips' ``Trainer.clamp_weights`` rule (every module with a weight and ``kernel_size == (1, 1)``),
    plus :class:`LinearHeads`, whose heads are parameters rather than ``Conv2d`` modules.

    Example:
        >>> heads = LinearHeads([3], [torch.tensor([-1.0, 0.5, 2.0])])
        >>> clamp_like_lpips(heads); heads.as_vectors()[0].tolist()
        [0.0, 0.5, 2.0]
    """
    with torch.no_grad():
        for module in modules:
            for sub in module.modules():
                if isinstance(sub, LinearHeads):
                    for w in sub.weights:
                        w.clamp_(min=0)
                elif isinstance(sub, nn.Conv2d) and sub.kernel_size == (1, 1):
                    sub.weight.clamp_(min=0)


@dataclass
class StepModel:
    """What one training step updates: the heads, the ranking network, the optimiser and (tuned) the trunk."""

    heads: LinearHeads
    rank: RankingNet
    optimizer: torch.optim.Adam
    trunk: nn.Module | None = None
    losses: list[float] = field(default_factory=list)

    def set_lr(self, lr: float) -> None:
        """Set every parameter group's learning rate (lpips' ``update_learning_rate``)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor) -> float:
        """One of lpips' ``optimize_parameters`` given the distances' graph: BCE, backward, Adam, clamp."""
        loss = rank_loss(self.rank, d0, d1, judge)
        self.optimizer.zero_grad()
        torch.mean(loss).backward()
        self.optimizer.step()
        clamp_like_lpips(self.heads, *([self.trunk] if self.trunk is not None else []))
        self.losses.append(float(loss.detach()))
        return self.losses[-1]


def make_step_model(
    channels: Sequence[int],
    options: HeadsOptions,
    initial: Sequence[torch.Tensor] | None = None,
    trunk: nn.Module | None = None,
) -> StepModel:
    """Heads and ranking network initialised as lpips does (heads first, from the global RNG), one Adam over both
    (and over ``trunk``'s parameters when it is tuned).

    Example:
        >>> model = make_step_model([4], HeadsOptions())
        >>> len(model.optimizer.param_groups[0]["params"])
        7
    """
    heads = LinearHeads(channels, initial, dropout=options.dropout).to(options.device)
    rank = RankingNet().to(options.device)
    params = [*(trunk.parameters() if trunk is not None else ()), *heads.parameters(), *rank.parameters()]
    optimizer = torch.optim.Adam(params, lr=options.lr, betas=(float(options.betas[0]), float(options.betas[1])))
    return StepModel(heads.train(), rank.train(), optimizer, trunk)


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """A shuffled pass over ``n`` triplets in batches (the last one smaller), as a shuffled DataLoader gives them.

    Example:
        >>> [len(b) for b in epoch_batches(7, 3, torch.Generator().manual_seed(0))]
        [3, 3, 1]
    """
    order = torch.randperm(n, generator=generator).numpy()
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def run_epochs(
    model: StepModel,
    n: int,
    distances: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    options: HeadsOptions,
    after_epoch: Callable[[int], None] | None = None,
) -> list[float]:
    """LPIPS' training loop over ``n`` triplets: each epoch at its rate (:func:`lpips_learning_rates`), shuffled.

    Args:
        model: from :func:`make_step_model`.
        n: number of triplets.
        distances: ``index -> (d0, d1, judge)`` with the distances' graph (``(B, 1, 1, 1)`` each, judge ``(B,)``).
        options: epochs, rates, batch size, seed, progress.
        after_epoch: called with the epoch number (1-based) after each epoch.

    Returns:
        The mean training loss of each epoch.
    """
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(options.seed)
    means = []
    rates = lpips_learning_rates(options.lr, options.epochs, options.decay_epochs)
    for epoch, lr in enumerate(tqdm(rates, desc="epochs", disable=not options.progress, leave=False), start=1):
        model.set_lr(lr)
        start = len(model.losses)
        for index in epoch_batches(n, options.batch_size, generator):
            model.step(*distances(index))
        means.append(float(np.mean(model.losses[start:])))
        if after_epoch is not None:
            after_epoch(epoch)
    return means
