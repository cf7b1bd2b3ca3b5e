"""The documentation site builds in strict mode, and its generated catalogue lists every backbone.

``mkdocs build --strict`` fails on a broken link, a page missing from the navigation or a file the
navigation names that is not there, an API reference (``::: percept.X``) that does not resolve, and
a README or CONTRIBUTING section the pages include (``--8<--``) that is gone. The backbone catalogue
page is generated from the registry at build time (``docs/_hooks/catalogue.py``): every registered
backbone must be on it.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # builds every backbone on the meta device for the catalogue: minutes on 2 cores


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_catalogue_lists_every_registered_backbone(site):
    import percept
    from percept.registry import get_registry

    text = _text(site / "backbones" / "index.html")
    prefixes = {e.name for e in get_registry().entries("backbone") if e.prefix}
    missing = [name for name in percept.list_backbones() if name not in prefixes and name not in text]
    assert not missing, f"not on the catalogue page: {missing}"
    for prefix in prefixes:
        assert f"{prefix}.<model>" in text


def test_catalogue_shows_taps_weights_and_licences(site):
    text = _text(site / "backbones" / "index.html")
    assert "conv1, conv2, conv3, conv4, conv5" in text  # vgg16's canonical taps
    assert "imagenet1k_v1" in text and "BSD-3-Clause" in text
    assert "imagenet1k_v2 = imagenet" in text  # resnet50's default set is torchvision's V2
    presets = _text(site / "presets" / "index.html")
    assert "lpips-alex" in presets and "BSD-2-Clause" in presets and "dists" in presets


def test_api_reference_is_generated_from_docstrings(site):
    text = _text(site / "api" / "losses" / "index.html")
    for name in ("PerceptualLoss", "PerceptualMetric", "perceptual_distance"):
        assert name in text
    assert "frozen network" in text or "The network is frozen" in text  # PerceptualLoss's docstring


def test_included_sections_are_present(site):
    assert "pip install -e" in _text(site / "getting-started" / "index.html")
    assert "max forward abs diff" in _text(site / "presets" / "index.html")
    assert "charbonnier" in _text(site / "plugins" / "index.html")
    assert "--8<--" not in _text(site / "benchmarks" / "index.html")
