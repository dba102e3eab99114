"""The image decoder that AdaIN, SANet and RAST share: a mirror of VGG up to ``relu4_1``.

Reflection padding, nearest x2 upsampling and no normalisation (Huang & Belongie 2017). The module is
an ``nn.Sequential`` built so that its indices, and so its state-dict keys (``1.weight``, ``5.weight``,
..., ``28.weight`` for the VGG19 layout), are exactly those of the upstream ``decoder.pth`` of
pytorch-AdaIN and of SANet's ``decoder_iter_*.pth``.
"""

from __future__ import annotations

from torch import nn

# (in, out) per conv; "up" is a nearest x2 upsampling. The last conv has no ReLU.
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


class VGGDecoder(nn.Sequential):
    """Decoder from ``relu4_1`` features (512 channels, 1/8 resolution) to RGB."""

    def __init__(self, layout: str = "vgg19") -> None:
        if layout not in LAYOUTS:
            from stylecore.errors import UnknownNameError

            raise UnknownNameError("decoder layout", layout, LAYOUTS)
        spec = LAYOUTS[layout]
        last_conv = max(i for i, s in enumerate(spec) if s != "up")
        modules: list[nn.Module] = []
        for i, s in enumerate(spec):
            if s == "up":
                modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(s[0], s[1], 3)]
            if i != last_conv:
                modules.append(nn.ReLU())
        super().__init__(*modules)
        self.layout = layout
