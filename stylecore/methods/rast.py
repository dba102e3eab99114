"""RAST: "Rethinking the Arbitrary Style Transfer" with restoration (Ma et al., WACV 2023).

At inference RAST is the SANet architecture (same transformer and decoder keys as the upstream
``transformer_iter_*.pth`` / ``decoder_iter_*.pth``); what differs is training: the multi-restoration
loss and the style-difference loss (see ``stylecore.train``), which keep content much better. So this
module only registers the method with its own default weights.
"""

from __future__ import annotations

from typing import ClassVar

from stylecore.methods.registry import register_method
from stylecore.methods.sanet import SANet


@register_method
class RAST(SANet):
    name: ClassVar[str] = "rast"
    default_weights: ClassVar[str | None] = "rast-vgg16hed-norm"
