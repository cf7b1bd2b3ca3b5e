"""Forward (wrapper) selection of individual feature maps that agree with human quality judgements.

As in the study that selects AlexNet/VGG16 maps (Nguyen & Amirshahi): every feature map of the
chosen taps is compared between reference and distorted image on its own (SSIM between the two maps
by default), giving a ``(pairs x maps)`` matrix computed once (:func:`map_scores`). Then
:func:`forward_select` starts from the best single map and repeatedly adds the map whose addition
raises the criterion most, stopping at the first step that does not raise it by more than ``tol``.

Choices the study leaves open are options here:

- *pooling* of the per-map scores of a set: their mean (kept as running sums, so a step costs one
  pass over the matrix);
- *criterion*: ``"plcc"`` (Pearson after the 5-parameter logistic fit) or ``"srocc"``; the
  orientation is fixed by the score kind (a similarity must rise with MOS, fall with DMOS);
- *screening*: each step ranks every candidate by linear Pearson (exact, from running sums) and
  evaluates the criterion on the ``screen`` best of them (``screen=None``: on all of them): SROCC
  exactly, PLCC after the logistic by a closed-form fit on a grid of logistic shapes, then an exact fit
  of the map chosen;
- *validation*: :func:`cross_validate` selects on the pairs of some reference images and reports the
  correlation on the others (folds by reference).

A selection saves as JSON (:meth:`Selection.save`) and loads as a metric
(:func:`selection_pipeline`, or the built-in preset ``map-selection``):
``1 - mean SSIM`` over the selected maps, exactly the pooled score that was selected, differentiable.

Why not a :class:`~percept.readouts.base.ChannelWeightedReadout` with 0/1 weights: that weights
squared differences summed over channels, whereas the selected score is the *mean of per-map SSIM*;
the two rank image pairs differently. The saved readout keeps the selected channels
(:class:`MapSubsetReadout`) and the distance is the per-map SSIM (the ``ssim`` distance), with
layer weights ``n_tap / n_total`` so that the sum over taps is the mean over all selected maps.

Example:
    >>> scores = map_scores(db, "alexnet", weights="imagenet")  # doctest: +SKIP
    >>> sel = forward_select(scores, db, criterion="plcc")  # doctest: +SKIP
    >>> sel.path[["step", "tap", "channel", "criterion"]]  # doctest: +SKIP
    >>> sel.save("alexnet-tid2013.json")  # doctest: +SKIP
    >>> metric = selection_pipeline("alexnet-tid2013.json")  # doctest: +SKIP
"""

from percept.eval.select.files import (
    FORMAT,
    MapSSIMDistance,
    MapSubsetReadout,
    Selection,
    check_recorded_source,
    check_selection,
    load_selection,
    read_json_file,
    selection_pipeline,
)
from percept.eval.select.forward import CRITERIA, SelectOptions, cross_validate, forward_select
from percept.eval.select.maps import PER_MAP, MapScores, default_taps, map_channels, map_scores
from percept.eval.sweep.options import FeatureOptions

__all__ = [
    "CRITERIA",
    "FORMAT",
    "PER_MAP",
    "FeatureOptions",
    "MapSSIMDistance",
    "MapScores",
    "MapSubsetReadout",
    "SelectOptions",
    "Selection",
    "check_recorded_source",
    "check_selection",
    "cross_validate",
    "default_taps",
    "forward_select",
    "load_selection",
    "map_channels",
    "map_scores",
    "read_json_file",
    "selection_pipeline",
]
