"""Learning LPIPS heads: percept's ``train_heads`` against ``lpips.Trainer``, side by side in one process.

A synthetic 2AFC set (:func:`percept.eval.datasets.synthetic.make_2afc`, BAPPS layout, 64 x 64 textures and
their distortions) is judged by a hidden observer that weighs a planted 10% of a random AlexNet's channels
(:class:`~percept.eval.datasets.synthetic.PlantedObserver`). Both trainers then learn AlexNet heads on its
``train`` split with LPIPS' recipe (dropout, Adam lr 1e-4 betas (0.5, 0.999), batch 50, ``--epochs`` epochs: half
at the base rate, half of linear decay), from the same random AlexNet weights, the same initial heads and the
same initial ranking network (copied into ``lpips.Trainer``). Each is timed from its images to its last step:

- percept reads the PNGs, computes the frozen trunk's features once and trains the heads on them;
- lpips gets the images already decoded, in memory, in [-1, 1] (its DataLoader's work is not timed), shuffled
  in batches of 50 by a seeded DataLoader, and runs its own ``optimize_parameters`` per batch and
  ``update_learning_rate`` per epoch, as its ``train.py`` does.

Neither clock includes imports or the held-out scoring. The 2AFC agreement is then measured for both on the
held-out ``val`` split (percept: ``result.pipeline()``; lpips: its module in eval mode), with the uncalibrated
``alexnet/unit/l2`` spec on the same weights for reference.
The learned heads differ between the two only by the shuffling and dropout draws.

Run: ``python benchmarks/bench_learn.py [--triplets 2000] [--val 500] [--size 64] [--epochs 10] [--threads N]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
import warnings

import numpy as np
import torch

from percept.eval.datasets import load_database
from percept.eval.datasets.synthetic import PlantedObserver, make_2afc
from percept.eval.learn import HeadsOptions, db_subsets, seeded_backbone, train_heads
from percept.eval.learn.features import load_images
from percept.eval.learn.heads import make_step_model
from percept.eval.stats import two_afc_agreement
from percept.pipeline import build_pipeline


def initial_state(channels: list[int], options: HeadsOptions) -> tuple[list[torch.Tensor], dict]:
    """The initial heads and ranking network :func:`train_heads` draws from ``options.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = make_step_model(channels, options)
    return [w.detach().clone() for w in model.heads.weights], model.rank.state_dict()


def lpips_run(trainer, images: dict, judge: torch.Tensor, options: HeadsOptions) -> float:
    """lpips' train.py loop; returns the seconds it took."""
    dataset = torch.utils.data.TensorDataset(images["ref"], images["p0"], images["p1"], judge.view(-1, 1, 1, 1))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=options.batch_size, shuffle=True, generator=torch.Generator().manual_seed(options.seed)
    )
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for epoch in range(1, options.epochs + options.decay_epochs + 1):
            for ref, p0, p1, j in loader:
                trainer.set_input({"ref": ref, "p0": p0, "p1": p1, "judge": j})
                trainer.optimize_parameters()
            if epoch > options.epochs:
                trainer.update_learning_rate(options.decay_epochs)
    return time.perf_counter() - start


def lpips_trainer(net, heads: list[torch.Tensor], rank: dict):
    """``lpips.Trainer`` (training mode, frozen random trunk) with percept's AlexNet, heads and ranking net."""
    import lpips

    trainer = lpips.Trainer()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.initialize(model="lpips", net="alex", pnet_rand=True, use_gpu=False, is_train=True, lr=1e-4)
    features = net.model.features.state_dict()
    trainer.net.net.load_state_dict({k: features[k.split(".", 1)[1]] for k in trainer.net.net.state_dict()})
    for lin, w in zip(trainer.net.lins, heads, strict=True):
        lin.model[1].weight.data.copy_(w)
    trainer.rankLoss.net.load_state_dict(rank)
    return trainer


def score(metric, val, size: int, pm1: bool = False) -> float:
    """2AFC agreement of ``metric(x, y) -> (N,)`` on ``val`` (images in [-1, 1] if ``pm1``, else [0, 1])."""
    with torch.no_grad():
        ref, p0, p1 = (load_images(val.table[k].tolist(), size) for k in ("ref", "p0", "p1"))
        if pm1:
            ref, p0, p1 = ref * 2 - 1, p0 * 2 - 1, p1 * 2 - 1
        d0, d1 = metric(ref, p0).flatten(), metric(ref, p1).flatten()
    return two_afc_agreement(d0.numpy(), d1.numpy(), val.table["judge"].to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--triplets", type=int, default=2000, help="training triplets (default 2000)")
    parser.add_argument("--val", type=int, default=500, help="held-out triplets (default 500)")
    parser.add_argument("--size", type=int, default=64, help="image side (default 64)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs in all, half of them decaying (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    net = seeded_backbone("alexnet", args.seed)
    folder = tempfile.mkdtemp(prefix="bench-learn-")
    start = time.perf_counter()
    path = make_2afc(folder, PlantedObserver(net, seed=args.seed), n_train=args.triplets, n_val=args.val,
                     size=args.size, seed=args.seed)  # fmt: skip
    print(
        f"synthetic set: {args.triplets} + {args.val} triplets at {args.size} px in {time.perf_counter() - start:.0f} s"
    )
    db = load_database("bapps", path)
    train, val = db_subsets(db, "train/*"), db_subsets(db, "val/*")
    half = args.epochs // 2
    options = HeadsOptions(weights=None, seed=args.seed, epochs=args.epochs - half, decay_epochs=half, size=args.size)
    import tqdm.auto  # noqa: F401  (imports done before the clock starts, as lpips' are)

    start = time.perf_counter()
    result = train_heads(train, "alexnet", options)
    ours = time.perf_counter() - start
    heads, rank = initial_state([net.tap_info(t).channels for t in result.taps], options)
    trainer = lpips_trainer(result.backbone, heads, rank)
    images = {k: load_images(train.table[k].tolist(), args.size) * 2 - 1 for k in ("ref", "p0", "p1")}
    judge = torch.tensor(train.table["judge"].to_numpy(dtype=np.float32))
    theirs = lpips_run(trainer, images, judge, options)
    trainer.net.eval()
    rows = [("percept `train_heads`", ours, score(result.pipeline(), val, args.size)),
            ("`lpips.Trainer`", theirs, score(trainer.forward, val, args.size, pm1=True))]  # fmt: skip
    before = score(build_pipeline("alexnet:conv1,conv2,conv3,conv4,conv5/unit/l2", weights=f"random:{args.seed}"),
                   val, args.size)  # fmt: skip
    print(f"AlexNet (random weights, seed {args.seed}), {args.triplets} triplets at {args.size} px, {args.epochs} "
          f"epochs, batch 50, {torch.get_num_threads()} threads; 2AFC on {args.val} held-out triplets "
          f"(before learning, alexnet/unit/l2: {before:.4f})")  # fmt: skip
    print("\n| trainer | seconds | 2AFC (held out) |\n|---|---|---|")
    for name, seconds, agreement in rows:
        print(f"| {name} | {seconds:.1f} | {agreement:.4f} |")
    print()
    print(f"speed-up {theirs / ours:.1f}x; 2AFC difference {abs(rows[0][2] - rows[1][2]):.4f}")


if __name__ == "__main__":
    main()
