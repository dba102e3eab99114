"""Per-layer feature scales of the encoders, so the papers' loss weights mean what they meant there.

The papers' weights (AdaIN's style weight 10, SANet's 3, ...) were set for ``vgg_normalised``, whose
filters were rescaled to a mean activation of 1 over ImageNet. The embedded ``vgg16-hed`` takes
Caffe-scaled input (0..255) and its activations are 6-18x larger, with shallow layers largest, so the
same weights put ~6x more weight on style, nearly all of it in relu1_1/relu2_1 (measured: style loss
657/1177/243/44 at relu1_1..relu4_1 against a content loss of 44). Training losses therefore divide
each layer's features by that layer's mean activation (a scalar per layer: the per-layer part of
what ``vgg_normalised`` did). The metrics f_c/f_s are not affected: they use raw features, as defined.

Recompute with ``python -m stylecore.train.scales ../shared/datasets/content ../shared/datasets/style``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from stylecore.nets.encoder import VGGEncoder

# Mean activation per layer over 128 content + 128 style images at 256 px (command above).
FEATURE_SCALES: dict[str, dict[str, float]] = {
    "vgg16-hed": {
        "relu1_1": 16.73,
        "relu1_2": 20.71,
        "relu2_1": 15.68,
        "relu2_2": 4.80,
        "relu3_1": 9.25,
        "relu3_2": 8.21,
        "relu3_3": 2.97,
        "relu4_1": 5.15,
        "relu4_2": 3.24,
        "relu4_3": 1.12,
        "relu5_1": 1.19,
        "relu5_2": 1.16,
        "relu5_3": 2.32,
    },
    "vgg16-imagenet": {
        "relu1_1": 22.19,
        "relu1_2": 117.37,
        "relu2_1": 187.19,
        "relu2_2": 211.99,
        "relu3_1": 262.55,
        "relu3_2": 285.66,
        "relu3_3": 192.87,
        "relu4_1": 151.25,
        "relu4_2": 85.2,
        "relu4_3": 21.42,
        "relu5_1": 20.94,
        "relu5_2": 8.86,
        "relu5_3": 1.17,
    },
    "vgg19-normalised": {},  # normalised already: every filter's mean activation is 1
}


def feature_scale(encoder: VGGEncoder, layer: str) -> float:
    return FEATURE_SCALES.get(encoder.name, {}).get(layer, 1.0)


def scaled(encoder: VGGEncoder, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Features divided by their layer's scale (see the module docstring)."""
    return {k: v / feature_scale(encoder, k) for k, v in feats.items()}


@torch.no_grad()
def measure(encoder: VGGEncoder, images: Sequence[torch.Tensor]) -> dict[str, float]:
    """Mean activation of every layer over ``images`` ((3, H, W) tensors in [0, 1])."""
    sums = dict.fromkeys(encoder.layer_names, 0.0)
    for image in images:
        for k, v in encoder(image[None], encoder.layer_names).items():
            sums[k] += float(v.mean())
    return {k: round(v / len(images), 2) for k, v in sums.items() if k.startswith("relu")}


if __name__ == "__main__":  # pragma: no cover - the recipe for the constants above
    import random

    from stylecore.imageio import read_image
    from stylecore.models import load_encoder

    rng = random.Random(0)
    files = []
    for folder in sys.argv[1:]:
        found = sorted(Path(folder).glob("*.jpg"))
        files += rng.sample(found, min(128, len(found)))
    torch.set_num_threads(2)
    images = [read_image(f, max_side=256) for f in files]
    for name in ("vgg16-hed", "vgg16-imagenet"):
        print(name, measure(load_encoder(name), images))
