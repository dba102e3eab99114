"""Photo-realistic transfer: structure kept by construction, masks respected, bad masks explained."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import stylecore.methods.photoreal as pr
from stylecore.color import luminance
from stylecore.errors import StyleCoreError
from stylecore.methods import get_method
from stylecore.methods.photoreal import MaskWarning, apply_grid, identity_grid, paired_regions, slice_grid
from tests.conftest import synthetic_image


def edges(img: torch.Tensor) -> torch.Tensor:
    y = luminance(img)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
    return (F.conv2d(y, kx, padding=1) ** 2 + F.conv2d(y, kx.transpose(2, 3), padding=1) ** 2).sqrt()


@pytest.fixture(scope="module")
def photoreal(random_encoder):
    return get_method("photoreal").random(random_encoder)


def test_identity_grid_is_the_identity():
    img = synthetic_image(30, 41)[None]
    torch.testing.assert_close(slice_grid(identity_grid(8, 8), img), img, rtol=1e-5, atol=1e-5)


def test_banded_application_equals_one_slice(monkeypatch):
    torch.manual_seed(0)
    grid = identity_grid(4, 4) + 0.1 * torch.randn(1, 12, 4, 4, 4)
    img = synthetic_image(37, 29)[None]
    whole = slice_grid(grid, img).clamp(0, 1)
    monkeypatch.setattr(pr, "BAND_PIXELS", 29 * 5)  # 5 rows per band
    torch.testing.assert_close(apply_grid(grid, img), whole, rtol=1e-5, atol=1e-5)


def test_structure_is_kept(photoreal):
    """The output's edges are where the input's are: a strong change of colour, no new structure."""
    content = synthetic_image(64, 64, seed=3)
    style = synthetic_image(64, 64, seed=8).flip(0) * 0.4  # darker, different palette
    out = photoreal.stylize(content, photoreal.encode_style(style), params={"steps": 30, "work_size": 64})
    assert (out - content).abs().mean() > 0.03  # it did change the look
    e_in, e_out = edges(content[None]).flatten(), edges(out).flatten()
    corr = torch.corrcoef(torch.stack([e_in, e_out]))[0, 1]
    assert corr > 0.75, (
        f"edge maps correlate only {corr:.3f}"
    )  # local contrast may change, edges may not move
    strong_out = e_out > e_out.quantile(0.95)
    assert (e_in[strong_out] > e_in.quantile(0.5)).float().mean() > 0.95  # no edge where the input had none


def test_masks_send_each_region_to_its_counterpart(photoreal):
    content = torch.full((3, 48, 64), 0.5) + 0.1 * synthetic_image(48, 64, seed=1)
    style = torch.zeros(3, 48, 64)
    style[0, :, :32] = 0.9  # left of the style: red
    style[2, :, 32:] = 0.9  # right of the style: blue
    seg = torch.zeros(3, 48, 64)
    seg[:, :, 32:] = 1.0  # white right, black left: same layout in both images
    _, c_masks, s_masks = paired_regions(seg, seg)
    codes = [photoreal.encode_style(style, region=s_masks[k]) for k in range(len(s_masks))]
    out = photoreal.stylize(content, codes, masks=c_masks[None], params={"steps": 60, "work_size": 64})[0]
    left, right = out[:, :, :28], out[:, :, 36:]
    assert left[0].mean() > left[2].mean() + 0.1  # left went red
    assert right[2].mean() > right[0].mean() + 0.1  # right went blue


def test_bad_masks_are_explained():
    black = torch.zeros(3, 16, 16)
    red = torch.zeros(3, 16, 16)
    red[0] = 1.0
    with pytest.raises(StyleCoreError, match="share no colour"):
        paired_regions(black, red)
    half = black.clone()
    half[:, :, 8:] = 1.0  # black + white
    with pytest.warns(MaskWarning, match=r"\(255, 255, 255\)"):
        paired_regions(half, black)


def test_colour_labels_ignore_antialiased_borders():
    seg = torch.zeros(3, 8, 8)
    seg[:, :, 4:] = 1.0
    seg[:, :, 3] = 0.5  # a grey column is its own region
    seg[:, 0, 0] = torch.tensor([0.25, 0.75, 0.25])  # too far from any colour: no region
    labels = pr.labels_from_colours(seg)
    assert set(labels) == {(0, 0, 0), (128, 128, 128), (255, 255, 255)}
    assert float(sum(m.sum() for m in labels.values())) == 63
