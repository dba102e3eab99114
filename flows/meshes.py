"""Running one mesh item of a ``mesh`` job in a worker process: StyleMesh, outputs, a metrics row.

Plain Python (no Prefect), like :mod:`flows.chunks`; :mod:`flows.pipeline` wraps it in a task per
item (a mesh is minutes of work, so one item is already a good task size). Outputs are rendered into
a local temporary folder and then written through the store, the OBJ last: an OBJ in the store means
its MTL, texture and previews are there too.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from flows.manifest import MeshJobSpec
from flows.store import OutputStore
from stylecore.device import resolve_device
from stylecore.errors import StyleCoreError
from stylecore.imageio import encode_image, read_image
from stylecore.models import load_encoder
from stylecore.nets.encoder import VGGEncoder
from stylecore.runner import WorkItem


@lru_cache(maxsize=2)
def encoder_for(name: str, device: str) -> VGGEncoder:
    return load_encoder(name, device=device)


def run_mesh_item(
    job: MeshJobSpec,
    item: WorkItem,
    *,
    root: str,
    run_id: str,
    device: str,
    cache_dir: str | None = None,
    on_progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Stylize one mesh with one style; write OBJ/MTL/PNG + turntable + before/after; return a summary."""
    from stylecore.mesh import MeshStyleConfig, before_after, load_mesh, stylize_mesh, turntable, write_obj

    dev = str(resolve_device(device))
    store = OutputStore(root)
    out = PurePosixPath(item.output.as_posix())
    mesh_path, style_path = item.content, item.styles[0]
    start = time.monotonic()
    error, losses = None, {}
    try:
        cfg = MeshStyleConfig.model_validate({**job.params, "styles": [style_path], "device": dev})
        encoder = encoder_for(cfg.encoder, dev)
        mesh = load_mesh(mesh_path)
        style = read_image(style_path)

        def progress(step: int, terms: dict[str, float]) -> None:
            if on_progress:
                on_progress(step, cfg.iterations, terms)

        result = stylize_mesh(
            mesh, cfg, style_images=[style], encoder=encoder, cache_dir=cache_dir, on_progress=progress
        )
        losses = result.losses
        with tempfile.TemporaryDirectory() as tmp:
            obj = write_obj(mesh, result.texture, tmp, out.stem)
            views, size = job.turntable_views, job.preview_size
            previews = {
                "turntable.png": turntable(mesh, result.texture, n=views, size=size),
                "before_after.png": before_after(
                    mesh, result.texture, style=style, n=min(views, 4), size=size
                ),
            }
            for name, image in previews.items():
                store.write_bytes(str(out.parent / name), encode_image(image, ".png", name=name))
            for suffix in (".png", ".mtl", ".obj"):  # the OBJ last: it marks the set complete
                store.write_bytes(str(out.with_suffix(suffix)), obj.with_suffix(suffix).read_bytes())
    except StyleCoreError as exc:
        error = str(exc)
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        error = f"{mesh_path}: {exc}"
    seconds = time.monotonic() - start
    row = {
        "run_id": run_id,
        "job": job.name,
        "output": str(out),
        "content": str(mesh_path),
        "style": str(style_path),
        "method": "stylemesh",
        "params": json.dumps(job.params, sort_keys=True),
        "weights": None,
        "weights_sha256": None,
        "encoder": job.params.get("encoder", "vgg16-hed"),
        "style_loss": losses.get("style"),
        "content_loss": losses.get("content"),
        "seconds": seconds,
        "device": dev,
        "error": error,
        "finished_at": datetime.now(UTC).isoformat(),
    }
    store.write_metrics_part(run_id, f"{job.name}-{out.parent.name}", [row])
    return {
        "chunk": out.parent.name,
        "job": job.name,
        "items": 1,
        "done": 0 if error else 1,
        "failed": [{"output": str(out), "content": str(mesh_path), "error": error}] if error else [],
        "seconds": seconds,
        "weights": None,
        "weights_sha256": None,
    }
