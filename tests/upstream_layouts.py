"""Reference copies of the upstream module layouts (pytorch-AdaIN ``net.py``, SANet ``Eval.py``).

They exist only to produce state dicts with exactly the upstream keys and to compute reference
outputs; stylecore never uses them.
"""

from __future__ import annotations

from torch import nn


def upstream_vgg() -> nn.Sequential:
    pad = lambda: nn.ReflectionPad2d((1, 1, 1, 1))  # noqa: E731
    pool = lambda: nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)  # noqa: E731
    layers: list[nn.Module] = [nn.Conv2d(3, 3, (1, 1))]
    plan = [
        (3, 64),
        (64, 64),
        "P",
        (64, 128),
        (128, 128),
        "P",
        (128, 256),
        (256, 256),
        (256, 256),
        (256, 256),
        "P",
        (256, 512),
        (512, 512),
        (512, 512),
        (512, 512),
        "P",
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 512),
    ]
    for p in plan:
        layers += [pool()] if p == "P" else [pad(), nn.Conv2d(p[0], p[1], (3, 3)), nn.ReLU()]
    return nn.Sequential(*layers)


UPSTREAM_SLICES = {
    "relu1_1": (0, 4),
    "relu2_1": (4, 11),
    "relu3_1": (11, 18),
    "relu4_1": (18, 31),
    "relu5_1": (31, 44),
}


def upstream_decoder() -> nn.Sequential:
    pad = lambda: nn.ReflectionPad2d((1, 1, 1, 1))  # noqa: E731
    up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
    return nn.Sequential(
        pad(),
        nn.Conv2d(512, 256, (3, 3)),
        nn.ReLU(),
        up(),
        pad(),
        nn.Conv2d(256, 256, (3, 3)),
        nn.ReLU(),
        pad(),
        nn.Conv2d(256, 256, (3, 3)),
        nn.ReLU(),
        pad(),
        nn.Conv2d(256, 256, (3, 3)),
        nn.ReLU(),
        pad(),
        nn.Conv2d(256, 128, (3, 3)),
        nn.ReLU(),
        up(),
        pad(),
        nn.Conv2d(128, 128, (3, 3)),
        nn.ReLU(),
        pad(),
        nn.Conv2d(128, 64, (3, 3)),
        nn.ReLU(),
        up(),
        pad(),
        nn.Conv2d(64, 64, (3, 3)),
        nn.ReLU(),
        pad(),
        nn.Conv2d(64, 3, (3, 3)),
    )


def upstream_transformer_keys() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of SANet's ``transformer_iter_*.pth`` (class ``Transform(in_planes=512)``)."""
    keys: dict[str, tuple[int, ...]] = {}
    for block in ("sanet4_1", "sanet5_1"):
        for conv in ("f", "g", "h", "out_conv"):
            keys[f"{block}.{conv}.weight"] = (512, 512, 1, 1)
            keys[f"{block}.{conv}.bias"] = (512,)
    keys["merge_conv.weight"] = (512, 512, 3, 3)
    keys["merge_conv.bias"] = (512,)
    return keys
