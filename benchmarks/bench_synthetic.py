"""How much the planted channels decide a synthetic 2AFC set, per backbone (percept.eval.datasets.synthetic).

For each backbone (random weights ``random:SEED``, the network ``--weights random:SEED`` builds) a
:class:`PlantedObserver` with the default fraction judges ``--triplets`` synthetic triplets at the
default temperature, as :func:`make_2afc` does (5 people each). The table gives the 2AFC agreement with
those judgements of:

- ``observer``: the hidden observer itself (what a learner that finds the planted channels reaches);
- ``human``: people's agreement with each other, ``mean(j^2 + (1 - j)^2)`` (the ceiling);
- ``unit_l2``: the uncalibrated ``<backbone>:<taps>/unit/l2`` spec on the same network (every channel alike);
- ``pixel_mse``: mean squared pixel difference;

and the share of unanimous judgements. A learner is verified on a family where ``observer - unit_l2``
is large; where it is small the planted channels barely change the decisions.

    python benchmarks/bench_synthetic.py --backbones alexnet,resnet18,squeezenet1_1 --triplets 300
"""

from __future__ import annotations

import argparse
import time
import warnings


def _agreements(name: str, triplets: int, size: int, seed: int) -> dict:
    import torch

    from percept import RandomWeightsWarning
    from percept.eval.datasets.synthetic import PlantedObserver, simulate_judges
    from percept.eval.datasets.synthetic import triplets as make_triplets
    from percept.eval.stats import two_afc_agreement
    from percept.pipeline import build_pipeline

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        observer = PlantedObserver(name, seed=seed)
        spec = f"{name}:{','.join(observer.taps)}/unit/l2"
        uniform = build_pipeline(spec, weights=f"random:{seed}").eval()
    generator = torch.Generator().manual_seed(seed)
    ref, p0, p1 = make_triplets(triplets, size, generator)
    with torch.no_grad():
        d0, d1 = observer.distance(ref, p0).double(), observer.distance(ref, p1).double()
        u0, u1 = uniform(p0, ref).double(), uniform(p1, ref).double()
    judge, _ = simulate_judges(d0, d1, judges=5, generator=generator)
    pixel = [(ref - p).pow(2).mean(dim=(1, 2, 3)) for p in (p0, p1)]
    return {
        "backbone": name,
        "taps": len(observer.taps),
        "observer": two_afc_agreement(d0, d1, judge),
        "human": float((judge**2 + (1 - judge) ** 2).mean()),
        "unit_l2": two_afc_agreement(u0, u1, judge),
        "pixel_mse": two_afc_agreement(pixel[0], pixel[1], judge),
        "unanimous": float(((judge == 0) | (judge == 1)).double().mean()),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="alexnet,resnet18,squeezenet1_1,mobilenet_v3_small")
    parser.add_argument("--triplets", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import pandas as pd

    rows = [_agreements(name.strip(), args.triplets, args.size, args.seed) for name in args.backbones.split(",")]
    print(f"synthetic 2AFC: {args.triplets} triplets at {args.size}x{args.size}, seed {args.seed}, 5 people each")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
