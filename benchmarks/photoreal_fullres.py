"""A 4000x3000 photo through photo-realistic transfer on CPU: time and peak memory.

    .venv/bin/python -m benchmarks.photoreal_fullres [--width 4000 --height 3000]

The photo is a corpus day photo upscaled to the size (the demo photo when the corpus is absent); the
grid is fitted at ``work_size`` and applied at full size in bands. Peak memory is the process's
maximum resident set size (ru_maxrss), which includes torch and the encoder.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from torch.nn import functional as F

from benchmarks._common import MANIFESTS, SHARED
from stylecore.imageio import read_image, write_image
from stylecore.methods import get_method


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    args = ap.parse_args()
    content_src = SHARED / "photoreal" / "content" / "dpst_in3.jpg"
    style_src = SHARED / "photoreal" / "style" / "dpst_tar3.jpg"
    if not content_src.is_file():
        content_src, style_src = (
            MANIFESTS / "photos" / "coffee.jpg",
            MANIFESTS / "styles" / "starry_night.jpg",
        )
    with tempfile.TemporaryDirectory() as tmp:
        big = F.interpolate(read_image(content_src)[None], size=(args.height, args.width), mode="bicubic")[0]
        write_image(big.clamp(0, 1), Path(tmp) / "big.jpg", quality=92)
        del big
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        method = get_method("photoreal").load(device="cpu")
        t0 = time.perf_counter()
        content = read_image(Path(tmp) / "big.jpg")
        out = method.stylize(content, method.encode_style(read_image(style_src)))
        write_image(out[0], Path(tmp) / "out.jpg", quality=92)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{args.width}x{args.height} photoreal on CPU: {seconds:.1f} s (read, fit at "
            f"{method.make_params({}).work_size} px, apply at full size, write JPEG)"
        )
        print(f"peak RSS {peak:.0f} MiB (before loading the model: {rss_before:.0f} MiB)")
        print(f"output {tuple(out.shape[-2:])}")


if __name__ == "__main__":
    main()
