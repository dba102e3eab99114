"""Module layouts by name, so a weights file can be checked and loaded strictly into its architecture.

Each :class:`~stylecore.weights.WeightsFile` names an ``arch`` from :data:`ARCHS`; the architectures
themselves are in :mod:`stylecore.nets`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from stylecore.errors import ParameterError, UnknownNameError, WeightsError
from stylecore.nets.decoder import LAYOUTS, SKIP_LAYERS, UPSAMPLING, SkipDecoder, VGGDecoder, decoder_arch
from stylecore.nets.encoder import (
    TRUNK_END,
    VGGEncoder,
    convert_state_dict,
    hed_h5_state_dict,
    keras_onnx_vgg16_state_dict,
)
from stylecore.nets.transformer import TRANSFORMERS
from stylecore.weights import Catalog, load_catalog, load_strict, read_state_dict

ARCHS: dict[str, Callable[[], nn.Module]] = {
    "vgg16-hed": lambda: VGGEncoder("vgg16-hed"),
    # the shipped fp16 file ends at TRUNK_END (all anything reads); the ONNX source holds all 13 convs
    "vgg16-imagenet": lambda: VGGEncoder("vgg16-imagenet", last_conv=TRUNK_END),
    "vgg19-normalised": lambda: VGGEncoder("vgg19-normalised"),
    **{
        decoder_arch(layout, up): (lambda layout=layout, up=up: VGGDecoder(layout, up))
        for layout in LAYOUTS
        for up in UPSAMPLING
    },
    **{
        decoder_arch(layout, up, skip=True, skips=n): (
            lambda layout=layout, up=up, n=n: SkipDecoder(layout, up, skips=n)
        )
        for layout in LAYOUTS
        for up in UPSAMPLING
        for n in range(1, len(SKIP_LAYERS) + 1)
    },
    **dict(TRANSFORMERS.values()),
}


def build_module(arch: str) -> nn.Module:
    if arch not in ARCHS:
        raise UnknownNameError("module architecture", arch, ARCHS)
    return ARCHS[arch]()


def load_module(arch: str, path: str | Path) -> nn.Module:
    """Build ``arch`` and load ``path`` into it strictly (upstream key layouts are converted)."""
    module = build_module(arch)
    if arch == "vgg16-hed":
        state = hed_h5_state_dict(path)
    elif arch == "vgg16-imagenet" and Path(path).suffix == ".onnx":
        state = keras_onnx_vgg16_state_dict(path, last_conv=TRUNK_END)
    else:
        state = convert_state_dict(arch, read_state_dict(path))
    load_strict(module, state, source=str(path))
    # NHWC: oneDNN's (AMX) and cuDNN's fast convolution kernels want it. On the 2-core CPU, bf16 steps
    # ran 1.26x (AdaIN training, benchmarks/train_speed.py) and 1.5x (StyleMesh) faster than NCHW.
    return module.to(memory_format=torch.channels_last).eval().requires_grad_(False)


def load_encoder(
    name: str = "vgg16-hed",
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    catalog: Catalog | None = None,
) -> VGGEncoder:
    """Build the named encoder with its verified weights from the weights catalog."""
    catalog = catalog or load_catalog()
    spec = catalog.get(name)
    if spec.kind != "encoder":
        raise ParameterError(f"weights {name!r} are a {spec.kind}, not an encoder")
    encoder = load_module(spec.arch, catalog.verified_path(spec, "encoder"))
    assert isinstance(encoder, VGGEncoder)
    return encoder.to(device=device, dtype=dtype)


def import_weights(catalog, name: str, path: str | Path, role: str | None = None) -> Path:
    """Check a user's file against the entry's architecture (strict keys and shapes), then record it.

    Only entries with ``location: import`` take files: the project's own weights are verified by
    their catalogued sha256 instead.
    """
    spec = catalog.get(name)
    if spec.location != "import":
        raise WeightsError(f"weights {name!r} ship with stylepipe ({spec.location}); nothing to import")
    roles = [f.role for f in spec.files]
    if role is None:
        if len(roles) > 1:
            raise WeightsError(
                f"weights {name!r} have several files; say which this is with {{role}}=ROLE "
                f"({', '.join(roles)})",
                settings=("role",),
            )
        role = roles[0]
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    load_module(spec.file(role).arch, path)  # raises with the key/shape report if it does not fit
    return catalog.record_import(spec, role, path)
