"""A pass that cannot fit in memory is refused up front with a clear error, not an OOM crash."""

from __future__ import annotations

import warnings

import pytest
import torch

import percept
from percept import InputError
from percept.memory import available_bytes, check_memory, estimate_pass_bytes


@pytest.fixture(scope="module")
def vgg():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return percept.build_pipeline("vgg16:conv3", weights=None)


def test_estimate_counts_stage_outputs():
    shapes = [(8, 1), (16, 2), (32, 4)]
    with_graph = estimate_pass_bytes(shapes, 2, (2, 3, 64, 64), 4, graph=True)
    assert with_graph == 4 * 2 * (8 * 64 * 64 + 16 * 32 * 32 + 32 * 16 * 16)
    without = estimate_pass_bytes(shapes, 2, (2, 3, 64, 64), 4, graph=False)
    assert without == 4 * 2 * (8 * 64 * 64 + 16 * 32 * 32)


def test_available_memory_is_known_on_linux():
    free = available_bytes(torch.device("cpu"))
    assert free is None or free > 0


def test_huge_batch_is_refused_before_running(vgg, monkeypatch):
    monkeypatch.setattr("percept.memory.available_bytes", lambda device: 2**30)  # pretend 1 GiB is free
    x = torch.empty(64, 3, 1024, 1024, device="meta")  # never allocated
    with pytest.raises(InputError, match=r"needs at least .* GiB .* 1\.0 GiB are available"):
        check_memory(vgg, x.requires_grad_(), x)


def test_ordinary_batch_passes(vgg):
    x = torch.rand(2, 3, 64, 64)
    check_memory(vgg, x, x)
    assert vgg(x, x).shape == (2,)


def test_pipeline_checks_memory(vgg, monkeypatch):
    monkeypatch.setattr("percept.memory.available_bytes", lambda device: 1024)
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(InputError, match="available"):
        vgg(x, x)


def test_resizing_backbone_is_estimated_at_its_input_size(monkeypatch):
    """With ``resize=True`` the network runs at its input size: a huge image is no reason to refuse."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resized = percept.build_pipeline("vgg16:conv3", weights=None, resize=True)
    x = torch.empty(1, 3, 16384, 16384, device="meta")  # 3 GiB of pixels; 224x224 once resized
    monkeypatch.setattr("percept.memory.available_bytes", lambda device: 256 * 2**20)
    check_memory(resized, x, x)
    with pytest.raises(InputError, match="available"):
        check_memory(resized, x.expand(4096, -1, -1, -1), x.expand(4096, -1, -1, -1))
