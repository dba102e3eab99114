"""A quick look at a training run: stylize a few evaluation pairs with a checkpoint and save a grid.

    .venv/bin/python -m benchmarks.peek runs/adain-vgg16hed.ckpt [--size 256] [--out output/peek.png]

Rows are evaluation contents, columns are evaluation styles (each column headed by its style); the
checkpoint's decoder (and transformer, for sanet/rast checkpoints) is loaded into the method class.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.quality import split
from stylecore.imageio import read_image, write_image
from stylecore.methods import get_method
from stylecore.models import build_module, load_encoder
from stylecore.nets.decoder import SkipDecoder
from stylecore.ops import adain, mean_std
from stylecore.train.export import read_snapshot
from stylecore.train.loop import TrainConfig, checkpoint_weights


def load_run(ckpt: Path) -> object:
    if ckpt.suffix == ".safetensors":  # a snapshot (stylize train --snapshots)
        state = read_snapshot(ckpt)
    else:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    method = state["config"]["method"]
    config = TrainConfig.from_checkpoint(state["config"])
    enc = load_encoder(config.encoder)
    modules = {"decoder": build_module(config.decoder_arch())}
    if method != "adain":
        modules["transformer"] = config.build_transformer(enc.channels("relu4_1"))
    for role, weights in checkpoint_weights(state, list(modules)).items():
        modules[role].load_state_dict({k: v.float() for k, v in weights.items()})
    for m in modules.values():
        m.eval()
    print(f"{ckpt}: {method}, step {state['step']}")
    cls = get_method("sanet" if method == "rast" else method)  # rast runs the SANet networks
    return cls.from_modules(enc, modules, weights=None, checksums={})


def dead_channels(decoder: torch.nn.Module, t: torch.Tensor) -> list[float]:
    """Per ReLU of the decoder: the fraction of channels that are zero for every input in ``t``.
    A healthy decoder has few; a training run whose first steps were too large can kill most."""
    out, x = [], t
    for module in decoder:
        x = module(x)
        if isinstance(module, torch.nn.ReLU):
            out.append(round(float((x.amax(dim=(0, 2, 3)) == 0).float().mean()), 2))
    return out


def fit(img: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop to a square and resize, so the grid lines up."""
    h, w = img.shape[-2:]
    s = min(h, w)
    img = img[:, (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return torch.nn.functional.interpolate(
        img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt", type=Path)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--contents", type=int, default=3)
    ap.add_argument("--styles", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("output/peek.png"))
    args = ap.parse_args()
    stylizer = load_run(args.ckpt)
    contents, styles = split()
    contents = [fit(read_image(p), args.size) for p in contents[: args.contents]]
    styles = [fit(read_image(p), args.size) for p in styles[: args.styles]]
    blank = torch.ones(3, args.size, args.size)
    rows = [torch.cat([blank, *styles], -1)]
    with torch.no_grad():
        for c in contents:
            outs = [stylizer.stylize(c, stylizer.encode_style(s)).clamp(0, 1)[0] for s in styles]
            rows.append(torch.cat([c, *[o[:, : args.size, : args.size] for o in outs]], -1))
        # the decoder's input for every pair shown (a skip decoder's also takes the shallow levels)
        if stylizer.name == "adain" and not isinstance(stylizer.decoder, SkipDecoder):
            c4 = stylizer.encoder.encode(torch.stack(contents), "relu4_1")
            s4 = stylizer.encoder.encode(torch.stack(styles), "relu4_1")
            t = torch.cat([adain(c4, *mean_std(s4[i : i + 1])) for i in range(len(styles))])
            print("dead ReLU channels per decoder layer:", dead_channels(stylizer.decoder, t))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_image(torch.cat(rows, -2), args.out)
    print(args.out)


if __name__ == "__main__":
    main()
