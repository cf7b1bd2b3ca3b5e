"""Every performance figure that README.md and docs/*.md state, re-measured by the command the text names.

Each figure lives in a generated block of a page::

    <!-- claims: NAME -->
    Measured by `python benchmarks/....py ...` on DATE UTC; CPU, cores, torch; load average before, after.
    ...the benchmark's own output (its markdown tables as they are; other lines in a text fence)...
    <!-- /claims: NAME -->

and a sentence that needs a figure holds an inline span, ``<!-- claim: NAME.KEY -->1.18x<!-- /claim -->``,
filled from a key the claim extracts from its output. :data:`CLAIMS` is the registry: per name, the command
(run from the repository root with this interpreter), the page that holds the block, the table columns that
name a row, the keys and how each is read, whether it needs CUDA, and a rough duration.

    python benchmarks/claims.py                 # run every claim; stated against measured; exit 1 if any drifted
    python benchmarks/claims.py --write         # run and rewrite the blocks and spans in place
    python benchmarks/claims.py --only NAME ... # these claims only
    python benchmarks/claims.py --skip-slow     # leave out the claims of more than SLOW_MINUTES
    python benchmarks/claims.py --list          # names, commands, rough durations
    python benchmarks/claims.py --smoke         # each command with tiny arguments, parsers exercised, nothing written

Stated against measured: the numbers of the block's tables (rows matched by their label columns, columns by
header; the first number of a cell, so a spread in brackets is not compared), every key, and every span. A
figure that moved more than :data:`DRIFT` (relative) is flagged, and so is a table whose labels or headers
changed, a block whose stated figures cannot be read (text written before this script) and a claim never
measured. A claim that needs CUDA on a machine without it is not re-measured and not flagged.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import itertools
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRIFT = 0.15  # relative change that flags a figure
SLOW_MINUTES = 5.0  # --skip-slow leaves out claims expected to take longer
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
BLOCK = re.compile(r"(<!-- claims: (?P<name>[\w-]+) -->\n\n?)(?P<body>.*?)(\n\n?<!-- /claims: (?P=name) -->)", re.S)
SPAN = re.compile(r"(<!-- claim: (?P<name>[\w-]+)\.(?P<key>[\w.:-]+) -->)(?P<text>.*?)(<!-- /claim -->)", re.S)
TableRows = list[list[str]]


@dataclass(frozen=True)
class Table:
    """A markdown table: ``header`` cells and ``rows`` of cells (the ``|---|`` line dropped)."""

    header: list[str]
    rows: TableRows


@dataclass(frozen=True)
class Body:
    """A block's text (or a benchmark's rendered output) and its markdown tables, in order.

    Example:
        >>> body = Body.parse("x\\n| a | b |\\n|---|---|\\n| r | 1.5x |")
        >>> body.tables[0].rows
        [['r', '1.5x']]
    """

    text: str
    tables: list[Table]

    @classmethod
    def parse(cls, text: str) -> Body:
        tables: list[Table] = []
        lines: list[list[str]] = []
        for line in [*text.splitlines(), ""]:
            if line.startswith("|"):
                lines.append([c.strip() for c in line.strip().strip("|").split("|")])
                continue
            if len(lines) >= 2:
                tables.append(Table(lines[0], [r for r in lines[1:] if not all(set(c) <= set("-: ") for c in r)]))
            lines = []
        return cls(text, tables)


Extractor = Callable[[Body], "float | None"]


def first_number(text: str) -> float | None:
    """The first number in ``text`` (``"1.18x [1.04, 1.37]"`` -> 1.18), or None.

    Example:
        >>> first_number("1.18x [1.04, 1.37]"), first_number("-")
        (1.18, None)
    """
    match = re.search(NUMBER, text)
    return float(match.group()) if match else None


def line(pattern: str) -> Extractor:
    """Reads group 1 of the first match of ``pattern`` (multi-line mode) as a number."""

    def read(body: Body) -> float | None:
        match = re.search(pattern, body.text, re.M)
        return float(match.group(1)) if match else None

    return read


def find_row(table: Table, labels: Sequence[str], label_columns: Sequence[int]) -> list[str] | None:
    """The row of ``table`` whose label columns read ``labels`` (``"*"`` matches any), or None."""
    for row in table.rows:
        if len(row) == len(table.header) and all(
            want in ("*", row[i]) for want, i in zip(labels, label_columns, strict=True)
        ):
            return row
    return None


def cell(labels: Sequence[str], column: str, table: int = 0) -> Extractor:
    """Reads the first number of the cell in ``column`` of the row named by ``labels`` (its label columns)."""

    def read(body: Body) -> float | None:
        if len(body.tables) <= table:
            return None
        tab = body.tables[table]
        if column not in tab.header:
            return None
        # the label columns are the leading ones: as many as labels given
        row = find_row(tab, labels, range(len(labels)))
        return first_number(row[tab.header.index(column)]) if row else None

    return read


def ratio(top: Extractor, bottom: Extractor) -> Extractor:
    """``top / bottom`` (None if either is missing or the bottom is 0)."""

    def read(body: Body) -> float | None:
        a, b = top(body), bottom(body)
        return a / b if a is not None and b else None

    return read


def total(*extractors: Extractor) -> Extractor:
    """The sum of ``extractors`` (None if any is missing)."""

    def read(body: Body) -> float | None:
        values = [extract(body) for extract in extractors]
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    return read


def column_sum(column: str, table: int = 0) -> Extractor:
    """The sum of the first numbers of ``column``'s cells."""

    def read(body: Body) -> float | None:
        if len(body.tables) <= table or column not in body.tables[table].header:
            return None
        tab = body.tables[table]
        values = [first_number(r[tab.header.index(column)]) for r in tab.rows if len(r) == len(tab.header)]
        return sum(v for v in values if v is not None) if values else None

    return read


WALL = line(r"; (\d+) s wall;")  # every rendered block's first line says how long its command took


@dataclass(frozen=True)
class Claim:
    """One command and the figures it produces.

    Attributes:
        name: the block's name (``<!-- claims: NAME -->``) and the spans' prefix.
        argv: the command after the interpreter, run from the repository root; ``{tmp}`` becomes a fresh
            temporary folder.
        doc: the page that holds the block, or None for a claim that only fills spans.
        labels: how many leading columns of its tables name a row.
        keys: ``KEY -> extractor`` of the figures the prose cites.
        minutes: rough duration on the project's 2-core CPU.
        smoke: the command with tiny arguments (``--smoke``), or None to run it as it is.
        cuda: needs a GPU.
        ok_codes: exit statuses that still carry a report (gpu_check exits 1 when a section failed).
        outputs: files (from the repository root) the command writes; a check without ``--write`` puts them back.
        expect: a pattern the output must hold (multi-line mode), for a command that reports its own failure in
            its output and still exits 0.
    """

    name: str
    argv: tuple[str, ...]
    doc: str | None
    labels: int = 1
    keys: dict[str, Extractor] = field(default_factory=dict)
    minutes: float = 1.0
    smoke: tuple[str, ...] | None = None
    cuda: bool = False
    ok_codes: tuple[int, ...] = (0,)
    outputs: tuple[str, ...] = ()
    expect: str | None = None

    def succeeded(self, result: Run) -> bool:
        """Whether ``result`` exited with one of :attr:`ok_codes` and holds :attr:`expect`."""
        return result.returncode in self.ok_codes and (
            self.expect is None or bool(re.search(self.expect, result.stdout, re.M))
        )

    @property
    def command(self) -> str:
        return "python " + " ".join(a if a == "{tmp}" else shlex.quote(a) for a in self.argv)


def _compare(name: str, argv: str, doc: str | None, minutes: float, smoke: str, **kw) -> Claim:
    return Claim(name, tuple(shlex.split(argv)), doc, minutes=minutes, smoke=tuple(shlex.split(smoke)), **kw)


def _peer(case: str, impl: str, column: str = "percept speed-up") -> Extractor:
    return cell((case, "*", impl), column)


def _inverse(extract: Extractor) -> Extractor:
    return ratio(lambda body: 1.0, extract)


def _ms(case: str, impl: str) -> Extractor:
    return _peer(case, impl, "fwd+bwd ms")


COMPARE_KEYS: dict[str, Extractor] = {
    "lpips-vgg.vs-lpips": _peer("lpips-vgg", "lpips"),
    "lpips-vgg.memory-vs-lpips": _peer("lpips-vgg", "lpips", "percept / impl"),
    "lpips-vgg.vs-floor": _inverse(_peer("lpips-vgg", "floor")),
    "dists.vs-DISTS_pytorch": _peer("dists", "DISTS_pytorch"),
    "dists.memory-vs-DISTS_pytorch": _peer("dists", "DISTS_pytorch", "percept / impl"),
}
IMPORT_KEYS: dict[str, Extractor] = {
    "import.percept": line(r"then import percept: \+(" + NUMBER + ") s"),
    "import.registry": line(r"registry of built-ins: \+(" + NUMBER + ") s"),
    "gmac.vgg16-conv3": line(r"vgg16:conv3 (" + NUMBER + ")"),
    "gmac.lpips-vgg": line(r"GMAC: lpips-vgg (" + NUMBER + ")"),
    "gmac.bound": ratio(line(r"GMAC: lpips-vgg (" + NUMBER + ")"), line(r"vgg16:conv3 (" + NUMBER + ")")),
    "vgg16-conv3.vs-lpips-vgg": _peer("vgg16:conv3", "lpips-vgg"),
    "vgg16-conv3.vs-piq": _peer("vgg16:conv3", "piq"),
}


def _overhead(case: str, minutes: float) -> Claim:
    fwd = line(r"^(?:FeatureDistanceFunction|_DISTSTerms): (" + NUMBER + ")%")
    bwd = line(r"^(?:FeatureDistanceFunction|_DISTSTerms)Backward: (" + NUMBER + ")%")
    suffix = "" if case == "lpips-vgg" else f" --case {case}"
    return _compare(
        f"overhead-{case.replace(':', '-')}",
        "benchmarks/overhead.py" + suffix,
        "docs/benchmarks.md",
        minutes,
        "benchmarks/overhead.py --size 1x64 --reps 1" + suffix,
        keys={
            "fwd": fwd,
            "bwd": bwd,
            "check": line(r"^aten::aminmax: (" + NUMBER + ")%"),
            "both": total(fwd, bwd),
        },
    )


def _sweep(name: str, args: str, minutes: float, loop: bool) -> Claim:
    keys = {"sweep-vs-plain": line(r"flat-l2: " + NUMBER + " s = (" + NUMBER + ")x plain")}
    if loop:
        keys["loop-vs-sweep"] = line(r"s = (" + NUMBER + ")x the sweep")
    backbone = re.search(r"--backbone \S+", args)
    tiny = f"benchmarks/bench_sweep.py {backbone.group() if backbone else ''} --size 64x64 --refs 1 --per-ref 2 "
    return _compare(
        name, "benchmarks/bench_sweep.py " + args, "docs/benchmarks.md", minutes,
        tiny + ("--loop-taps 1" if loop else "--loop-taps 0"), keys=keys,
    )  # fmt: skip


def _user_cell(shape: str) -> Extractor:
    return cell((shape, "fused"), "x unfused")


CLAIMS: dict[str, Claim] = {
    c.name: c
    for c in [
        _compare(
            "compare-8x256",
            "benchmarks/compare.py --sizes 8x256 --reps 5",
            "docs/benchmarks.md",
            30,
            "benchmarks/compare.py --sizes 1x64 --reps 1",
            labels=3,
            keys={**COMPARE_KEYS, **IMPORT_KEYS},
        ),
        _compare(
            "compare-1x1024",
            "benchmarks/compare.py --sizes 1x1024 --reps 3 --cases lpips-vgg dists",
            "docs/benchmarks.md",
            30,
            "benchmarks/compare.py --sizes 1x64 --reps 1 --cases lpips-vgg dists",
            labels=3,
            keys=COMPARE_KEYS,
        ),
        _overhead("lpips-vgg", 2),
        _overhead("dists", 2),
        _overhead("vgg16:conv3", 2),
        _compare(
            "fast-mode",
            "benchmarks/compare.py --cases lpips-vgg vgg16:conv3 --sizes 4x192 --reps 5 --no-memory --no-import "
            "--impls percept percept-fast lpips",
            "docs/benchmarks.md",
            4,
            "benchmarks/compare.py --cases lpips-vgg vgg16:conv3 --sizes 1x64 --reps 1 --no-memory --no-import "
            "--impls percept percept-fast lpips",
            labels=3,
            keys={
                "lpips-vgg.fast-vs-lpips": ratio(_ms("lpips-vgg", "lpips"), _ms("lpips-vgg", "percept-fast")),
                "lpips-vgg.exact-vs-lpips": _peer("lpips-vgg", "lpips"),
                "vgg16-conv3.fast-vs-exact": ratio(_ms("vgg16:conv3", "percept"), _ms("vgg16:conv3", "percept-fast")),
            },
        ),
        _compare(
            "compare-user",
            "benchmarks/compare.py --cases lpips-vgg --impls percept lpips --sizes 4x128:10 8x256:5 --user-steps 10 "
            "--reps 5",
            "docs/benchmarks.md",
            14,
            "benchmarks/compare.py --cases lpips-vgg --impls percept lpips --sizes 1x64:2 --user-steps 2 --reps 1",
            labels=4,
            keys={
                "4x128.vs-lpips": cell(("lpips-vgg", "4 x 128", "*", "lpips"), "percept speed-up"),
                "8x256.vs-lpips": cell(("lpips-vgg", "8 x 256", "*", "lpips"), "percept speed-up"),
            },
        ),
        _compare(
            "compare-floor",
            "benchmarks/compare.py --cases lpips-vgg --impls percept lpips floor --sizes 4x128 --reps 5 --no-memory "
            "--no-import",
            "docs/benchmarks.md",
            1,
            "benchmarks/compare.py --cases lpips-vgg --impls percept lpips floor --sizes 1x64 --reps 1 --no-memory "
            "--no-import",
            labels=3,
            keys={
                "vs-lpips": _peer("lpips-vgg", "lpips"),
                "vs-floor": _inverse(_peer("lpips-vgg", "floor")),
                "bound": ratio(_ms("lpips-vgg", "lpips"), _ms("lpips-vgg", "floor")),
            },
        ),
        _compare(
            "bench-synthetic",
            "benchmarks/bench_synthetic.py --backbones alexnet,resnet18,squeezenet1_1,mobilenet_v3_small "
            "--triplets 300",
            "docs/evaluation.md",
            5,
            "benchmarks/bench_synthetic.py --backbones alexnet --triplets 8",
        ),
        _compare(
            "bench-sizes",
            "benchmarks/bench_sizes.py --repeats 4",
            "docs/benchmarks.md",
            6,
            "benchmarks/bench_sizes.py --repeats 1 --pairs 1",
            keys={
                "first-pass": line(r"first pass, default / eager: (" + NUMBER + ")x"),
                "paired": line(r"paired per repeat: median (" + NUMBER + ")x"),
            },
        ),
        _compare(
            "bench-ops",
            "benchmarks/bench_ops.py",
            "docs/benchmarks.md",
            12,
            "benchmarks/bench_ops.py --shapes 1,8,16,16 --reps 1",
            labels=2,
        ),
        _compare(
            "bench-ops-user",
            "benchmarks/bench_ops.py --shapes 4,64,128,128 4,256,32,32 --run-seconds 30 --reps 5",
            "docs/benchmarks.md",
            12,
            "benchmarks/bench_ops.py --shapes 1,8,16,16 --run-seconds 0.2 --reps 1",
            labels=2,
            keys={"4x64x128x128": _user_cell("(4, 64, 128, 128)"), "4x256x32x32": _user_cell("(4, 256, 32, 32)")},
        ),
        _compare(
            "gpu-check",
            "benchmarks/gpu_check.py",
            "docs/benchmarks.md",
            8,
            "benchmarks/gpu_check.py --cpu",
            cuda=True,
            ok_codes=(0, 1),
        ),
        _compare(
            "bench-select",
            "benchmarks/bench_select.py",
            "docs/benchmarks.md",
            3,
            "benchmarks/bench_select.py --pairs 200 --maps 128 --steps 2 --screen 16",
            keys={"plcc": line(r"^plcc .*?: (" + NUMBER + ") s"), "srocc": line(r"^srocc .*?: (" + NUMBER + ") s")},
        ),
        _sweep("bench-sweep-vgg16", "--size 192x256 --refs 1 --per-ref 12 --loop-taps 2", 4, loop=True),
        _sweep(
            "bench-sweep-resnet50",
            "--backbone resnet50 --size 224x224 --refs 1 --per-ref 24 --loop-taps 0",
            3,
            loop=False,
        ),
        _sweep(
            "bench-sweep-vit_b_16",
            "--backbone vit_b_16 --size 224x224 --refs 1 --per-ref 24 --loop-taps 0",
            4,
            loop=False,
        ),
        _compare(
            "bench-study",
            "benchmarks/bench_study.py --size 128 --refs 3 --per-ref 4",
            "docs/benchmarks.md",
            3,
            "benchmarks/bench_study.py --size 96 --refs 1 --per-ref 3",
            expect=r"^exit code 0;",
            keys={
                "wall": line(r"wall time (" + NUMBER + ") s"),
                "per-configuration": line(r"\((" + NUMBER + r") s per configuration\)"),
                "peak-memory": line(r"peak memory (" + NUMBER + ") MiB"),
            },
        ),
        _compare(
            "bench-elpips",
            "benchmarks/bench_elpips_robustness.py",
            "README.md",
            3,
            "benchmarks/bench_elpips_robustness.py --triplets 4 --size 32 --eps 0.01 --steps 1 --n 2",
            labels=2,
            keys={
                "agree": line(r"plain LPIPS's on (" + NUMBER + ") of the triplets"),
                "seconds": line(r"^\((" + NUMBER + r") s on \d+ threads\)"),
            },
        ),
        _compare(
            "bench-learn",
            "benchmarks/bench_learn.py --triplets 2000 --val 500 --epochs 10 --threads 1",
            "README.md",
            14,
            "benchmarks/bench_learn.py --triplets 50 --val 20 --epochs 2 --threads 1",
            keys={
                "speed-up": line(r"^speed-up (" + NUMBER + ")x"),
                "unit-l2": line(r"alexnet/unit/l2: (" + NUMBER + r")\)"),
            },
        ),
        _compare(
            "bench-learn-families",
            "benchmarks/bench_learn_families.py --plot docs/images/learn_families.png",
            "docs/learning.md",
            2,
            "benchmarks/bench_learn_families.py --train 20 --val 10",
            labels=2,
            keys={"seconds": column_sum("seconds")},
            outputs=("docs/images/learn_families.png",),
        ),
        _compare(
            "demo",
            "-m percept demo --out {tmp}",
            None,
            1,
            "-m percept demo --out {tmp} --levels 2 --size 64",
            keys={"wall": WALL},
        ),
    ]
}


# -- running and rendering --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """A command's standard output and the conditions it ran in."""

    stdout: str
    seconds: float
    load: tuple[float, float]
    returncode: int
    when: datetime.datetime


def machine() -> str:
    """``"CPU model, N cores, torch X"`` (the model from /proc/cpuinfo, else ``platform``)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = "not installed"
    return f"{model}, {os.cpu_count()} cores, torch {torch}"


def run(argv: Sequence[str], timeout: float) -> Run:
    """Runs ``python argv`` from the repository root (its stderr passes through); ``{tmp}`` is a fresh folder.
    A command still running after ``timeout`` seconds is stopped and gets the exit status 124."""
    with tempfile.TemporaryDirectory(prefix="claims-") as tmp:
        args = [sys.executable, *(a.replace("{tmp}", str(Path(tmp) / "out")) for a in argv)]
        before, start = os.getloadavg()[0], time.perf_counter()
        when = datetime.datetime.now(datetime.timezone.utc)
        try:
            out = subprocess.run(args, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
            stdout, code = out.stdout, out.returncode
        except subprocess.TimeoutExpired as exc:  # reported as a failed command, the other claims still run
            stdout, code = exc.stdout if isinstance(exc.stdout, str) else "", 124
        seconds = time.perf_counter() - start
    return Run(stdout, seconds, (before, os.getloadavg()[0]), code, when)


def render(claim: Claim, result: Run, host: str) -> str:
    """The block's text: one line naming the command, date, machine, time and load, then the output: its
    markdown tables as they are, every other run of lines in a text fence.

    Example:
        >>> when = datetime.datetime(2026, 12, 3, 14, 0, tzinfo=datetime.timezone.utc)
        >>> print(render(CLAIMS["bench-select"], Run("plcc: 1 s\\n", 2.0, (1.0, 1.5), 0, when), "CPU, 2 cores"))
        Measured by `python benchmarks/bench_select.py` on 2026-12-03 14:00 UTC; CPU, 2 cores; 2 s wall; load average 1.00 before, 1.50 after.
        <BLANKLINE>
        ```text
        plcc: 1 s
        ```
    """  # noqa: E501
    head = (
        f"Measured by `{claim.command}` on {result.when:%Y-%m-%d %H:%M} UTC; {host}; {result.seconds:.0f} s wall; "
        f"load average {result.load[0]:.2f} before, {result.load[1]:.2f} after."
    )
    parts = [head]
    for is_table, group in itertools.groupby(result.stdout.splitlines(), key=lambda ln: ln.startswith("|")):
        chunk = "\n".join(group).strip("\n")
        if chunk.strip():
            parts.append(chunk if is_table else f"```text\n{chunk}\n```")
    return "\n\n".join(parts)


# -- stated against measured -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One figure: ``what`` (a table cell, a key or a span), stated and measured text, drift, status."""

    claim: str
    what: str
    stated: str
    measured: str
    drift: float | None
    status: str  # "ok", "FLAG" (drifted), "CHANGED" (labels, headers or text), "UNREAD" (no stated figure)

    @property
    def flagged(self) -> bool:
        return self.status != "ok"


def drift(stated: float, measured: float) -> float:
    """Relative change of ``measured`` from ``stated`` (``inf`` if stated is 0 and measured is not)."""
    if stated == measured:
        return 0.0
    return abs(measured - stated) / abs(stated) if stated else math.inf


def stated_value(text: str) -> tuple[float, float] | None:
    """The number a stated text holds, as ``(low, high)``: a range ``"20-40 s"`` gives both ends."""
    match = re.match(r"\s*(" + NUMBER + r")\s*(?:-|to)\s*(" + NUMBER + ")", text)
    if match:
        return float(match.group(1)), float(match.group(2))
    value = first_number(text)
    return None if value is None else (value, value)


def figure_row(claim: str, what: str, stated: str | None, measured: str | None) -> Row:
    """Compares two texts: their first numbers if both have one (a stated range counts as met inside it), else
    the texts themselves."""
    if stated is None:
        return Row(claim, what, "-", measured or "-", None, "UNREAD")
    if measured is None:
        return Row(claim, what, stated, "-", None, "CHANGED")
    low_high, value = stated_value(stated), first_number(measured)
    if low_high is None or value is None:
        return Row(claim, what, stated, measured, None, "ok" if stated == measured else "CHANGED")
    low, high = low_high
    change = 0.0 if low <= value <= high else min(drift(low, value), drift(high, value))
    return Row(claim, what, stated, measured, change, "FLAG" if change > DRIFT else "ok")


def compare_tables(claim: Claim, stated: Body, measured: Body) -> list[Row]:
    """Cell by cell: rows matched by their ``claim.labels`` leading cells, columns by header; a row or column
    on one side only is one CHANGED row."""
    rows: list[Row] = []
    for index in range(max(len(stated.tables), len(measured.tables))):
        what = f"table {index + 1}"
        if index >= len(stated.tables) or index >= len(measured.tables):
            side = "measured" if index >= len(stated.tables) else "stated"
            rows.append(Row(claim.name, what, "-" if side == "measured" else "table", side, None, "CHANGED"))
            continue
        old, new = stated.tables[index], measured.tables[index]
        rows += [Row(claim.name, f"{what} column", h, "-", None, "CHANGED") for h in old.header if h not in new.header]
        rows += [Row(claim.name, f"{what} column", "-", h, None, "CHANGED") for h in new.header if h not in old.header]
        old_rows = {tuple(r[: claim.labels]): r for r in old.rows if len(r) == len(old.header)}
        new_rows = {tuple(r[: claim.labels]): r for r in new.rows if len(r) == len(new.header)}
        for label in dict.fromkeys([*old_rows, *new_rows]):
            name = " / ".join(label)
            if label not in old_rows or label not in new_rows:
                side = "stated" if label in old_rows else "measured"
                rows.append(Row(claim.name, f"{what} row {name}", "-" if side == "measured" else "row",
                                side, None, "CHANGED"))  # fmt: skip
                continue
            for h in new.header[claim.labels :]:
                if h in old.header[claim.labels :]:
                    stated_cell, measured_cell = (
                        old_rows[label][old.header.index(h)],
                        new_rows[label][new.header.index(h)],
                    )
                    rows.append(figure_row(claim.name, f"{name}: {h}", stated_cell, measured_cell))
    return rows


def format_like(stated: str, value: float) -> str:
    """``value`` written as ``stated`` writes its number: decimals, prefix and suffix kept; a range becomes one
    number.

    Example:
        >>> format_like("1.18x", 1.2345), format_like("20-40 s", 31.4), format_like("0.013 s", 0.02)
        ('1.23x', '31 s', '0.020 s')
    """
    match = re.match(r"(\D*?)(" + NUMBER + r")(\s*(?:-|to)\s*" + NUMBER + ")?(.*)", stated, re.S)
    if not match:
        return f"{value:g}"
    number = match.group(2)
    decimals = len(number.split(".")[1]) if "." in number and "e" not in number.lower() else 0
    return f"{match.group(1)}{value:.{decimals}f}{match.group(4)}"


# -- the pages ---------------------------------------------------------------------------------------------------
def pages(root: Path = ROOT) -> list[Path]:
    """README.md and docs/*.md: the pages that state figures."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(text: str) -> dict[str, str]:
    """``name -> body`` of every claims block in ``text``.

    Example:
        >>> blocks("a\\n<!-- claims: x -->\\nbody\\n<!-- /claims: x -->\\nb")
        {'x': 'body'}
    """
    return {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}


def spans(text: str) -> list[tuple[str, str, str]]:
    """``(name, key, text)`` of every inline span in ``text``.

    Example:
        >>> spans("at <!-- claim: compare-8x256.lpips-vgg.vs-lpips -->1.18x<!-- /claim --> the")
        [('compare-8x256', 'lpips-vgg.vs-lpips', '1.18x')]
    """
    return [(m.group("name"), m.group("key"), m.group("text")) for m in SPAN.finditer(text)]


def rewrite(text: str, bodies: dict[str, str], values: dict[str, dict[str, float]]) -> str:
    """``text`` with the named blocks' bodies replaced and the spans of ``values`` (``name -> key -> value``)
    refilled, each number written as the stated one was; every block is written with a blank line inside
    each marker (a table then ends before the closing one). Running it twice changes nothing more.

    Example:
        >>> page = "<!-- claims: x -->\\nold\\n<!-- /claims: x -->\\nit is <!-- claim: x.k -->1.1x<!-- /claim -->"
        >>> print(rewrite(page, {"x": "new"}, {"x": {"k": 1.234}}))
        <!-- claims: x -->
        <BLANKLINE>
        new
        <BLANKLINE>
        <!-- /claims: x -->
        it is <!-- claim: x.k -->1.2x<!-- /claim -->
    """

    def block(m: re.Match) -> str:
        name = m.group("name")
        body = bodies.get(name, m.group("body"))
        return f"<!-- claims: {name} -->\n\n{body.strip()}\n\n<!-- /claims: {name} -->"

    def span(m: re.Match) -> str:
        value = values.get(m.group("name"), {}).get(m.group("key"))
        return m.group(0) if value is None else m.group(1) + format_like(m.group("text"), value) + m.group(5)

    return SPAN.sub(span, BLOCK.sub(block, text))


def stated_date(body: str) -> str:
    """The date of a block's figures (its first ``YYYY-MM-DD``), or ``"never"``."""
    match = re.search(r"\d{4}-\d{2}-\d{2}", body)
    return match.group() if match else "never"


def keys_of(claim: Claim, body: Body) -> dict[str, float]:
    """The claim's keys that ``body`` holds."""
    values = {key: extract(body) for key, extract in claim.keys.items()}
    return {key: value for key, value in values.items() if value is not None}


def compare_claim(
    claim: Claim, stated_body: str | None, measured_body: str, claim_spans: Iterable[tuple[str, str, str]]
) -> list[Row]:
    """Every figure of one claim: table cells, keys, and each span in the pages (``(page, key, text)``)."""
    if stated_body is None and claim.doc is not None:
        return [Row(claim.name, f"block in {claim.doc}", "missing", "-", None, "CHANGED")]
    measured = Body.parse(measured_body)
    stated = Body.parse(stated_body or "")
    rows = compare_tables(claim, stated, measured) if stated_body is not None else []
    old, new = keys_of(claim, stated), keys_of(claim, measured)
    for key in claim.keys:
        if stated_body is not None and (key in old or key in new):
            rows.append(figure_row(claim.name, key, _text(old.get(key)), _text(new.get(key))))
    for page, key, text in claim_spans:
        if key not in claim.keys:
            rows.append(Row(claim.name, f"{key} ({page})", text, "no such key", None, "CHANGED"))
            continue
        value = new.get(key)
        rows.append(
            figure_row(claim.name, f"{key} ({page})", text, None if value is None else format_like(text, value))
        )
    if not rows:
        rows.append(Row(claim.name, "figures", "-", "none extracted", None, "UNREAD"))
    return rows


def _text(value: float | None) -> str | None:
    return None if value is None else f"{value:.4g}"


# -- the command line ----------------------------------------------------------------------------------------------
@dataclass
class Pages:
    """What the pages state: each block's body and page, and each claim's spans as ``(page, key, text)``."""

    bodies: dict[str, str] = field(default_factory=dict)
    where: dict[str, Path] = field(default_factory=dict)
    spans: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path = ROOT) -> Pages:
        state = cls()
        for page in pages(root):
            text = page.read_text(encoding="utf-8")
            for name, body in blocks(text).items():
                state.bodies[name], state.where[name] = body, page
            for name, key, span_text in spans(text):
                state.spans.setdefault(name, []).append((str(page.relative_to(root)), key, span_text))
        return state


def print_rows(rows: Iterable[Row]) -> None:
    for r in rows:
        change = "-" if r.drift is None else f"{100 * r.drift:.0f}%"
        print(f"{r.claim:22s} {r.what[:60]:60s} {r.stated[:28]:>28s} {r.measured[:28]:>28s} {change:>6s} {r.status}")


def list_claims(claims: Iterable[Claim]) -> None:
    """``--list``: name, rough minutes, the page, the command."""
    total = 0.0
    for c in claims:
        total += c.minutes
        print(
            f"{c.name:22s} ~{c.minutes:4.0f} min {'CUDA ' if c.cuda else ''}{c.doc or '(spans only)':18s} {c.command}"
        )
    print(f"# about {total:.0f} min in all")


def smoke(claims: Iterable[Claim]) -> int:
    """``--smoke``: each command with tiny arguments; its output parsed and rendered, nothing written."""
    failed = 0
    for c in claims:
        result = run(c.smoke or c.argv, timeout=1800)
        body = Body.parse(render(c, result, machine()))
        found = keys_of(c, body)
        missing = [k for k in c.keys if k not in found]
        ok = c.succeeded(result) and bool(body.tables or found)
        failed += not ok
        print(f"{c.name:22s} {'ok' if ok else 'FAIL'}: exit {result.returncode}, {result.seconds:.0f} s, "
              f"{len(body.tables)} tables, keys {sorted(found)}"
              + (f"; not in the tiny output: {missing}" if missing else ""), flush=True)  # fmt: skip
    return 1 if failed else 0


def measure(claim: Claim, state: Pages, host: str, write: bool, root: Path = ROOT) -> list[Row]:
    """Runs one claim, compares it with what the pages (under ``root``) state, and (``write``) rewrites its block
    and spans there."""
    kept = {path: (root / path).read_bytes() for path in claim.outputs if (root / path).exists() and not write}
    try:
        result = run(claim.argv, timeout=max(600.0, claim.minutes * 60 * 4))
    finally:
        for path, data in kept.items():  # a check leaves the files the command wrote as they were
            (root / path).write_bytes(data)
    if not claim.succeeded(result):
        why = f"exit {result.returncode}" if result.returncode not in claim.ok_codes else f"no {claim.expect!r}"
        return [Row(claim.name, "command", claim.command, why, None, "FAILED")]
    body = render(claim, result, host)
    rows = compare_claim(claim, state.bodies.get(claim.name), body, state.spans.get(claim.name, []))
    if write:
        values = {claim.name: keys_of(claim, Body.parse(body))}
        bodies = {claim.name: body} if claim.name in state.bodies else {}
        for page in pages(root):
            text = page.read_text(encoding="utf-8")  # read again: another run may have changed it
            new = rewrite(text, bodies, values)
            if new != text:
                page.write_text(new, encoding="utf-8")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the blocks and spans from the measurements")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these claims only")
    parser.add_argument("--skip-slow", action="store_true", help=f"leave out claims of more than {SLOW_MINUTES:g} min")
    parser.add_argument("--list", action="store_true", help="names, commands and rough durations")
    parser.add_argument("--smoke", action="store_true", help="each command with tiny arguments; nothing written")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only or []) - set(CLAIMS))
    if unknown:
        parser.error(f"no claim named {', '.join(unknown)}; the claims are: {', '.join(CLAIMS)}")
    claims = [c for c in CLAIMS.values() if (not args.only or c.name in args.only)]
    claims = [c for c in claims if not (args.skip_slow and c.minutes > SLOW_MINUTES)]
    if args.list:
        list_claims(claims)
        return 0
    if args.smoke:
        return smoke(claims)
    import torch

    state, host, flagged = Pages.read(), machine(), 0
    print(f"{'claim':22s} {'figure':60s} {'stated':>28s} {'measured':>28s} {'drift':>6s} status", flush=True)
    for claim in claims:
        if claim.cuda and not torch.cuda.is_available():
            date = stated_date(state.bodies.get(claim.name, ""))
            print(f"{claim.name:22s} not re-measured here (needs CUDA); stated figures taken {date}", flush=True)
            continue
        rows = measure(claim, state, host, args.write)
        print_rows(rows)
        sys.stdout.flush()
        flagged += sum(r.flagged for r in rows)
    print(f"# {flagged} figure(s) flagged (drift over {DRIFT:.0%}, changed, unread or failed)")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
