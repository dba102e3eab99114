"""The output store: atomic writes, completion rule, one metrics row per output, no escaping the root."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from flows.store import OutputStore


def row(output: str, error: str | None = None, t: str = "2026-01-01T00:00:00", f_c: float = 1.0) -> dict:
    return {
        "run_id": "r",
        "job": "j",
        "output": output,
        "content": "c",
        "style": "s",
        "method": "adain",
        "params": "{}",
        "f_c": f_c,
        "f_s": 2.0,
        "seconds": 0.1,
        "device": "cpu",
        "error": error,
        "finished_at": t,
    }


@pytest.mark.parametrize("root", ["local", "memory://stylepipe-test"])
def test_completion_and_consolidation(tmp_path, root):
    store = OutputStore(str(tmp_path / "out") if root == "local" else root)
    store.write_bytes("j/a.jpg", b"a")
    store.write_bytes("j/b.jpg", b"b")
    store.write_metrics_part("run1", "j-0000", [row("j/a.jpg"), row("j/b.jpg", error="boom"), row("j/c.jpg")])
    # a: image + clean row -> done; b: row has an error; c: row but no image (killed between) -> not done
    assert store.completed() == {"j/a.jpg"}
    store.write_metrics_part("run2", "j-0000", [row("j/b.jpg", t="2026-01-02T00:00:00", f_c=5.0)])
    assert store.completed() == {"j/a.jpg", "j/b.jpg"}
    assert store.consolidate() == 3
    rows = pq.read_table(store.fs.open(store.path("metrics.parquet"), "rb")).to_pylist()
    assert sorted(r["output"] for r in rows) == ["j/a.jpg", "j/b.jpg", "j/c.jpg"]
    assert next(r for r in rows if r["output"] == "j/b.jpg")["f_c"] == 5.0  # the latest row wins
    assert store.temp_files() == []
    if root != "local":
        store.fs.rm(store.root, recursive=True)


@pytest.mark.parametrize("bad", ["../x.jpg", "/etc/x.jpg", "j/../../x.jpg"])
def test_paths_cannot_escape(tmp_path, bad):
    with pytest.raises(ValueError, match="escape"):
        OutputStore(str(tmp_path)).write_bytes(bad, b"x")
