"""The composed metric: backbone -> taps -> readout -> distance -> weighted sum over taps.

:class:`Pipeline` is what :class:`~percept.PerceptualLoss`, :class:`~percept.PerceptualMetric` and
:func:`~percept.perceptual_distance` run. :func:`build_pipeline` makes one from a spec string.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from percept.backbones.base import Backbone
from percept.distances.base import Distance, FusedDistance
from percept.ensemble import ENSEMBLE_NAME, Ensemble
from percept.errors import RegistrationError, SpecError
from percept.readouts.base import Readout
from percept.spec import Spec, check_layer_weight, parse_spec
from percept.validation import check_pair, underlying, value_check_due


class Pipeline(nn.Module):
    """Two image batches in, one distance per sample out.

    Args:
        backbone: the network with named taps (frozen).
        taps: tap names (or module paths) of ``backbone``.
        readouts: one :class:`Readout` per tap.
        distance: the :class:`Distance` applied to each tap's readouts.
        layer_weights: one weight per tap; the score is ``sum_l w_l d_l``.
        spec: the spec string this pipeline stands for (for ``repr`` and the CLI).
        check_inputs: validate images on every call (shape, dtype, range, NaN/Inf, size).

    The backbone and frozen readouts are kept out of ``state_dict`` (a checkpoint of a model holding
    a perceptual loss carries only what trains), and stay frozen in eval mode under ``.train()``.

    ``ensemble``: an :class:`~percept.ensemble.Ensemble` (E-LPIPS' random transformations) that
    :meth:`forward` averages over, or ``None``; :meth:`tap_distances` is always the plain pipeline's.
    """

    ensemble: Ensemble | None = None

    def __init__(
        self,
        backbone: Backbone,
        taps: Sequence[str],
        readouts: Sequence[Readout],
        distance: Distance,
        layer_weights: Sequence[float] | None = None,
        *,
        spec: str = "",
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.taps = [backbone.tap_info(t).name for t in taps]
        if not self.taps:
            raise SpecError("a pipeline needs at least one tap")
        if len(readouts) != len(self.taps):
            raise ValueError(f"expected one readout per tap ({len(self.taps)}), got {len(readouts)}")
        self.readouts = nn.ModuleList(readouts)
        self.distance = distance
        weights = [1.0] * len(self.taps) if layer_weights is None else list(layer_weights)
        if len(weights) != len(self.taps):
            raise ValueError(f"expected one layer weight per tap ({len(self.taps)}), got {len(weights)}")
        self.layer_weights = [
            check_layer_weight(t, w, "in layer_weights") for t, w in zip(self.taps, weights, strict=True)
        ]
        self.spec = spec
        self.check_inputs = check_inputs
        self._fused = isinstance(distance, FusedDistance)
        if self._fused:
            from percept.ops.fused import fused_setting

            fused_setting()  # a bad $PERCEPT_FUSED fails here, once, not on every pair scored
        for tap, readout in zip(self.taps, self.readouts, strict=True):
            if not isinstance(readout, Readout):
                raise RegistrationError(f"readout for tap {tap!r} is a {type(readout).__name__}, expected a Readout")
            if readout.channel_weight() is not None and not (self._fused and readout.fusable):
                raise SpecError(
                    f"readout {type(readout).__name__} weights channels, which only the fused distances "
                    f"(mse, l1, l2, cosine) apply; got distance {type(distance).__name__}"
                )
        for module in (self.backbone, *[r for r in self.readouts if not r.trainable]):
            module.requires_grad_(False)
        self._min_size = backbone.min_size(self.taps)
        self._frozen_prefixes = ["backbone."] + [f"readouts.{i}." for i, r in enumerate(readouts) if not r.trainable]
        _exclude_from_checkpoints(self)

    @property
    def input_range(self) -> tuple[float, float]:
        return self.backbone.input_range

    @property
    def min_size(self) -> int:
        """Smallest image height and width the taps need."""
        return self._min_size

    def train(self, mode: bool = True) -> Pipeline:
        super().train(mode)
        self.backbone.eval()
        for readout in self.readouts:
            if not readout.trainable:
                readout.eval()
        return self

    def check(self, x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
        """Validate an image pair: shapes, dtype, device, range, NaN/Inf, size, and whether the pass can
        fit in memory at all (raises InputError)."""
        from percept.memory import check_memory
        from percept.validation import check_images

        for t, name in zip((x, y), names, strict=True):
            check_images(t, name, input_range=self.input_range, min_size=self._min_size)
        check_pair(x, y, names)
        check_memory(self, x, y)

    def features(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Tap features of both batches: one batched pass when both need the same graph, else the one
        that needs no gradient runs without a graph."""
        grad = torch.is_grad_enabled()
        x_grad, y_grad = grad and x.requires_grad, grad and y.requires_grad
        # Images follow the network's dtype (a float32 target for a loss cast with .half(), half images
        # for a float32 metric); under autocast the convolutions then pick their own dtype.
        dtype = _network_dtype(self.backbone)
        if dtype is not None and x.dtype != dtype:
            x, y = x.to(dtype), y.to(dtype)
        if x_grad == y_grad:
            both = self.backbone(torch.cat([x, y]), self.taps)
            n = x.shape[0]
            return {k: v[:n] for k, v in both.items()}, {k: v[n:] for k, v in both.items()}
        if x_grad:
            fx = self.backbone(x, self.taps)
            with torch.no_grad():
                fy = self.backbone(y, self.taps)
        else:
            with torch.no_grad():
                fx = self.backbone(x, self.taps)
            fy = self.backbone(y, self.taps)
        return fx, fy

    def tap_distances(self, x: torch.Tensor, y: torch.Tensor, *, spatial: bool = False) -> dict[str, torch.Tensor]:
        """Unweighted distance of each tap: ``{tap: (N,)}`` (``(N, 1, h, w)`` maps with ``spatial``)."""
        if self.check_inputs:
            self.check(x, y)
        fx, fy = self.features(x, y)
        return self.feature_distances(fx, fy, spatial=spatial)

    def feature_distances(
        self, fx: Mapping[str, torch.Tensor], fy: Mapping[str, torch.Tensor], *, spatial: bool = False
    ) -> dict[str, torch.Tensor]:
        """Unweighted distance of each tap from features already computed (``backbone(x, taps)``).

        A batch of one in ``fx`` is broadcast against ``N`` in ``fy``, so a reference image's features
        can be computed once and compared with many distorted versions.

        Returns:
            ``{tap: (N,)}``, or ``(N, 1, h, w)`` maps with ``spatial``.
        """
        out = {}
        readouts = cast("Sequence[Readout]", self.readouts)  # an nn.ModuleList types its items as Module
        for tap, readout in zip(self.taps, readouts, strict=True):
            a, b = fx[tap], fy[tap]
            if self._fused and readout.fusable:
                a, b = _broadcast_batch(a, b)
                out[tap] = self.distance(
                    a, b, spatial=spatial, weight=readout.channel_weight(), normalize=readout.normalize
                )
            else:
                if spatial and not self.distance.supports_spatial:
                    raise SpecError(f"distance {type(self.distance).__name__} has no spatial map (spatial=True)")
                ra, rb = _broadcast_batch(readout(a), readout(b))
                out[tap] = self.distance(ra, rb, spatial=spatial, **readout.distance_kwargs())
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor, *, spatial: bool = False) -> torch.Tensor:
        """Distance per sample between image batches ``x`` and ``y``.

        Args:
            x, y: ``(N, C, H, W)`` with C 1 or 3, values in ``input_range`` (default [0, 1]).
            spatial: return a ``(N, 1, H, W)`` distance map (each tap's map upsampled bilinearly to
                the input size, as LPIPS does) instead of ``(N,)``.

        Returns:
            ``(N,)`` float32 distances (``>= 0``), or the ``(N, 1, H, W)`` map.
        """
        if self.ensemble is not None:
            return self.ensemble(self, x, y, spatial=spatial)
        per_tap = self.tap_distances(x, y, spatial=spatial)
        total: torch.Tensor | None = None
        for d, w in zip(per_tap.values(), self.layer_weights, strict=True):
            if spatial:
                d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
            term = d if w == 1.0 else d * w
            total = term if total is None else total + term
        assert total is not None  # a pipeline has at least one tap (checked in __init__)
        # Finite inputs, a score that is not: a tap weight times its distance left float32's range. Read on the
        # input checks' schedule (every call on the CPU; the first calls and then every 50th on a GPU).
        if self.check_inputs and value_check_due(x, "score") and not bool(torch.isfinite(underlying(total)).all()):
            _explain_overflow({k: underlying(v) for k, v in per_tap.items()}, self.layer_weights)
        return total

    def extra_repr(self) -> str:
        extra = f", ensemble={self.ensemble}" if self.ensemble is not None else ""
        return f"spec={self.spec!r}, taps={self.taps}{extra}"


def _explain_overflow(per_tap: Mapping[str, torch.Tensor], weights: Sequence[float]) -> None:
    """Raise a :class:`SpecError` naming the tap whose weight times its distance left float32's range
    (checked inputs are finite, so only the weighting or the network can make a score Inf or NaN)."""
    finite_max = torch.finfo(torch.float32).max
    for (tap, d), w in zip(per_tap.items(), weights, strict=True):
        if bool(torch.isfinite(d).all()) and not bool(
            torch.isfinite(d.double() * w).all() and (d.double() * w).abs().max() <= finite_max
        ):
            raise SpecError(
                f"the weight {w:g} of tap {tap!r} times its distance (up to {float(d.abs().max()):.3g}) exceeds "
                f"float32's range ({finite_max:.2g}): the score would be Inf; expected a smaller weight for {tap!r}"
            )
    bad = [tap for tap, d in per_tap.items() if not bool(torch.isfinite(d).all())]
    where = f"tap {bad[0]!r}'s distance" if bad else "the sum of the taps' weighted distances"
    raise SpecError(f"{where} is not finite (Inf or NaN) for finite inputs; expected smaller tap weights or a "
                    "network whose features stay within float32's range")  # fmt: skip


def _network_dtype(module: nn.Module) -> torch.dtype | None:
    """The floating dtype of a module's first parameter, or ``None`` if it has none."""
    for param in module.parameters():
        if param.is_floating_point():
            return param.dtype
    return None


def _broadcast_batch(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape[0] == b.shape[0]:
        return a, b
    if a.shape[0] == 1:
        return a.expand(b.shape[0], *a.shape[1:]), b
    if b.shape[0] == 1:
        return a, b.expand(a.shape[0], *b.shape[1:])
    raise SpecError(f"feature batches of {a.shape[0]} and {b.shape[0]} cannot be compared (one must be 1 or equal)")


def _drop_frozen_state(module, state_dict, prefix, local_metadata) -> None:
    """``state_dict`` post-hook: remove the frozen parts' entries."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        if any(key[len(prefix) :].startswith(p) for p in module._frozen_prefixes):
            del state_dict[key]


def _fill_frozen_state(
    module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
) -> None:
    """``load_state_dict`` pre-hook: supply the frozen parts' own tensors where a checkpoint lacks them."""
    for key, value in _persistent_tensors(module):
        if any(key.startswith(p) for p in module._frozen_prefixes) and prefix + key not in state_dict:
            state_dict[prefix + key] = value.detach()


def _exclude_from_checkpoints(pipeline: Pipeline) -> None:
    """Keep frozen parts out of ``state_dict`` and accept checkpoints without them.

    The hooks are module-level functions, not closures, so that a pipeline (and any model holding
    one) can be pickled.
    """
    if hasattr(pipeline, "register_state_dict_post_hook"):  # torch >= 2.5
        pipeline.register_state_dict_post_hook(_drop_frozen_state)
        pipeline.register_load_state_dict_pre_hook(_fill_frozen_state)
    else:  # pragma: no cover - older torch
        pipeline._register_state_dict_hook(_drop_frozen_state)
        pipeline._register_load_state_dict_pre_hook(_fill_frozen_state, with_module=True)


def _persistent_tensors(root: nn.Module):
    """``(key, tensor)`` pairs that ``state_dict`` would hold, without running its hooks."""
    for name, module in root.named_modules():
        prefix = f"{name}." if name else ""
        for key, param in module._parameters.items():
            if param is not None:
                yield prefix + key, param
        for key, buf in module._buffers.items():
            if buf is not None and key not in module._non_persistent_buffers_set:
                yield prefix + key, buf


def _layer_weights(spec: Spec, taps: list[str], override) -> list[float]:
    weights = [1.0 if t.weight is None else t.weight for t in spec.taps] if spec.taps else [1.0] * len(taps)
    if override is None:
        return weights
    if isinstance(override, Mapping):
        unknown = set(override) - set(taps)
        if unknown:
            raise SpecError(f"layer_weights names taps {sorted(unknown)} that are not in the spec's taps {taps}")
        return [
            check_layer_weight(t, override[t], "in layer_weights") if t in override else w
            for t, w in zip(taps, weights, strict=True)
        ]
    if isinstance(override, (str, bytes)) or not isinstance(override, Iterable):
        raise SpecError(
            f"layer_weights must be a list of {len(taps)} numbers (one per tap {taps}) or a {{tap: weight}} dict, "
            f"got {type(override).__name__}"
        )
    override = list(override)
    if len(override) != len(taps):
        raise SpecError(f"expected {len(taps)} layer_weights (one per tap {taps}), got {len(override)}")
    return [check_layer_weight(t, w, "in layer_weights") for t, w in zip(taps, override, strict=True)]


def _refuse_one_layer_twice(infos, backbone: str, spec: str) -> None:
    """Two names of one layer (``conv1`` and ``relu1`` of alexnet, or its module path ``features.1``) would
    count that layer's distance twice under different names: refused, naming the names and the layer."""
    by_stage: dict[int, list] = {}
    for info in infos:
        by_stage.setdefault(info.index, []).append(info)
    for same in by_stage.values():
        if len(same) > 1:
            names = ", ".join(repr(i.name) for i in same)
            raise SpecError(
                f"taps {names} of spec {spec!r} are one layer of {backbone!r} (module {same[-1].module!r}): its "
                f"distance would count {len(same)} times. Expected each layer once; name it once, with a weight to "
                f"count it more (e.g. '{same[0].name}={len(same)}')"
            )


def resolve_spec(spec: str | Spec) -> Spec:
    """Parse ``spec`` (:func:`percept.parse_spec`) and look its names up in the registry.

    This is where names are resolved (the grammar alone cannot tell a preset from a backbone): a bare
    name that a plugin registers as a preset gives ``preset=True``; the backbone, readout and distance
    must be registered. Tap names are checked when the backbone is built, since they depend on it.

    Raises:
        SpecError: malformed text, an unknown name (the message lists the closest ones), or a preset
            with taps, a readout or a distance.

    Example:
        >>> resolve_spec("lpips-vgg").preset, resolve_spec("vgg16:conv3").preset
        (True, False)
    """
    from percept.errors import unknown_name
    from percept.registry import get_registry

    parsed = parse_spec(spec)
    if parsed.preset:
        return parsed
    registry = get_registry()
    name = parsed.backbone
    if registry.has("preset", name):
        if parsed.taps is not None or parsed.readout is not None or parsed.distance is not None or ":" in str(spec):
            raise SpecError(
                f"preset {name!r} takes no taps, readout or distance in the spec (got {str(spec)!r}); "
                "pass options as keyword arguments instead"
            )
        return Spec(name, preset=True, ensemble=parsed.ensemble)
    if not registry.has("backbone", name):
        choices = registry.names("backbone") + registry.names("preset")
        see = "`percept list backbones`, `percept list presets`"
        raise SpecError(unknown_name("backbone or preset", name, choices, plural="backbones and presets", see=see))
    if parsed.readout is not None:
        registry.get("readout", parsed.readout)
    if parsed.distance is not None:
        registry.get("distance", parsed.distance)
    return parsed


def _build_preset(name: str, weights, input_range, check_inputs: bool, options: dict) -> Pipeline:
    """The pipeline of the preset ``name``; a factory that returns something else is the plugin's error."""
    from percept.registry import get_registry

    entry = get_registry().get("preset", name)
    pipeline = entry.factory(weights=weights, input_range=input_range, **options)
    if not isinstance(pipeline, Pipeline):
        raise RegistrationError(
            f"preset {name!r} of plugin {entry.plugin!r} returned {type(pipeline).__name__}, "
            "expected a percept.pipeline.Pipeline"
        )
    pipeline.check_inputs = check_inputs
    return pipeline


def _with_ensemble(pipeline: Pipeline, ensemble: str | Ensemble | None) -> Pipeline:
    """``pipeline`` with an ensemble (``None`` or a name: default settings) and its spec text ``elpips(...)``."""
    if isinstance(ensemble, str) and ensemble != ENSEMBLE_NAME:
        from percept.errors import unknown_name

        raise SpecError(unknown_name("ensemble", ensemble, [ENSEMBLE_NAME]))
    if ensemble is not None and not isinstance(ensemble, (str, Ensemble)):
        raise SpecError(
            f"ensemble must be {ENSEMBLE_NAME!r} or a percept.ensemble.Ensemble, got {type(ensemble).__name__}"
        )
    if pipeline.ensemble is not None:
        raise SpecError(f"{pipeline.spec!r} is an ensemble already; it cannot be wrapped in another")
    pipeline.ensemble = ensemble if isinstance(ensemble, Ensemble) else Ensemble()
    pipeline.spec = f"{ENSEMBLE_NAME}({pipeline.spec})"
    return pipeline


def _readouts(parsed: Spec, infos: Sequence, readout) -> tuple[list[Readout], str]:
    """One readout per tap from ``readout=`` (a name, a factory or one :class:`Readout` object) or the spec's, and
    the readout's name for the pipeline's spec text."""
    if isinstance(readout, Readout):
        if len(infos) > 1:
            raise SpecError("pass a readout name or factory, not one Readout object, when the spec has several taps")
        return [readout], type(readout).__name__
    from percept.registry import get_registry

    name = readout if isinstance(readout, str) else parsed.readout_name
    factory = get_registry().get("readout", name).factory if not callable(readout) else readout
    return [factory(channels=info.channels) for info in infos], name


def build_pipeline(
    spec: str | Spec = "vgg16:conv3",
    *,
    weights="imagenet",
    readout: str | Readout | None = None,
    distance: str | Distance | None = None,
    layer_weights: Sequence[float] | Mapping[str, float] | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
    check_inputs: bool = True,
    ensemble: str | Ensemble | None = None,
    **preset_kwargs,
) -> Pipeline:
    """Build the :class:`Pipeline` a spec string names.

    Args:
        spec: ``"<backbone>[:<taps>][/<readout>[/<distance>]]"`` or a preset (``"lpips-vgg"``).
        weights: backbone weights: ``"imagenet"``, another tag, a local file, or ``None`` (random).
        readout, distance: names or objects overriding the spec's.
        layer_weights: per-tap weights (a list in tap order or a ``{tap: weight}`` dict) overriding
            the spec's ``tap=weight`` entries.
        input_range: the range of the images you pass: ``(0, 1)`` (default) or ``(-1, 1)``.
        check_inputs: validate images on every call.
        ensemble: E-LPIPS' ensemble around the metric: ``"elpips"`` or an :class:`~percept.ensemble.Ensemble`
            (its ``n``, ``seed``, ``keep``); as the spec form ``elpips(<spec>)``, whose settings it gives.
        **preset_kwargs: options of a preset (``lin_weights=`` for LPIPS), or else of the backbone's
            factory (``resize=True`` for a timm model that runs at its input size only).

    Example:
        >>> p = build_pipeline("alexnet:conv1,conv2=0.5/unit/l2", weights=None)  # doctest: +SKIP
        >>> p(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)).shape  # doctest: +SKIP
        torch.Size([2])
    """
    from percept.backbones.factory import create_backbone
    from percept.registry import get_registry

    parsed = resolve_spec(spec)
    if parsed.ensemble is not None or ensemble is not None:  # build the inner metric, then wrap it
        kw = dict(weights=weights, readout=readout, distance=distance, layer_weights=layer_weights, **preset_kwargs)
        inner = dataclasses.replace(parsed, ensemble=None)
        return _with_ensemble(build_pipeline(inner, input_range=input_range, check_inputs=check_inputs, **kw), ensemble)
    if parsed.preset:
        if readout is not None or distance is not None or layer_weights is not None:
            raise SpecError(f"preset {parsed.backbone!r} fixes its readout, distance and layer weights")
        return _build_preset(parsed.backbone, weights, input_range, check_inputs, preset_kwargs)
    try:
        backbone = create_backbone(parsed.backbone, weights=weights, input_range=input_range, **preset_kwargs)
    except TypeError as exc:
        if not preset_kwargs:
            raise
        raise TypeError(
            f"unexpected keyword arguments {sorted(preset_kwargs)} for spec {str(parsed)!r}: not options of backbone "
            f"{parsed.backbone!r} ({exc})"
        ) from exc
    tap_names = None if parsed.taps is None else [t.name for t in parsed.taps]
    infos = backbone.resolve_taps(tap_names)
    _refuse_one_layer_twice(infos, backbone.name, str(parsed))
    taps = [info.name for info in infos]

    readouts, readout_name = _readouts(parsed, infos, readout)
    if isinstance(distance, Distance):
        dist, distance_name = distance, type(distance).__name__
    else:
        distance_name = distance if isinstance(distance, str) else parsed.distance_name
        dist = get_registry().get("distance", distance_name).factory()
    weights_list = _layer_weights(parsed, taps, layer_weights)
    named_readout = readout_name if readout is not None or parsed.readout else None
    named_distance = distance_name if distance is not None or parsed.distance else None
    text = str(Spec(parsed.backbone, parsed.taps, named_readout, named_distance))
    return Pipeline(backbone, taps, readouts, dist, weights_list, spec=text, check_inputs=check_inputs)
