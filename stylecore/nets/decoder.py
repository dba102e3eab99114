"""The image decoder that AdaIN, SANet and RAST share: a mirror of VGG up to ``relu4_1``.

Reflection padding, x2 upsampling and no normalisation (Huang & Belongie 2017). The module is an
``nn.Sequential`` built so that its indices, and so its state-dict keys (``1.weight``, ``5.weight``,
..., ``28.weight`` for the VGG19 layout), are exactly those of the upstream ``decoder.pth`` of
pytorch-AdaIN and of SANet's ``decoder_iter_*.pth``.

Upsampling is ``nearest`` (upstream) or ``bilinear``. Nearest turns every feature pixel into a flat
2x2 block whose edges the next convolutions render; decoders trained that way on vgg16-hed leave a
grid repeating every 2 and 4 px that is plain at 100 %. Bilinear interpolation has no block edges.
Both have the same tensors; the catalog's ``arch`` of a decoder file (:func:`decoder_arch`) says which
upsampling it was trained with.

:class:`SkipDecoder` is this project's departure from the papers: the same decoder (its modules under
``body.``, so a plain decoder file loads into it) plus a 1x1 convolution per upsampling stage that adds
encoder features (``relu3_1``, ``relu2_1``, ``relu1_1``; AdaIN-transferred ones at inference) to the
upsampled map, as Avatar-Net and AdaAttN feed shallow levels. A plain decoder cannot invert ``relu4_1``
alone; the skips carry what it loses.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from stylecore.errors import UnknownNameError

# (in, out) per conv; "up" is a x2 upsampling. The last conv has no ReLU.
LAYOUTS: dict[str, tuple] = {
    "vgg19": (
        (512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up",
        (128, 128), (128, 64), "up", (64, 64), (64, 3),
    ),
    # Mirror of VGG16 (three convs in block 3, one fewer than VGG19): for the vgg16-hed encoder.
    "vgg16": (
        (512, 256), "up", (256, 256), (256, 256), (256, 128), "up",
        (128, 128), (128, 64), "up", (64, 64), (64, 3),
    ),
}  # fmt: skip


UPSAMPLING = ("nearest", "bilinear")


def layout_for(encoder: str) -> str:
    """The decoder layout that mirrors an encoder (by the encoder's name)."""
    return "vgg19" if encoder == "vgg19-normalised" else "vgg16"


# the encoder levels a SkipDecoder adds, in the order of its upsampling stages
SKIP_LAYERS = ("relu3_1", "relu2_1", "relu1_1")


def decoder_arch(layout: str, upsample: str = "nearest", skip: bool = False, skips: int = 3) -> str:
    """The module-architecture name (:data:`stylecore.models.ARCHS`) of a decoder layout, upsampling and
    skip connections (:class:`SkipDecoder`): ``-skip`` for all three levels, ``-skip1``/``-skip2`` for
    the deepest one or two."""
    name = f"decoder-{layout}" + ("" if upsample == "nearest" else f"-{upsample}")
    if not skip:
        return name
    return name + "-skip" + ("" if skips == len(SKIP_LAYERS) else str(skips))


class VGGDecoder(nn.Sequential):
    """Decoder from ``relu4_1`` features (512 channels, 1/8 resolution) to RGB."""

    def __init__(self, layout: str = "vgg19", upsample: str = "nearest") -> None:
        if layout not in LAYOUTS:
            raise UnknownNameError("decoder layout", layout, LAYOUTS)
        if upsample not in UPSAMPLING:
            raise UnknownNameError("decoder upsampling", upsample, UPSAMPLING)
        spec = LAYOUTS[layout]
        last_conv = max(i for i, s in enumerate(spec) if s != "up")
        modules: list[nn.Module] = []
        for i, s in enumerate(spec):
            if s == "up":
                # align_corners=False: the bilinear samples sit where nearest's blocks centre
                kw = {"align_corners": False} if upsample == "bilinear" else {}
                modules.append(nn.Upsample(scale_factor=2, mode=upsample, **kw))
                continue
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(s[0], s[1], 3)]
            if i != last_conv:
                modules.append(nn.ReLU())
        super().__init__(*modules)
        self.layout, self.upsample = layout, upsample


class SkipDecoder(nn.Module):
    """A :class:`VGGDecoder` (``body``) plus, after each x2 upsampling, a 1x1 convolution (``skip.0``..
    ``skip.2``) of the encoder's ``relu3_1``, ``relu2_1`` and ``relu1_1`` added to the upsampled map.

    ``skips`` < 3 keeps only the deepest levels (``skips=1``: ``relu3_1`` alone), so the body draws the
    finer detail itself instead of copying the photo's.
    The 1x1 convolutions start at zero, so a new SkipDecoder draws exactly what its body draws, and a
    shipped plain decoder loaded into ``body`` is the starting point of training.
    """

    # vgg16-hed's relu1_1..relu3_1 average 5-17; the 1x1 convolutions see them at about 1
    skip_scale = 0.1

    def __init__(self, layout: str = "vgg16", upsample: str = "bilinear", skips: int = 3) -> None:
        super().__init__()
        if not 1 <= skips <= len(SKIP_LAYERS):
            raise ValueError(f"skips={skips}: a SkipDecoder has 1 to {len(SKIP_LAYERS)} skip levels")
        self.body = VGGDecoder(layout, upsample)
        spec = LAYOUTS[layout]
        # the channels at each upsampling: those of the conv before it (= the skipped layer's)
        channels = [spec[i - 1][1] for i, s in enumerate(spec) if s == "up"][:skips]
        self.skip = nn.ModuleList([nn.Conv2d(c, c, 1) for c in channels])
        for conv in self.skip:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.layers = SKIP_LAYERS[:skips]
        self.layout, self.upsample = layout, upsample

    @classmethod
    def random(cls, layout: str = "vgg16", skips: int = 3) -> SkipDecoder:
        """A SkipDecoder whose skip convolutions are random too (not zero), so tests see every level."""
        decoder = cls(layout, skips=skips)
        for conv in decoder.skip:
            nn.init.normal_(conv.weight, std=0.05)
        return decoder

    def forward(self, x: torch.Tensor, skips: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Decode ``relu4_1``-shaped ``x`` with the features ``skips[layer]`` of its :attr:`layers`."""
        stage = 0
        for module in self.body:
            x = module(x)
            if isinstance(module, nn.Upsample) and stage < len(self.layers):
                conv = self.skip[stage]  # scaling the weights, not the full-resolution features
                x = x + F.conv2d(skips[self.layers[stage]], conv.weight * self.skip_scale, conv.bias)
                stage += 1
        return x


def decode(decoder: nn.Module, levels: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Run a decoder on decoder inputs by layer: ``relu4_1`` alone for a plain decoder, plus the skip
    levels for a :class:`SkipDecoder`."""
    if isinstance(decoder, SkipDecoder):
        return decoder(levels["relu4_1"], levels)
    return decoder(levels["relu4_1"])


def skip_layers(decoder: nn.Module) -> tuple[str, ...]:
    """The encoder levels a decoder takes besides ``relu4_1`` (none for a plain decoder)."""
    return decoder.layers if isinstance(decoder, SkipDecoder) else ()
