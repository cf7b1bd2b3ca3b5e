"""The toolkit's options objects (sweep, features, selection): defaults, checks, keyword form equal to object form."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from _eval_fakes import make_tid

from percept import RandomWeightsWarning, create_backbone
from percept.errors import InputError, SpecError
from percept.eval.datasets import load_database
from percept.eval.finetune import channel_errors
from percept.eval.select import CRITERIA, MapScores, SelectOptions, cross_validate, forward_select, map_scores
from percept.eval.sweep import DEFAULT_MEASURES, FeatureOptions, SweepOptions, merge_options, run_sweep, sweep_backbone

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")
TAPS = ["relu1", "relu2"]


@pytest.fixture(scope="module")
def tid(tmp_path_factory):
    return load_database("tid2013", make_tid(tmp_path_factory.mktemp("tid"), refs=4, types=1, levels=2))


@pytest.fixture(scope="module")
def alexnet():
    with pytest.warns(RandomWeightsWarning):
        return create_backbone("alexnet", weights=None)


def test_defaults():
    features = FeatureOptions()
    assert (features.taps, features.weights, features.resize) == (None, "imagenet", None)
    assert (features.batch_size, features.workers, features.device) == (8, 0, "cpu")
    assert (features.progress, features.network_resize) == (False, False)
    sweep = SweepOptions()
    assert sweep.features() == features
    assert sweep.measures == DEFAULT_MEASURES == ("flat-l2",) and sweep.shard is None


def test_sequences_are_kept_as_tuples_and_the_object_is_frozen():
    options = SweepOptions(taps=["relu1"], measures=["mse", "ssim"], resize=(48, 64), shard=["1", 3])
    assert options.taps == ("relu1",) and options.measures == ("mse", "ssim")
    assert options.resize == (48, 64) and options.shard == (1, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ({"batch_size": True}, "batch_size must be an integer >= 1, got True"),
        ({"workers": -1}, "workers must be an integer >= 0, got -1"),
        ({"resize": 0}, "resize must be None, a side >= 1 or (height, width) with sides >= 1, got 0"),
        ({"resize": (64, 0)}, "got (64, 0)"),
        ({"resize": "64"}, "got '64'"),
        ({"device": "gpu9"}, "device must name a torch device such as 'cpu' or 'cuda:0', got 'gpu9'"),
        ({"taps": "relu1"}, "taps must be a sequence of tap names, got the string 'relu1': pass a list"),
        ({"measures": []}, "measures must name at least one measure"),
        ({"measures": "mse"}, "measures must be a sequence of names, got the string 'mse'"),
        ({"shard": (2, 2)}, "shard must be (rank, world) with 0 <= rank < world, got (2, 2)"),
        ({"shard": "0/2"}, "shard must be (rank, world), e.g. (0, 4), got '0/2'"),
    ],
)
def test_out_of_range_fields_fail_naming_the_field(kwargs, message):
    with pytest.raises(InputError) as caught:
        SweepOptions(**kwargs)
    assert message in str(caught.value)


def test_merge_options():
    base = FeatureOptions(resize=64, batch_size=2)
    merged = merge_options(SweepOptions, base, {"batch_size": 4, "measures": ["mse"]})
    assert isinstance(merged, SweepOptions)
    assert (merged.resize, merged.batch_size, merged.measures) == (64, 4, ("mse",))
    assert merge_options(FeatureOptions, base, {}) is not None and base.batch_size == 2  # the given one unchanged
    assert merge_options(SweepOptions, None, {"workers": 1}) == SweepOptions(workers=1)
    with pytest.raises(InputError, match=r"unknown option 'batch_szie'\. Did you mean 'batch_size'\?"):
        merge_options(FeatureOptions, None, {"batch_szie": 4})
    with pytest.raises(InputError, match="unknown option 'measures'"):  # not a feature setting
        merge_options(FeatureOptions, None, {"measures": ["mse"]})
    with pytest.raises(InputError, match="options must be a SweepOptions, got dict"):
        merge_options(SweepOptions, {"batch_size": 4}, {})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="batch_size must be an integer >= 1, got 0"):
        merge_options(SweepOptions, SweepOptions(), {"batch_size": 0})


def test_sweep_functions_refuse_an_unknown_keyword_before_any_work(tid):
    with pytest.raises(InputError, match="Did you mean 'measures'"):
        run_sweep(tid, ["alexnet"], measure=["mse"])
    with pytest.raises(InputError, match="Did you mean 'batch_size'"):
        sweep_backbone(tid, "alexnet", batchsize=2)


def test_sweep_keyword_form_equals_options_form(tid, alexnet):
    keywords = dict(taps=TAPS, measures=["mse", "flat-l2"], resize=64, batch_size=2)
    by_keywords = run_sweep(tid, [alexnet], baselines=(), plots=False, **keywords)
    options = SweepOptions(taps=TAPS, measures=("mse", "flat-l2"), resize=64, batch_size=2)
    by_options = run_sweep(tid, [alexnet], options, baselines=(), plots=False)
    pd.testing.assert_frame_equal(by_keywords.scores, by_options.scores)
    pd.testing.assert_frame_equal(by_keywords.correlations, by_options.correlations)
    # Keywords apply over an options object (here another batch size: other chunks, the same distances).
    one = sweep_backbone(tid, alexnet, SweepOptions(taps=TAPS, resize=64, batch_size=5), measures=["mse"])
    mse = by_options.scores[by_options.scores["measure"] == "mse"].drop(columns="database")
    assert set(one["measure"]) == {"mse"} and len(one) == len(mse) == 2 * len(tid)
    pd.testing.assert_frame_equal(*(f.sort_values(["tap", "pair"]).reset_index(drop=True) for f in (one, mse)),
                                  check_dtype=False)  # fmt: skip


def test_select_and_finetune_keyword_form_equals_options_form(tid, alexnet):
    by_keywords = map_scores(tid, alexnet, taps=["relu1"], resize=64, batch_size=4, measure="mse")
    by_options = map_scores(tid, alexnet, FeatureOptions(taps=["relu1"], resize=64, batch_size=4), measure="mse")
    np.testing.assert_array_equal(by_keywords.matrix, by_options.matrix)
    assert by_keywords.signature == by_options.signature and by_keywords.taps == by_options.taps
    # A SweepOptions is a FeatureOptions: a sweep's settings compute the same matrix.
    from_sweep = map_scores(tid, alexnet, SweepOptions(taps=["relu1"], resize=64, batch_size=4), measure="mse")
    np.testing.assert_array_equal(from_sweep.matrix, by_options.matrix)
    errors = channel_errors(tid, alexnet, taps=["relu1"], resize=64, batch_size=3)
    same = channel_errors(tid, alexnet, FeatureOptions(taps=["relu1"], resize=64, batch_size=3))
    np.testing.assert_array_equal(errors.matrix, same.matrix)
    assert errors.weights == same.weights and errors.measure == "unit-l2"
    default_taps = channel_errors(tid, alexnet, FeatureOptions(resize=64))  # taps=None: the canonical taps
    assert list(dict.fromkeys(default_taps.taps)) == alexnet.canonical_taps
    assert torch.isfinite(torch.from_numpy(default_taps.matrix)).all()


def _matrix(db, maps=12, seed=0):
    """Per-map scores for ``db``: noise, with map 3 following the scores."""
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(0, 1, (len(db), maps)).astype(np.float32)
    matrix[:, 3] = (db.table["score"].to_numpy() / 10).astype(np.float32)
    return MapScores(matrix, ["t"] * maps, list(range(maps)), "ssim")


def test_select_options_defaults_and_checks():
    options = SelectOptions()
    assert (options.criterion, options.tol, options.max_maps, options.min_maps, options.screen) == (
        "plcc", 1e-4, None, 1, 64
    )  # fmt: skip
    assert CRITERIA == ("plcc", "srocc") and SelectOptions(tol=-math.inf).tol == -math.inf
    with pytest.raises(SpecError, match="criterion must be 'plcc' .* or 'srocc', got 'krocc'"):
        SelectOptions(criterion="krocc")
    for kwargs, message in [
        ({"tol": math.nan}, "tol must be a number (not NaN), got nan"),
        ({"tol": "0.1"}, "tol must be a number (not NaN), got '0.1'"),
        ({"max_maps": 0}, "max_maps must be None or an integer >= 1, got 0"),
        ({"screen": 0}, "screen must be None or an integer >= 1, got 0"),
        ({"min_maps": -1}, "min_maps must be an integer >= 0, got -1"),
    ]:
        with pytest.raises(InputError) as caught:
            SelectOptions(**kwargs)
        assert message in str(caught.value)
    with pytest.raises(InputError, match="Did you mean 'max_maps'"):
        merge_options(SelectOptions, None, {"max_map": 3})


def test_select_keyword_form_equals_options_form(tid):
    scores = _matrix(tid)
    by_keywords = forward_select(scores, tid, criterion="srocc", max_maps=3, tol=-1.0)
    options = SelectOptions(criterion="srocc", max_maps=3, tol=-1.0)
    by_options = forward_select(scores, tid, options)
    assert by_keywords.maps == by_options.maps and len(by_options.maps) == 3 and by_options.maps[0] == 3
    pd.testing.assert_frame_equal(by_keywords.path, by_options.path)
    overridden = forward_select(scores, tid, options, max_maps=2)  # a keyword over the object
    assert overridden.maps == by_options.maps[:2]
    cv_keywords = cross_validate(scores, tid, folds=2, criterion="srocc", max_maps=3, tol=-1.0)
    cv_options = cross_validate(scores, tid, options, folds=2)
    pd.testing.assert_frame_equal(cv_keywords, cv_options)
