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
"""

from __future__ import annotations

from torch import nn

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


def decoder_arch(layout: str, upsample: str = "nearest") -> str:
    """The module-architecture name (:data:`stylecore.models.ARCHS`) of a decoder layout and upsampling."""
    return f"decoder-{layout}" + ("" if upsample == "nearest" else f"-{upsample}")


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
