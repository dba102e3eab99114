"""benchmarks/quality: per-pair rows (with the grid measures) are cached, reused and completed."""

from __future__ import annotations

import json

import pytest

from benchmarks import quality
from stylecore.imageio import read_image, write_image
from tests.conftest import needs_hed, synthetic_image


@needs_hed
def test_run_method_caches_pairs_and_completes_rows_without_a_grid_score(tmp_path):
    pairs = []
    for i in range(2):
        content, style = tmp_path / f"c{i}.png", tmp_path / f"s{i}.png"
        write_image(synthetic_image(96, 128, seed=i), content)
        write_image(synthetic_image(80, 80, seed=10 + i), style)
        pairs.append((content, style))
    out = tmp_path / "q"
    first = quality.run_method("adain", None, pairs, 128, 0, out)
    assert first["pairs"] == 2 and first["grid"] > 0 and first["weights"] == "adain-vgg16hed"
    rows = sorted((out / "adain").glob("*.json"))
    measures = {"grid", "grid_amp", "peaks"}
    assert len(rows) == 2 and all(measures <= json.loads(p.read_text()).keys() for p in rows)

    # a row written before the grid measures existed: they come from the saved output, nothing reruns
    old = json.loads(rows[0].read_text())
    rows[0].write_text(json.dumps({k: v for k, v in old.items() if k not in ("grid", "grid_amp")}))
    old_peaks = json.loads(rows[1].read_text())
    rows[1].write_text(json.dumps({k: v for k, v in old_peaks.items() if k != "peaks"}))
    picture = rows[0].with_suffix(".png")
    before = picture.stat().st_mtime_ns
    again = quality.run_method("adain", None, pairs, 128, 0, out)
    assert picture.stat().st_mtime_ns == before
    # measured on the saved 8-bit PNG (the ratio differs from the float output's: on a smooth
    # output the quantisation noise is much of its floor), so compare with exactly that
    completed = json.loads(rows[0].read_text())
    assert completed == {**old, **quality.grid_measures(read_image(picture))}
    assert completed["grid_amp"] == pytest.approx(old["grid_amp"], abs=0.1)
    assert again["f_c"] == first["f_c"] and again["f_s"] == first["f_s"]
    assert json.loads(rows[1].read_text())["peaks"] == pytest.approx(old_peaks["peaks"], abs=0.5)
