"""The multi-scale PatchGAN discriminator RAST trains with, and its LSGAN loss.

Architecture as in the RAST authors' ``MultiDiscriminator`` (itself the pix2pixHD / MUNIT design):
at each of ``scales`` resolutions a PatchGAN of four 4x4 stride-2 convolutions (64, 128, 256, 512
channels; instance norm on all but the first; LeakyReLU 0.2) and a 3x3 convolution to one channel of
patch scores. Between scales the image is average-pooled (3x3, stride 2, padding 1, padding not
counted). LSGAN (Mao et al. 2017): mean squared distance of every patch score to 1 (real) or 0 (fake),
summed over scales.
"""

from __future__ import annotations

import torch
from torch import nn

from stylecore.errors import ParameterError

CHANNELS = (64, 128, 256, 512)


def _patchgan(in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = in_channels
    for i, ch in enumerate(CHANNELS):
        layers.append(nn.Conv2d(prev, ch, 4, stride=2, padding=1))
        if i > 0:
            layers.append(nn.InstanceNorm2d(ch))
        layers.append(nn.LeakyReLU(0.2))
        prev = ch
    layers.append(nn.Conv2d(prev, 1, 3, padding=1))
    return nn.Sequential(*layers)


class MultiScalePatchGAN(nn.Module):
    """PatchGAN discriminators at ``scales`` resolutions (full, 1/2, 1/4, ...)."""

    def __init__(self, in_channels: int = 3, scales: int = 3) -> None:
        super().__init__()
        if scales < 1:
            raise ParameterError(f"a multi-scale discriminator needs at least one scale, got {scales}")
        self.scales = scales
        self.models = nn.ModuleList(_patchgan(in_channels) for _ in range(scales))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @staticmethod
    def min_size(scales: int = 3) -> int:
        """Smallest input side: instance norm needs more than one position after four stride-2 convs
        at the coarsest scale, so that scale must be at least 32 px."""
        return 32 * 2 ** (scales - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Patch scores at each scale, finest first."""
        smallest = self.min_size(self.scales)
        if min(x.shape[-2:]) < smallest:
            raise ParameterError(
                f"a {self.scales}-scale discriminator needs images of at least {smallest} px, "
                f"got {tuple(x.shape[-2:])}"
            )
        outputs = []
        for i, model in enumerate(self.models):
            if i:
                x = self.downsample(x)
            outputs.append(model(x))
        return outputs

    def lsgan_loss(self, x: torch.Tensor, real: bool) -> torch.Tensor:
        """Sum over scales of the mean squared distance of the patch scores to 1 (real) or 0 (fake)."""
        target = 1.0 if real else 0.0
        return sum((out.float() - target).pow(2).mean() for out in self(x))  # type: ignore[return-value]
