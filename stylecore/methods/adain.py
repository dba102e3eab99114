"""AdaIN: "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization".

Huang & Belongie, ICCV 2017.

``t = AdaIN(f(c), f(s))`` at ``relu4_1``, decoded by :class:`~stylecore.nets.decoder.VGGDecoder`. With
the ``vgg19-normalised`` encoder and the ``vgg19`` decoder layout, the upstream pytorch-AdaIN
``decoder.pth`` loads by key (see the ``adain-vgg19-upstream`` catalog entry).

Masks follow the original Lua code: the content statistics of each region are taken over that region
only, so each region is normalised on its own before it gets its style's statistics.

With a :class:`~stylecore.nets.decoder.SkipDecoder` (this project's departure from the paper) the same
AdaIN is applied at each skip level too: the style code also holds the style's mean/std at
``relu1_1``..``relu3_1``, and the decoder gets the content's features there with the style's statistics
(per region under masks; blended with the content's own features by ``alpha``, as ``relu4_1`` is).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from stylecore.methods.base import FeedForwardStylizer, StyleCode, adain_region
from stylecore.methods.registry import register_method
from stylecore.nets.decoder import SkipDecoder, VGGDecoder, layout_for
from stylecore.nets.encoder import VGGEncoder
from stylecore.ops import mean_std


@register_method
class AdaIN(FeedForwardStylizer):
    name: ClassVar[str] = "adain"
    default_weights: ClassVar[str | None] = "adain-vgg16hed-skip"

    def __init__(self, encoder: VGGEncoder, decoder: VGGDecoder | SkipDecoder, **kw) -> None:
        super().__init__(encoder, **kw)
        self.decoder = decoder.eval().requires_grad_(False)

    @classmethod
    def random(cls, encoder: VGGEncoder | None = None, *, seed: int = 0) -> AdaIN:
        torch.manual_seed(seed)
        encoder = encoder or VGGEncoder("vgg16-hed")
        return cls(encoder, VGGDecoder(layout_for(encoder.name)))

    @classmethod
    def random_skip(cls, encoder: VGGEncoder | None = None, *, seed: int = 0) -> AdaIN:
        """AdaIN with a random :class:`SkipDecoder` whose skip convolutions are random too (not zero)."""
        torch.manual_seed(seed)
        encoder = encoder or VGGEncoder("vgg16-hed")
        return cls(encoder, SkipDecoder.random(layout_for(encoder.name)))

    def _encode_style(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.skip_levels:
            mean, std = mean_std(self.encoder.encode(style, "relu4_1"))
            return {"mean": mean, "std": std}
        feats = self.encoder(style, self.levels)
        mean, std = mean_std(feats["relu4_1"])
        return {"mean": mean, "std": std, **self._skip_code(feats)}

    def _content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.skip_levels:
            return {"relu4_1": self.encoder.encode(content, "relu4_1")}
        return self.encoder(content, self.levels)

    def _transfer(self, cfeats, code: StyleCode, mask):
        return adain_region(cfeats["relu4_1"], code.tensors["mean"], code.tensors["std"], mask)
