"""The ``Stylizer`` interface every method implements, and the controls the feed-forward ones share.

A stylizer is stateful in the way batch inference wants (load once, call many times):

* ``encode_style(image) -> StyleCode`` is the cacheable step: encode each style once, reuse it for
  every content image;
* ``stylize(content_batch, style_codes, ...) -> images`` is the batched step.

Controls users expect are handled here once for all feed-forward methods: ``alpha`` (strength, a
blend in feature space), ``preserve_color`` (luminance-only transfer), style interpolation with
``style_weights`` and spatial ``masks`` (region k gets style k).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn
from torch.nn import functional as F

from stylecore.color import colour_moments, match_palette, mix_moments, preserve_color
from stylecore.device import resolve_device
from stylecore.errors import ParameterError, WeightsError
from stylecore.models import load_encoder, load_module
from stylecore.nets.decoder import decode, skip_layers
from stylecore.nets.encoder import VGGEncoder
from stylecore.ops import masked_mean_std, mean_std
from stylecore.weights import Catalog, load_catalog


class MethodParams(BaseModel):
    """Parameters every method accepts. Methods subclass this with their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(1.0, ge=0.0, le=1.0, description="style strength: 0 = content, 1 = full style")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16 autocast for the networks (about 1.4x faster on CPU; see benchmarks)"
    )
    preserve_color: bool = Field(False, description="keep the content's colours (luminance-only transfer)")
    match_palette: bool = Field(
        False,
        description="recolour the output with the style's palette: a linear map of its RGB values onto "
        "the style's colour mean and covariance (the Monge-Kantorovich colour map)",
    )

    @model_validator(mode="after")
    def _one_colour_control(self) -> Self:
        if self.preserve_color and self.match_palette:
            raise ValueError(
                "preserve_color keeps the content's colours, match_palette the style's: pick one"
            )
        return self


@dataclass
class StyleCode:
    """An encoded style: what a method needs of a style image, computed once and reused."""

    method: str
    encoder: str
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    palette: torch.Tensor | None = None  # (1, 3, 4) colour covariance and mean of the style image

    def to(self, device: torch.device | str) -> StyleCode:
        return StyleCode(
            self.method,
            self.encoder,
            {k: v.to(device) for k, v in self.tensors.items()},
            self.meta,
            None if self.palette is None else self.palette.to(device),
        )


MIN_SIDE = 16  # pixels: the smallest image side the encoders and decoders take


def as_batch(image: torch.Tensor, what: str) -> torch.Tensor:
    """Accept (3, H, W) or (B, 3, H, W) RGB in [0, 1]; return (B, 3, H, W)."""
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise ParameterError(f"{what} must be a floating-point tensor, got {type(image).__name__}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[1] != 3:
        raise ParameterError(f"{what} must be shaped (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
    if min(image.shape[-2:]) < MIN_SIDE:
        raise ParameterError(
            f"{what} is {tuple(image.shape[-2:])} pixels; the smallest side must be >= {MIN_SIDE}"
        )
    return image.contiguous()


def pad_for_networks(x: torch.Tensor, multiple: int, margin: int) -> tuple[torch.Tensor, int]:
    """Mirror ``margin`` px onto every side (fewer for tiny images), then pad the bottom/right edges
    so H and W divide by ``multiple`` (reflect where possible). Returns the padded tensor and the
    margin used: the image is ``out[..., m : m + H, m : m + W]``."""
    h, w = x.shape[-2:]
    m = max(0, min(margin, h - 1, w - 1))
    if m:
        x = F.pad(x, (m, m, m, m), mode="reflect")
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    return x, m


class Stylizer(ABC):
    """Base class of every method. Subclasses set ``name`` and ``Params`` and are registered."""

    name: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams
    default_weights: ClassVar[str | None] = None  # catalog name used when none is given
    supports_masks: ClassVar[bool] = True
    supports_interpolation: ClassVar[bool] = True
    supports_style_regions: ClassVar[bool] = False  # encode_style(style, region=mask) for semantic transfer
    batches_per_sample: ClassVar[bool] = False  # stylize_each runs the batch in one pass (not a loop)

    def __init__(self, encoder: VGGEncoder, *, weights: str | None = None, checksums: Mapping | None = None):
        self.encoder = encoder
        self.weights_name = weights
        self.checksums: dict[str, str] = dict(checksums or {})

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def random(cls, encoder: VGGEncoder | None = None, *, seed: int = 0) -> Self:
        """The real model classes with random weights (for tests and smoke runs)."""

    @classmethod
    def from_modules(cls, encoder: VGGEncoder, modules: Mapping[str, nn.Module], **kw: Any) -> Self:
        """Build from loaded modules keyed by the weights files' roles."""
        return cls(encoder, **modules, **kw)

    @classmethod
    def load(
        cls,
        weights: str | None = None,
        *,
        device: str | torch.device = "auto",
        catalog: Catalog | None = None,
        encoder: str | None = None,
    ) -> Self:
        """Load the method with verified weights from the catalog (``weights=None``: the default)."""
        catalog = catalog or load_catalog()
        device = resolve_device(device)
        name = weights or cls.default_weights
        if name is None:  # a weight-free method (Gatys) only needs an encoder
            enc = load_encoder(encoder or "vgg16-hed", device=device, catalog=catalog)
            return cls.from_modules(enc, {}, weights=None, checksums={})
        if name not in catalog.names() and weights is None:
            candidates = catalog.names(method=cls.name)
            raise WeightsError(
                f"no trained weights are installed for {cls.name}: the default {name!r} is not in the "
                f"catalog yet. Available for {cls.name}: {', '.join(candidates) or 'none'}. "
                "Choose others with {weights}=NAME, or {method}=gatys, which needs no trained weights.",
                settings=("weights", "method"),
            )
        spec = catalog.get(name)
        if spec.method != cls.name:
            raise ParameterError(f"weights {name!r} are for {spec.method or spec.kind!r}, not {cls.name!r}")
        if encoder is not None and encoder != spec.encoder:
            raise ParameterError(
                f"weights {name!r} were trained with encoder {spec.encoder!r}, not {encoder!r}"
            )
        modules, sums = {}, {}
        for wf in spec.files:
            path = catalog.verified_path(spec, wf.role)
            modules[wf.role] = load_module(wf.arch, path).to(device)
            sums[wf.role] = catalog.expected_sha256(spec, wf.role) or ""
        enc = load_encoder(spec.encoder, device=device, catalog=catalog)
        return cls.from_modules(enc, modules, weights=name, checksums=sums)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def to(self, device: str | torch.device) -> Self:
        device = resolve_device(device)
        for module in self.modules().values():
            module.to(device)
        return self

    def modules(self) -> dict[str, nn.Module]:
        """Every network of this stylizer by role (the encoder included)."""
        return {"encoder": self.encoder}

    # ---- the two steps ---------------------------------------------------------------------------

    def make_params(self, params: MethodParams | Mapping[str, Any] | None = None) -> MethodParams:
        if isinstance(params, self.Params):
            return params
        try:
            return self.Params.model_validate(dict(params or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()
            )
            raise ParameterError(f"bad {self.name} parameters: {problems}") from None

    @torch.no_grad()
    def encode_style(self, style: torch.Tensor) -> StyleCode:
        """Encode one style image (3, H, W) or (1, 3, H, W) in [0, 1]."""
        style = as_batch(style, "style image").to(self.device)
        if style.shape[0] != 1:
            raise ParameterError(f"encode_style takes one style image, got a batch of {style.shape[0]}")
        return StyleCode(
            self.name, self.encoder.name, self._encode_style(style), palette=colour_moments(style)
        )

    def stylize(
        self,
        content: torch.Tensor,
        styles: StyleCode | Sequence[StyleCode],
        *,
        params: MethodParams | Mapping[str, Any] | None = None,
        style_weights: Sequence[float] | None = None,
        masks: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Stylize a batch of contents (B, 3, H, W) in [0, 1] with one or several encoded styles.

        ``style_weights`` mixes several styles (normalised to sum 1); ``masks`` (B or 1, K, H, W) in
        [0, 1] gives each of the K styles its region instead. Returns (B, 3, H, W) in [0, 1].
        """
        p = self.make_params(params)
        content = as_batch(content, "content").to(self.device)
        codes = self._check_codes([styles] if isinstance(styles, StyleCode) else list(styles))
        weights = self._check_weights(style_weights, len(codes), masks)
        masks = self._check_masks(masks, content, len(codes))
        out = self._stylize(content, codes, p, weights=weights, masks=masks, generator=generator)
        if p.preserve_color:
            out = preserve_color(out, content)
        if p.match_palette:
            out = self._match_palette(out, codes, [p.alpha] * out.shape[0], weights=weights, masks=masks)
        return out

    def stylize_each(
        self,
        content: torch.Tensor,
        styles: Sequence[StyleCode],
        *,
        alphas: Sequence[float] | None = None,
        params: MethodParams | Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample ``i`` of the batch (B, 3, H, W) gets style ``styles[i]`` at strength ``alphas[i]``.

        The augmentation case: every image of a batch has its own style, yet the networks run once
        on the whole batch where the method allows (feed-forward methods). ``alphas`` defaults to
        the params' alpha for every sample.
        """
        p = self.make_params(params)
        content = as_batch(content, "content").to(self.device)
        codes = self._check_codes(list(styles))
        b = content.shape[0]
        if len(codes) != b:
            raise ParameterError(f"stylize_each needs one style per sample: {b} contents, {len(codes)} given")
        alpha_list = [p.alpha] * b if alphas is None else [float(a) for a in alphas]
        if len(alpha_list) != b or not all(0.0 <= a <= 1.0 for a in alpha_list):
            raise ParameterError(f"alphas must be {b} numbers in [0, 1], got {alphas}")
        out = self._stylize_each(content, codes, p, alpha_list, generator)
        if p.preserve_color:
            out = preserve_color(out, content)
        if p.match_palette:
            out = torch.cat(
                [
                    self._match_palette(out[i : i + 1], [code], [a])
                    for i, (code, a) in enumerate(zip(codes, alpha_list, strict=True))
                ]
            )
        return out

    @staticmethod
    def _match_palette(
        out: torch.Tensor,
        codes: list[StyleCode],
        alphas: list[float],
        *,
        weights: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Recolour ``out`` with the styles' palettes: mixed by ``weights``, or each in its mask's region.
        The target moments move from the output's own towards the style's with ``alpha``."""
        if any(c.palette is None for c in codes):
            raise ParameterError("match_palette needs styles encoded with encode_style")
        alpha = torch.tensor(alphas, dtype=torch.float64, device=out.device).view(-1, 1, 1)

        def towards(target: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
            return match_palette(
                out, alpha * target + (1 - alpha) * colour_moments(out, region).double(), region
            )

        palettes = torch.cat([c.palette for c in codes]).double()
        if masks is None:
            target = palettes[0] if weights is None else mix_moments(palettes, weights)
            return towards(target[None], None).clamp(0.0, 1.0)
        region = masks / masks.sum(1, keepdim=True).clamp_min(1e-6)
        mapped = sum(
            region[:, k : k + 1] * towards(palettes[k][None], region[:, k : k + 1]) for k in range(len(codes))
        )
        return mapped.clamp(0.0, 1.0)

    def _stylize_each(
        self,
        content: torch.Tensor,
        codes: list[StyleCode],
        params: MethodParams,
        alphas: list[float],
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """One sample at a time; feed-forward methods override this with a single batched pass."""
        return torch.cat(
            [
                self._stylize(
                    content[i : i + 1],
                    [code],
                    params.model_copy(update={"alpha": a}),
                    weights=None,
                    masks=None,
                    generator=generator,
                )
                for i, (code, a) in enumerate(zip(codes, alphas, strict=True))
            ]
        )

    def _check_codes(self, codes: list[StyleCode]) -> list[StyleCode]:
        if not codes:
            raise ParameterError("at least one style is needed")
        for code in codes:
            if code.method != self.name or code.encoder != self.encoder.name:
                raise ParameterError(
                    f"a style encoded by {code.method}/{code.encoder} cannot be used by {self.name}/"
                    f"{self.encoder.name}; encode it with this stylizer's encode_style"
                )
        return [c.to(self.device) for c in codes]

    def _check_weights(self, weights, k: int, masks) -> torch.Tensor | None:
        if weights is None:
            if k > 1 and masks is None:
                raise ParameterError(
                    f"{k} styles given: pass style_weights to mix them or masks to place them"
                )
            return None
        if masks is not None:
            raise ParameterError("give either style_weights (mix styles) or masks (place styles), not both")
        if not self.supports_interpolation:
            raise ParameterError(f"{self.name} does not support style interpolation")
        w = torch.as_tensor(list(weights), dtype=torch.float32)
        if w.numel() != k or (w < 0).any() or w.sum() <= 0:
            raise ParameterError(
                f"style_weights must be {k} non-negative numbers with a positive sum, got {weights}"
            )
        return w / w.sum()

    def _check_masks(self, masks, content: torch.Tensor, k: int) -> torch.Tensor | None:
        if masks is None:
            return None
        if not self.supports_masks:
            raise ParameterError(f"{self.name} does not support spatial masks")
        if masks.dim() == 3:
            masks = masks.unsqueeze(0)
        b, _, h, w = content.shape
        if masks.dim() != 4 or masks.shape[1] != k or masks.shape[0] not in (1, b):
            raise ParameterError(
                f"masks must be shaped (1 or {b}, {k}, H, W) for {k} styles, got {tuple(masks.shape)}"
            )
        masks = masks.to(self.device, torch.float32)
        if masks.shape[-2:] != (h, w):
            masks = F.interpolate(masks, size=(h, w), mode="nearest")
        return masks.expand(b, -1, -1, -1)

    @abstractmethod
    def _encode_style(self, style: torch.Tensor) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def _stylize(
        self,
        content: torch.Tensor,
        codes: list[StyleCode],
        params: MethodParams,
        *,
        weights: torch.Tensor | None,
        masks: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor: ...


class FeedForwardStylizer(Stylizer):
    """Encoder -> feature transform -> decoder methods (AdaIN, SANet, RAST)."""

    multiple: ClassVar[int] = 8  # input sides must divide by this (deepest layer's stride)
    # A mirrored border the networks see around the image and that is cropped off again: the
    # decoders draw bands along the edges of whatever they decode (plain in AdaIN's outputs), and
    # this puts them outside the picture. 32 px is four relu4_1 pixels; it costs 27 % more compute
    # at 512 px, 13 % at 1024.
    margin: ClassVar[int] = 32
    batches_per_sample: ClassVar[bool] = True
    decoder: nn.Module

    @abstractmethod
    def _content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def _transfer(
        self, cfeats: dict[str, torch.Tensor], code: StyleCode, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """The decoder input (``relu4_1``-shaped) for one style; ``mask`` is (B, 1, h, w) at that size."""

    @torch.no_grad()
    def _stylize(self, content, codes, params, *, weights, masks, generator):
        with torch.autocast(content.device.type, dtype=torch.bfloat16, enabled=params.precision == "bf16"):
            out = self._feed_forward(content, codes, params, weights=weights, masks=masks)
        return out.float()

    @property
    def levels(self) -> tuple[str, ...]:
        """The layers whose transferred features the decoder takes: ``relu4_1``, plus the skip levels
        of a :class:`~stylecore.nets.decoder.SkipDecoder`."""
        return ("relu4_1", *skip_layers(self.decoder))

    @property
    def skip_levels(self) -> tuple[str, ...]:
        """The skip levels of a :class:`~stylecore.nets.decoder.SkipDecoder` (none for a plain one)."""
        return self.levels[1:]

    def _skip_code(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A style's mean/std at each skip level (part of its style code)."""
        code = {}
        for level in self.skip_levels:
            code[f"mean_{level}"], code[f"std_{level}"] = mean_std(feats[level])
        return code

    def _transfer_levels(
        self, cfeats: dict[str, torch.Tensor], code: StyleCode, masks: dict[str, torch.Tensor | None]
    ) -> dict[str, torch.Tensor]:
        """The decoder inputs by level for one style; ``masks[level]`` is (B, 1, h, w) at that size.

        ``relu4_1`` is the method's own transfer; every skip level is the content's features AdaIN-ed
        to the style's statistics there (per region under masks), whatever the method."""
        out = {"relu4_1": self._transfer(cfeats, code, masks["relu4_1"])}
        for level in self.skip_levels:
            if f"mean_{level}" not in code.tensors:
                raise ParameterError(
                    "this style code was encoded for a decoder without skip connections; encode the style "
                    "again with this stylizer's encode_style"
                )
            out[level] = adain_region(
                cfeats[level], code.tensors[f"mean_{level}"], code.tensors[f"std_{level}"], masks[level]
            )
        return out

    def _feed_forward(self, content, codes, params, *, weights, masks):
        h, w = content.shape[-2:]
        x, m = pad_for_networks(content, self.multiple, self.margin)
        cfeats = self._content_features(x)
        levels = self.levels
        fmasks: dict[str, torch.Tensor] = {}
        if masks is not None:
            masks, _ = pad_for_networks(masks, self.multiple, self.margin)
            fmasks = {lv: F.interpolate(masks, size=cfeats[lv].shape[-2:], mode="area") for lv in levels}
        targets = [
            self._transfer_levels(
                cfeats, code, {lv: fmasks[lv][:, k : k + 1] if fmasks else None for lv in levels}
            )
            for k, code in enumerate(codes)
        ]
        t: dict[str, torch.Tensor] = {}
        for lv in levels:  # every level is mixed, placed and blended with the content alike
            if fmasks:  # soft edges stay a partition
                region = fmasks[lv] / fmasks[lv].sum(1, keepdim=True).clamp_min(1e-6)
                tl = sum(region[:, k : k + 1] * tk[lv] for k, tk in enumerate(targets))
            elif weights is not None:
                tl = sum(float(wk) * tk[lv] for wk, tk in zip(weights, targets, strict=True))
            else:
                tl = targets[0][lv]
            # alpha 1 (the default) is the transfer itself: no pass over the full-resolution levels
            t[lv] = tl if params.alpha == 1.0 else params.alpha * tl + (1.0 - params.alpha) * cfeats[lv]
        return decode(self.decoder, t).clamp(0.0, 1.0)[..., m : m + h, m : m + w]

    @torch.no_grad()
    def _stylize_each(self, content, codes, params, alphas, generator):
        h, w = content.shape[-2:]
        x, m = pad_for_networks(content, self.multiple, self.margin)
        with torch.autocast(content.device.type, dtype=torch.bfloat16, enabled=params.precision == "bf16"):
            cfeats = self._content_features(x)
            levels = self.levels
            none = dict.fromkeys(levels)
            per_sample = [
                self._transfer_levels({k: v[i : i + 1] for k, v in cfeats.items()}, code, none)
                for i, code in enumerate(codes)
            ]
            t = {}
            for lv in levels:
                tl = torch.cat([ts[lv] for ts in per_sample])
                a = torch.tensor(alphas, device=tl.device, dtype=tl.dtype).view(-1, 1, 1, 1)
                t[lv] = a * tl + (1.0 - a) * cfeats[lv]
            out = decode(self.decoder, t).clamp(0.0, 1.0)[..., m : m + h, m : m + w]
        return out.float()

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}


def adain_region(
    feat: torch.Tensor, mean_s: torch.Tensor, std_s: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """AdaIN of ``feat`` to a style's statistics; under a mask, the content's statistics are the
    region's (as the original Lua code of AdaIN does), so each region is normalised on its own."""
    mean, std = mean_std(feat) if mask is None else masked_mean_std(feat, mask)
    scale = std_s / std  # one fused pass over the features: feat * scale + (mean_s - mean * scale)
    return torch.addcmul(mean_s - mean * scale, feat, scale)
