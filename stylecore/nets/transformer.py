"""SANet's style-attention transformer (Park & Lee, CVPR 2019), which SANet and RAST share.

Style attention at ``relu4_1`` and ``relu5_1``: ``f`` and ``g`` 1x1 convs on mean-variance-normalised
content/style features give queries and keys, ``h`` on the raw style features gives values, softmax
over style positions, ``out_conv`` and a residual; the ``relu5_1`` result is upsampled, added, and a
3x3 ``merge_conv`` mixes them. :class:`Transform` has the exact keys of the upstream
``transformer_iter_*.pth`` (``sanet4_1.f.weight`` ... ``merge_conv.bias``).

Memory: upstream materialises the (HW/64)^2 attention matrix (1 GiB per image at 1024 px, 16 GiB at
2048 px). Here attention runs through ``scaled_dot_product_attention`` with ``scale=1`` (SANet does not
scale), which uses memory-efficient kernels, and queries are processed in chunks, so memory grows
linearly with the number of content positions. Keys/values of a style are computed once (the
method's ``encode_style``) and cached.

:class:`NormalisedTransform` is this project's departure from the paper: the same two attention
blocks, but their outputs are added (``relu5_1``'s upsampled) without ``merge_conv`` and the sum is
AdaIN-ed to the style's ``relu4_1`` mean/std. Its output then lives in the encoder's own ``relu4_1``
space with the style's statistics there, which is what AdaIN's decoder takes: attention places the
style's patterns, the statistics carry its palette and contrast exactly, at any resolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from stylecore.ops import adain, mean_std, mean_variance_norm

QUERY_CHUNK = 4096  # content positions per attention call: bounds peak memory at any resolution


class SANetBlock(nn.Module):
    """One style-attention block (upstream class ``SANet``)."""

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.f = nn.Conv2d(channels, channels, 1)
        self.g = nn.Conv2d(channels, channels, 1)
        self.h = nn.Conv2d(channels, channels, 1)
        self.out_conv = nn.Conv2d(channels, channels, 1)

    def keys_values(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, C, h, w) style features -> keys and values, each (1, hw, C)."""
        k = self.g(mean_variance_norm(style)).flatten(2).transpose(1, 2)
        v = self.h(style).flatten(2).transpose(1, 2)
        return k.contiguous(), v.contiguous()

    def attend(self, content: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        b, c, h, w = content.shape
        q = self.f(mean_variance_norm(content)).flatten(2).transpose(1, 2)  # (B, HW, C)
        keys, values = keys.expand(b, -1, -1), values.expand(b, -1, -1)
        out = torch.cat(
            [
                F.scaled_dot_product_attention(q[:, i : i + QUERY_CHUNK], keys, values, scale=1.0)
                for i in range(0, q.shape[1], QUERY_CHUNK)
            ],
            dim=1,
        )
        return self.out_conv(out.transpose(1, 2).reshape(b, c, h, w)) + content

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.attend(content, *self.keys_values(style))


class Transform(nn.Module):
    """The SANet transformer (upstream class ``Transform``): attention at relu4_1 and relu5_1, merged."""

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.sanet4_1 = SANetBlock(channels)
        self.sanet5_1 = SANetBlock(channels)
        self.merge_conv = nn.Conv2d(channels, channels, 3)

    def merge(self, o4: torch.Tensor, o5: torch.Tensor) -> torch.Tensor:
        # Upstream uses a fixed x2 upsample; resizing to relu4_1's size is the same for sides that
        # divide by 16 and also works when they do not.
        o5 = F.interpolate(o5, size=o4.shape[-2:], mode="nearest")
        return self.merge_conv(F.pad(o4 + o5, (1, 1, 1, 1), mode="reflect"))

    def forward(self, c4: torch.Tensor, s4: torch.Tensor, c5: torch.Tensor, s5: torch.Tensor) -> torch.Tensor:
        return self.merge(self.sanet4_1(c4, s4), self.sanet5_1(c5, s5))


class NormalisedTransform(nn.Module):
    """SANet's attention at relu4_1 and relu5_1, summed and AdaIN-ed to the style's relu4_1 statistics.

    The keys are :class:`Transform`'s without ``merge_conv``: ``sanet4_1.*`` and ``sanet5_1.*``.
    """

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.sanet4_1 = SANetBlock(channels)
        self.sanet5_1 = SANetBlock(channels)

    @staticmethod
    def add(o4: torch.Tensor, o5: torch.Tensor) -> torch.Tensor:
        """The attention outputs before normalisation: ``o4`` plus ``o5`` resized to ``o4``'s size."""
        return o4 + F.interpolate(o5, size=o4.shape[-2:], mode="nearest")

    def forward(self, c4: torch.Tensor, s4: torch.Tensor, c5: torch.Tensor, s5: torch.Tensor) -> torch.Tensor:
        mean, std = mean_std(s4)
        return adain(self.add(self.sanet4_1(c4, s4), self.sanet5_1(c5, s5)), mean, std)


# catalog ``arch`` and class of each transformer kind (TrainConfig.transformer)
TRANSFORMERS: dict[str, tuple[str, type[nn.Module]]] = {
    "merge": ("sanet-transformer", Transform),
    "norm": ("sanet-transformer-norm", NormalisedTransform),
}
