"""The output store: images, per-chunk metrics parts, consolidated ``metrics.parquet`` and run records.

Layout under the root (a local folder, or any fsspec URL)::

    <job>/<content>__<style>__<method>-<hash>.jpg    stylized images (deterministic names)
    metrics.parquet                                  one row per output, rebuilt after every run
    _metrics/<run id>/<chunk>-<n>.parquet            rows as they are produced (crash-safe parts)
    _runs/<run id>/record.json, manifest.yaml        what ran: manifest copy, versions, checksums, counts

Every file is written atomically (temporary name, then rename), so a killed run leaves no
half-written file. An output counts as done when its image exists *and* a metrics row without error
records it; a re-run redoes everything else and the consolidation keeps one row per output.
"""

from __future__ import annotations

import io
import json
import posixpath
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from stylecore.fsio import atomic_write_bytes

METRICS_COLUMNS = {
    "run_id": pa.string(),
    "job": pa.string(),
    "output": pa.string(),
    "content": pa.string(),
    "style": pa.string(),
    "method": pa.string(),
    "params": pa.string(),
    "weights": pa.string(),
    "weights_sha256": pa.string(),
    "encoder": pa.string(),
    "f_c": pa.float64(),
    "f_s": pa.float64(),
    "ssim": pa.float64(),
    "style_loss": pa.float64(),  # mesh jobs: final StyleMesh losses
    "content_loss": pa.float64(),
    "seconds": pa.float64(),
    "device": pa.string(),
    "error": pa.string(),
    "finished_at": pa.string(),
}
SCHEMA = pa.schema(list(METRICS_COLUMNS.items()))


class OutputStore:
    def __init__(self, root: str) -> None:
        self.url = root
        self.fs, self.root = fsspec.core.url_to_fs(root)

    def path(self, rel: str) -> str:
        rel = posixpath.normpath(rel)
        if rel.startswith("..") or posixpath.isabs(rel):
            raise ValueError(f"{rel!r} would escape the output root")
        return posixpath.join(self.root, rel)

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Atomic: write a hidden temporary sibling, then rename it over the target (on a local disk
        through :func:`stylecore.fsio.atomic_write_bytes`, elsewhere through fsspec)."""
        target = self.path(rel)
        if isinstance(self.fs, LocalFileSystem):
            atomic_write_bytes(target, data)
            return
        parent, name = posixpath.split(target)
        self.fs.makedirs(parent, exist_ok=True)
        tmp = posixpath.join(parent, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with self.fs.open(tmp, "wb") as fh:
                fh.write(data)
            self.fs.mv(tmp, target)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open(self.path(rel), "rb") as fh:
            return fh.read()

    def temp_files(self) -> list[str]:
        """Leftover temporary files (there should be none)."""
        return [p for p in self.fs.find(self.root) if posixpath.basename(p).endswith(".tmp")]

    # ---- metrics -------------------------------------------------------------------------------------

    def write_metrics_part(self, run_id: str, chunk: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        table = pa.Table.from_pylist([{k: r.get(k) for k in METRICS_COLUMNS} for r in rows], schema=SCHEMA)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        self.write_bytes(f"_metrics/{run_id}/{chunk}-{uuid.uuid4().hex[:8]}.parquet", buf.getvalue())

    def read_parts(self) -> pa.Table:
        parts = sorted(p for p in self.fs.glob(self.path("_metrics/*/*.parquet")))
        tables = []
        for p in parts:
            with self.fs.open(p, "rb") as fh:
                t = pq.read_table(fh)
            for name, typ in METRICS_COLUMNS.items():  # parts written before a column existed
                if name not in t.column_names:
                    t = t.append_column(name, pa.nulls(len(t), typ))
            tables.append(t.select(list(METRICS_COLUMNS)).cast(SCHEMA))
        return pa.concat_tables(tables) if tables else SCHEMA.empty_table()

    def latest_rows(self) -> dict[str, dict[str, Any]]:
        """One row per output: the most recent one (by finish time)."""
        rows = sorted(self.read_parts().to_pylist(), key=lambda r: r["finished_at"] or "")
        return {r["output"]: r for r in rows}

    def completed(self) -> set[str]:
        """Outputs whose latest row has no error and whose image exists."""
        return {out for out, row in self.latest_rows().items() if row["error"] is None and self.exists(out)}

    def consolidate(self) -> int:
        """Rewrite ``metrics.parquet`` with one row per output; returns the row count."""
        rows = sorted(self.latest_rows().values(), key=lambda r: (r["job"], r["output"]))
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buf)
        self.write_bytes("metrics.parquet", buf.getvalue())
        return len(rows)

    def write_json(self, rel: str, data: Any) -> None:
        self.write_bytes(rel, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())
