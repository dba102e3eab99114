"""Dataset augmentation: deterministic choices, dataset scanning, augment-job planning, StyleAugment."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from flows.manifest import ManifestError, load_manifest, plan
from stylecore.augment import StyleAugment, check_alpha, draw, scan_dataset, select
from stylecore.errors import ParameterError
from stylecore.imageio import read_image, write_image
from stylecore.methods import get_method
from stylecore.runner import ImageRunner, WorkItem
from tests.conftest import synthetic_image

CLASSES = {"cat": 4, "dog": 3, "fox": 5}


def image_folder(root: Path, classes: dict[str, int] = CLASSES) -> Path:
    for k, (label, n) in enumerate(classes.items()):
        for i in range(n):
            sub = "nested/" if i == 0 else ""  # ImageFolder finds images in sub-folders of a class too
            write_image(
                synthetic_image(32, 40, seed=10 * k + i), root / "data" / label / f"{sub}{label}{i}.png"
            )
    return root / "data"


def style_pool(root: Path, n: int = 3) -> None:
    for i in range(n):
        write_image(synthetic_image(40, 40, seed=90 + i).flip(0), root / "styles" / f"s{i}.png")


def augment_manifest(root: Path, **job) -> Path:
    spec = {
        "kind": "augment",
        "name": "aug",
        "source": "data",
        "styles": ["styles"],
        "method": "gatys",
        "per_image": 2,
        "fraction": 0.5,
        "alpha": [0.3, 0.9],
        "format": "png",
        **job,
    }
    path = root / "m.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "output": "out", "jobs": [spec]}))
    return path


# ---- deterministic choices --------------------------------------------------------------------------------


def test_draw_is_a_function_of_seed_key_and_copy():
    a = draw(0, "cat/a.png", 0, 5, (0.2, 0.8))
    assert a == draw(0, "cat/a.png", 0, 5, (0.2, 0.8))
    assert 0 <= a[0] < 5 and 0.2 <= a[1] <= 0.8
    draws = {draw(s, "cat/a.png", c, 5, (0.0, 1.0)) for s in range(5) for c in range(4)}
    assert len(draws) > 10  # seeds and copies change the draw
    styles = Counter(draw(0, f"k{i}", 0, 4, (1.0, 1.0))[0] for i in range(400))
    assert set(styles) == {0, 1, 2, 3} and min(styles.values()) > 60  # roughly uniform


def test_select_takes_the_fraction_of_every_class_stably():
    keys = {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(3)]}
    half = select(keys, 0.5, seed=1)
    assert sum(k.startswith("a") for k in half) == 5 and sum(k.startswith("b") for k in half) == 2
    assert half <= select(keys, 0.8, seed=1)  # a larger fraction keeps the earlier choices
    assert select(keys, 0.01, seed=1) and len(select(keys, 1.0, seed=1)) == 13
    assert half != select(keys, 0.5, seed=2)
    with pytest.raises(ParameterError):
        select(keys, 0.0, seed=1)


@pytest.mark.parametrize("bad", [1.5, -0.1, (0.8, 0.2), (0.1,), "x"])
def test_check_alpha_rejects_bad_values(bad):
    with pytest.raises(ParameterError, match="alpha"):
        check_alpha(bad)


# ---- datasets ---------------------------------------------------------------------------------------------


def test_scan_image_folder(tmp_path):
    root = image_folder(tmp_path)
    (root / "stray.png").write_bytes(b"")  # top-level files belong to no class: left out
    images, problems = scan_dataset(root)
    assert problems == []
    assert Counter(i.label for i in images) == CLASSES
    assert "cat/nested/cat0.png" in {i.rel for i in images}


def test_scan_reports_empty_classes_and_bad_sources(tmp_path):
    root = image_folder(tmp_path)
    (root / "empty").mkdir()
    assert any("empty: class folder holds no images" in p for p in scan_dataset(root)[1])
    assert "not found" in scan_dataset(tmp_path / "nope")[1][0]
    flat = tmp_path / "flat"
    flat.mkdir()
    assert "no class folders" in scan_dataset(flat)[1][0]


def test_scan_csv_and_parquet_lists(tmp_path):
    image_folder(tmp_path)
    csv = tmp_path / "data" / "list.csv"
    csv.write_text("path,label\ncat/cat1.png,0\ndog/dog1.png,1\nmissing.png,1\n")
    images, problems = scan_dataset(csv)
    assert [(i.rel, i.label) for i in images] == [("cat/cat1.png", "0"), ("dog/dog1.png", "1")]
    assert problems == [f"{csv}:4: file not found: {csv.parent / 'missing.png'}"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": ["fox/fox2.png"], "label": ["fox"]}), tmp_path / "data" / "l.parquet")
    assert [i.rel for i in scan_dataset(tmp_path / "data" / "l.parquet")[0]] == ["fox/fox2.png"]
    (tmp_path / "data" / "bad.csv").write_text("file,class\na,b\n")
    assert "missing column(s) label, path" in scan_dataset(tmp_path / "data" / "bad.csv")[1][0]


# ---- planning ---------------------------------------------------------------------------------------------


def test_augment_plan_mirrors_the_layout_with_per_image_copies(tmp_path):
    image_folder(tmp_path)
    style_pool(tmp_path)
    path = augment_manifest(tmp_path)
    (job,) = plan(load_manifest(path), path).jobs
    expected = sum(max(1, round(0.5 * n)) for n in CLASSES.values()) * 2
    assert len(job.items) == len(job.labels) == expected == 12
    for item, row in zip(job.items, job.labels, strict=True):
        assert item.output.as_posix() == f"aug/{row['path']}"
        assert row["path"].startswith(f"{row['label']}/") and row["path"].endswith(f"__st{row['copy']}.png")
        assert item.content == tmp_path / "data" / row["source"]
        assert item.styles[0].name == row["style"] and dict(item.params)["alpha"] == row["alpha"]
        assert 0.3 <= row["alpha"] <= 0.9
    again = plan(load_manifest(path), path).jobs[0]
    assert again.items == job.items  # deterministic


def test_augment_plan_problems_are_located(tmp_path):
    image_folder(tmp_path)
    path = augment_manifest(tmp_path, source="nodata", styles=["nostyles/*.png"], params={"alpha": 0.5})
    with pytest.raises(ManifestError) as exc:
        plan(load_manifest(path), path)
    text = "\n".join(exc.value.problems)
    assert "jobs[0].source:" in text and "nodata: not found" in text
    assert "jobs[0].styles[0]: no files match" in text
    assert "jobs[0].params.alpha: set alpha on the job itself" in text
    bad = augment_manifest(tmp_path, alpha=[0.9, 0.1])
    with pytest.raises(ManifestError, match=r"jobs\[0\]\.alpha"):
        load_manifest(bad)


def test_changed_settings_are_refused_for_an_existing_job_folder(tmp_path):
    image_folder(tmp_path)
    style_pool(tmp_path)
    path = augment_manifest(tmp_path)
    from flows.manifest import augment_settings
    from flows.store import OutputStore

    m = load_manifest(path)
    styles = sorted((tmp_path / "styles").glob("*.png"))
    OutputStore(str(tmp_path / "out")).write_json(
        "aug/augment.json", augment_settings(m.jobs[0], tmp_path, styles)
    )
    plan(m, path)  # same settings: fine
    changed = augment_manifest(tmp_path, per_image=3, seed=7)
    with pytest.raises(ManifestError, match=r"other settings \(changed: per_image, seed\)"):
        plan(load_manifest(changed), changed)


# ---- per-sample stylization and StyleAugment --------------------------------------------------------------


@pytest.fixture(scope="module")
def adain(random_encoder):
    return get_method("adain").random(random_encoder, seed=3)


def test_stylize_each_matches_one_call_per_sample(adain, style_images):
    content = torch.stack([synthetic_image(32, 48, seed=s) for s in (1, 2)])
    codes = [adain.encode_style(s) for s in style_images]
    both = adain.stylize_each(content, codes, alphas=[0.4, 1.0])
    one = adain.stylize(content[:1], codes[0], params={"alpha": 0.4})
    two = adain.stylize(content[1:], codes[1], params={"alpha": 1.0})
    torch.testing.assert_close(both, torch.cat([one, two]), atol=1e-4, rtol=1e-4)
    with pytest.raises(ParameterError, match="one style per sample"):
        adain.stylize_each(content, codes[:1])


def test_runner_batches_items_with_different_styles_and_alphas(adain, tmp_path):
    for i in range(4):
        write_image(synthetic_image(32, 32, seed=i), tmp_path / f"c{i}.png")
    for i in range(2):
        write_image(synthetic_image(40, 40, seed=20 + i), tmp_path / f"s{i}.png")
    items = [
        WorkItem(
            tmp_path / f"c{i}.png",
            (tmp_path / f"s{i % 2}.png",),
            tmp_path / "o" / f"{i}.png",
            params=(("alpha", 0.25 * (i + 1)),),
        )
        for i in range(4)
    ]
    runner = ImageRunner(adain, size=None)
    calls = []
    original = adain.stylize_each
    adain.stylize_each = lambda *a, **k: calls.append(len(a[0])) or original(*a, **k)
    try:
        batched = {r.item.output.name: r for r in runner.run(items, batch_size=4)}
    finally:
        del adain.stylize_each
    assert calls == [4] and all(r.ok for r in batched.values())
    single = [WorkItem(i.content, i.styles, tmp_path / "s" / i.output.name, params=i.params) for i in items]
    for r in ImageRunner(adain, size=None).run(single):
        a, b = read_image(r.item.output), read_image(tmp_path / "o" / r.item.output.name)
        assert (a - b).abs().max() <= 2 / 255  # same images up to 8-bit rounding


def test_style_augment_inputs_and_outputs(adain, style_images):
    aug = StyleAugment(styles=style_images, p=1.0, alpha=(0.5, 1.0), seed=0, stylizer=adain)
    image = synthetic_image(32, 40, seed=5)
    out = aug(image)
    assert out.shape == image.shape and out.dtype == image.dtype and not torch.equal(out, image)
    pil = Image.fromarray((image.permute(1, 2, 0) * 255).byte().numpy())
    assert isinstance(aug(pil), Image.Image) and aug(pil).size == pil.size
    batch = (torch.stack([synthetic_image(32, 32, seed=s) for s in range(6)]) * 255).to(torch.uint8)
    out = aug(batch)
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    assert all(not torch.equal(out[i], batch[i]) for i in range(6))
    keep = StyleAugment(styles=style_images, p=0.0, stylizer=adain)
    assert torch.equal(keep(batch), batch)


def test_style_augment_is_reproducible_with_a_seed(adain, style_images):
    batch = torch.stack([synthetic_image(32, 32, seed=s) for s in range(8)])
    a = StyleAugment(styles=style_images, p=0.5, seed=4, stylizer=adain)(batch)
    b = StyleAugment(styles=style_images, p=0.5, seed=4, stylizer=adain)(batch)
    assert torch.equal(a, b)
    changed = [not torch.equal(a[i], batch[i]) for i in range(8)]
    assert 0 < sum(changed) < 8  # p=0.5 of 8: some, not all (for this seed)


def test_style_augment_needs_styles(adain, tmp_path):
    with pytest.raises(ParameterError, match="at least one style"):
        StyleAugment(styles=[], stylizer=adain)
    with pytest.raises(ParameterError, match="file not found"):
        StyleAugment(styles=[tmp_path / "none.png"], stylizer=adain)
