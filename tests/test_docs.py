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


# -- the API pages render (issue 25 item 1) -------------------------------------------------------------------
# Modules whose every name in __all__ must have an entry (an HTML anchor "<module>.<name>") on the API pages.
PUBLIC_MODULES = (
    "percept",
    "percept.plugin",
    "percept.signature",
    "percept.eval.datasets",
    "percept.eval.datasets.synthetic",
    "percept.eval.sweep",
    "percept.eval.select",
    "percept.eval.learn",
)


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def _words(page: Path) -> str:
    """The page's text with tags as spaces and every run of white space as one space."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))).split())


def test_examples_render_as_code_not_blockquotes(site):
    """``Example:`` sections once became nested blockquotes of ``>>>`` lines with ``# doctest: +SKIP`` run in."""
    broken = []
    for page in _pages(site):
        source = page.read_text(encoding="utf-8")
        if any("&gt;&gt;&gt;" in quote for quote in re.findall(r"<blockquote>(.*?)</blockquote>", source, re.S)):
            broken.append(f"{page.relative_to(site)}: '>>>' inside a blockquote")
        if "doctest:" in _text(page):
            broken.append(f"{page.relative_to(site)}: a literal 'doctest:' in the rendered text")
    assert not broken, "\n".join(broken)
    losses = (site / "api" / "losses" / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<code>.*?<span class="n">loss_fn</span>', losses, re.S)  # PerceptualLoss's example as code


def test_every_public_name_has_an_api_entry(site):
    import importlib

    anchors: set[str] = set()
    for page in (site / "api").rglob("*.html"):
        anchors |= set(re.findall(r'id="([\w.]+)"', page.read_text(encoding="utf-8")))
    missing = []
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        missing += [f"{name}.{item}" for item in module.__all__ if f"{name}.{item}" not in anchors]
    assert not missing, f"no API entry for: {missing}"


def test_parameter_tables_give_each_parameter_its_default(site):
    """A grouped docstring entry ("weights, input_range, ...: as for ...") showed Default *required*."""
    source = (site / "api" / "losses" / "index.html").read_text(encoding="utf-8")
    loss, metric = source[source.index('id="percept.PerceptualLoss"') :].split('id="percept.PerceptualMetric"', 1)
    loss, metric = (" ".join(html.unescape(re.sub(r"<[^>]+>", " ", part)).split()) for part in (loss, metric))
    assert "weights as for percept.PerceptualLoss . 'imagenet'" in metric
    assert "input_range tuple [ float , float ] as for percept.PerceptualLoss . (0.0, 1.0)" in metric
    assert ":class:" not in loss + metric and "note in __init__" not in metric
    assert "resize=True" in loss


def test_choosing_guide_has_generated_tap_tables(site):
    text = _words(site / "choosing" / "index.html")
    for spec in ("lpips-alex", "dists", "vgg16:conv3", "lpips-vgg", "percept sweep"):
        assert spec in text, spec
    assert "conv3 = relu3_3 features.15 ReLU output 256 4" in text  # vgg16: canonical conv3 is relu3_3
    assert "conv3_3 features.14 convolution output, before its ReLU" in text
    assert "conv1 = relu1 features.1 ReLU output 64 4" in text  # alexnet: one layer, two names
    assert "<!-- catalogue:taps" not in (site / "choosing" / "index.html").read_text(encoding="utf-8")
