"""Sharded sweeps: the split of references, jobs merged through ``partial/``, and torch.distributed ranks.

Every way of splitting the work must give back the table one process computes, row for row.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _eval_fakes import count_network_passes, make_tid

from percept import RandomWeightsWarning, create_backbone
from percept.cli import main
from percept.errors import InputError
from percept.eval.datasets import load_database
from percept.eval.sweep import baseline_scores, make_chunks, run_sweep, shard_chunks, sweep_backbone

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

TAPS = ["input", "relu1", "pool1", "relu2"]  # the fake images are 24x32: shallow taps
START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


@pytest.fixture(scope="module")
def tid(tmp_path_factory):
    root = make_tid(tmp_path_factory.mktemp("tid"), refs=3, types=2, levels=2)
    return load_database("tid2013", root)


def net():
    torch.manual_seed(0)  # the same random network in every process
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return create_backbone("alexnet", weights=None)


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_partition_the_chunks_by_reference(tid, world):
    chunks = make_chunks(tid, 3)
    shards = [shard_chunks(chunks, rank, world) for rank in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(len(chunks)))  # disjoint and complete
    for s in shards:  # a reference's chunks all on one shard
        refs = {chunks[i][0] for i in s}
        assert all(chunks[i][0] not in refs for other in shards if other is not s for i in other)
    sizes = [sum(len(chunks[i][1]) for i in s) for s in shards]
    per_ref = max(len(rows) for _, rows in chunks) * 2  # one reference's images
    assert max(sizes) - min(sizes) <= per_ref
    assert shards == [shard_chunks(chunks, rank, world) for rank in range(world)]  # deterministic


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), ("a", 2), 3])
def test_bad_shard_is_refused(tid, shard):
    with pytest.raises(InputError, match="shard"):
        sweep_backbone(tid, net(), taps=TAPS, measures=["flat-l2"], shard=shard)


def test_jobs_merge_into_the_single_process_table(tid, tmp_path, monkeypatch):
    whole = run_sweep(tid, [net()], taps=TAPS, measures=["flat-l2", "ssim"], baselines=("psnr",), plots=False)
    out = tmp_path / "sweep"
    parts = [
        run_sweep(tid, [net()], out_dir=out, taps=TAPS, measures=["flat-l2", "ssim"], baselines=("psnr",), shard=(k, 2))
        for k in range(2)
    ]
    assert all(p.correlations.empty and not p.files for p in parts)
    assert sorted(pd.concat([p.scores for p in parts])["pair"].unique()) == list(range(len(tid)))
    assert not (out / "scores.csv").exists()

    backbone = net()
    calls = count_network_passes(monkeypatch, backbone)
    merged = run_sweep(
        tid, [backbone], out_dir=out, taps=TAPS, measures=["flat-l2", "ssim"], baselines=("psnr",), plots=False
    )
    assert calls == []  # every chunk came from the jobs' files
    pd.testing.assert_frame_equal(merged.scores, whole.scores, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(merged.correlations, whole.correlations, check_exact=False, rtol=1e-9)
    assert (out / "scores.csv").is_file() and (out / "correlations.csv").is_file()


def test_cli_shard_option(tid, tmp_path, capsys):
    out = tmp_path / "cli"
    common = ["sweep", "tid2013", str(tid.root), "--backbones", "alexnet", "--weights", "none", "--out", str(out)]
    common += ["--baselines", "", "--no-progress", "--no-plots", "--taps", "relu1,relu2"]
    for k in range(2):
        assert main([*common, "--shard", f"{k}/2"]) == 0
        assert f"shard {k}/2" in capsys.readouterr().out
    assert main(common) == 0
    assert (out / "correlations.csv").is_file()
    assert main([*common, "--shard", "2/2"]) == 2
    assert "0 <= rank < world" in capsys.readouterr().err
    assert main([*common, "--shard", "half"]) == 2
    assert "K/N" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, root: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        db = load_database("tid2013", root)
        calls = []
        backbone = net()
        original = type(backbone)._iter_run

        def counting(self, net, x, *args):
            if not x.is_meta:  # not the size search, which runs without weights
                calls.append(x.shape[0])
            return original(self, net, x, *args)

        type(backbone)._iter_run = counting
        scores = sweep_backbone(db, backbone, taps=TAPS, measures=["flat-l2"], batch_size=2)
        baselines = baseline_scores(db, ["psnr", "ssim"])
        scores.to_pickle(os.path.join(out, f"scores{rank}.pkl"))
        baselines.to_pickle(os.path.join(out, f"baselines{rank}.pkl"))
        Path(out, f"images{rank}").write_text(str(sum(calls)))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_distributed_ranks_share_the_work_and_agree(tid, tmp_path):
    mp.start_processes(_rank, args=(_free_port(), str(tid.root), str(tmp_path)), nprocs=2, start_method=START_METHOD)
    expected = sweep_backbone(tid, net(), taps=TAPS, measures=["flat-l2"], batch_size=2)
    expected_baselines = baseline_scores(tid, ["psnr", "ssim"])
    images = [int(Path(tmp_path, f"images{r}").read_text()) for r in range(2)]
    # Each rank ran its own references and distorted images: together, each image once.
    assert sum(images) == len(tid) + tid.table["ref_id"].nunique() and min(images) > 0
    for rank in range(2):
        pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / f"scores{rank}.pkl"), expected)
        pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / f"baselines{rank}.pkl"), expected_baselines)
