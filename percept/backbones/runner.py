"""The stage runner: a network as an ordered list of stages, run up to the deepest one asked for.

:class:`StageRunner` is the part of :class:`~percept.backbones.base.Backbone` that runs the network:
the stages (leaf modules, with nested ``nn.Sequential`` containers expanded by :func:`flatten_stages`,
each known by its module path such as ``features.15``), the run itself, and the conversion of a stage's
output to an ``(N, C, h, w)`` map. A backbone whose network runs otherwise (a timm model's
``forward_intermediates``, a transformer read at its class token) overrides its two hooks,
``_network`` and ``_iter_run``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from percept.errors import TapError

StageFn = Callable[[nn.Module], Sequence[tuple[str, nn.Module]]]
ToMap = Callable[[int, torch.Tensor, tuple[int, int]], torch.Tensor]


def flatten_stages(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Expand nested ``nn.Sequential`` containers into an ordered list of ``(path, leaf)``.

    Example:
        >>> [p for p, _ in flatten_stages(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.ReLU())), "f")]
        ['f.0', 'f.1.0']
    """
    if isinstance(module, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for name, child in module.named_children():
            out.extend(flatten_stages(child, f"{prefix}.{name}" if prefix else name))
        return out
    return [(prefix, module)]


class StageRunner(nn.Module):
    """The running side of a backbone: its stages, run in order, each output made a map.

    A part of :class:`~percept.backbones.base.Backbone` (which sets it up in its ``__init__``; see there
    for ``model``, ``stages``, ``arch``, ``stage_fn`` and ``to_map``). Subclasses whose network runs
    otherwise override :meth:`_network` (what runs, and on which device) and :meth:`_iter_run` (the
    run, yielding ``(stage index, raw output)`` as each stage finishes).
    """

    name: str

    def _init_stages(
        self,
        model: nn.Module,
        stages: Sequence[tuple[str, nn.Module]],
        *,
        arch: Callable[[], nn.Module] | None,
        stage_fn: StageFn | None,
        to_map: ToMap | None,
    ) -> None:
        """Keep the network and its stages (called once by the backbone's ``__init__``, after ``nn.Module``'s)."""
        self.model = model
        self._stages = list(stages)
        self._paths = [p for p, _ in self._stages]
        self._arch = arch
        self._stage_fn = stage_fn
        self._to_map = to_map

    @property
    def module_paths(self) -> list[str]:
        """Every stage path, usable as a tap name when no finer name exists."""
        return list(self._paths)

    def _path_index(self, path: str) -> int | None:
        """The stage of a module path: itself, or the last stage inside it; ``None`` if none."""
        if path in self._paths:
            return self._paths.index(path)
        inside = [i for i, p in enumerate(self._paths) if p.startswith(path + ".")]
        return inside[-1] if inside else None

    def _network(self, trace: bool = False) -> tuple[Any, torch.device]:
        """What :meth:`_run` runs: the stage modules (``trace``: copies on the meta device where the
        backbone knows how to build one, for shape tracing without weights) and their device."""
        if trace and self._arch is not None and self._stage_fn is not None:
            # Built once: a size search runs the network a dozen times, and building it is the slow part.
            if self.__dict__.get("_meta_stages") is None:
                with torch.device("meta"):
                    model = self._arch()
                self.__dict__["_meta_stages"] = [m.eval() for _, m in self._stage_fn(model)]
            return self.__dict__["_meta_stages"], torch.device("meta")
        return [m for _, m in self._stages], torch.device("cpu")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_meta_stages", None)  # rebuilt on demand; holds no data
        return state

    def _iter_run(self, net: Any, x: torch.Tensor, last: int, wanted: set[int]) -> Iterator[tuple[int, Any]]:
        """Run ``net`` (see :meth:`_network`) on a preprocessed batch up to stage ``last``, yielding
        ``(stage index, raw output)`` for the stages in ``wanted`` as each finishes, shallow to deep.
        Subclasses that run their network otherwise override this and :meth:`_network`."""
        for i in range(last + 1):
            x = net[i](x)
            if i in wanted:
                # An in-place activation next would overwrite this tap's output.
                yield i, (x.clone() if i < last and getattr(net[i + 1], "inplace", False) else x)

    def _run(self, net: Any, x: torch.Tensor, last: int, wanted: set[int]) -> dict[int, Any]:
        """:meth:`_iter_run` collected: ``{stage index: raw output}``."""
        return dict(self._iter_run(net, x, last, wanted))

    def _tap_map(self, index: int, output: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Stage ``index``'s raw output as an ``(N, C, h, w)`` map (``to_map``, else as it is)."""
        return output if self._to_map is None else self._to_map(index, output, size)

    def _stage_maps(self, x: torch.Tensor, wanted: Mapping[int, Sequence[str]]) -> Iterator[tuple[str, torch.Tensor]]:
        """Run a preprocessed batch ``x`` up to the deepest stage of ``wanted`` (stage index -> tap names),
        yielding ``(tap name, map)`` for each name as its stage finishes; :class:`TapError` for a stage
        that gives no ``(N, C, h, w)`` map or that the network never reached."""
        size = (int(x.shape[-2]), int(x.shape[-1]))
        seen: set[int] = set()
        for i, output in self._iter_run(self._network()[0], x, max(wanted), set(wanted)):
            if i not in wanted or i in seen:
                continue
            seen.add(i)
            feature = self._tap_map(i, output, size)
            if not isinstance(feature, torch.Tensor) or feature.dim() != 4:
                got = tuple(feature.shape) if isinstance(feature, torch.Tensor) else type(feature).__name__
                raise TapError(
                    f"backbone {self.name!r}: tap {wanted[i][0]!r} (stage {self._paths[i]!r}) gave {got}, not an "
                    "(N, C, h, w) map"
                )
            for tap_name in wanted[i]:
                yield tap_name, feature
        missing = [n for i, names in sorted(wanted.items()) if i not in seen for n in names]
        if missing:
            raise TapError(
                f"backbone {self.name!r} ran without producing tap(s) {missing}: its network never reached those "
                "stages (a plugin's _iter_run must yield every stage asked for)"
            )
