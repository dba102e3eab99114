"""Tests of stylecore.imageio: decoding of every mode, orientation, resizing, errors, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from stylecore import imageio
from stylecore.errors import ImageError, ParameterError
from stylecore.imageio import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    from_pil,
    image_size,
    read_image,
    read_mask,
    resize_max_side,
    to_pil,
    write_image,
)

TOL = 1 / 255 + 1e-6


def gradient(h: int = 24, w: int = 32) -> torch.Tensor:
    """A smooth RGB image (lossy codecs reproduce it closely), exactly representable in 8 bits."""
    y = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    x = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    img = torch.stack([x, y, (x + y) / 2])
    return (img * 255).round() / 255


def noise(h: int = 16, w: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), generator=g).float() / 255


def stored_mode(path: Path) -> str:
    with Image.open(path) as im:
        return im.mode


def check_error(exc: pytest.ExceptionInfo[ImageError], path: Path, *words: str) -> None:
    msg = str(exc.value)
    assert str(path) in msg
    assert exc.value.path == str(path)
    for word in words:
        assert word in msg, (word, msg)


def check_image(t: torch.Tensor, h: int, w: int) -> None:
    assert t.shape == (3, h, w)
    assert t.dtype == torch.float32
    assert t.is_contiguous()
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


# ---------------------------------------------------------------------------------------- round trips


def test_constants() -> None:
    assert sorted(SUPPORTED_SUFFIXES) == [".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"]
    assert DEFAULT_MAX_PIXELS == 89_478_485


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".bmp"])
def test_round_trip_lossless(tmp_path: Path, suffix: str) -> None:
    img = noise()
    out = write_image(img, tmp_path / f"a{suffix}")
    assert out == tmp_path / f"a{suffix}"
    back = read_image(out)
    check_image(back, 16, 20)
    assert torch.allclose(back, img, atol=TOL)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp", ".JPG"])
def test_round_trip_lossy(tmp_path: Path, suffix: str) -> None:
    img = gradient()
    back = read_image(write_image(img, tmp_path / f"a{suffix}", quality=95))
    check_image(back, 24, 32)
    assert float((back - img).abs().mean()) < 0.02


def test_write_accepts_batch_of_one_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "a.png"
    write_image(noise().unsqueeze(0), path)
    assert torch.allclose(read_image(path), noise(), atol=TOL)


def test_jpeg_quality_is_used(tmp_path: Path) -> None:
    img = noise(64, 64)
    low = write_image(img, tmp_path / "low.jpg", quality=10)
    high = write_image(img, tmp_path / "high.jpg", quality=95)
    assert low.stat().st_size < high.stat().st_size


def test_wrong_extension_with_valid_content_reads(tmp_path: Path) -> None:
    path = tmp_path / "really_png.jpg"
    Image.fromarray(np.full((5, 7, 3), 200, np.uint8)).save(path, format="PNG")
    assert torch.allclose(read_image(path), torch.full((3, 5, 7), 200 / 255))


# ----------------------------------------------------------------------------------------------- modes


def test_mode_l(tmp_path: Path) -> None:
    path = tmp_path / "l.png"
    Image.fromarray(np.array([[0, 128, 255]], np.uint8)).save(path)
    t = read_image(path)
    check_image(t, 1, 3)
    assert torch.allclose(t[:, 0, :], torch.tensor([0, 128 / 255, 1.0]).expand(3, 3))


def test_mode_la_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.fromarray(np.array([[[0, 0], [0, 255], [100, 128]]], np.uint8), "LA").save(path)
    t = read_image(path)
    check_image(t, 1, 3)
    assert torch.allclose(t[:, 0, 0], torch.ones(3))  # transparent black -> white
    assert torch.allclose(t[:, 0, 1], torch.zeros(3))  # opaque black
    assert 0.6 < float(t[0, 0, 2]) < 0.75  # half-transparent grey 100 over white


def test_mode_p_with_transparency(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    im = Image.new("P", (2, 1))
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.putpixel((1, 0), 1)
    im.save(path, transparency=0)
    assert stored_mode(path) == "P"
    t = read_image(path)
    assert torch.allclose(t[:, 0, 0], torch.ones(3))  # transparent index -> white
    assert torch.allclose(t[:, 0, 1], torch.tensor([0.0, 0.0, 1.0]))


def test_mode_p_without_transparency(tmp_path: Path) -> None:
    path = tmp_path / "p.bmp"
    im = Image.new("P", (2, 2), 1)
    im.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    im.save(path)
    assert torch.allclose(read_image(path)[:, 1, 1], torch.tensor([10, 20, 30]) / 255)


def test_mode_rgba_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    px = np.array([[[10, 20, 30, 0], [10, 20, 30, 255], [0, 0, 0, 128]]], np.uint8)
    Image.fromarray(px, "RGBA").save(path)
    t = read_image(path)
    check_image(t, 1, 3)
    assert torch.equal(t[:, 0, 0], torch.ones(3))  # fully transparent pixel is exactly white
    assert torch.allclose(t[:, 0, 1], torch.tensor([10, 20, 30]) / 255)
    assert torch.allclose(t[:, 0, 2], torch.full((3,), 127 / 255), atol=2 / 255)


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_mode_cmyk(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cmyk{suffix}"
    Image.new("CMYK", (8, 4), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    assert stored_mode(path) == "CMYK"
    t = read_image(path)
    check_image(t, 4, 8)
    assert torch.allclose(t[:, 2, 3], torch.tensor([1.0, 0.0, 0.0]), atol=0.03)


def test_mode_i16_png_scaled_by_bit_depth(tmp_path: Path) -> None:
    path = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 32768, 65535]], np.uint16)).save(path)
    assert stored_mode(path) == "I;16"
    t = read_image(path)
    check_image(t, 1, 3)
    assert float(t[0, 0, 0]) == 0.0
    assert abs(float(t[1, 0, 1]) - 0.5) < 1e-4
    assert float(t[2, 0, 2]) == 1.0


def test_mode_i16b_tiff(tmp_path: Path) -> None:
    path = tmp_path / "g16b.tif"
    im = Image.new("I;16B", (2, 1))
    im.putpixel((1, 0), 65535)
    im.save(path)
    assert stored_mode(path) == "I;16B"
    t = read_image(path)
    assert torch.allclose(t[:, 0], torch.tensor([0.0, 1.0]).expand(3, 2))


def test_mode_i32_tiff(tmp_path: Path) -> None:
    path = tmp_path / "i32.tif"
    Image.fromarray(np.array([[0, 65535]], np.int32)).save(path)
    assert stored_mode(path) == "I"
    t = read_image(path)
    assert torch.allclose(t[:, 0], torch.tensor([0.0, 1.0]).expand(3, 2))


def test_mode_f_tiff(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    Image.fromarray(np.array([[0.0, 0.25, 1.0]], np.float32)).save(path)
    assert stored_mode(path) == "F"
    t = read_image(path)
    assert torch.allclose(t[:, 0], torch.tensor([0.0, 0.25, 1.0]).expand(3, 3))


def test_mode_1_bilevel(tmp_path: Path) -> None:
    path = tmp_path / "bw.png"
    im = Image.new("1", (3, 2), 0)
    im.putpixel((1, 1), 1)
    im.save(path)
    assert stored_mode(path) == "1"
    t = read_image(path)
    check_image(t, 2, 3)
    assert float(t.sum()) == 3.0 and torch.equal(t[:, 1, 1], torch.ones(3))


def test_mode_lab_tiff(tmp_path: Path) -> None:
    path = tmp_path / "lab.tif"
    Image.new("LAB", (2, 2), (128, 128, 128)).save(path)  # L=50%, a=b=0: neutral mid grey
    assert stored_mode(path) == "LAB"
    t = read_image(path)
    assert torch.allclose(t, torch.full((3, 2, 2), 119 / 255), atol=3 / 255)


def test_mode_ycbcr_from_pil() -> None:
    t = from_pil(Image.new("YCbCr", (3, 2), (128, 128, 128)))
    check_image(t, 2, 3)
    assert torch.allclose(t, torch.full((3, 2, 3), 128 / 255), atol=1 / 255)


def test_from_pil_matches_to_pil() -> None:
    img = noise()
    pil = to_pil(img)
    assert pil.mode == "RGB" and pil.size == (20, 16)
    assert torch.allclose(from_pil(pil), img, atol=TOL)
    assert torch.allclose(from_pil(pil.convert("RGBA")), img, atol=TOL)


def test_to_pil_clamps_and_rounds() -> None:
    img = torch.tensor([-1.0, 0.5, 2.0, float("nan")]).view(1, 1, 4).expand(3, 1, 4)
    arr = np.asarray(to_pil(img.unsqueeze(0)))
    assert arr[0, :, 0].tolist() == [0, 128, 255, 0]


def test_to_pil_rejects_bad_shape() -> None:
    with pytest.raises(ParameterError):
        to_pil(torch.zeros(4, 5, 5))
    with pytest.raises(ParameterError):
        to_pil(torch.zeros(2, 3, 5, 5))


# ----------------------------------------------------------------------------------------- orientation


def _exif_jpeg(path: Path, orientation: int) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 high
    arr[:8, :8] = (255, 0, 0)  # red block at the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, quality=95, exif=exif.tobytes())


def test_exif_orientation_applied(tmp_path: Path) -> None:
    path = tmp_path / "rot.jpg"
    _exif_jpeg(path, 6)  # 6: rotate 90° clockwise to display
    t = read_image(path)
    check_image(t, 40, 20)
    assert float(t[0, 2, -3]) > 0.8 and float(t[1, 2, -3]) < 0.2  # stored top-left is now top-right
    assert image_size(path) == (20, 40)


def test_exif_orientation_1_untouched(tmp_path: Path) -> None:
    path = tmp_path / "norot.jpg"
    _exif_jpeg(path, 1)
    check_image(read_image(path), 20, 40)
    assert image_size(path) == (40, 20)


def test_image_size_plain(tmp_path: Path) -> None:
    path = write_image(noise(16, 20), tmp_path / "a.png")
    assert image_size(path) == (20, 16)


# --------------------------------------------------------------------------------------------- resizing


def test_read_max_side_downscales(tmp_path: Path) -> None:
    path = write_image(gradient(100, 200), tmp_path / "a.png")
    t = read_image(path, max_side=50)
    check_image(t, 25, 50)
    assert abs(float(t.mean()) - float(gradient(100, 200).mean())) < 0.01


def test_read_max_side_never_upscales(tmp_path: Path) -> None:
    path = write_image(gradient(100, 200), tmp_path / "a.png")
    check_image(read_image(path, max_side=500), 100, 200)
    check_image(read_image(path, max_side=200), 100, 200)


def test_read_max_side_jpeg_draft(tmp_path: Path) -> None:
    path = write_image(gradient(600, 800), tmp_path / "big.jpg")
    t = read_image(path, max_side=100)
    check_image(t, 75, 100)
    assert abs(float(t.mean()) - float(gradient(600, 800).mean())) < 0.02


def test_read_max_side_with_exif_rotation(tmp_path: Path) -> None:
    path = tmp_path / "rot.jpg"
    _exif_jpeg(path, 6)
    check_image(read_image(path, max_side=10), 10, 5)


def test_read_max_side_16bit(tmp_path: Path) -> None:
    path = tmp_path / "g16.png"
    Image.fromarray(np.full((40, 80), 65535, np.uint16)).save(path)
    t = read_image(path, max_side=20)
    check_image(t, 10, 20)
    assert torch.allclose(t, torch.ones_like(t), atol=1e-4)


def test_resize_max_side_tensor() -> None:
    img = gradient(100, 200)
    out = resize_max_side(img, 50)
    assert out.shape == (3, 25, 50)
    assert resize_max_side(img, 300) is img  # never upscales
    batch = torch.stack([img, img])
    assert resize_max_side(batch, 40).shape == (2, 3, 20, 40)
    assert resize_max_side(batch.unsqueeze(0), 40).shape == (1, 2, 3, 20, 40)
    assert resize_max_side(torch.zeros(3, 1, 1000), 10).shape == (3, 1, 10)  # min side 1
    with pytest.raises(ParameterError):
        resize_max_side(img, 0)


def test_read_rejects_bad_arguments(tmp_path: Path) -> None:
    path = write_image(noise(), tmp_path / "a.png")
    with pytest.raises(ParameterError):
        read_image(path, max_side=0)
    with pytest.raises(ParameterError):
        read_image(path, max_pixels=0)


# ------------------------------------------------------------------------------------------------ masks


def test_read_mask(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    arr = np.zeros((4, 6), np.uint8)
    arr[:, 3:] = 255
    Image.fromarray(arr).save(path)
    m = read_mask(path)
    assert m.shape == (1, 4, 6) and m.dtype == torch.float32
    assert float(m[0, 0, 0]) == 0.0 and float(m[0, 0, 5]) == 1.0
    resized = read_mask(path, size=(8, 12))
    assert resized.shape == (1, 8, 12)
    assert set(resized.unique().tolist()) == {0.0, 1.0}  # nearest keeps the mask binary


def test_read_mask_from_rgb_and_16bit(tmp_path: Path) -> None:
    rgb = write_image(torch.ones(3, 2, 2), tmp_path / "white.png")
    assert torch.equal(read_mask(rgb), torch.ones(1, 2, 2))
    g16 = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(g16)
    assert torch.allclose(read_mask(g16), torch.tensor([[[0.0, 1.0]]]))


def test_read_mask_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageError) as exc:
        read_mask(missing)
    check_error(exc, missing, "file not found")
    with pytest.raises(ParameterError):
        read_mask(missing, size=(0, 3))


# ------------------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.jpg"
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "file not found")
    with pytest.raises(ImageError) as exc:
        image_size(path)
    check_error(exc, path, "file not found")


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "dir.png"
    path.mkdir()
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "is a directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "empty file (0 bytes)")


def test_permission_denied_mocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(noise(), tmp_path / "locked.png")

    def deny(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(imageio.Image, "open", deny)
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "cannot read file: permission denied")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_permission_denied_real(tmp_path: Path) -> None:
    path = write_image(noise(), tmp_path / "locked.png")
    path.chmod(0)
    try:
        with pytest.raises(ImageError) as exc:
            read_image(path)
    finally:
        path.chmod(0o644)
    check_error(exc, path, "permission denied")


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is plain text, not a JPEG\n")
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "not a recognised image", "cannot identify")


def test_truncated_jpeg(tmp_path: Path) -> None:
    path = write_image(noise(64, 64), tmp_path / "cut.jpg")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "truncated or corrupt image data")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # never switched on globally


def test_truncated_png(tmp_path: Path) -> None:
    path = write_image(noise(64, 64), tmp_path / "cut.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "truncated or corrupt image data")


def test_corrupt_png_data(tmp_path: Path) -> None:
    path = write_image(noise(64, 64), tmp_path / "bad.png")
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 20
    data[start : start + 50] = bytes(50)  # garbage in the compressed stream (CRC fails too)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "truncated or corrupt image data")


def test_decompression_bomb_guard(tmp_path: Path) -> None:
    path = write_image(noise(16, 20), tmp_path / "bomb.png")
    with pytest.raises(ImageError) as exc:
        read_image(path, max_pixels=100)
    check_error(exc, path, "image too large", "20 x 16 = 320 pixels", "limit of 100", "decompression-bomb")
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS  # global untouched
    check_image(read_image(path, max_pixels=320), 16, 20)


def test_decompression_bomb_pillow_guards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(noise(16, 20), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # Pillow warns above 200, errors above 400
    with pytest.raises(ImageError) as exc:
        read_image(path, max_pixels=150)  # Pillow's warning fires first and is turned into an error
    check_error(exc, path, "image too large", "decompression-bomb")
    # A caller allowing more than Pillow's limit gets it up to Pillow's hard (2x) limit.
    check_image(read_image(path), 16, 20)
    huge = write_image(noise(20, 30), tmp_path / "huge.png")
    with pytest.raises(ImageError) as exc:
        read_image(huge)
    check_error(exc, huge, "image too large", "decompression-bomb")


def test_gif_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    Image.new("P", (4, 4)).save(path)
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "unsupported image format GIF", "JPEG, PNG, WebP, TIFF, BMP")
    with pytest.raises(ImageError) as exc:
        image_size(path)
    check_error(exc, path, "unsupported image format GIF")


def test_gif_named_png_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "disguised.png"
    Image.new("P", (4, 4)).save(path, format="GIF")
    with pytest.raises(ImageError) as exc:
        read_image(path)
    check_error(exc, path, "unsupported image format GIF")


# --------------------------------------------------------------------------------------------- writing


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_leaves_no_temp_files(tmp_path: Path) -> None:
    for suffix in sorted(SUPPORTED_SUFFIXES):
        write_image(noise(), tmp_path / f"out{suffix}")
    assert _leftovers(tmp_path) == []
    assert len(list(tmp_path.iterdir())) == len(SUPPORTED_SUFFIXES)


def test_write_replaces_existing_file(tmp_path: Path) -> None:
    path = write_image(noise(seed=1), tmp_path / "a.png")
    write_image(noise(seed=2), path)
    assert torch.allclose(read_image(path), noise(seed=2), atol=TOL)
    assert _leftovers(tmp_path) == []


def test_write_failure_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(noise(seed=1), tmp_path / "a.png")
    before = path.read_bytes()
    seen: list[str] = []

    def failing_fsync(fd: int) -> None:
        seen.extend(_leftovers(tmp_path))
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(ImageError) as exc:
        write_image(noise(seed=2), path)
    check_error(exc, path, "cannot write image", "disk full")
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    assert len(seen) == 1 and seen[0].startswith(".a.png.")  # the temp file existed while writing


def test_encode_failure_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        raise OSError("encoder broke")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(ImageError) as exc:
        write_image(noise(seed=2), tmp_path / "b.png")
    check_error(exc, tmp_path / "b.png", "cannot encode image", "encoder broke")
    assert _leftovers(tmp_path) == [] and not (tmp_path / "b.png").exists()


def test_write_unsupported_suffix(tmp_path: Path) -> None:
    for name in ("out.gif", "out.txt", "noext"):
        path = tmp_path / name
        with pytest.raises(ImageError) as exc:
            write_image(noise(), path)
        check_error(exc, path, "unsupported output format")
    assert list(tmp_path.iterdir()) == []


def test_write_bad_tensor_and_quality(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    with pytest.raises(ImageError) as exc:
        write_image(torch.zeros(4, 2, 2), path)
    check_error(exc, path, "cannot write image")
    with pytest.raises(ParameterError):
        write_image(noise(), tmp_path / "a.jpg", quality=0)
    assert list(tmp_path.iterdir()) == []


def test_write_into_a_file_as_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = blocker / "a.png"
    with pytest.raises(ImageError) as exc:
        write_image(noise(), path)
    check_error(exc, path, "cannot write image")
