"""2AFC agreement before and after learning heads, per backbone family, on synthetic judgements.

For each family (the configurations of tests/test_learn_matrix.py), a synthetic 2AFC set at 32 px is judged
by a hidden observer weighing a planted 10% of the channels of the same network (random weights
``random:0``; :class:`percept.eval.datasets.synthetic.PlantedObserver`). Heads are learned on its ``train``
split (no dropout, 40 epochs at lr 1e-2: a small set) and the reloaded ``learned-heads`` metric is scored on
the held-out ``val`` split, beside the uncalibrated ``<backbone>:<taps>/unit/l2`` spec on the same network and
the observer itself (the ceiling: its judgements are noisy). ``--plot FILE`` draws the table as a bar chart.

Run: ``python benchmarks/bench_learn_families.py [--train 150] [--val 100] [--plot learn_families.png]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

import percept
from percept.eval.datasets import load_database
from percept.eval.datasets.synthetic import PlantedObserver, make_2afc
from percept.eval.learn import db_subsets, seeded_backbone, train_heads
from percept.eval.learn.features import load_images
from percept.eval.stats import two_afc_agreement

SIZE = 32
FAMILIES = [
    ("alexnet", ["conv1", "conv2"]),
    ("vgg11", ["conv1", "conv2"]),
    ("resnet18", ["stem", "layer1"]),
    ("mobilenet_v2", ["stage1", "stage2"]),
    ("timm.resnet10t", ["stages_0", "stages_1"]),
    ("timm.vit_tiny_patch16_224", ["stages_1"]),
    ("laplacian_pyramid", ["band0", "band1"]),
    ("stlpips.alexnet", ["conv1", "conv2"]),
]


def agreement(metric, val) -> float:
    with torch.no_grad():
        ref, p0, p1 = (load_images(val.table[k].tolist(), SIZE) for k in ("ref", "p0", "p1"))
        return two_afc_agreement(metric(ref, p0).numpy(), metric(ref, p1).numpy(), val.table["judge"].to_numpy())


def family(name: str, taps: list[str], n_train: int, n_val: int, folder: Path) -> tuple[float, float, float]:
    net = seeded_backbone(name, 0)
    observer = PlantedObserver(net, taps, seed=0)
    db = load_database("bapps", make_2afc(folder / "set", observer, n_train=n_train, n_val=n_val, size=SIZE))
    train, val = db_subsets(db, "train/*"), db_subsets(db, "val/*")
    result = train_heads(train, name, weights=None, taps=taps, lpips_scaling=False, size=SIZE, dropout=False,
                         epochs=40, decay_epochs=0, lr=1e-2)  # fmt: skip
    learned = percept.PerceptualLoss("learned-heads", file=str(result.save(folder / "learned")), reduction="none")
    baseline = percept.build_pipeline(f"{name}:{','.join(taps)}/unit/l2", weights="random:0")
    return agreement(baseline, val), agreement(learned, val), agreement(observer.distance, val)


def plot(rows: list[tuple[str, float, float, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from percept.io import save_figure

    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = range(len(rows))
    for offset, (column, label) in enumerate(((1, "unit/l2 (uncalibrated)"), (2, "learned heads"), (3, "observer"))):
        ax.bar([i + (offset - 1) * 0.27 for i in x], [r[column] for r in rows], width=0.27, label=label)
    ax.set_xticks(list(x), [r[0].replace(".", ".\n").replace("_pyramid", "\npyramid") for r in rows], fontsize=7)
    ax.set_ylim(0.5, 1.05)
    ax.set_ylabel("held-out 2AFC agreement")
    ax.legend(fontsize=7, loc="upper left", ncol=3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=150, help="training triplets per family (default 150)")
    parser.add_argument("--val", type=int, default=100, help="held-out triplets per family (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--plot", default=None, help="write a bar chart to this PNG")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    rows = []
    print("| backbone | taps | unit/l2 | learned | observer | seconds |\n|---|---|---|---|---|---|")
    for name, taps in FAMILIES:
        if not percept.registry.get_registry().has("backbone", name):
            print(f"| {name} | {','.join(taps)} | not installed | - | - | - |")
            continue
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            before, after, ceiling = family(name, taps, args.train, args.val, Path(folder))
        rows.append((name, before, after, ceiling))
        print(f"| {name} | {','.join(taps)} | {before:.3f} | {after:.3f} | {ceiling:.3f} | "
              f"{time.perf_counter() - start:.1f} |", flush=True)  # fmt: skip
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
