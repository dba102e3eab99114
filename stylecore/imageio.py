"""Image decoding and encoding: the only module of stylecore that touches image files.

Everything inside stylecore works on float32 tensors ``(3, H, W)`` in ``[0, 1]`` (RGB, sRGB values as
stored); this module turns files and :class:`PIL.Image.Image` objects into that form and back. Every
problem with a file (missing, empty, not an image, truncated, too large, unsupported format, write
failure) becomes an :class:`~stylecore.errors.ImageError` naming the file and a plain reason.

Pillow's global settings (``MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``) are never changed:
the decompression-bomb limit is a per-call argument and truncation is detected by loading eagerly.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from stylecore.errors import ImageError, ParameterError
from stylecore.fsio import atomic_write_bytes

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_SUFFIXES",
    "encode_image",
    "from_pil",
    "image_size",
    "read_image",
    "read_mask",
    "resize_max_side",
    "to_pil",
    "write_image",
]

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})
DEFAULT_MAX_PIXELS: int = 89_478_485  # Pillow's own default for Image.MAX_IMAGE_PIXELS

# Decoded formats accepted, judged by content (Pillow's ``im.format``), not by the file suffix.
# MPO is what Pillow calls the multi-picture JPEGs many phones and cameras write.
_READ_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP"})
_SUPPORTED_NAMES = "JPEG, PNG, WebP, TIFF, BMP"
_WRITE_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
_UINT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_ORIENTATION = ExifTags.Base.Orientation
_MAX_REASON_CHARS = 200


# --------------------------------------------------------------------------------------------- reading


def read_image(
    path: str | Path, *, max_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> torch.Tensor:
    """Decode an image file into a float32 tensor (3, H, W) RGB in [0, 1].

    EXIF orientation is applied; transparency is composited over white; grayscale is repeated over
    the three channels; 16/32-bit integer images are scaled by their bit depth. With ``max_side`` the
    image is downscaled (Lanczos, never upscaled) so its longest side is at most ``max_side``.

    ``max_pixels`` bounds width * height as read from the header, before any pixel is decoded. Pillow's
    own guard still refuses images over twice its global ``MAX_IMAGE_PIXELS``, whatever ``max_pixels``.
    """
    if max_side is not None and max_side < 1:
        raise ParameterError(f"max_side must be >= 1, got {max_side}")
    if max_pixels < 1:
        raise ParameterError(f"max_pixels must be >= 1, got {max_pixels}")
    with _open(path, max_pixels=max_pixels) as im, _decoding(path):
        if max_side is not None and im.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the target): far less work
            # for large photos; the exact Lanczos resize below does the rest.
            im.draft(None, _fit_size(im.size, max_side))
        im.load()
        im = _exif_transpose(im)
        arr = _to_array(im, max_side)
    return _array_to_tensor(arr)


def read_mask(path: str | Path, *, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode an image file as a mask: float32 tensor (1, H, W) in [0, 1] (luminance; alpha ignored).

    ``size`` is ``(H, W)``; the mask is resized with nearest-neighbour so hard edges stay hard.
    """
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ParameterError(f"mask size must be (H, W) with both >= 1, got {size}")
    with _open(path, max_pixels=DEFAULT_MAX_PIXELS) as im, _decoding(path):
        im.load()
        im = _exif_transpose(im)
        # High-depth masks keep their precision instead of being clipped to 8 bits by convert("L").
        gray = _high_depth_gray(im) if _is_high_depth(im) else im.convert("L")
        if size is not None and gray.size != (size[1], size[0]):
            gray = gray.resize((size[1], size[0]), Image.Resampling.NEAREST)
        arr = np.array(gray)
    t = torch.from_numpy(arr).to(torch.float32)
    if arr.dtype == np.uint8:
        t = t.div_(255.0)
    return t.clamp_(0.0, 1.0).unsqueeze(0).contiguous()


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(width, height)`` as :func:`read_image` would see it (after EXIF orientation).

    Only the header is read, so no pixel limit applies (beyond Pillow's own hard guard).
    """
    with _open(path, max_pixels=None) as im, _decoding(path):
        w, h = im.size
        if _orientation(im, load_allowed=False) in (5, 6, 7, 8):  # the four orientations that turn 90°
            w, h = h, w
    return w, h


def from_pil(im: Image.Image) -> torch.Tensor:
    """Convert a PIL image of any mode to a float32 tensor (3, H, W) in [0, 1], as :func:`read_image`.

    Only the mode is normalised: EXIF orientation is the caller's business for in-memory images.
    """
    return _array_to_tensor(_to_array(im, None))


# --------------------------------------------------------------------------------------------- tensors


def resize_max_side(img: torch.Tensor, max_side: int) -> torch.Tensor:
    """Downscale (..., C, H, W) so the longest side equals ``max_side``; smaller images are returned as is.

    The aspect ratio is kept (sizes rounded, at least 1); resampling is antialiased bilinear.
    """
    if max_side < 1:
        raise ParameterError(f"max_side must be >= 1, got {max_side}")
    if img.dim() < 3:
        raise ParameterError(f"expected an image tensor (..., C, H, W), got shape {tuple(img.shape)}")
    h, w = img.shape[-2:]
    if max(h, w) <= max_side:
        return img
    new_w, new_h = _fit_size((w, h), max_side)
    lead = img.shape[:-2]
    flat = img.reshape(-1, *img.shape[-3:]) if img.dim() != 4 else img
    src = flat if flat.is_floating_point() else flat.float()
    out = F.interpolate(src, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    return out.reshape(*lead, new_h, new_w)


def to_pil(img: torch.Tensor) -> Image.Image:
    """Convert a float tensor (3, H, W) or (1, 3, H, W) in [0, 1] to an RGB uint8 PIL image.

    Values are clamped to [0, 1] (NaN -> 0) and rounded. A uint8 tensor is taken as already 0..255.
    """
    if img.dim() == 4 and img.shape[0] == 1:
        img = img[0]
    if img.dim() != 3 or img.shape[0] != 3:
        raise ParameterError(f"expected a tensor of shape (3, H, W) or (1, 3, H, W), got {tuple(img.shape)}")
    img = img.detach().cpu()
    if img.dtype != torch.uint8:
        img = torch.nan_to_num(img.float(), nan=0.0).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return Image.fromarray(img.permute(1, 2, 0).contiguous().numpy())


# --------------------------------------------------------------------------------------------- writing


def encode_image(
    img: torch.Tensor, suffix: str, *, quality: int = 95, name: str | Path = "<memory>"
) -> bytes:
    """Encode ``img`` (3, H, W) / (1, 3, H, W) in [0, 1] to the bytes of a ``suffix`` file (``.jpg`` ...).

    ``quality`` (1..100) applies to JPEG and WebP. ``name`` only labels errors.
    """
    fmt = _WRITE_FORMATS.get(suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ImageError(
            name, f"unsupported output format {suffix or '(no suffix)'} (supported: {supported})"
        )
    if not 1 <= quality <= 100:
        raise ParameterError(f"quality must be in 1..100, got {quality}")
    try:
        im = to_pil(img)
    except ParameterError as exc:
        raise ImageError(name, f"cannot write image: {exc}") from exc

    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": quality}
        if quality >= 90:
            options["subsampling"] = 0  # 4:4:4: chroma subsampling visibly smears stylised edges
    elif fmt == "WEBP":
        options = {"quality": quality}
    elif fmt == "PNG":
        options = {"optimize": False}  # optimize costs many seconds on large images for ~few % size
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt, **options)
    except Exception as exc:
        raise ImageError(name, f"cannot encode image ({_reason(exc)})") from exc
    return buf.getvalue()


def write_image(img: torch.Tensor, path: str | Path, *, quality: int = 95) -> Path:
    """Encode ``img`` (3, H, W) / (1, 3, H, W) in [0, 1] to ``path``, atomically; return the path.

    The format follows the suffix. The data goes to a hidden temporary file in the same directory,
    is fsynced, then renamed over ``path``, so readers never see a half-written image and a failure
    leaves any previous file untouched.
    """
    path = Path(path)
    data = encode_image(img, path.suffix, quality=quality, name=path)
    try:
        atomic_write_bytes(path, data)
    except Exception as exc:
        raise ImageError(path, f"cannot write image ({_reason(exc)})") from exc
    return path


# --------------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _open(path: str | Path, *, max_pixels: int | None) -> Iterator[Image.Image]:
    """Open ``path`` with Pillow (header only), checking everything that can be checked before decoding."""
    _check_file(path)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    # Turn Pillow's bomb warning into an error locally; when the caller allows more than Pillow's
    # global limit, silence it instead since the check below is then the authoritative one.
    strict = max_pixels is not None and (pillow_limit is None or max_pixels <= pillow_limit)
    with warnings.catch_warnings():
        warnings.simplefilter("error" if strict else "ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(path, f"image too large: {_reason(exc)} (decompression-bomb guard)") from exc
        except UnidentifiedImageError as exc:
            raise ImageError(path, "not a recognised image (cannot identify image file)") from exc
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ImageError(path, "file not found") from exc
        except IsADirectoryError as exc:
            raise ImageError(path, "is a directory, not an image file") from exc
        except PermissionError as exc:
            raise ImageError(path, "cannot read file: permission denied") from exc
        except Exception as exc:  # a plugin recognised the format but choked on the header
            raise ImageError(path, f"truncated or corrupt image data ({_reason(exc)})") from exc
        with im:
            if im.format not in _READ_FORMATS:
                reason = f"unsupported image format {im.format} (supported: {_SUPPORTED_NAMES})"
                raise ImageError(path, reason)
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                raise ImageError(
                    path,
                    f"image too large: {w} x {h} = {w * h} pixels exceeds the limit of {max_pixels} "
                    "(decompression-bomb guard)",
                )
            yield im


def _check_file(path: str | Path) -> None:
    """Give the plain reasons for files that Pillow would report confusingly (or block on)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ImageError(path, "file not found") from exc
    except PermissionError as exc:
        raise ImageError(path, "cannot read file: permission denied") from exc
    except (OSError, ValueError) as exc:
        raise ImageError(path, f"cannot read file ({_reason(exc)})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(path, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise ImageError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")


@contextlib.contextmanager
def _decoding(path: str | Path) -> Iterator[None]:
    """Map whatever Pillow raises while decoding (OSError, SyntaxError, zlib.error, ...) to ImageError."""
    try:
        yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(path, f"image too large: {_reason(exc)} (decompression-bomb guard)") from exc
    except MemoryError as exc:
        raise ImageError(path, "not enough memory to decode the image") from exc
    except Exception as exc:
        raise ImageError(path, f"truncated or corrupt image data ({_reason(exc)})") from exc


def _orientation(im: Image.Image, *, load_allowed: bool) -> int:
    # PNG's getexif() decodes the whole image to find a trailing eXIf chunk; for a header-only
    # query use what the header gave us.
    if not load_allowed and im.format == "PNG":
        raw = im.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
    else:
        exif = im.getexif()
    value = exif.get(_ORIENTATION, 1)
    return value if isinstance(value, int) else 1


def _exif_transpose(im: Image.Image) -> Image.Image:
    # exif_transpose copies the image even when nothing is to be done; skip it in the common case.
    if _orientation(im, load_allowed=True) == 1:
        return im
    return ImageOps.exif_transpose(im)


def _to_array(im: Image.Image, max_side: int | None) -> np.ndarray:
    """Normalise any mode to RGB/L uint8 (H, W[, 3]) or float32 gray (H, W) in [0, 1], resized if asked."""
    if _is_high_depth(im):
        out: Image.Image = _high_depth_gray(im)  # mode "F", already scaled to [0, 1]
    elif im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(white, rgba).convert("RGB")
    elif im.mode == "1":
        out = im.convert("L")
    elif im.mode in ("L", "RGB"):
        out = im
    else:  # P, CMYK, YCbCr, LAB, HSV, RGBX, ...
        out = im.convert("RGB")
    if max_side is not None and max(out.size) > max_side:
        out = out.resize(_fit_size(out.size, max_side), Image.Resampling.LANCZOS)
    return np.array(out)


def _is_high_depth(im: Image.Image) -> bool:
    return im.mode in _UINT16_MODES or im.mode in ("I", "F")


def _high_depth_gray(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float grayscale -> mode "F" scaled to [0, 1] by its bit depth."""
    if im.mode in _UINT16_MODES:
        arr = np.asarray(im).astype(np.float32) / 65535.0
    elif im.mode == "I":
        # Pillow opens some 16-bit files as 32-bit "I": values that fit in 16 bits are 16-bit data.
        ints = np.asarray(im)
        peak = int(ints.max(initial=0))
        arr = ints.astype(np.float64) / (65535.0 if peak <= 65535 else 2.0**31 - 1)
    else:  # "F": usually already [0, 1]; otherwise assume 8- or 16-bit value ranges
        arr = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        peak = float(arr.max(initial=0.0))
        arr = arr / (1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0)
    return Image.fromarray(np.clip(arr, 0.0, 1.0).astype(np.float32))


def _array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(arr).to(torch.float32)
    # uint8 data is 0..255; float data is already [0, 1] up to Lanczos overshoot.
    t = t.div_(255.0) if arr.dtype == np.uint8 else t.clamp_(0.0, 1.0)
    if t.dim() == 2:
        return t.unsqueeze(0).expand(3, -1, -1).contiguous()
    return t.permute(2, 0, 1).contiguous()


def _fit_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(w, h) scaled so the longest side is ``max_side`` (never up), rounded, at least 1."""
    w, h = size
    longest = max(w, h)
    if longest <= max_side:
        return w, h
    scale = max_side / longest
    return max(1, round(w * scale)), max(1, round(h * scale))


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"
