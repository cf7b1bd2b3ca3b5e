"""PerceptualMetric under DDP: two CPU processes (gloo), each scoring part of the data, agree with
one process scoring all of it.

``reduction="mean"`` reduces a float64 sum and an integer count with ``sum``, so any split gives the
single-process value. ``reduction="none"`` gathers the per-rank score lists and concatenates them
in rank order (rank 0's scores, then rank 1's): a contiguous split gives back the single-process
order exactly, an interleaved split (``DistributedSampler``: rank r takes samples r, r + 2, ...) gives
the rank-major permutation ``[0, 2, 4, ..., 1, 3, 5, ...]``. The tests check those exact layouts, not
just equal sets.

The Lightning test runs a script with ``Trainer(accelerator="cpu", devices=2, strategy="ddp")`` in a
subprocess (Lightning's "ddp" launches its workers by re-running the script, which cannot be pytest).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from percept import PerceptualMetric, RandomWeightsWarning

pytestmark = [
    pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning"),
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"),
]

SPEC = "lpips-alex"
SIZE = 64
WORLD_SIZE = 2
# fork: the workers inherit the imported torch and percept (spawn re-imports them: ~30 s per test on
# 2 busy cores); spawn where fork is unavailable.
START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_metric(reduction: str) -> PerceptualMetric:
    torch.manual_seed(0)  # the same random network in every process
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return PerceptualMetric(SPEC, weights=None, reduction=reduction)


def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1234)
    target = torch.rand(n, 3, SIZE, SIZE, generator=generator)
    preds = (target + 0.1 * torch.randn(n, 3, SIZE, SIZE, generator=generator)).clamp(0, 1)
    return preds, target


def split(n: int, rank: int, layout: str) -> list[int]:
    """Indices rank ``rank`` scores: ``contiguous`` halves (rank 0 takes one more if n is odd) or
    ``interleaved`` as ``DistributedSampler(shuffle=False)`` deals them, without its padding."""
    if layout == "interleaved":
        return list(range(rank, n, WORLD_SIZE))
    cut = (n + 1) // 2
    return list(range(cut)) if rank == 0 else list(range(cut, n))


def _worker(rank: int, port: int, n: int, layout: str, reduction: str, batch: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.set_num_threads(1)
        metric = make_metric(reduction)
        preds, target = data(n)
        index = torch.tensor(split(n, rank, layout))
        for chunk in index.split(batch):  # several updates per rank, as a validation loop does
            metric.update(preds[chunk], target[chunk])
        value = metric.compute()
        # compute() synced the states and restored the local ones afterwards (torchmetrics' contract).
        local = metric.total.item() if reduction == "mean" else sum(s.numel() for s in metric.scores)
        torch.save({"value": value, "local": local}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_ranks(tmp_path: Path, n: int, layout: str, reduction: str, batch: int = 2) -> list[dict]:
    args = (free_port(), n, layout, reduction, batch, str(tmp_path))
    mp.start_processes(_worker, args=args, nprocs=WORLD_SIZE, join=True, start_method=START_METHOD)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


def single_process(n: int, reduction: str) -> torch.Tensor:
    metric = make_metric(reduction)
    metric.update(*data(n))
    return metric.compute()


@pytest.mark.parametrize(
    ("reduction", "layout", "n"),
    [("mean", "contiguous", 7), ("mean", "interleaved", 8), ("none", "contiguous", 7), ("none", "interleaved", 8)],
)
def test_two_ranks_equal_one_process(tmp_path: Path, reduction: str, layout: str, n: int) -> None:
    results = run_ranks(tmp_path, n, layout, reduction)
    expected = single_process(n, reduction)
    for rank, result in enumerate(results):
        assert result["local"] == len(split(n, rank, layout))
    if reduction == "mean":
        for result in results:  # every rank gets the same value, that of one process on all the data
            torch.testing.assert_close(result["value"], expected, rtol=1e-6, atol=1e-7)
        return
    order = [i for r in range(WORLD_SIZE) for i in split(n, r, layout)]  # rank-major
    if layout == "contiguous":
        assert order == list(range(n))
    for result in results:
        assert result["value"].shape == (n,)
        torch.testing.assert_close(result["value"], expected[order], rtol=1e-6, atol=1e-7)


LIGHTNING_SCRIPT = textwrap.dedent(
    '''
    """Validate with PerceptualMetric under Trainer(devices=2, strategy="ddp"); each rank writes what it saw."""
    import json
    import sys
    import warnings

    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from percept import PerceptualMetric, RandomWeightsWarning

    warnings.simplefilter("ignore")
    out_dir, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


    class Eval(L.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lpips = PerceptualMetric("lpips-alex", weights=None)
            torch.manual_seed(0)
            self.lpips_all = PerceptualMetric("lpips-alex", weights=None, reduction="none")
            self.seen = 0

        def validation_step(self, batch, batch_idx):
            preds, target = batch
            self.seen += preds.shape[0]
            self.lpips.update(preds, target)
            self.lpips_all.update(preds, target)
            self.log("val/lpips", self.lpips, on_epoch=True)

        def on_validation_epoch_end(self):
            scores = self.lpips_all.compute()
            with open(f"{out_dir}/rank{self.global_rank}.json", "w") as f:
                json.dump({"seen": self.seen, "world_size": self.trainer.world_size, "scores": scores.tolist()}, f)


    if __name__ == "__main__":
        g = torch.Generator().manual_seed(1234)
        target = torch.rand(n, 3, size, size, generator=g)
        preds = (target + 0.1 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
        loader = DataLoader(TensorDataset(preds, target), batch_size=2)
        trainer = L.Trainer(
            accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False,
        )
        (result,) = trainer.validate(Eval(), loader, verbose=False)
        with open(f"{out_dir}/result{trainer.global_rank}.json", "w") as f:
            json.dump(result, f)
    '''
)


def test_lightning_ddp_two_cpu_processes(tmp_path: Path) -> None:
    pytest.importorskip("lightning", reason="the Lightning test needs the `lightning` extra")
    n = 8
    script = tmp_path / "validate_ddp.py"
    script.write_text(LIGHTNING_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(free_port())}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(n), str(SIZE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    expected_mean = single_process(n, "mean")
    expected_all = single_process(n, "none")
    order = [i for r in range(WORLD_SIZE) for i in split(n, r, "interleaved")]  # DistributedSampler's layout
    for rank in range(WORLD_SIZE):
        result = json.loads((tmp_path / f"result{rank}.json").read_text())
        torch.testing.assert_close(torch.tensor(result["val/lpips"]), expected_mean, rtol=1e-6, atol=1e-7)
        seen = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert seen["world_size"] == WORLD_SIZE and seen["seen"] == n // WORLD_SIZE
        torch.testing.assert_close(torch.tensor(seen["scores"]), expected_all[order], rtol=1e-6, atol=1e-7)
