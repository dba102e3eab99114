"""The library runner: order kept, batches equal single items, bad items isolated, I/O overlapped."""

from __future__ import annotations

import pytest
import torch

from stylecore.errors import ImageError
from stylecore.imageio import read_image, write_image
from stylecore.methods import get_method
from stylecore.metrics import Metrics
from stylecore.runner import ImageRunner, WorkItem
from tests.conftest import synthetic_image


@pytest.fixture()
def items(tmp_path) -> list[WorkItem]:
    write_image(synthetic_image(40, 40, seed=9), tmp_path / "style.png")
    out = []
    for i in range(7):
        h, w = (32, 48) if i % 3 else (40, 40)  # two sizes interleaved: batches must split on size
        write_image(synthetic_image(h, w, seed=i), tmp_path / f"c{i}.png")
        out.append(
            WorkItem(tmp_path / f"c{i}.png", (tmp_path / "style.png",), tmp_path / "out" / f"o{i}.png")
        )
    (tmp_path / "c4.png").write_bytes(b"")  # one broken content in the middle
    return out


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_results_in_order_with_the_bad_item_isolated(items, random_encoder, batch_size, overlap):
    runner = ImageRunner(
        get_method("adain").random(random_encoder),
        size=64,
        metrics=Metrics(random_encoder),
        io_overlap=overlap,
    )
    results = list(runner.run(items, batch_size=batch_size))
    assert [r.item for r in results] == items
    assert [r.ok for r in results] == [True, True, True, True, False, True, True]
    assert "empty file" in results[4].error
    for r in results:
        if r.ok:
            assert r.path.is_file() and {"f_c", "f_s", "ssim"} <= set(r.extra) and r.seconds > 0


def test_batched_outputs_equal_single_outputs(items, random_encoder, tmp_path):
    stylizer = get_method("adain").random(random_encoder)
    good = [i for n, i in enumerate(items) if n != 4]
    single = [WorkItem(i.content, i.styles, tmp_path / "single" / i.output.name) for i in good]
    list(ImageRunner(stylizer, size=64).run(good, batch_size=4))
    list(ImageRunner(stylizer, size=64).run(single, batch_size=1))
    for a, b in zip(good, single, strict=True):
        assert (read_image(a.output) - read_image(b.output)).abs().max() <= 1 / 255 + 1e-6


def test_a_failed_write_is_an_item_error(items, random_encoder):
    def write(image: torch.Tensor, item: WorkItem) -> None:
        if item.output.name == "o2.png":
            raise ImageError(item.output, "cannot write image (disk full)")
        write_image(image, item.output)

    runner = ImageRunner(get_method("adain").random(random_encoder), size=64, io_overlap=True)
    results = list(runner.run(items[:4], write))
    assert [r.ok for r in results] == [True, True, False, True]
    assert "disk full" in results[2].error and not items[2].output.exists()


def test_a_too_small_content_is_reported_with_its_file(items, random_encoder, tmp_path):
    write_image(torch.full((3, 1, 1), 0.5), tmp_path / "dot.png")  # 1 pixel
    item = WorkItem(tmp_path / "dot.png", items[0].styles, tmp_path / "out" / "dot__style.png")
    runner = ImageRunner(get_method("adain").random(random_encoder), size=64)
    (result,) = runner.run([item])
    assert result.error.startswith(f"{tmp_path / 'dot.png'}: too small: 1x1 pixels")
    assert "dot__style" not in result.error and not item.output.exists()
