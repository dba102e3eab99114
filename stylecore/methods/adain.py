"""AdaIN: "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization".

Huang & Belongie, ICCV 2017.

``t = AdaIN(f(c), f(s))`` at ``relu4_1``, decoded by :class:`~stylecore.nets.decoder.VGGDecoder`. With
the ``vgg19-normalised`` encoder and the ``vgg19`` decoder layout, the upstream pytorch-AdaIN
``decoder.pth`` loads by key (see the ``adain-vgg19-upstream`` catalog entry).

Masks follow the original Lua code: the content statistics of each region are taken over that region
only, so each region is normalised on its own before it gets its style's statistics.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from stylecore.methods.base import FeedForwardStylizer, StyleCode
from stylecore.methods.registry import register_method
from stylecore.nets.decoder import VGGDecoder, layout_for
from stylecore.nets.encoder import VGGEncoder
from stylecore.ops import masked_mean_std, mean_std


@register_method
class AdaIN(FeedForwardStylizer):
    name: ClassVar[str] = "adain"
    default_weights: ClassVar[str | None] = "adain-vgg16hed"

    def __init__(self, encoder: VGGEncoder, decoder: VGGDecoder, **kw) -> None:
        super().__init__(encoder, **kw)
        self.decoder = decoder.eval().requires_grad_(False)

    @classmethod
    def random(cls, encoder: VGGEncoder | None = None, *, seed: int = 0) -> AdaIN:
        torch.manual_seed(seed)
        encoder = encoder or VGGEncoder("vgg16-hed")
        return cls(encoder, VGGDecoder(layout_for(encoder.name)))

    def _encode_style(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        mean, std = mean_std(self.encoder.encode(style, "relu4_1"))
        return {"mean": mean, "std": std}

    def _content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"relu4_1": self.encoder.encode(content, "relu4_1")}

    def _transfer(self, cfeats, code: StyleCode, mask):
        feat = cfeats["relu4_1"]
        mean, std = mean_std(feat) if mask is None else masked_mean_std(feat, mask)
        return (feat - mean) / std * code.tensors["std"] + code.tensors["mean"]
