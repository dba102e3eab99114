"""A minimal binary glTF 2.0 writer for tests: one textured triangle mesh with an embedded PNG.

open3d cannot write textured GLB files (its writer drops UVs and textures), so the GLB reading path is
tested with files made here, to the glTF 2.0 specification: per-corner vertices, TEXCOORD_0 with the
origin at the image's top-left (glTF) rather than bottom-left (OBJ).
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def write_glb(
    path: Path, vertices: np.ndarray, triangles: np.ndarray, corner_uvs_obj: np.ndarray, texture: np.ndarray
) -> Path:
    """``corner_uvs_obj``: (F, 3, 2) UVs in the OBJ convention (v up); ``texture``: (H, W, 3) uint8."""
    positions = vertices[triangles].reshape(-1, 3).astype(np.float32)
    uvs = corner_uvs_obj.reshape(-1, 2).astype(np.float32).copy()
    uvs[:, 1] = 1.0 - uvs[:, 1]  # glTF: v grows downwards from the top-left
    indices = np.arange(len(positions), dtype=np.uint32)
    png = io.BytesIO()
    Image.fromarray(texture).save(png, format="PNG")
    blobs = [positions.tobytes(), uvs.tobytes(), indices.tobytes(), png.getvalue()]
    views, offset, binary = [], 0, b""
    for i, blob in enumerate(blobs):
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(blob)}
        if i < 3:
            view["target"] = 34963 if i == 2 else 34962
        views.append(view)
        binary += _pad(blob, b"\0")
        offset = len(binary)
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [
            {"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2, "material": 0}]}
        ],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
        "textures": [{"source": 0}],
        "images": [{"bufferView": 3, "mimeType": "image/png"}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": views,
        "accessors": [
            {
                "bufferView": 0, "componentType": 5126, "count": len(positions), "type": "VEC3",
                "min": positions.min(0).tolist(), "max": positions.max(0).tolist(),
            },
            {"bufferView": 1, "componentType": 5126, "count": len(uvs), "type": "VEC2"},
            {"bufferView": 2, "componentType": 5125, "count": len(indices), "type": "SCALAR"},
        ],
    }  # fmt: skip
    chunk_json = _pad(json.dumps(doc).encode(), b" ")
    body = struct.pack("<II", len(chunk_json), 0x4E4F534A) + chunk_json
    body += struct.pack("<II", len(binary), 0x004E4942) + binary
    path.write_bytes(struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body)
    return path
