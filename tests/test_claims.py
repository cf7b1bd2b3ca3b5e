"""benchmarks/claims.py: parsing, stated against measured, flagging, block and span rewriting, and the pages' blocks.

Nothing here runs a benchmark: the outputs are recorded (the formats the scripts print) and ``claims.run`` is
replaced where a command would run.
"""

from __future__ import annotations

import dataclasses
import datetime
import doctest
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import claims  # noqa: E402

WHEN = datetime.datetime(2026, 12, 3, 14, 0, tzinfo=datetime.timezone.utc)

# What `python benchmarks/compare.py --sizes 8x256 ...` prints (cut to two cases).
COMPARE = """\
# torch 2.14.1, device cpu, 2 threads, reps 5, autocast off
# import torch, torchvision: 1.52 s; then import percept: +0.013 s; then PerceptualLoss and the registry of built-ins: +0.063 s (loaded of timm, kornia, torchmetrics, scipy, matplotlib, pandas: -)
# backbone forward per image at 256x256, GMAC: lpips-vgg 20.04, vgg16:conv3 12.19
# fwd, fwd+bwd: medians; percept speed-up: median [min, max] over repetitions of impl / percept (fwd+bwd) within one repetition
| case | N x size | impl | fwd ms | fwd+bwd ms | percept speed-up | peak MiB (fwd+bwd) | percept / impl |
|---|---|---|---|---|---|---|---|
| lpips-vgg | 8 x 256 | percept | 4769 | 7675 | 1.00x [1.00, 1.00] | 1116 | 1.00 |
| lpips-vgg | 8 x 256 | floor | 4027 | 7123 | 0.94x [0.86, 0.98] | 1116 | 1.00 |
| lpips-vgg | 8 x 256 | lpips | 5445 | 8783 | 1.18x [1.04, 1.37] | 2130 | 0.52 |
| vgg16:conv3 | 8 x 256 | percept | 3521 | 5692 | 1.00x [1.00, 1.00] | 1020 | 1.00 |
| vgg16:conv3 | 8 x 256 | piq | 4644 | 6072 | 1.11x [1.02, 1.33] | 1014 | 1.01 |
| vgg16:conv3 | 8 x 256 | lpips-vgg | 4456 | 7911 | 1.31x [1.20, 1.84] | 1116 | 0.91 |
"""  # noqa: E501


def rendered(stdout: str, name: str = "compare-8x256", seconds: float = 100.0) -> str:
    return claims.render(claims.CLAIMS[name], claims.Run(stdout, seconds, (1.0, 2.0), 0, WHEN), "CPU, 2 cores")


def test_docstring_examples():
    assert doctest.testmod(claims).failed == 0


def test_render_keeps_tables_and_fences_the_rest():
    body = rendered(COMPARE)
    first = body.splitlines()[0]
    assert first.startswith("Measured by `python benchmarks/compare.py --sizes 8x256 --reps 5` on 2026-12-03 14:00 UTC")
    assert "; 100 s wall; load average 1.00 before, 2.00 after." in first
    assert "```text\n# torch 2.14.1" in body and "\n```\n\n| case | N x size |" in body
    parsed = claims.Body.parse(body)
    assert len(parsed.tables) == 1 and len(parsed.tables[0].rows) == 6
    assert parsed.tables[0].rows[2][:3] == ["lpips-vgg", "8 x 256", "lpips"]


def test_keys_are_read_from_the_output():
    values = claims.keys_of(claims.CLAIMS["compare-8x256"], claims.Body.parse(rendered(COMPARE)))
    assert values["lpips-vgg.vs-lpips"] == 1.18
    assert values["lpips-vgg.memory-vs-lpips"] == 0.52
    assert values["lpips-vgg.vs-floor"] == pytest.approx(1 / 0.94)
    assert values["import.percept"] == 0.013 and values["import.registry"] == 0.063
    assert values["gmac.bound"] == pytest.approx(20.04 / 12.19)
    assert values["vgg16-conv3.vs-piq"] == 1.11
    assert "dists.vs-DISTS_pytorch" not in values  # no dists rows in this output


def test_wall_time_is_a_key_of_the_rendered_block():
    body = claims.Body.parse(rendered("anything\n", "demo", seconds=31.4))
    assert claims.keys_of(claims.CLAIMS["demo"], body) == {"wall": 31.0}


def _flags(rows):
    return {r.what: r.status for r in rows if r.flagged}


def test_same_figures_are_not_flagged():
    body = rendered(COMPARE)
    rows = claims.compare_claim(claims.CLAIMS["compare-8x256"], body, body, [])
    assert rows and not _flags(rows)
    assert any(r.what == "lpips-vgg / 8 x 256 / lpips: fwd+bwd ms" and r.drift == 0 for r in rows)


def test_drift_over_15_percent_is_flagged_and_under_is_not():
    stated = rendered(COMPARE)
    measured = rendered(COMPARE.replace("| 8783 |", "| 10540 |").replace("| 5445 |", "| 5880 |"))  # +20%, +8%
    rows = {r.what: r for r in claims.compare_claim(claims.CLAIMS["compare-8x256"], stated, measured, [])}
    assert rows["lpips-vgg / 8 x 256 / lpips: fwd+bwd ms"].status == "FLAG"
    assert rows["lpips-vgg / 8 x 256 / lpips: fwd+bwd ms"].drift == pytest.approx(0.2, abs=1e-3)
    assert rows["lpips-vgg / 8 x 256 / lpips: fwd ms"].status == "ok"


def test_spread_is_not_compared_only_the_median():
    stated = rendered(COMPARE)
    measured = rendered(COMPARE.replace("1.18x [1.04, 1.37]", "1.18x [0.50, 3.00]"))
    assert not _flags(claims.compare_claim(claims.CLAIMS["compare-8x256"], stated, measured, []))


def test_changed_labels_rows_and_headers_are_reported():
    stated = rendered(COMPARE)
    extra_row = COMPARE + "| lpips-vgg | 8 x 256 | percept-fast | 4000 | 6000 | 0.80x [0.7, 0.9] | - | - |\n"
    flags = _flags(claims.compare_claim(claims.CLAIMS["compare-8x256"], stated, rendered(extra_row), []))
    assert flags == {"table 1 row lpips-vgg / 8 x 256 / percept-fast": "CHANGED"}
    renamed = COMPARE.replace("| percept / impl |", "| memory ratio |")
    rows = claims.compare_claim(claims.CLAIMS["compare-8x256"], stated, rendered(renamed), [])
    assert [(r.stated, r.measured) for r in rows if r.what == "table 1 column"] == [
        ("percept / impl", "-"),
        ("-", "memory ratio"),
    ]
    assert _flags(rows) == {"table 1 column": "CHANGED", "lpips-vgg.memory-vs-lpips": "CHANGED"}  # the key is lost


def test_text_cells_are_compared_as_text():
    table = "| setting | first pass s (min..max) | second s | third s | recompile warning |\n|---|---|---|---|---|\n"
    stated = rendered(table + "| default | 1.00 (0.9..1.1) | 0.50 | 0.40 | no |\n", "bench-sizes")
    measured = rendered(table + "| default | 1.00 (0.9..1.1) | 0.50 | 0.40 | yes |\n", "bench-sizes")
    flags = _flags(claims.compare_claim(claims.CLAIMS["bench-sizes"], stated, measured, []))
    assert flags == {"default: recompile warning": "CHANGED"}


def test_spans_are_compared_and_ranges_count_as_met_inside():
    claim = claims.CLAIMS["demo"]
    inside = claims.compare_claim(claim, None, rendered("x\n", "demo", 31), [("README.md", "wall", "20-40 s")])
    assert [(r.stated, r.measured, r.status) for r in inside] == [("20-40 s", "31 s", "ok")]
    outside = claims.compare_claim(claim, None, rendered("x\n", "demo", 60), [("README.md", "wall", "20-40 s")])
    assert outside[0].status == "FLAG" and outside[0].drift == pytest.approx(0.5)
    unknown = claims.compare_claim(claim, None, rendered("x\n", "demo", 31), [("README.md", "walls", "3 s")])
    assert unknown[0].status == "CHANGED"


def test_legacy_and_missing_blocks_are_flagged():
    claim = claims.CLAIMS["bench-select"]
    measured = rendered("plcc   3000 pairs x 4224 maps, 40 steps, screen 64: 26.0 s (0.65 s/step)\n", "bench-select")
    legacy = "Stated before the claims script: PLCC 26.3 s."
    rows = claims.compare_claim(claim, legacy, measured, [])
    assert [(r.what, r.status) for r in rows] == [("plcc", "UNREAD")]
    missing = claims.compare_claim(claim, None, measured, [])
    assert missing[0].status == "CHANGED" and "docs/benchmarks.md" in missing[0].what


PAGE = """# t

<!-- claims: bench-study -->
Stated before the claims script: 2026-11-23, 105 s wall.
<!-- /claims: bench-study -->

The study takes <!-- claim: bench-study.wall -->105 s<!-- /claim --> and peaks at
<!-- claim: bench-study.peak-memory -->1432 MiB<!-- /claim -->.
"""
STUDY = "torch 2.14.1\nexit code 0; 5 files written\nwall time 121 s (2.6 s per configuration); peak memory 1500 MiB\n"


def test_rewrite_fills_blocks_and_spans_and_is_idempotent():
    body = rendered(STUDY, "bench-study")
    values = {"bench-study": claims.keys_of(claims.CLAIMS["bench-study"], claims.Body.parse(body))}
    once = claims.rewrite(PAGE, {"bench-study": body}, values)
    assert claims.rewrite(once, {"bench-study": body}, values) == once
    assert claims.blocks(once)["bench-study"] == body
    assert [t for _, _, t in claims.spans(once)] == ["121 s", "1500 MiB"]
    assert once.startswith("# t\n\n<!-- claims: bench-study -->\n\nMeasured by") and "105" not in once
    assert claims.rewrite(PAGE, {}, {}) == claims.rewrite(claims.rewrite(PAGE, {}, {}), {}, {})


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# r\n", encoding="utf-8")
    (tmp_path / "docs" / "benchmarks.md").write_text(PAGE, encoding="utf-8")
    return tmp_path


def test_measure_writes_the_page_and_flags_drift(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    monkeypatch.setattr(claims, "run", lambda argv, timeout: claims.Run(STUDY, 130.0, (0.5, 0.7), 0, WHEN))
    claim = claims.CLAIMS["bench-study"]
    rows = claims.measure(claim, claims.Pages.read(root), "CPU, 2 cores", write=True, root=root)
    flags = _flags(rows)
    assert flags["wall (docs/benchmarks.md)"] == "FLAG"  # 105 -> 121 s: 15.2%
    assert "peak-memory (docs/benchmarks.md)" not in flags  # 1432 -> 1500 MiB: 4.7%
    text = (root / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert "wall time 121 s" in text and "<!-- claim: bench-study.wall -->121 s<!-- /claim -->" in text
    again = claims.measure(claim, claims.Pages.read(root), "CPU, 2 cores", write=True, root=root)
    assert not _flags(again) and (root / "docs" / "benchmarks.md").read_text(encoding="utf-8") == text


def test_a_failed_command_is_flagged_and_writes_nothing(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    monkeypatch.setattr(claims, "run", lambda argv, timeout: claims.Run("", 1.0, (0.5, 0.7), 2, WHEN))
    rows = claims.measure(claims.CLAIMS["bench-study"], claims.Pages.read(root), "CPU", write=True, root=root)
    assert [r.status for r in rows] == ["FAILED"]
    assert (root / "docs" / "benchmarks.md").read_text(encoding="utf-8") == PAGE


def test_list_names_every_claim_with_its_command(capsys):
    assert claims.main(["--list"]) == 0
    out = capsys.readouterr().out
    for claim in claims.CLAIMS.values():
        assert claim.name in out and claim.command in out
    assert "min in all" in out


def test_unknown_name_is_refused_with_the_names(capsys):
    with pytest.raises(SystemExit) as exc:
        claims.main(["--only", "compare-8x265"])
    assert exc.value.code == 2
    assert "no claim named compare-8x265" in capsys.readouterr().err


def test_cuda_claim_is_not_run_without_cuda(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(claims, "run", lambda *a, **k: pytest.fail("ran a CUDA claim without CUDA"))
    assert claims.main(["--only", "gpu-check"]) == 0
    out = capsys.readouterr().out
    assert "gpu-check              not re-measured here (needs CUDA); stated figures taken never" in out
    assert "# 0 figure(s) flagged" in out


def test_every_block_and_span_in_the_pages_belongs_to_a_claim():
    state = claims.Pages.read()
    assert set(state.bodies) <= set(claims.CLAIMS), set(state.bodies) - set(claims.CLAIMS)
    for claim in claims.CLAIMS.values():
        if claim.doc:
            assert claim.name in state.bodies and state.where[claim.name] == claims.ROOT / claim.doc, claim.name
    for name, found in state.spans.items():
        assert name in claims.CLAIMS, name
        for page, key, _ in found:
            assert key in claims.CLAIMS[name].keys, f"{page}: {name}.{key}"


def test_no_measured_figure_outside_blocks_and_spans():
    """Prose outside blocks and spans states no measured time or speed-up (goals aside), on every page."""
    figure = r"\d+ ms\b|(?<!goal )(?<!at least )(?<!at most )\b\d\.\d+x\b|\d+(\.\d+)? ?(s|MiB|GiB) wall"
    for page in claims.pages():
        text = claims.SPAN.sub("", claims.BLOCK.sub("", page.read_text(encoding="utf-8")))
        assert not [ln for ln in text.splitlines() if "|" not in ln and re.search(figure, ln)], page.name


def test_a_check_puts_back_the_files_the_command_writes(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    (root / "docs" / "figure.png").write_bytes(b"old")

    def fake_run(argv, timeout):
        (root / "docs" / "figure.png").write_bytes(b"new")
        return claims.Run(STUDY, 1.0, (0.5, 0.7), 0, WHEN)

    monkeypatch.setattr(claims, "run", fake_run)
    claim = dataclasses.replace(claims.CLAIMS["bench-study"], outputs=("docs/figure.png",))
    claims.measure(claim, claims.Pages.read(root), "CPU", write=False, root=root)
    assert (root / "docs" / "figure.png").read_bytes() == b"old"
    assert (root / "docs" / "benchmarks.md").read_text(encoding="utf-8") == PAGE
    claims.measure(claim, claims.Pages.read(root), "CPU", write=True, root=root)
    assert (root / "docs" / "figure.png").read_bytes() == b"new"


def test_run_records_output_status_and_a_timeout():
    done = claims.run(["-c", "print('| a |'); print('|---|'); print('| 1 |')"], timeout=60)
    assert done.returncode == 0 and claims.Body.parse(done.stdout).tables[0].rows == [["1"]]
    assert done.when.tzinfo is not None and len(done.load) == 2
    late = claims.run(["-c", "import time; print('started', flush=True); time.sleep(30)"], timeout=2)
    assert late.returncode == 124 and late.seconds < 20


def test_a_command_that_reports_its_own_failure_is_failed(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    failed_study = STUDY.replace("exit code 0;", "exit code 2;")
    monkeypatch.setattr(claims, "run", lambda argv, timeout: claims.Run(failed_study, 1.0, (0.5, 0.7), 0, WHEN))
    rows = claims.measure(claims.CLAIMS["bench-study"], claims.Pages.read(root), "CPU", write=True, root=root)
    assert [(r.status, r.measured) for r in rows] == [("FAILED", "no '^exit code 0;'")]
    assert (root / "docs" / "benchmarks.md").read_text(encoding="utf-8") == PAGE
