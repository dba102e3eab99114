"""SANet: "Arbitrary Style Transfer with Style-Attentional Networks" (Park & Lee, CVPR 2019).

Encoder -> style attention at ``relu4_1`` and ``relu5_1`` (:class:`~stylecore.nets.transformer.Transform`,
with the upstream ``transformer_iter_*.pth`` keys) -> decoder. Keys/values of a style are computed
once in ``encode_style`` and cached in its :class:`StyleCode`.

With a :class:`~stylecore.nets.decoder.SkipDecoder` (this project's departure from the paper) the
decoder also gets the content's ``relu1_1``..``relu3_1`` AdaIN-ed to the style's statistics there
(:meth:`FeedForwardStylizer._transfer_levels`), as AdaIN's skip decoder does: attention places the
style's patterns, the shallow levels carry the photo's edges and the style's colours.

With a :class:`~stylecore.nets.transformer.NormalisedTransform` (also a departure) the two attention
outputs are summed and AdaIN-ed to the style's ``relu4_1`` statistics instead of merged by
``merge_conv``; the decoder is then one trained on AdaIN's features (the shipped weights share
AdaIN's skip decoder). Under masks the statistics are taken per region, as AdaIN's are.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from stylecore.errors import ParameterError
from stylecore.methods.base import FeedForwardStylizer, StyleCode, adain_region
from stylecore.methods.registry import register_method
from stylecore.nets.decoder import SkipDecoder, VGGDecoder, layout_for
from stylecore.nets.encoder import VGGEncoder
from stylecore.nets.transformer import NormalisedTransform, Transform
from stylecore.ops import mean_std


@register_method
class SANet(FeedForwardStylizer):
    name: ClassVar[str] = "sanet"
    default_weights: ClassVar[str | None] = "sanet-vgg16hed-norm"
    multiple: ClassVar[int] = 16

    def __init__(
        self,
        encoder: VGGEncoder,
        transformer: Transform | NormalisedTransform,
        decoder: VGGDecoder | SkipDecoder,
        **kw,
    ) -> None:
        super().__init__(encoder, **kw)
        self.transformer = transformer.eval().requires_grad_(False)
        self.decoder = decoder.eval().requires_grad_(False)

    @classmethod
    def random(cls, encoder: VGGEncoder | None = None, *, seed: int = 0):
        torch.manual_seed(seed)
        encoder = encoder or VGGEncoder("vgg16-hed")
        return cls(encoder, Transform(), VGGDecoder(layout_for(encoder.name)))

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "transformer": self.transformer}

    @classmethod
    def random_skip(cls, encoder: VGGEncoder | None = None, *, seed: int = 0):
        """This method with a random :class:`SkipDecoder` whose skip convolutions are random too."""
        torch.manual_seed(seed)
        encoder = encoder or VGGEncoder("vgg16-hed")
        return cls(encoder, Transform(), SkipDecoder.random(layout_for(encoder.name)))

    def _encode_style(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(style, ("relu4_1", "relu5_1", *self.skip_levels))
        k4, v4 = self.transformer.sanet4_1.keys_values(feats["relu4_1"])
        k5, v5 = self.transformer.sanet5_1.keys_values(feats["relu5_1"])
        code = {"k4": k4, "v4": v4, "k5": k5, "v5": v5, **self._skip_code(feats)}
        if isinstance(self.transformer, NormalisedTransform):
            code["mean"], code["std"] = mean_std(feats["relu4_1"])
        return code

    def _content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.encoder(content, ("relu4_1", "relu5_1", *self.skip_levels))

    def _transfer(self, cfeats, code: StyleCode, mask):
        t = code.tensors
        o4 = self.transformer.sanet4_1.attend(cfeats["relu4_1"], t["k4"], t["v4"])
        o5 = self.transformer.sanet5_1.attend(cfeats["relu5_1"], t["k5"], t["v5"])
        if not isinstance(self.transformer, NormalisedTransform):
            return self.transformer.merge(o4, o5)
        if "mean" not in t:
            raise ParameterError(
                "this style code was encoded for a transformer without normalisation; encode the style "
                "again with this stylizer's encode_style"
            )
        return adain_region(self.transformer.add(o4, o5), t["mean"], t["std"], mask)
