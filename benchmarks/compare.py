"""percept side by side with the libraries users would pick instead, in one process.

Cases (same random inputs; random backbone weights copied from percept into every peer, since
weights do not change speed):

* ``lpips-vgg`` / ``lpips-alex``: percept, the ``lpips`` package, torchmetrics' LPIPS (and piq's LPIPS for VGG);
* ``vgg16:conv3`` (content loss, mse on relu3_3): percept, piq's ``ContentLoss``, and percept's
  ``lpips-vgg`` (the whole VGG16) to show what truncation gains;
* ``floor`` in every case: percept's backbone alone (same network, same taps, no readout or
  distance), timed in turn with the others;
* ``dists``: percept, ``DISTS_pytorch``, torchmetrics' DISTS, piq's DISTS;
* ``percept-fast`` in ``lpips-vgg``, ``vgg16:conv3`` and ``dists``: ``PerceptualLoss(case, fast=True)``
  (channels-last network and images, autocast on CUDA; not bit-exact), converting its inputs itself;

Measures forward (no graph), forward+backward (gradient for the prediction only, as in training)
as medians of interleaved repetitions, and peak memory of forward+backward: the CUDA allocator on
a GPU; on CPU a fresh subprocess per case and its peak resident memory above the inputs. Also the
import time of ``percept`` against ``import torch, torchvision``, and each backbone's forward work per
image (GMAC to its taps), the bound on what truncation can save.

``--autocast float16`` (or ``bfloat16``) runs every implementation under ``torch.autocast`` (mixed
precision, as training scripts do on a GPU).

    python benchmarks/compare.py [--sizes 8x256 1x1024] [--reps 5] [--cases lpips-vgg vgg16:conv3 ...]
        [--device cuda] [--autocast float16]

The steady-state timings above warm every implementation up and let the fused op compile during the warm-up.
``--user-steps`` times what a short run meets instead: each implementation in a fresh process with default
settings, the total of its first ``STEPS`` forward+backward steps (construction apart), interleaved repetitions:

    python benchmarks/compare.py --cases lpips-vgg --impls percept lpips --sizes 4x128:10 8x256:5 --user-steps 10
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from unittest import mock

import torch
from _peak import fresh_runs, in_fresh_process, paired_speedup, peak_bytes, spread

warnings.filterwarnings("ignore")

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Bound(torch.nn.Module):
    """A loss ``(x, y) -> scalar``: ``call(module, x, y)``; moving it (``.to("cuda")``) moves the network."""

    def __init__(self, module: torch.nn.Module, call: Callable) -> None:
        super().__init__()
        self.module, self.call = module, call

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.call(self.module, x, y)


def _percept(spec: str) -> tuple[Bound, object]:
    import percept

    pipeline = percept.build_pipeline(spec, weights=None)
    return Bound(pipeline, lambda m, x, y: m(x, y).sum()), pipeline


def _copy_lpips_net(ref_net, features) -> None:
    state = features.state_dict()
    ref_net.load_state_dict({k: state[".".join(k.split(".")[1:])] for k in ref_net.state_dict()})


def _vgg_copy(pipeline) -> SimpleNamespace:
    """What the peers read off ``vgg16(pretrained=True)``: ``.features``, here a frozen copy of percept's."""
    return SimpleNamespace(features=copy.deepcopy(pipeline.backbone.model.features).requires_grad_(False))


def build(case: str, impl: str) -> Bound:
    """A loss ``(x, y) -> scalar`` for ``case`` as implemented by ``impl``, on the CPU."""
    if impl == "floor":
        _, pipeline = _percept(case)

        def floor(m, x, y):
            fx = m.backbone(x, m.taps)
            with torch.no_grad():
                m.backbone(y, m.taps)
            return sum(f.mean() for f in fx.values())

        return Bound(pipeline, floor)
    if impl == "percept":
        return _percept(case)[0]
    if impl == "percept-fast":  # PerceptualLoss(fast=True): channels-last (and autocast on CUDA), not bit-exact
        import percept

        return Bound(percept.PerceptualLoss(case, weights=None, reduction="sum", fast=True), lambda m, x, y: m(x, y))
    if impl in IMPLS:  # another case's percept pipeline, timed in turn with this one (truncation's gain)
        return _percept(impl)[0]
    if case.startswith("lpips-"):
        net = case.split("-", 1)[1]
        _, pipeline = _percept(case)
        features = pipeline.backbone.model.features
        if impl == "lpips":
            import lpips

            ref = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
            _copy_lpips_net(ref.net, features)
            return Bound(ref, lambda m, x, y: m(x, y, normalize=True).sum())
        if impl == "torchmetrics":
            from torchmetrics.functional.image.lpips import _LPIPS

            ref = _LPIPS(pretrained=True, net=net, pnet_rand=True).eval()
            _copy_lpips_net(ref.net, features)
            return Bound(ref, lambda m, x, y: m(x, y, normalize=True).sum())
    if impl == "piq" and case in ("lpips-vgg", "dists"):
        return _piq(case)
    if case == "vgg16:conv3" and impl == "piq":
        import piq

        _, pipeline = _percept(case)
        ref = piq.ContentLoss(feature_extractor=pipeline.backbone.model.features, layers=("15",), reduction="sum")
        return Bound(ref, lambda m, x, y: m(x, y))
    if case == "dists":
        _, pipeline = _percept(case)
        vgg = _vgg_copy(pipeline)
        if impl == "DISTS_pytorch":
            from DISTS_pytorch import DISTS_pt

            with mock.patch.object(DISTS_pt.models, "vgg16", lambda *a, **k: vgg):
                ref = DISTS_pt.DISTS(load_weights=False).eval()
            return Bound(ref, lambda m, x, y: m(x, y, require_grad=True, batch_average=False).sum())
        if impl == "torchmetrics":
            from torchmetrics.functional.image import dists as tm_dists

            with mock.patch.object(tm_dists, "vgg16", lambda *a, **k: vgg):
                ref = tm_dists.DISTSNetwork(load_weights=True).eval()
            return Bound(ref, lambda m, x, y: m(x, y, require_grad=x.requires_grad).sum())
    raise ValueError(f"no implementation {impl!r} for case {case!r}")


def _piq(case: str) -> Bound:
    """piq's LPIPS or DISTS on a copy of percept's random VGG16 and its heads (or DISTS' alpha, beta).

    piq downloads both the network and the heads at construction; the benchmark hands it the same
    tensors instead. piq's LPIPS normalises with ImageNet's mean and std, which are LPIPS' scaling
    constants to the digits LPIPS gives: with the same heads it agrees with ``lpips-vgg`` to 2e-9
    (benchmarks/migration_check.py).
    """
    import piq.perceptual

    _, pipeline = _percept(case)
    vgg = _vgg_copy(pipeline)
    if case == "lpips-vgg":
        weights = [r.weight.detach().reshape(1, -1, 1, 1).clone() for r in pipeline.readouts]
        cls = piq.LPIPS
    else:  # alpha, beta over every tap, the image itself first (as piq splits them)
        alpha = torch.cat([r.alpha.reshape(1, -1) for r in pipeline.readouts], 1)
        beta = torch.cat([r.beta.reshape(1, -1) for r in pipeline.readouts], 1)
        weights, cls = {"alpha": alpha[..., None, None], "beta": beta[..., None, None]}, piq.DISTS
    with (
        mock.patch.object(piq.perceptual, "vgg16", lambda *a, **k: vgg),
        mock.patch.object(torch.hub, "load_state_dict_from_url", lambda *a, **k: weights),
    ):
        ref = cls(reduction="sum")
    return Bound(ref, lambda m, x, y: m(x, y))


IMPLS = {
    "lpips-vgg": ["percept", "percept-fast", "floor", "lpips", "torchmetrics", "piq"],
    "lpips-alex": ["percept", "floor", "lpips", "torchmetrics"],
    "vgg16:conv3": ["percept", "percept-fast", "floor", "piq", "lpips-vgg"],
    "dists": ["percept", "percept-fast", "floor", "DISTS_pytorch", "torchmetrics", "piq"],
}


def inputs(n: int, size: int, device: str):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g).to(device).requires_grad_()
    y = torch.rand(n, 3, size, size, generator=g).to(device)
    return x, y


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def mixed(device: str, autocast: str | None):
    """``torch.autocast`` to ``autocast`` (``"float16"``, ``"bfloat16"``), or nothing for ``None``."""
    if not autocast:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=getattr(torch, autocast))


def step(loss: Loss, x, y, backward: bool, autocast: str | None = None) -> None:
    if backward:
        with mixed(x.device.type, autocast):
            value = loss(x, y)
        value.float().backward()
        x.grad = None
    else:
        with torch.no_grad(), mixed(x.device.type, autocast):
            loss(x, y)


def warm_compiles() -> None:
    """Steady-state timings: on the CPU the fused op compiles at its first call (in the warm-up) instead of
    after :data:`percept.ops.compiling.COMPILE_AFTER_SECONDS` of eager calls, which could land in a timed step."""
    from percept.ops import compiling

    compiling.COMPILE_AFTER_SECONDS = 0.0


def time_case(
    case: str, n: int, size: int, device: str, reps: int, autocast: str | None = None, impls: list[str] | None = None
) -> dict[tuple[str, bool], list[float]]:
    """Seconds per step of every implementation of ``case`` (or of ``impls``), ``(impl, backward) -> one per
    repetition``; within a repetition the implementations run back to back, so their ratios hold under
    slow drift."""
    impls = impls or IMPLS[case]
    losses = {impl: build(case, impl).to(device) for impl in impls}
    x, y = inputs(n, size, device)
    warm_compiles()
    for loss in losses.values():  # warm-up (and compile where the fused op compiles)
        step(loss, x, y, False, autocast)
        step(loss, x, y, True, autocast)
    times: dict[tuple[str, bool], list[float]] = {(i, b): [] for i in impls for b in (False, True)}
    for _ in range(reps):
        for impl, loss in losses.items():
            for backward in (False, True):
                sync(device)
                t0 = time.perf_counter()
                step(loss, x, y, backward, autocast)
                sync(device)
                times[(impl, backward)].append(time.perf_counter() - t0)
    return times


def user_run(case: str, impl: str, n: int, size: int, steps: int, device: str = "cpu") -> float:
    """In a fresh process, with default settings: seconds for ``steps`` forward+backward steps from the first
    call on (construction apart), as a short training run meets them: nothing warmed, nothing forced to
    compile."""
    loss = build(case, impl).to(device)
    x, y = inputs(n, size, device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(loss, x, y, True)
    sync(device)
    return time.perf_counter() - t0


def user_runs(case: str, n: int, size: int, steps: int, reps: int, impls: list[str], device: str):
    """``impl -> [seconds per run]`` over ``reps`` interleaved repetitions, each run in a fresh process."""
    return fresh_runs("compare", "user_run", impls, reps, lambda impl: (case, impl, n, size, steps, device))


def print_user_runs(args) -> None:
    """The ``--user-steps`` table: total seconds of short runs in fresh processes, default settings."""
    print("# default settings, a fresh process per run; total seconds of the steps from the first call on: median "
          "[min, max]; speed-up: impl / percept within one repetition, median [min, max]")  # fmt: skip
    print("| case | N x size | steps | impl | total s | percept speed-up |")
    print("|---|---|---|---|---|---|")
    for size_text in args.sizes:
        shape, _, steps_text = size_text.partition(":")
        n, size = (int(v) for v in shape.split("x"))
        steps = int(steps_text or args.user_steps)
        for case in args.cases:
            impls = [i for i in IMPLS[case] if (not args.impls or i in args.impls or i == "percept") and i != "floor"]
            totals = user_runs(case, n, size, steps, args.reps, impls, args.device)
            ours = totals["percept"]
            for impl in impls:
                speed = paired_speedup(totals[impl], ours)
                cells = [case, f"{n} x {size}", str(steps), impl, spread(totals[impl]), speed]
                print("| " + " | ".join(cells) + " |")


def memory_case(case: str, impl: str, n: int, size: int, device: str) -> int:
    """In a fresh process: peak bytes above the inputs during one forward+backward after warm-up. What the fused
    op's eager form keeps between calls (``percept.ops.release_workspace``) is released first, so that the
    peak counts it."""
    from percept.ops import release_workspace

    loss = build(case, impl).to(device)
    x, y = inputs(n, size, device)
    warm_compiles()
    step(loss, x, y, True)
    release_workspace()
    return peak_bytes(lambda: step(loss, x, y, True), device)


def measure_memory(case: str, impl: str, n: int, size: int, device: str) -> int:
    return in_fresh_process("compare", "memory_case", case, impl, n, size, device)


IMPORT_CODE = """
import time
t0 = time.perf_counter()
import torch, torchvision
t1 = time.perf_counter()
import percept
t2 = time.perf_counter()
from percept import PerceptualLoss
percept.list_backbones()
t3 = time.perf_counter()
import sys
heavy = [m for m in ("timm", "kornia", "torchmetrics", "scipy", "matplotlib", "pandas") if m in sys.modules]
print(t1 - t0, t2 - t1, t3 - t2, ",".join(heavy) or "-")
"""


def import_times(reps: int = 7) -> tuple[float, float, float, str]:
    """Medians over fresh interpreters: ``import torch, torchvision``; ``import percept`` after them;
    then ``PerceptualLoss`` and the registry (every built-in plugin); and which heavy optional
    packages that loaded.

    Timed inside one process each, so the percept figures do not carry the run-to-run noise of
    loading torch (seconds here, varying with the page cache).
    """
    samples = []
    for _ in range(reps):
        out = subprocess.run([sys.executable, "-c", IMPORT_CODE], check=True, capture_output=True, text=True)
        *times, heavy = out.stdout.split()
        samples.append([float(v) for v in times])
    base, added, registry = (statistics.median(column) for column in zip(*samples, strict=True))
    return base, added, registry, heavy


def backbone_gmac(spec: str, size: int) -> float:
    """Multiply-accumulates (GMAC) of one image's forward through ``spec``'s backbone to its taps: the
    bound on what truncating a network can save (``torch.utils.flop_counter``; convolutions and
    matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    _, pipeline = _percept(spec)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        pipeline.backbone(torch.rand(1, 3, size, size), pipeline.taps)
    return counter.get_total_flops() / 2e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["8x256", "1x1024"], help="NxSIZE batches")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=list(IMPLS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--autocast", choices=["float16", "bfloat16"], help="run every implementation under autocast")
    parser.add_argument("--impls", nargs="+", help="only these implementations (percept is always timed)")
    parser.add_argument("--no-import", action="store_true", help="skip the import times and forward work")
    parser.add_argument(
        "--user-steps",
        type=int,
        help="time short runs as a user meets them instead: this many forward+backward steps (or NxSIZE:STEPS in "
        "--sizes) from the first call, default settings, a fresh process per run",
    )
    args = parser.parse_args()
    if args.user_steps or any(":" in s for s in args.sizes):
        args.user_steps = args.user_steps or 10
        print(f"# torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, reps {args.reps}")
        print_user_runs(args)
        return
    print(f"# torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, reps {args.reps}, "
          f"autocast {args.autocast or 'off'}")  # fmt: skip
    if not args.no_import:
        base, added, registry, heavy = import_times()
        print(f"# import torch, torchvision: {base:.2f} s; then import percept: +{added:.3f} s; then "
              f"PerceptualLoss and the registry of built-ins: +{registry:.3f} s (loaded of timm, kornia, "
              f"torchmetrics, scipy, matplotlib, pandas: {heavy})")  # fmt: skip
        for size_text in args.sizes:
            size = int(size_text.split("x")[1])
            work = ", ".join(f"{case} {backbone_gmac(case, size):.2f}" for case in args.cases)
            print(f"# backbone forward per image at {size}x{size}, GMAC: {work}")
    print("# fwd, fwd+bwd: medians; percept speed-up: median [min, max] over repetitions of impl / percept "
          "(fwd+bwd) within one repetition")  # fmt: skip
    print("| case | N x size | impl | fwd ms | fwd+bwd ms | percept speed-up | peak MiB (fwd+bwd) | percept / impl |")
    print("|---|---|---|---|---|---|---|---|")
    for size_text in args.sizes:
        n, size = (int(v) for v in size_text.split("x"))
        for case in args.cases:
            impls = [i for i in IMPLS[case] if not args.impls or i in args.impls or i == IMPLS[case][0]]
            times = time_case(case, n, size, args.device, args.reps, args.autocast, impls)
            mem = (
                {}
                if args.no_memory or args.autocast
                else {i: measure_memory(case, i, n, size, args.device) for i in impls}
            )
            ours = times[(impls[0], True)]
            for impl in impls:
                peak = mem.get(impl)
                ratio = f"{mem[impls[0]] / peak:.2f}" if peak else "-"
                fwd, both = (statistics.median(times[(impl, b)]) * 1e3 for b in (False, True))
                peak_text = f"{peak / 2**20:.0f}" if peak else "-"
                speed = paired_speedup(times[(impl, True)], ours)
                cells = [case, f"{n} x {size}", impl, f"{fwd:.0f}", f"{both:.0f}", speed, peak_text, ratio]
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
