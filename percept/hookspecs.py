"""The whole plugin contract of percept: four hooks, each handed a ``register`` callback.

A plugin is any module or object with functions named like the hooks below, decorated with
``percept.hookimpl``. Built-ins register through the same hooks as third-party packages, which are
found through the entry-point group ``percept``::

    # pyproject.toml of a plugin package
    [project.entry-points.percept]
    my_plugin = "my_package.plugin"

    # my_package/plugin.py
    import percept

    @percept.hookimpl
    def register_backbones(register):
        register("mynet", create_mynet, description="My network")

Each hook is called once, the first time percept needs its registry (never at import). A hook
may call ``register`` any number of times. A name registered twice fails, naming both plugins.
"""

from __future__ import annotations

import pluggy

PROJECT = "percept"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backbones(register):
    """Register backbones: networks with named taps.

    ``register(name, factory, *, description="", aliases=())`` where ``factory(weights=..., **kw)``
    returns a :class:`percept.plugin.Backbone`. ``weights`` is ``"imagenet"`` (or another tag
    the backbone knows), ``None`` for random initialisation, or a path to a local state_dict file.
    With ``prefix=True`` the entry serves every name ``<name>.<rest>`` (``timm.resnet50``), its
    factory called as ``factory(rest, weights=..., **kw)``: a library's whole model zoo behind one
    entry, nothing imported until such a name is asked for.
    """


@hookspec
def register_readouts(register):
    """Register readouts: what is read off one tap before it is compared.

    ``register(name, factory, *, description="")`` where ``factory(channels, **kw)`` returns a
    :class:`percept.plugin.Readout` for a tap with ``channels`` channels.
    """


@hookspec
def register_distances(register):
    """Register distances: how two readouts of one tap are compared, per sample.

    ``register(name, factory, *, description="")`` where ``factory(**kw)`` returns a
    :class:`percept.plugin.Distance`.
    """


@hookspec
def register_presets(register):
    """Register presets: named, published metrics that need more than a spec string (LPIPS heads).

    ``register(name, factory, *, description="")`` where ``factory(**kw)`` returns a
    :class:`percept.plugin.Pipeline`. Keyword arguments come from the user (``weights=``,
    ``lin_weights=``, ``input_range=`` ...).
    """
