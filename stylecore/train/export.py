"""Turn a training checkpoint into shipped weights: fp16 safetensors, a catalog entry, a model card."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from stylecore.errors import WeightsError
from stylecore.weights import _atomic_write_text, sha256_file, upsert_entry, weights_dir

DECODER_ARCH = {"vgg16-hed": "decoder-vgg16", "vgg19-normalised": "decoder-vgg19"}


def hardware_description(device: str = "cpu") -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def export_checkpoint(
    checkpoint: Path,
    name: str,
    *,
    root: Path | None = None,
    hardware: str | None = None,
    metrics: dict[str, Any] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Write ``<name>.safetensors`` (fp16) and ``<name>.md`` into the weights folder and catalog it."""
    root = Path(root) if root is not None else weights_dir()
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        cfg, state = ckpt["config"], ckpt["decoder"]
    except (OSError, KeyError, RuntimeError) as exc:
        raise WeightsError(f"{checkpoint}: not a stylepipe training checkpoint ({exc})") from None
    method, encoder = cfg["method"], cfg["encoder"]
    target = root / f"{name}.safetensors"
    tmp = target.with_name(f".{target.name}.tmp")
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(tmp))
    tmp.chmod(0o644)
    tmp.replace(target)
    digest = sha256_file(target)
    meta = {
        "steps": ckpt["step"],
        "crop": cfg["size"],
        "batch": cfg["batch"],
        "lr": cfg["lr"],
        "lr_decay": cfg["lr_decay"],
        "loss_weights": {"content": cfg["content_weight"], "style": cfg["style_weight"]},
        "train_seconds": round(ckpt["elapsed"], 1),
        "hardware": hardware or hardware_description(),
        "exported": datetime.now(UTC).strftime("%Y-%m-%d"),
        **({"metrics": metrics} if metrics else {}),
        **({"note": note} if note else {}),
    }
    entry = {
        "name": name,
        "kind": "method",
        "arch": method,
        "encoder": encoder,
        "location": "project",
        "files": [
            {"role": "decoder", "filename": target.name, "arch": DECODER_ARCH[encoder], "sha256": digest}
        ],
        "license": "MIT",
        "source": "trained by stylepipe (stylize train) on the offline corpus; see the model card",
        "preprocessing": "RGB in [0,1] (the encoder does its own preprocessing)",
        "description": f"{method} decoder for {encoder}, fp16",
        "card": f"{name}.md",
        "meta": meta,
    }
    _atomic_write_text(root / f"{name}.md", model_card(name, cfg, meta, digest))
    upsert_entry(entry, root)
    return entry


def model_card(name: str, cfg: dict[str, Any], meta: dict[str, Any], digest: str) -> str:
    metrics = meta.get("metrics")
    metric_lines = (
        "\n".join(f"| {k} | {v} |" for k, v in metrics.items())
        if metrics
        else "| (none measured for this export) | |"
    )
    status = f"\n**Status:** {meta['note']}\n" if meta.get("note") else ""
    minutes = meta["train_seconds"] / 60
    return f"""# {name}

{cfg["method"]} decoder for the `{cfg["encoder"]}` encoder, trained by this project.
{status}
| | |
| --- | --- |
| file | `{name}.safetensors` (fp16, sha256 `{digest}`) |
| data | content: {", ".join(map(str, cfg["content_dirs"]))}; style: {", ".join(map(str, cfg["style_dirs"]))} |
| held out | {len(cfg["exclude"])} evaluation files (`benchmarks/eval_split.txt`) |
| steps | {meta["steps"]} |
| crops | {cfg["size"]} px random crops of images scaled to a short side of {cfg["load_size"] or round(cfg["size"] * 1.5)} px |
| batch | {cfg["batch"]} |
| optimiser | Adam, lr {cfg["lr"]} / (1 + {cfg["lr_decay"]} x step) |
| losses | content MSE to the AdaIN target at relu4_1 (x{cfg["content_weight"]}), style mean/std MSE at relu1_1..relu4_1 (x{cfg["style_weight"]}) |
| precision | {"bf16 autocast" if cfg["amp"] else "fp32"} |
| hardware | {meta["hardware"]} |
| training time | {minutes:.0f} min of compute |
| licence | MIT (weights); the training images keep their own licences and are not redistributed |

## Measured

| metric | value |
| --- | --- |
{metric_lines}
"""
