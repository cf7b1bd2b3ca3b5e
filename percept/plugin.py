"""Everything a plugin author needs, in one module: ``import percept`` and ``percept.plugin``, nothing else.

A plugin is an installed Python package that adds parts to percept: backbones (networks with named
taps), readouts (what is read off a tap), distances (how two readouts are compared, per sample) and
presets (whole published metrics). It declares a module under the entry-point group ``percept`` in
its ``pyproject.toml``; percept imports that module the first time it needs its registry (never at
``import percept``) and calls the hooks it finds there. A plugin that fails to import or to register
is skipped with a :class:`PluginWarning` naming it; a name registered twice fails, naming both plugins.

The hooks (``percept/hookspecs.py`` holds their full contract), each marked with :data:`hookimpl` and
handed a ``register(name, factory, *, description="")`` callback:

* ``register_backbones(register)``: ``factory(weights=..., **kw)`` returns a :class:`Backbone`;
* ``register_readouts(register)``: ``factory(channels=C, **kw)`` returns a :class:`Readout`;
* ``register_distances(register)``: ``factory(**kw)`` returns a :class:`Distance`;
* ``register_presets(register)``: ``factory(**kw)`` returns a :class:`Pipeline`.

Example, a whole plugin with one distance::

    # pyproject.toml
    [project.entry-points.percept]
    mine = "my_package.plugin"

    # my_package/plugin.py
    import torch
    from percept.plugin import Distance, InputError, hookimpl

    class MaxAbs(Distance):  # the largest absolute difference, per sample
        symmetric = True

        def forward(self, a, b, *, spatial=False):
            if spatial or a.shape != b.shape:
                raise InputError(f"expected two maps of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
            return (a - b).abs().flatten(1).amax(dim=1)

    @hookimpl
    def register_distances(register):
        register("maxabs", lambda **kw: MaxAbs(), description="largest absolute difference")

    # tests/test_mine_plugin.py
    from percept.plugin import check_distance, check_plugin

    def test_contract():
        check_distance("maxabs")     # identity, symmetry, batch independence, gradients, bad input
        check_plugin("mine")         # every part the plugin registered

after which ``percept.PerceptualLoss("vgg16:conv3/raw/maxabs")`` uses it.

What is here:

* the hook marker: :data:`hookimpl`;
* the parts' contracts: :class:`Backbone` (with :class:`TapInfo`, :class:`PretrainedCfg` and
  :func:`flatten_stages`, which lists a ``nn.Sequential``'s leaves as the stages a backbone runs),
  :class:`Readout`, :class:`ChannelWeightedReadout` (unit normalisation and channel weights, an LPIPS
  head), :class:`Distance`, :class:`FusedDistance` (a distance the fused kernel computes), and
  :class:`Pipeline`, what a preset returns;
* building registered parts by name inside a preset: :func:`create_backbone`, :func:`create_readout`,
  :func:`create_distance`; the plugin host, :func:`get_registry` (which plugin registered what);
* weight files: :func:`load_state_dict_file`, :func:`load_into`, :func:`fetch_url`,
  :func:`verify_checksum`, :func:`search_dirs`, :func:`is_path`, :func:`warn_random`,
  :func:`load_lpips_heads`;
* errors and warnings: :class:`PerceptError`, :class:`SpecError`, :class:`InputError`,
  :class:`OutputError`, :class:`WeightsError`, :class:`RegistrationError`, :class:`TapError`,
  :class:`PluginWarning`, :class:`RandomWeightsWarning`, and :func:`unknown_name` for "unknown X, did
  you mean Y" messages;
* the contract kit a plugin's own tests run (loaded on first use): :func:`check_backbone`,
  :func:`check_readout`, :func:`check_distance`, :func:`check_pipeline`, :func:`check_plugin`, which
  raise :class:`ContractError` and return a :class:`ContractReport`.

These names are stable; any other module of percept is internal and may move between releases, with
one more public home for plugins' tests: ``percept.eval.contract.check_toolkit``, every research tool
on one backbone (the research toolkit's contract; needs the ``eval`` extra). It lives with the toolkit,
above this module, which never imports it (docs/architecture.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from percept.backbones.base import Backbone, PretrainedCfg, TapInfo, flatten_stages
from percept.backbones.factory import create_backbone
from percept.backbones.weights import (
    fetch_url,
    is_path,
    load_into,
    load_lpips_heads,
    load_state_dict_file,
    search_dirs,
    verify_checksum,
    warn_random,
)
from percept.distances.base import Distance, FusedDistance
from percept.errors import (
    InputError,
    OutputError,
    PerceptError,
    PluginWarning,
    RandomWeightsWarning,
    RegistrationError,
    SpecError,
    TapError,
    WeightsError,
    install_hint,
    unknown_name,
)
from percept.hookspecs import hookimpl
from percept.pipeline import Pipeline
from percept.readouts.base import ChannelWeightedReadout, Readout
from percept.registry import get_registry

# Test-time names, imported on first use: a plugin's runtime import of this module stays light.
_LAZY = {
    "ContractError": "percept.testing",
    "ContractReport": "percept.testing",
    "check_backbone": "percept.testing",
    "check_distance": "percept.testing",
    "check_pipeline": "percept.testing",
    "check_plugin": "percept.testing",
    "check_readout": "percept.testing",
}
_MOVED = {"check_toolkit": "from percept.eval.contract import check_toolkit"}  # the toolkit's own, a layer above

if TYPE_CHECKING:  # pragma: no cover
    from percept.testing import (
        ContractError,
        ContractReport,
        check_backbone,
        check_distance,
        check_pipeline,
        check_plugin,
        check_readout,
    )


def create_readout(name: str, channels: int, **kwargs) -> Readout:
    """Build the registered readout ``name`` for a tap of ``channels`` channels.

    Args:
        name: a registered readout (``percept list readouts``), e.g. ``"unit"``.
        channels: the tap's channel count.
        **kwargs: passed to the readout's factory.

    Raises:
        SpecError: unknown name (the message lists the valid ones).

    Example:
        >>> create_readout("unit", 64)
        Unit()
    """
    return get_registry().get("readout", name).factory(channels=channels, **kwargs)


def create_distance(name: str, **kwargs) -> Distance:
    """Build the registered distance ``name``, as a spec string's ``/<distance>`` does.

    Args:
        name: a registered distance (``percept list distances``), e.g. ``"l2"``.
        **kwargs: passed to the distance's factory.

    Raises:
        SpecError: unknown name (the message lists the valid ones).

    Example:
        >>> import torch
        >>> create_distance("l2")(torch.ones(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)).tolist()
        [2.0]
    """
    return get_registry().get("distance", name).factory(**kwargs)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _MOVED:
        raise AttributeError(
            f"percept.plugin.{name} is the research toolkit's, which percept.plugin does not import: "
            f"use `{_MOVED[name]}` (needs `{install_hint('eval')}`)"
        )
    raise AttributeError(f"module 'percept.plugin' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Backbone",
    "ChannelWeightedReadout",
    "ContractError",
    "ContractReport",
    "Distance",
    "FusedDistance",
    "InputError",
    "OutputError",
    "PerceptError",
    "Pipeline",
    "PluginWarning",
    "PretrainedCfg",
    "RandomWeightsWarning",
    "Readout",
    "RegistrationError",
    "SpecError",
    "TapError",
    "TapInfo",
    "WeightsError",
    "check_backbone",
    "check_distance",
    "check_pipeline",
    "check_plugin",
    "check_readout",
    "create_backbone",
    "create_distance",
    "create_readout",
    "fetch_url",
    "flatten_stages",
    "get_registry",
    "hookimpl",
    "is_path",
    "load_into",
    "load_lpips_heads",
    "load_state_dict_file",
    "search_dirs",
    "unknown_name",
    "verify_checksum",
    "warn_random",
]
