"""The registry's tables: what is registered, by kind and name, and who holds each name.

One :class:`EntryTables` per registry keeps, for every kind (backbone, readout, distance, preset,
command), the :class:`~percept.registration.Entry` of each name, the aliases pointing to it, and the
preset names that percept's own applications *declare* before they are loaded (reserved, and listed,
without importing them). It answers the lookups (:meth:`EntryTables.find`, :meth:`EntryTables.names`),
the "registered twice" question of the ``register`` callbacks (:meth:`EntryTables.owner`), and the
did-you-mean error for a name found nowhere (:meth:`EntryTables.unknown`). It loads nothing: the
plugin loader (:mod:`percept.plugin_loader`) fills it, the registry (:mod:`percept.registry`) reads it.
"""

from __future__ import annotations

import fnmatch

from percept.errors import SpecError, unknown_name
from percept.registration import ALL_KINDS, COMMAND, Entry, PluginInfo, prefixed


class EntryTables:
    """Name -> :class:`~percept.registration.Entry` tables for each kind, with aliases and declared presets.

    Attributes:
        declared: preset name -> the own application (``"toolkit"``) that declares it, until that loads.

    Example:
        >>> from percept.registration import Entry, PluginInfo
        >>> tables = EntryTables()
        >>> entry = Entry("distance", "my-l1", abs, "my-plugin", aliases=("l1x",))
        >>> tables.commit([entry], PluginInfo("my-plugin", None, None, False))
        >>> tables.find("distance", "l1x").name, tables.names("distance")
        ('my-l1', ['my-l1'])
    """

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Entry]] = {k: {} for k in ALL_KINDS}
        self.aliases: dict[str, dict[str, str]] = {k: {} for k in ALL_KINDS}
        self.declared: dict[str, str] = {}

    # -- changes ---------------------------------------------------------------------------------

    def commit(self, staged: list[Entry], info: PluginInfo) -> None:
        """Enter a plugin's staged registrations together, and note them in its ``info.registered``."""
        for entry in staged:
            self.entries[entry.kind][entry.name] = entry
            for alias in entry.aliases:
                self.aliases[entry.kind][alias] = entry.name
            info.registered.setdefault(entry.kind, []).append(entry.name)

    def remove(self, plugin: str) -> None:
        """Forget every entry (and alias) that ``plugin`` registered."""
        for kind in ALL_KINDS:
            for entry_name in [n for n, e in self.entries[kind].items() if e.plugin == plugin]:
                entry = self.entries[kind].pop(entry_name)
                for alias in entry.aliases:
                    self.aliases[kind].pop(alias, None)

    def declare(self, application: str, presets: tuple[str, ...]) -> None:
        """Reserve the preset names an own application declares (a name declared already stays its first's)."""
        for name in presets:
            self.declared.setdefault(name, application)

    def undeclare(self, application: str) -> None:
        """Drop the declarations of ``application`` (it is being loaded: its presets become entries)."""
        self.declared = {k: v for k, v in self.declared.items() if v != application}

    # -- lookups ---------------------------------------------------------------------------------

    def owner(self, kind: str, name: str, staged: list[Entry], plugin: str) -> str | None:
        """The plugin already holding ``name`` of ``kind`` (staged by ``plugin`` itself, entered, or
        declared by an own application other than ``plugin``), or ``None`` if it is free."""
        for entry in staged:
            if entry.kind == kind and (entry.name == name or name in entry.aliases):
                return entry.plugin
        if kind == "preset" and self.declared.get(name, plugin) != plugin:
            return self.declared[name]  # reserved by percept's own application, not loaded yet
        canonical = self.aliases[kind].get(name, name)
        registered = self.entries[kind].get(canonical)
        return registered.plugin if registered is not None else None

    def find(self, kind: str, name: str) -> Entry | None:
        """The entry of ``name``, an alias of it, or ``<prefix>.<rest>`` of a prefix entry; ``None`` if none."""
        canonical = self.aliases[kind].get(name, name)
        if canonical in self.entries[kind]:
            return self.entries[kind][canonical]
        return self._prefixed(kind, name)

    def has(self, kind: str, name: str) -> bool:
        """Whether ``name`` is entered (as :meth:`find`) or, for a preset, declared."""
        if kind == "preset" and name in self.declared:
            return True
        return self.aliases[kind].get(name, name) in self.entries[kind] or self._prefixed(kind, name) is not None

    def _prefixed(self, kind: str, name: str) -> Entry | None:
        head, dot, rest = name.partition(".")
        entry = self.entries[kind].get(head)
        return prefixed(entry, rest) if dot and rest and entry is not None and entry.prefix else None

    def names(self, kind: str, pattern: str | None = None) -> list[str]:
        """Sorted names of ``kind`` (declared presets included), filtered by a shell ``pattern``."""
        names = sorted({*self.entries[kind], *(self.declared if kind == "preset" else ())})
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def of_kind(self, kind: str) -> list[Entry]:
        """Every entry of ``kind``: by name; commands in the order they were entered."""
        if kind == COMMAND:
            return list(self.entries[kind].values())
        return [self.entries[kind][n] for n in sorted(self.entries[kind])]

    def unknown(self, kind: str, name: str) -> SpecError:
        """The error for a ``name`` of ``kind`` found nowhere: the closest names, and where to see them all."""
        see = f"`percept list {kind}s` or `percept.list_{kind}s()`"
        return SpecError(unknown_name(kind, name, [*self.entries[kind], *self.aliases[kind]], see=see))
