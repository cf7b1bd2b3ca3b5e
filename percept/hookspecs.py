"""The whole plugin contract of percept: five hooks, each handed a ``register`` callback.

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

Each hook is called once, the first time percept needs its registry (never at import); the
``register_commands`` hook is called by the ``percept`` command only, when it builds its parser. A
hook may call ``register`` any number of times. A name registered twice fails, naming both plugins.
All five go through one host, :mod:`percept.registry` (docs/architecture.md).
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

    ``pretrained=`` lists the weight sets the backbone can load, for ``percept list backbones
    --weights``: a sequence of :class:`percept.plugin.PretrainedCfg` records (tag, source, licence,
    training data, checksum; ``aliases=("imagenet",)`` on the set that tag loads), or a function
    returning them, called only when they are listed (so a library is imported only then; a prefix
    entry's function is called with the ``<rest>`` of the name). An empty sequence says the backbone
    has no weights; leaving it out says nothing. Example::

        register("mynet", create_mynet, pretrained=[PretrainedCfg(tag="v1", source="https://...",
                 filename="mynet-v1.pth", license="MIT", checksum="<sha256>", aliases=("imagenet",))])
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
    ``lin_weights=``, ``input_range=`` ...). ``pretrained=`` lists the preset's own weight files (LPIPS
    heads) as :class:`percept.plugin.PretrainedCfg` records, as for backbones; a record whose ``extra``
    holds ``"package_file": (package, path inside it)`` names an installed copy that ``percept list
    presets --weights`` checks against the record's SHA-256.
    """


@hookspec
def register_commands(register):
    """Register subcommands of the ``percept`` command line (``percept sweep``, ``percept demo`` ...).

    ``register(name, configure, run, *, help="", description=None, requires=(), install="")`` where
    ``configure(parser)`` adds the command's arguments to its ``argparse.ArgumentParser`` and
    ``run(args)`` does the work and returns the exit code (0 success, 2 an error; raising a
    :class:`percept.PerceptError` prints ``percept: error: <message>`` and exits with 2). ``help`` is
    the one line shown by ``percept --help``; ``description`` the paragraph of ``percept NAME --help``;
    ``requires`` names modules the command needs (checked before ``run``: a missing one is one error
    line with ``install``, e.g. ``"pip install 'my-plugin[extra]'"``).

    Commands are one kind of the registry: the same plugin manager, the same staged registration and
    error rules as the parts (a name taken, ``help`` not a string ... skips the plugin's commands with
    a :class:`percept.PluginWarning` naming it; percept's own commands always win). The hook is
    called only when the ``percept`` command collects its commands, and ``percept --help`` needs
    names and ``help`` only: a command's ``configure`` runs when that command is chosen, and one
    that raises makes that command unavailable (one error line naming the plugin), not the others.
    ``configure`` and ``run`` may be ``"module:function"`` strings, imported when the command is
    used. To build its parser, ``percept`` imports a plugin module only if its source mentions
    ``register_commands`` (:func:`percept.discovery.may_register_commands`), so keep a plugin module
    that registers commands light at import: torch and the like inside ``run``.

    Example::

        @percept.hookimpl
        def register_commands(register):
            register("hello", lambda p: p.add_argument("name"), lambda args: print("hi", args.name) or 0,
                     help="say hello")
            register("report", "my_plugin.report:configure", "my_plugin.report:run", help="a report",
                     requires=("pandas",), install="pip install 'my-plugin[report]'")
    """
