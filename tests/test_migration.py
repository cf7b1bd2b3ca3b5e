"""docs/migration.md cannot drift: every agreement and factor of scale it states is measured here.

``benchmarks/migration_check.py`` builds each peer (lpips, torchmetrics, DISTS_pytorch, piq; pyiqa and
BasicSR where importable) with percept's random backbone weights copied in and the published heads, and
scores natural images that scikit-image ships. Each row states either an agreement (largest absolute
difference under a tolerance) or a factor ``peer / percept`` that must hold for every pair. The page
shows the table the script prints at 96 x 96; this test runs it at 64 x 64 (the factors that depend
on the size are computed for it).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("lpips")
pytest.importorskip("DISTS_pytorch")
pytest.importorskip("piq")
pytest.importorskip("skimage")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "migration_check.py"
DOC = Path(__file__).resolve().parents[1] / "docs" / "migration.md"
SIZE = 64

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
slow = pytest.mark.slow  # builds six VGG/AlexNet pairs and runs them: about a minute on 2 cores


def _load():
    spec = importlib.util.spec_from_file_location("migration_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["migration_check"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows():
    return _load().measure(SIZE)


def _ids(row) -> str:
    return f"{row.peer}-{row.what}-{row.spec}"


@slow
def test_every_peer_is_measured(rows):
    assert {r.peer for r in rows} >= {"lpips", "torchmetrics", "DISTS_pytorch", "piq"}
    assert {r.spec for r in rows} >= {"lpips-alex", "lpips-vgg", "dists", "vgg16:conv3", "vgg16:conv3/raw/l2"}


@slow
def test_agreements_hold(rows):
    failed = [f"{_ids(r)}: {r.value:.2e} > {r.target:.0e}" for r in rows if r.kind == "same" and r.value > r.target]
    assert not failed, failed


@slow
def test_factors_hold_for_every_pair(rows):
    factors = [r for r in rows if r.kind == "factor"]
    assert factors
    for r in factors:
        assert r.value == pytest.approx(r.target, rel=1e-5), _ids(r)
        assert r.spread < 1e-5, _ids(r)  # the same factor for every pair, not an average
    style = [r for r in factors if "StyleLoss" in r.what]
    assert style and all(r.target == ((SIZE // 4) ** 2) ** 2 for r in style)  # relu3_3: a quarter of the side
    assert [r.target for r in factors if "ContentLoss" in r.what] == [256]  # relu3_3's channels


@slow
def test_the_page_shows_every_measured_row(rows):
    text = DOC.read_text()
    missing = [_ids(r) for r in rows if f"| {r.peer} | {r.what} | `{r.spec}` |" not in text]
    assert not missing, f"measured but not on docs/migration.md: {missing}"


def test_the_page_states_what_is_measured():
    text = DOC.read_text()
    for needle in ("vgg16:conv3/raw/l2", "(H·W)²", "times 256", "benchmarks/migration_check.py", "BasicSR", "pyiqa"):
        assert needle in text, needle


def test_the_same_weights_section_runs_and_agrees(capsys):
    """docs/migration.md's "Compare with the same random weights" block runs as printed and shows agreement."""
    text = DOC.read_text()
    block = text.split("<!-- migration:same-weights -->\n```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "docs/migration.md", "exec"), {"__name__": "docs_migration"})
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert set(printed) == {"lpips", "torchmetrics", "piq"}
    assert all(float(value) < 1e-6 for value in printed.values()), printed
