"""A real installed distribution for plugin tests: a ``.dist-info`` folder and its modules, found through
``importlib.metadata`` (once ``root`` is on ``sys.path``) as pip's would be."""

from __future__ import annotations

import textwrap
from pathlib import Path


def make_distribution(
    root: Path, dist_name: str, entry_points: dict[str, str], modules: dict[str, str], *, version: str = "1.2.3"
) -> None:
    """Write an installed distribution (a ``.dist-info`` folder and its modules) into ``root``."""
    info = root / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = ["[percept]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
