"""Layer sweep: how well every tap of one or more networks, read out and compared in several ways, agrees with people.

For each backbone, every stage output (and the input image itself, depth 0) is a tap. Each reference
image runs through the network once and its tap outputs are kept while its distorted versions are
scored; each batch of distorted images runs through the network once, and a forward hook on every
stage compares that stage's output with the reference's the moment it is computed, so no tap output
of the distorted batch outlives its stage. Per (tap, measure) the distances land in a tidy table, and
per (tap, measure) the agreement with the scores (:func:`percept.eval.stats.correlations`).

Measures (``--measures``), each a distance (0 for identical features):

============  ======================================================================================
``flat-l2``   Euclidean norm of the whole flattened difference, ``||a - b||_2`` over C, H, W (the
              protocol of the deep-IQA dissection studies: no normalisation)
``mse``       mean over C, H, W of ``(a - b)^2``
``unit-l2``   channel unit-normalisation, squared difference summed over C, mean over space (LPIPS
              without its learned heads)
``cosine``    ``1 - cos`` between channel vectors, mean over space
``ssim``      ``1 -`` mean over channels of SSIM between feature maps (Gaussian window 11, sigma 1.5,
              shrunk to the map on small maps; C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 1 as MATLAB's
              ``ssim`` on doubles)
``meanstd``   Euclidean distance between the (spatial mean, spatial std) descriptors of the channels
``gram``      Frobenius norm of the difference of Gram matrices ``F F^T / (H W)``
R/D           any registered readout/distance pair, e.g. ``unit/l2`` or ``raw/cosine``
============  ======================================================================================

With ``flat-l2`` the sweep also reports the concatenation of the canonical taps: ``cat:<tap>`` is the
flattened concatenation of every canonical tap up to ``<tap>`` (``sqrt`` of the sum of squared
``flat-l2``), the cumulative readout of those studies.

Outputs in ``out_dir``: ``pairs.csv`` (the database's table), ``scores.csv`` (tidy: ``database,
backbone, tap, module, depth, canonical, measure, pair, distance``), ``correlations.csv`` (one row per
backbone, tap and measure: ``n, srocc, krocc, plcc, rmse, plcc_logistic, rmse_logistic``), and
``partial/``, the per-chunk results a rerun resumes from.

Example:
    >>> from percept.eval.datasets import load_database
    >>> from percept.eval.sweep import run_sweep
    >>> db = load_database("tid2013", "/data/tid2013")  # doctest: +SKIP
    >>> result = run_sweep(db, ["vgg16", "alexnet"], out_dir="sweep-tid2013")  # doctest: +SKIP
    >>> result.correlations.sort_values("srocc").tail(1)  # doctest: +SKIP
"""

from percept.builtin.ssim import ssim_per_map
from percept.eval.sweep.budget import check_sweep_memory
from percept.eval.sweep.chunks import (
    ChunkDataset,
    as_rgb,
    chunk_file_name,
    chunk_progress,
    file_signature,
    image_side,
    iterate_chunks,
    make_chunks,
    valid_chunks,
    weights_key,
)
from percept.eval.sweep.measures import MEASURES, make_measure, mse_per_map, unit_sq_per_map
from percept.eval.sweep.options import DEFAULT_MEASURES, FeatureOptions, SweepOptions, merge_options
from percept.eval.sweep.run import SweepResult, run_sweep, sweep_backbone
from percept.eval.sweep.shards import (
    Shard,
    check_shard,
    chunks_to_compute,
    distributed_shard,
    gather_objects,
    shard_chunks,
)
from percept.eval.sweep.tables import (
    BASELINES,
    SIMILARITY_BASELINES,
    baseline_scores,
    correlation_table,
    describe_taps,
    evaluate_2afc,
)
from percept.eval.sweep.taps import INPUT_TAP, SweepTap, TapScorer, build_backbone, sweep_taps

__all__ = [
    "BASELINES",
    "DEFAULT_MEASURES",
    "INPUT_TAP",
    "MEASURES",
    "SIMILARITY_BASELINES",
    "ChunkDataset",
    "FeatureOptions",
    "Shard",
    "SweepOptions",
    "SweepResult",
    "SweepTap",
    "TapScorer",
    "as_rgb",
    "baseline_scores",
    "build_backbone",
    "check_shard",
    "check_sweep_memory",
    "chunk_file_name",
    "chunk_progress",
    "chunks_to_compute",
    "correlation_table",
    "describe_taps",
    "distributed_shard",
    "evaluate_2afc",
    "file_signature",
    "gather_objects",
    "image_side",
    "iterate_chunks",
    "make_chunks",
    "make_measure",
    "merge_options",
    "mse_per_map",
    "run_sweep",
    "shard_chunks",
    "ssim_per_map",
    "sweep_backbone",
    "sweep_taps",
    "unit_sq_per_map",
    "valid_chunks",
    "weights_key",
]
