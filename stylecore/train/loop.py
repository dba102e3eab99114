"""One training loop for the project's own weights: resumable checkpoints, CSV loss log, bf16 autocast.

A checkpoint holds the model, the optimiser, both data streams and the step, written atomically
every ``checkpoint_every_s`` seconds and at the end, so a killed run resumes exactly where the last
checkpoint left it (same batches, same updates). Progress goes to an ``on_log`` callback; the
library prints nothing.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from stylecore.decoders import VGGDecoder
from stylecore.device import resolve_device
from stylecore.encoders import VGGEncoder, load_encoder
from stylecore.errors import ParameterError
from stylecore.methods.adain import decoder_layout_for
from stylecore.train.data import CropStream, ImagePool, list_images
from stylecore.train.losses import adain_losses
from stylecore.weights import read_state_dict


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["adain"] = "adain"
    content_dirs: list[Path]
    style_dirs: list[Path]
    exclude: list[str] = Field(default_factory=list, description="file names kept out (evaluation split)")
    steps: int = Field(ge=1)
    batch: int = Field(8, ge=1)
    size: int = Field(128, ge=32, description="square crop side")
    load_size: int | None = Field(None, description="short side images are scaled to (default 1.5 x size)")
    lr: float = Field(1e-4, gt=0)
    lr_decay: float = Field(5e-5, ge=0, description="lr / (1 + lr_decay * step), as upstream AdaIN")
    content_weight: float = 1.0
    style_weight: float = 10.0
    encoder: str = "vgg16-hed"
    seed: int = 0
    amp: bool = Field(True, description="bf16 autocast for forward passes")
    init_from: Path | None = Field(
        None, description="start from these decoder weights (e.g. a shipped fp16 file)"
    )
    checkpoint_every_s: float = Field(300.0, gt=0)
    log_every: int = Field(10, ge=1)


def _lr(cfg: TrainConfig, step: int) -> float:
    return cfg.lr / (1.0 + cfg.lr_decay * step)


class Trainer:
    """Holds everything a training run needs; ``run`` trains up to ``config.steps``."""

    def __init__(
        self, config: TrainConfig, out: Path, *, device: str = "auto", encoder: VGGEncoder | None = None
    ) -> None:
        self.cfg = config
        self.out = Path(out)
        self.device = resolve_device(device)
        self.encoder = (encoder or load_encoder(config.encoder)).to(self.device)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(config.seed)
            self.decoder = VGGDecoder(decoder_layout_for(self.encoder)).to(self.device)
        if config.init_from is not None:
            state = read_state_dict(config.init_from)
            self.decoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        self.opt = torch.optim.Adam(self.decoder.parameters(), lr=config.lr)
        load = config.load_size or round(config.size * 1.5)
        if load < config.size:
            raise ParameterError(f"load_size {load} is smaller than the crop size {config.size}")
        exclude = set(config.exclude)
        self.content = CropStream(
            ImagePool(list_images(config.content_dirs, exclude), load), config.batch, config.size, config.seed
        )
        self.style = CropStream(
            ImagePool(list_images(config.style_dirs, exclude), load),
            config.batch,
            config.size,
            config.seed + 1,
        )
        self.step = 0
        self.elapsed = 0.0

    # ---- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.cfg.model_dump(mode="json"),
            "step": self.step,
            "elapsed": self.elapsed,
            "decoder": self.decoder.state_dict(),
            "optimizer": self.opt.state_dict(),
            "content": self.content.state_dict(),
            "style": self.style.state_dict(),
        }

    def save(self) -> Path:
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, self.out)
        return self.out

    def resume(self) -> bool:
        """Load ``out`` if it exists; returns whether it did."""
        if not self.out.is_file():
            return False
        state = torch.load(self.out, map_location=self.device, weights_only=True)
        self.decoder.load_state_dict(state["decoder"])
        self.opt.load_state_dict(state["optimizer"])
        self.content.load_state_dict(state["content"])
        self.style.load_state_dict(state["style"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        return True

    # ---- training ------------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        content = self.content.next().to(self.device)
        style = self.style.next().to(self.device)
        for group in self.opt.param_groups:
            group["lr"] = _lr(self.cfg, self.step)
        dtype = torch.bfloat16 if self.cfg.amp else torch.float32
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.cfg.amp):
            terms = adain_losses(self.encoder, self.decoder, content, style)
        loss = (
            self.cfg.content_weight * terms["content"].float()
            + self.cfg.style_weight * terms["style"].float()
        )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def run(self, on_log: Callable[[dict[str, float]], None] | None = None) -> Path:
        log_path = self.out.with_suffix(".csv")
        new_log = not log_path.is_file() or self.step == 0
        with open(log_path, "w" if new_log else "a", newline="") as fh:
            writer = csv.writer(fh)
            if new_log:
                writer.writerow(["step", "elapsed_s", "it_per_s", "lr", "loss", "content", "style"])
            last_ckpt = time.monotonic()
            window_start, window_steps = time.monotonic(), 0
            while self.step < self.cfg.steps:
                t0 = time.monotonic()
                terms = self.train_step()
                self.elapsed += time.monotonic() - t0
                window_steps += 1
                if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                    rate = window_steps / max(time.monotonic() - window_start, 1e-9)
                    row = {
                        "step": self.step,
                        "elapsed_s": self.elapsed,
                        "it_per_s": rate,
                        "lr": _lr(self.cfg, self.step),
                        **terms,
                    }
                    writer.writerow(
                        [
                            f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]
                            for k in ("step", "elapsed_s", "it_per_s", "lr", "loss", "content", "style")
                        ]
                    )
                    fh.flush()
                    if on_log:
                        on_log(row)
                    window_start, window_steps = time.monotonic(), 0
                if time.monotonic() - last_ckpt >= self.cfg.checkpoint_every_s:
                    self.save()
                    last_ckpt = time.monotonic()
        return self.save()
