"""Robustness of E-LPIPS: PGD pairs made against plain LPIPS-alex flip E-LPIPS' 2AFC decision far less often.

A synthetic 2AFC set (smooth random textures as references; two distorted versions p0 and p1 of
each, by noise, blur, a colour shift or blocks of different strengths) is scored by plain
``lpips-alex``, which prefers p0 or p1. For each triplet, PGD (L_inf ball of radius ``eps`` around p0,
images kept in [0, 1], signed-gradient steps) moves p0 to reverse that preference: it raises
LPIPS(ref, p0) when p0 was preferred, lowers it otherwise. The table gives, on the same attacked
triplets, the fraction whose 2AFC decision flipped under

- plain ``lpips-alex`` (the attacked metric),
- ``elpips(lpips-alex)`` with ``n`` draws and a fixed seed (the transfer attack E-LPIPS is built for),
- and, for reference, ``elpips(lpips-alex)`` when PGD attacks the ensemble itself with one fresh draw
  per step (expectation over transformations; an adaptive attacker), unless ``--no-adaptive``.

Weights: the LPIPS v0.1 AlexNet heads torchmetrics ships; the AlexNet backbone uses ImageNet weights
when ``--weights imagenet`` finds them on disk, else random weights (``weights=None`` after
``torch.manual_seed(--seed)``); the output says which. E-LPIPS here is percept's ensemble around
LPIPS' heads, not the published E-LPIPS-VGG (see ``percept.builtin.elpips``).

Run: ``python benchmarks/bench_elpips_robustness.py [--triplets 48] [--size 64] [--eps 0.01 0.03]
[--steps 10] [--n 16] [--weights none|imagenet]`` (about 2 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torch.nn.functional as F

from percept.ensemble import Ensemble
from percept.errors import WeightsError
from percept.pipeline import Pipeline, build_pipeline


def textures(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, 3, size, size)`` smooth random textures in [0, 1]: noise at three octaves, upsampled and summed."""
    out = torch.zeros(n, 3, size, size)
    for cells, weight in ((4, 1.0), (8, 0.5), (16, 0.25)):
        noise = torch.rand(n, 3, cells, cells, generator=generator)
        out += weight * F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
    out -= out.amin(dim=(1, 2, 3), keepdim=True)
    return out / out.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)


def distort(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image distorted by one of noise, blur, a colour shift or blocks, of random strength."""
    out = []
    for img in x:
        kind = int(torch.randint(0, 4, (1,), generator=generator))
        s = float(torch.rand(1, generator=generator)) * 0.9 + 0.1
        if kind == 0:
            img = img + 0.25 * s * torch.randn(img.shape, generator=generator)
        elif kind == 1:
            k = 2 * int(1 + 3 * s) + 1
            img = F.avg_pool2d(img[None], k, stride=1, padding=k // 2, count_include_pad=False)[0]
        elif kind == 2:
            img = img + 0.3 * s * (torch.rand(3, 1, 1, generator=generator) - 0.5)
        else:
            b = 2 + int(6 * s)
            img = F.interpolate(F.avg_pool2d(img[None], b, ceil_mode=True), size=img.shape[-2:], mode="nearest")[0]
        out.append(img.clamp(0, 1))
    return torch.stack(out)


def lpips_alex(weights: str, seed: int) -> tuple[Pipeline, str]:
    """Plain ``lpips-alex`` and a description of its backbone weights."""
    if weights == "imagenet":
        try:
            return build_pipeline("lpips-alex", weights="imagenet"), "AlexNet ImageNet weights (torchvision)"
        except WeightsError as exc:
            print(f"ImageNet AlexNet weights unavailable ({str(exc).splitlines()[0][:100]}...); using random weights")
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_pipeline("lpips-alex", weights=None), f"AlexNet random weights (weights=None, seed {seed})"


def pgd(
    metric, ref: torch.Tensor, p0: torch.Tensor, sign: torch.Tensor, eps: float, steps: int, alpha: float
) -> torch.Tensor:
    """p0 moved within ``eps`` (L_inf) along ``sign · grad metric(p0, ref)`` by signed steps of ``alpha``."""
    adv = p0.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        (sign * metric(adv, ref)).sum().backward()
        assert adv.grad is not None
        with torch.no_grad():
            adv = adv + alpha * adv.grad.sign()
            adv = (p0 + (adv - p0).clamp(-eps, eps)).clamp(0, 1)
    return adv.detach()


@torch.no_grad()
def decisions(metric, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor) -> torch.Tensor:
    """True where the metric prefers p0 (d(ref, p0) < d(ref, p1))."""
    return metric(p0, ref) < metric(p1, ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triplets", type=int, default=48)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.03])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--n", type=int, default=16, help="E-LPIPS draws per evaluation")
    parser.add_argument("--weights", choices=["none", "imagenet"], default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-adaptive", action="store_true", help="skip the PGD attack on the ensemble itself")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()

    g = torch.Generator().manual_seed(args.seed)
    ref = textures(args.triplets, args.size, g)
    p0, p1 = distort(ref, g), distort(ref, g)
    plain, described = lpips_alex(args.weights, args.seed)
    with warnings.catch_warnings():  # random weights, replaced by plain's below
        warnings.simplefilter("ignore")
        ensemble = build_pipeline("lpips-alex", weights=None, ensemble=Ensemble(n=args.n, seed=args.seed))
        # The adaptive attacker: the same network, one fresh draw per PGD step.
        attacker = build_pipeline("lpips-alex", weights=None, ensemble=Ensemble(n=1))
    for copy in (ensemble, attacker):
        copy.backbone.load_state_dict(plain.backbone.state_dict())

    before_plain = decisions(plain, ref, p0, p1)
    before_ens = decisions(ensemble, ref, p0, p1)
    sign = torch.where(before_plain, 1.0, -1.0)  # raise d(ref, p0) where p0 was preferred, else lower it
    print(f"E-LPIPS robustness: {args.triplets} synthetic 2AFC triplets at {args.size}x{args.size}, lpips-alex heads")
    print(f"LPIPS v0.1 heads (torchmetrics' alex.pth); {described}; PGD {args.steps} steps, L_inf; E-LPIPS n={args.n}")
    agree = float((before_plain == before_ens).float().mean())
    print(f"before any attack, E-LPIPS's 2AFC decisions agree with plain LPIPS's on {agree:.3f} of the triplets")
    print()
    print(f"| eps (L_inf) | attack | flipped: plain lpips-alex | flipped: E-LPIPS (n = {args.n}) |")
    print("|---|---|---|---|")
    for eps in args.eps:
        attacks = [("PGD vs lpips-alex", plain)] + (
            [] if args.no_adaptive else [("PGD vs E-LPIPS (1 draw/step)", attacker)]
        )
        for name, target in attacks:
            torch.manual_seed(args.seed)
            adv = pgd(target, ref, p0, sign, eps, args.steps, alpha=2.5 * eps / args.steps)
            flip_plain = (decisions(plain, ref, adv, p1) != before_plain).float().mean()
            flip_ens = (decisions(ensemble, ref, adv, p1) != before_ens).float().mean()
            print(f"| {eps:g} | {name} | {float(flip_plain):.3f} | {float(flip_ens):.3f} |")
    print(f"\n({time.perf_counter() - start:.0f} s on {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
