"""Shared test helpers: deterministic seeding and a way to build random-weight networks quietly."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import pytest
import torch

# Without a GPU, Triton kernels run through Triton's interpreter. The variable must be set before
# anything imports triton (torch.compile and others do), so it is set here, first.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from percept import RandomWeightsWarning


@contextlib.contextmanager
def no_random_warning() -> Iterator[None]:
    """Silence :class:`percept.RandomWeightsWarning` (tests build ``weights=None`` networks on purpose).

    Usable where pytest's ``filterwarnings`` mark does not reach, e.g. in cached builders called
    from hypothesis tests or at import time.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        yield


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same global torch RNG state."""
    torch.manual_seed(0)


@pytest.fixture
def quiet_random_weights() -> Iterator[None]:
    """Fixture form of :func:`no_random_warning` (``@pytest.mark.usefixtures("quiet_random_weights")``)."""
    with no_random_warning():
        yield


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module of tiny tensors and many small ops: a thread pool costs more than it gives
    there on a shared 2-core machine, and the numbers are the same. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
