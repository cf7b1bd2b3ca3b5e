"""The contract every backbone, readout and distance must meet, as functions a test suite calls.

Plugin authors run these from their own pytest suite, importing them from :mod:`percept.plugin`;
percept's built-ins run the same checks (``tests/test_testing_kit.py``)::

    # tests/test_contract.py of a plugin package
    from percept.plugin import check_distance, check_plugin

    def test_my_distance_meets_the_contract():
        check_distance("my-distance")          # a registered name, a factory, or an instance

    def test_everything_my_plugin_registers():
        check_plugin("my_plugin")              # the entry-point name from pyproject.toml

Each ``check_*`` raises :class:`ContractError` (an ``AssertionError``, so pytest shows it as a test
failure) naming the object, the check and what was expected and what came, and returns a
:class:`ContractReport` listing the checks that passed. The checks:

* backbones: taps are declared (names unique, channels and reductions positive, canonical taps
  exist); every declared tap is produced, in the order asked for, with the declared channels and
  roughly the declared reduction; floats in, same floats out, finite; a batch gives what its
  samples give one by one; asking for several taps gives each what it gives alone (no in-place
  layer overwrote it); the pass stops at the deepest tap asked for; gradients reach the image; the
  network is frozen and stays in eval mode; bad input (unknown tap, wrong rank or channels, too
  small) fails with percept's errors;
* readouts: made by ``factory(channels=C)`` for several ``C``; deterministic, batch-independent,
  finite, differentiable; declared channel weights have shape ``(C,)`` and are non-negative; a
  ``fusable`` readout's ``forward`` is exactly the (optional) unit normalisation it declares;
* distances: one finite, non-negative value per sample; ``d(a, a) = 0``; ``d(a, b) = d(b, a)`` where
  ``symmetric`` says so; batch independence; gradients reach ``a`` and are finite at ``a == b``;
  ``spatial=True`` maps average to the distance where ``supports_spatial`` says so; inputs with
  different channel counts, and 1-d inputs, raise :class:`~percept.errors.InputError`.

The package: :mod:`percept.testing.checker` (the report, the error, the checker),
:mod:`percept.testing.backbone`, :mod:`percept.testing.readout`, :mod:`percept.testing.distance`
(each a ``check_*`` made of small named checks) and :mod:`percept.testing.pipeline` (whole metrics and
plugins).

Random weights are used for backbones (``weights=None``; the ``RandomWeightsWarning`` is silenced
inside the checks); inputs are drawn from a seeded generator, so a failure reproduces.
"""

from __future__ import annotations

from percept.testing.backbone import check_backbone
from percept.testing.checker import ATOL, RTOL, ZERO_TOL, ContractError, ContractReport
from percept.testing.distance import check_distance
from percept.testing.pipeline import check_pipeline, check_plugin
from percept.testing.readout import check_readout

__all__ = [
    "ATOL",
    "RTOL",
    "ZERO_TOL",
    "ContractError",
    "ContractReport",
    "check_backbone",
    "check_distance",
    "check_pipeline",
    "check_plugin",
    "check_readout",
]
