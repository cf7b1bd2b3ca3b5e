"""CID:IQ (Liu, Pedersen & Hardeberg 2014): reproductions in numbered folders, two viewing distances."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from percept.eval.datasets.files import find_file, index_folder, load_mat, mat_vector, require_file, require_path
from percept.eval.datasets.model import DatabaseError, IQADatabase
from percept.eval.datasets.tables import Table, iqa_frame, parse_number, read_text_table, require_cells

_CIDIQ_NAME = re.compile(r"^(final\d+)_d(\d+)_l(\d+)$", re.IGNORECASE)
_CIDIQ_REF = re.compile(r"^final\d+\.bmp$", re.IGNORECASE)


def read_cidiq(
    root: str | os.PathLike, viewing_distance: int = 50, scores: str | os.PathLike | None = None
) -> IQADatabase:
    """Read CID:IQ (Liu, Pedersen & Hardeberg 2014): 23 references, 6 distortions x 5 levels, two viewing distances.

    As distributed, the 690 reproductions sit in ``Images/Reproduction/<k>_<Name>/final01_d<k>_l<l>.bmp``
    (``1_JPEG2000_Compression``, ``2_JPEG_Compression``, ``3_Poisson_Noise``, ``4_Gaussian_Blur``,
    ``5_SGCK_Gamut_Mapping``, ``6_DeltaE_Gamut_Mapping``), the references in ``Images/Original/final01.bmp``,
    and the scores of the two experiments in ``MOS50.mat`` and ``MOS100.mat`` (variables ``MOS50`` and
    ``MOS100``: 690 values in the order the database's MATLAB scripts list the files, folder by folder,
    then by file name: ``final01_d1_l1 .. final01_d1_l5, final02_d1_l1, ...``). The two viewing distances
    are separate score sets: read each with its own ``viewing_distance``.

    A CSV table with one row per reproduction is read too: ``image`` (``final01_d1_l1``, with or
    without extension), ``mos50`` and ``mos100`` (names matched ignoring case, ``_`` and spaces).

    Args:
        root: the CID:IQ folder (holding ``Images/`` and ``MOS50.mat``/``MOS100.mat``).
        viewing_distance: 50 or 100 (cm).
        scores: the score file (``.mat`` or CSV), if not ``MOS<d>.mat`` (or ``CIDIQ_scores.csv`` /
            ``scores.csv``) in ``root``.

    Returns:
        An :class:`IQADatabase` named ``cidiq-50`` or ``cidiq-100``, ``higher_is_better=True``; the
        distortion is the reproduction folder's name (``JPEG2000_Compression``), the level ``l``.

    Raises:
        DatabaseError: a file is missing, empty or malformed; the message names it.

    Example:
        >>> read_cidiq("/data/cidiq", viewing_distance=100).name  # doctest: +SKIP
        'cidiq-100'
    """
    root = Path(root)
    if viewing_distance not in (50, 100):
        raise DatabaseError(f"CID:IQ has viewing distances 50 and 100 (cm), got {viewing_distance!r}")
    variable = f"MOS{viewing_distance}"
    layout = (
        "the CID:IQ layout: Images/Original/final01.bmp, Images/Reproduction/1_JPEG2000_Compression/"
        f"final01_d1_l1.bmp and the scores {variable}.mat (variable {variable}, one value per reproduction) "
        "or a table CIDIQ_scores.csv with columns image,mos50,mos100"
    )
    if scores is None:
        names = (f"{variable}.mat", "CIDIQ_scores.csv", "scores.csv")
        found = [root / n for n in names if (root / n).exists()]
        scores = found[0] if found else root / names[0]
    scores = Path(scores)
    if scores.suffix.lower() == ".mat":
        mos = mat_vector(load_mat(require_file(scores, layout), layout), (variable, variable.lower()), scores, layout)
        files = _Files.read(root, scores, variable, layout)
        rows = files.mat_rows(mos)
    else:
        table = read_text_table(scores, layout, ("image", variable))
        files = _Files.read(root, scores, variable, layout)
        rows = files.table_rows(table)
    return IQADatabase(f"cidiq-{viewing_distance}", iqa_frame(rows, scores, layout), True, "MOS", root)


@dataclass
class _Files:
    """The image files of one CID:IQ copy, and how a score's image name becomes a row of the table."""

    originals_dir: Path
    originals: dict[str, Path]
    reproduction: Path
    folders: dict[int, tuple[Path, str, dict[str, Path]]]  # number -> (folder, label, files)
    scores: Path
    variable: str
    layout: str

    @classmethod
    def read(cls, root: Path, scores: Path, variable: str, layout: str) -> _Files:
        originals_dir = root / "Images" / "Original"
        originals = index_folder(originals_dir, layout)
        reproduction = require_path(root / "Images" / "Reproduction", layout)
        folders: dict[int, tuple[Path, str, dict[str, Path]]] = {}
        for folder in sorted(p for p in reproduction.iterdir() if p.is_dir()):
            number, _, label = folder.name.partition("_")
            if number.isdigit():
                folders[int(number)] = (folder, label, index_folder(folder, layout))
        if not folders:
            raise DatabaseError(f"'{reproduction}' holds no distortion folders like '1_JPEG2000_Compression'; "
                                f"expected {layout}")  # fmt: skip
        return cls(originals_dir, originals, reproduction, folders, scores, variable, layout)

    def row(self, stem: str, where: str, score: float) -> dict:
        """The table row of reproduction ``stem`` (``final01_d1_l1``) with its ``score``."""
        layout = self.layout
        match = _CIDIQ_NAME.match(stem)
        if match is None:
            raise DatabaseError(f"{where}: expected an image name like final01_d1_l1, got {stem!r}; expected {layout}")
        ref_id, kind, level = match.group(1).lower(), int(match.group(2)), int(match.group(3))
        if kind not in self.folders:
            raise DatabaseError(f"'{self.reproduction}' has no folder '{kind}_<Name>' for {stem!r} (named in "
                                f"'{self.scores}'); expected {layout}")  # fmt: skip
        folder, label, files = self.folders[kind]
        return dict(
            dist=str(find_file(files, f"{stem}.bmp", folder, self.scores, layout)),
            ref=str(find_file(self.originals, f"{ref_id}.bmp", self.originals_dir, self.scores, layout)),
            ref_id=ref_id,
            score=score,
            distortion=label,
            level=level,
        )

    def mat_rows(self, mos) -> list[dict]:
        """Rows of a MATLAB score vector, in the order of the database's MATLAB scripts."""
        layout, variable, scores = self.layout, self.variable, self.scores
        refs = sorted(Path(n).stem for n in self.originals if _CIDIQ_REF.match(n))
        if not refs:
            raise DatabaseError(f"'{self.originals_dir}' holds no references like final01.bmp; expected {layout}")
        per_level = len(self.folders) * len(refs)
        if len(mos) == 0 or len(mos) % per_level:
            raise DatabaseError(
                f"'{scores}' holds {len(mos)} values in {variable}, but {len(self.folders)} distortion folders x "
                f"{len(refs)} references need a multiple of {per_level} (one per level; CID:IQ has 6 x 23 x 5 = "
                f"690); expected {layout}"
            )
        # The order of the MATLAB scripts that come with the database: folders, then file names.
        levels = range(1, len(mos) // per_level + 1)
        stems = [f"{ref}_d{k}_l{lv}" for k in sorted(self.folders) for ref in refs for lv in levels]
        rows = []
        for i, (stem, value) in enumerate(zip(stems, mos, strict=True)):
            where = f"'{scores}' {variable} entry {i + 1} ({stem})"
            rows.append(self.row(stem, where, parse_number(value, where, layout, variable)))
        return rows

    def table_rows(self, table: Table) -> list[dict]:
        """Rows of a CSV score table (``image, mos50, mos100``)."""
        rows = []
        for where, record in table.rows:
            require_cells(where, record, ("image", self.variable), self.layout)
            stem = Path(record["image"]).stem
            rows.append(
                self.row(stem, where, parse_number(record[self.variable.lower()], where, self.layout, self.variable))
            )
        return rows
