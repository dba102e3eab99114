"""One training loop for the project's own weights: resumable checkpoints, CSV loss log, bf16 autocast.

Methods: ``adain`` (a decoder), ``sanet`` and ``rast`` (a SANet transformer and a decoder; rast also
trains two multi-scale PatchGAN discriminators unless its ``gan`` term is set to 0, and sanet one where
its ``gan`` term is weighted). A checkpoint holds every model, every optimiser, both data streams and
the step, written atomically every ``checkpoint_every_s`` seconds and at the end, so a killed run
resumes exactly where the last checkpoint left it (same batches, same updates). Progress goes to an
``on_log`` callback; the library prints nothing.

Checkpoint keys: ``config``, ``step``, ``elapsed``, ``content``, ``style`` (data streams), the models
(``decoder``; plus ``transformer`` for sanet/rast; plus ``disc_style``, ``disc_content`` for rast, and
``disc_style`` for sanet, with a GAN term) and the optimisers (``optimizer`` for the
decoder/transformer; ``optimizer_d`` for the discriminators),
and ``hardware_log`` (which device trained which steps; absent in checkpoints from before it).
An AdaIN checkpoint is the format of the first, AdaIN-only version of this module plus ``hardware_log``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn

from stylecore.device import cpu_has_bf16, describe_device, resolve_device
from stylecore.errors import ParameterError, WeightsError
from stylecore.fsio import atomic_open
from stylecore.models import load_encoder
from stylecore.nets.decoder import SkipDecoder, VGGDecoder, decoder_arch, layout_for
from stylecore.nets.discriminator import MultiScalePatchGAN
from stylecore.nets.encoder import STYLE_LAYERS, VGGEncoder
from stylecore.nets.transformer import TRANSFORMERS, NormalisedTransform, Transform
from stylecore.train.data import CropStream, ImagePool, list_images
from stylecore.train.losses import (
    ADAIN_STYLE_LAYERS,
    DEFAULT_WEIGHTS,
    Judged,
    adain_losses,
    discriminator_loss,
    generator_gan_loss,
    rast_judged,
    rast_losses,
    sanet_losses,
)
from stylecore.weights import load_catalog, load_strict, read_state_dict

METHODS = ("adain", "sanet", "rast")
ALL_TERMS = tuple(dict.fromkeys(t for w in DEFAULT_WEIGHTS.values() for t in w))
SANET_MULTIPLE = 16  # relu5_1 is 1/16 of the input; the transform upsamples it x2 onto relu4_1
SANET_MIN_SIZE = 64
# recon_weight of skip-decoder runs: the term is ~15 against AdaIN's ~2000 at the start; at 1 a
# 102-step run kept held-out reconstruction SSIM at 0.35, at 50 a 131-step run reached 0.64 (docs/training.md)
SKIP_RECON_WEIGHT = 50.0


# the networks each method ships, by role (RAST's discriminators are trained, not shipped)
METHOD_ROLES: dict[str, tuple[str, ...]] = {
    "adain": ("decoder",),
    "sanet": ("decoder", "transformer"),
    "rast": ("decoder", "transformer"),
}


class TrainConfig(BaseModel):
    """A training run's settings (stored in its checkpoints).

    Loss weights: ``<term>_weight`` for each term of the method (see
    :data:`stylecore.train.losses.DEFAULT_WEIGHTS`); left out, they take the paper's default, so a
    stored config always names the weights it trained with. Setting a weight of a term the method
    does not have is an error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["adain", "sanet", "rast"] = "adain"
    content_dirs: list[Path]
    style_dirs: list[Path]
    exclude: list[str] = Field(default_factory=list, description="file names kept out (evaluation split)")
    steps: int = Field(ge=1)
    batch: int = Field(8, ge=1)
    size: int = Field(128, ge=32, description="square crop side")
    load_size: int | None = Field(None, description="short side images are scaled to (default 1.5 x size)")
    lr: float = Field(1e-4, gt=0)
    lr_decay: float = Field(5e-5, ge=0, description="lr / (1 + lr_decay * step), as upstream AdaIN")
    d_lr: float | None = Field(
        None, gt=0, description="GAN runs: discriminators' learning rate (default: lr)"
    )
    gan_scales: int = Field(3, ge=1, le=4, description="GAN runs: discriminator scales (RAST authors: 3)")
    content_weight: float | None = Field(None, ge=0)
    style_weight: float | None = Field(None, ge=0)
    gram_weight: float | None = Field(
        None,
        ge=0,
        description="Gram-matrix style loss on the style loss network (losses.gram_loss; "
        "Gatys's statistic, not in the papers)",
    )
    structure_weight: float | None = Field(
        None, ge=0, description="normalised relu2_1+relu3_1 loss to the content (not in the papers)"
    )
    identity1_weight: float | None = Field(None, ge=0, description="sanet/rast: identity loss, pixels")
    identity2_weight: float | None = Field(None, ge=0, description="sanet/rast: identity loss, features")
    content_transitive_weight: float | None = Field(None, ge=0, description="rast")
    style_transitive_weight: float | None = Field(None, ge=0, description="rast")
    style_diff_weight: float | None = Field(None, ge=0, description="rast")
    content_restoration_weight: float | None = Field(None, ge=0, description="rast")
    style_restoration_weight: float | None = Field(None, ge=0, description="rast")
    gan_weight: float | None = Field(
        None, ge=0, description="rast; sanet (weight 0 = the paper): a style discriminator, as RAST's"
    )
    grid_weight: float | None = Field(
        None, ge=0, description="the output's 2/4/8 px repeated pattern (losses.grid_loss; not in the papers)"
    )
    peaks_weight: float | None = Field(
        None, ge=0, description="output spectral peaks the inputs lack (losses.peaks_loss; not in the papers)"
    )
    palette_weight: float | None = Field(
        None, ge=0, description="RGB mean/std, output vs style (losses.palette_loss; not in the papers)"
    )
    style_layers: dict[str, float] = Field(
        default_factory=dict,
        description="weights of the style term's layers, e.g. {relu1_1: 10, relu2_1: 10}; layers not named "
        "weigh 1, as in the papers (losses module docstring)",
    )
    ema_decay: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="keep an exponential moving average of the decoder's (and transformer's) weights with "
        "this decay per step (0 = off); exports and previews use the average",
    )
    scale_features: bool | None = Field(
        None,
        description="losses compare features divided by each layer's mean activation (stylecore.train."
        "scales) so the papers' weights keep their balance on vgg16-hed; default: on for sanet/rast, off "
        "for adain (as the shipped adain-vgg16hed was trained)",
    )
    encoder: str = "vgg16-hed"
    style_encoder: str | None = Field(
        None,
        description="the loss network of the style and gram terms (e.g. vgg16-imagenet; not in the "
        "papers); content and RAST's restoration terms stay on the encoder; default: the encoder",
    )
    upsample: Literal["nearest", "bilinear"] = Field(
        "bilinear",
        description="the decoder's x2 upsampling (stylecore.nets.decoder): nearest leaves a grid of 2 and "
        "4 px; checkpoints written before this setting existed are nearest",
    )
    decoder: Literal["plain", "skip"] = Field(
        "plain",
        description="skip trains a SkipDecoder (stylecore.nets.decoder; not in the papers), the plain "
        "decoder plus 1x1 convolutions adding AdaIN-transferred relu3_1/relu2_1/relu1_1; init_from may "
        "name a plain decoder, which becomes its body (sanet/rast: their identity losses are then the "
        "reconstruction term)",
    )
    transformer: Literal["merge", "norm"] = Field(
        "merge",
        description="sanet/rast: merge is the paper's transformer (merge_conv over both attention "
        "outputs); norm sums them and AdaIN-s the sum to the style's relu4_1 statistics "
        "(stylecore.nets.transformer.NormalisedTransform; not in the papers), for a decoder of AdaIN's "
        "features; init_from may name a merge transformer, whose merge_conv is left out",
    )
    skips: int = Field(
        3,
        ge=1,
        le=3,
        description="decoder=skip: how many skip levels, deepest first (3: relu3_1, relu2_1, relu1_1; 1: "
        "relu3_1 alone, so the decoder draws the fine detail itself); init_from may name a decoder with "
        "more levels, whose extra skips are left out",
    )
    recon_weight: float | None = Field(
        None,
        ge=0,
        description="adain: weight of the reconstruction term (losses.reconstruction_loss; not in the "
        f"paper); default {SKIP_RECON_WEIGHT:g} with decoder=skip, else 0",
    )
    seed: int = 0
    amp: bool = Field(
        True, description="bf16 autocast for forward passes (on a CPU only where it has native bf16 kernels)"
    )
    channels_last: bool = Field(True, description="NHWC tensors (faster bf16 convolutions); same results")
    freeze: list[Literal["decoder", "transformer"]] = Field(
        default_factory=list,
        description="networks kept as they start (with init_from): e.g. [transformer] fine-tunes the "
        "decoder alone, at about half the cost of a step",
    )
    init_from: Path | None = Field(
        None,
        description="start from these weights: a catalog name, or a shipped fp16 file (adain: the "
        "decoder file; sanet/rast: either file of a NAME.decoder/NAME.transformer.safetensors pair)",
    )
    checkpoint_every_s: float = Field(300.0, gt=0)
    log_every: int = Field(10, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _default_weights(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("method", "adain") in DEFAULT_WEIGHTS:
            data = dict(data)
            method = data.get("method", "adain")
            for term, weight in DEFAULT_WEIGHTS[method].items():
                if data.get(f"{term}_weight") is None:
                    data[f"{term}_weight"] = weight
            if data.get("scale_features") is None:
                data["scale_features"] = method != "adain"
            if data.get("recon_weight") is None:
                skip = method == "adain" and data.get("decoder") == "skip"
                data["recon_weight"] = SKIP_RECON_WEIGHT if skip else 0.0
        return data

    @model_validator(mode="after")
    def _only_own_weights(self) -> TrainConfig:
        own = DEFAULT_WEIGHTS[self.method]
        foreign = [
            f"{t}_weight" for t in ALL_TERMS if t not in own and getattr(self, f"{t}_weight") is not None
        ]
        if foreign:
            raise ValueError(
                f"{', '.join(foreign)}: not a loss term of {self.method} (its terms: {', '.join(own)})"
            )
        if not self.discriminators and (self.d_lr is not None or self.gan_scales != 3):
            raise ValueError(
                "d_lr and gan_scales apply to runs with a GAN term (rast; sanet with gan_weight > 0)"
            )
        layers = ADAIN_STYLE_LAYERS if self.method == "adain" else STYLE_LAYERS
        unknown = sorted(set(self.style_layers) - set(layers))
        if unknown or any(w < 0 for w in self.style_layers.values()):
            raise ValueError(
                f"style_layers {self.style_layers}: weights >= 0 of {self.method}'s style layers "
                f"({', '.join(layers)})"
            )
        if self.method != "adain" and self.recon_weight:
            raise ValueError(
                "recon_weight applies to adain runs (sanet/rast: identity1_weight and identity2_weight "
                "weigh their reconstruction of each image stylized with itself)"
            )
        roles = METHOD_ROLES[self.method]
        if not set(self.freeze) < set(roles):
            raise ValueError(
                f"freeze {self.freeze}: {self.method} trains {', '.join(roles)}; keep one of them"
            )
        return self

    @field_validator("freeze", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # --set freeze=transformer

    @classmethod
    def from_checkpoint(cls, stored: dict[str, Any]) -> TrainConfig:
        """The config stored in a checkpoint; those from before ``upsample`` existed trained nearest."""
        return cls.model_validate({"upsample": "nearest", **stored})

    @property
    def discriminators(self) -> tuple[str, ...]:
        """The discriminators the run trains (not shipped): RAST's two unless its GAN term is set to
        0, or SANet's style one when its GAN term is weighted."""
        if self.method == "rast" and self.gan_weight != 0:
            return ("disc_style", "disc_content")
        if self.method == "sanet" and self.gan_weight:
            return ("disc_style",)
        return ()

    def decoder_arch(self) -> str:
        """The catalog ``arch`` of this run's decoder (:data:`stylecore.models.ARCHS`)."""
        return decoder_arch(
            layout_for(self.encoder), self.upsample, skip=self.decoder == "skip", skips=self.skips
        )

    def transformer_arch(self) -> str:
        """The catalog ``arch`` of this run's transformer (sanet/rast)."""
        return TRANSFORMERS[self.transformer][0]

    def build_transformer(self, channels: int) -> Transform | NormalisedTransform:
        return TRANSFORMERS[self.transformer][1](channels)

    def build_decoder(self) -> VGGDecoder | SkipDecoder:
        if self.decoder == "skip":
            return SkipDecoder(layout_for(self.encoder), self.upsample, skips=self.skips)
        return VGGDecoder(layout_for(self.encoder), self.upsample)

    @property
    def other_style_encoder(self) -> str | None:
        """The style term's loss network where it is not the encoder (``style_encoder``), else None."""
        return self.style_encoder if self.style_encoder not in (None, self.encoder) else None

    def loss_weights(self) -> dict[str, float]:
        """The method's loss terms and their weights, in the method's order (``recon`` last, where
        weighted)."""
        weights = {t: float(getattr(self, f"{t}_weight")) for t in DEFAULT_WEIGHTS[self.method]}
        if self.recon_weight:
            weights["recon"] = float(self.recon_weight)
        return weights

    def check_size(self) -> None:
        """Crop sizes the method's networks can take (raises :class:`ParameterError`)."""
        if self.method == "adain":
            return
        smallest = SANET_MIN_SIZE
        if self.discriminators:
            smallest = max(smallest, MultiScalePatchGAN.min_size(self.gan_scales))
        if self.size % SANET_MULTIPLE or self.size < smallest:
            raise ParameterError(
                f"{self.method} trains on crops whose side divides by {SANET_MULTIPLE} (relu5_1 is 1/16 "
                f"of the input) and is at least {smallest} px"
                + (f" (the {self.gan_scales}-scale discriminators)" if self.discriminators else "")
                + f"; got {{size}}={self.size}",
                settings=("size",),
            )


def _lr(cfg: TrainConfig, step: int) -> float:
    return cfg.lr / (1.0 + cfg.lr_decay * step)


def _d_lr(cfg: TrainConfig, step: int) -> float:
    return (cfg.d_lr or cfg.lr) / (1.0 + cfg.lr_decay * step)


def log_columns(config: TrainConfig) -> list[str]:
    """The CSV log's columns for a run: its method's loss terms, and the discriminators' loss if any."""
    extra = ["disc"] if config.discriminators else []
    return ["step", "elapsed_s", "it_per_s", "lr", "loss", *config.loss_weights(), *extra]


class Trainer:
    """Holds everything a training run needs; ``run`` trains up to ``config.steps``."""

    def __init__(
        self, config: TrainConfig, out: Path, *, device: str = "auto", encoder: VGGEncoder | None = None
    ) -> None:
        config.check_size()
        self.out = Path(out)
        self.device = resolve_device(device)
        self.notes: list[str] = []  # what the run decided on its own, for the caller to show
        self._bf16 = self.device.type != "cpu" or cpu_has_bf16()
        if config.amp and not self._bf16:
            self.notes.append("bf16 autocast off: this CPU has no native bf16 kernels, where fp32 is faster")
        self.cfg = config
        self.encoder = (encoder or load_encoder(config.encoder)).to(self.device)
        if self.encoder.name != config.encoder:
            raise ParameterError(f"encoder {self.encoder.name!r} given, the config names {config.encoder!r}")
        self.style_encoder = None
        if config.other_style_encoder:
            self.style_encoder = load_encoder(config.other_style_encoder).to(self.device)
        self.weights = config.loss_weights()
        self.models: dict[str, nn.Module] = {}
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(config.seed)
            self.models["decoder"] = config.build_decoder()
            if config.method in ("sanet", "rast"):
                self.models["transformer"] = config.build_transformer(self.encoder.channels("relu4_1"))
            for role in config.discriminators:
                self.models[role] = MultiScalePatchGAN(scales=config.gan_scales)
        # channels_last: oneDNN's bf16 convolutions (AMX on recent CPUs) and cuDNN's tensor-core
        # kernels want NHWC (benchmarks/train_speed.py measures it).
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.encoder.to(memory_format=self.memory_format)
        if self.style_encoder is not None:
            self.style_encoder.to(memory_format=self.memory_format)
        for module in self.models.values():
            module.to(self.device, memory_format=self.memory_format).train()
        if config.init_from is not None:
            self._init_from(config.init_from)
        for role in config.freeze:
            self.models[role].requires_grad_(False)
        generator = [self.models[k] for k in self.generator_roles if k not in config.freeze]
        if len(generator) == 1:
            self.optimizers = {"optimizer": torch.optim.Adam(generator[0].parameters(), lr=config.lr)}
        else:  # one parameter group per module, as the authors' SANet/RAST code
            groups = [{"params": m.parameters()} for m in generator]
            self.optimizers = {"optimizer": torch.optim.Adam(groups, lr=config.lr)}
        if config.discriminators:
            d_groups = [{"params": self.models[k].parameters()} for k in config.discriminators]
            self.optimizers["optimizer_d"] = torch.optim.Adam(
                d_groups, lr=config.d_lr or config.lr, betas=(0.5, 0.999)
            )
        # the weights' running average (ema_decay): GAN and small-batch training wander from step to
        # step; the average is what gets exported (see checkpoint_weights)
        self.ema: dict[str, dict[str, torch.Tensor]] | None = None
        if config.ema_decay:
            self.ema = self._current_weights()
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
        # which device trained which steps: [{"hardware", "from_step", "to_step"}], for the model card
        self.hardware_log: list[dict[str, Any]] = []

    @property
    def decoder(self) -> nn.Module:
        return self.models["decoder"]

    @property
    def transformer(self) -> nn.Module | None:
        return self.models.get("transformer")

    @property
    def opt(self) -> torch.optim.Optimizer:
        """The decoder's (and transformer's) optimiser."""
        return self.optimizers["optimizer"]

    @property
    def generator_roles(self) -> tuple[str, ...]:
        return METHOD_ROLES[self.cfg.method]

    def _current_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return {
            role: {k: v.detach().float().clone() for k, v in self.models[role].state_dict().items()}
            for role in self.generator_roles
        }

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        keep = self.cfg.ema_decay
        for role, avg in self.ema.items():
            for k, v in self.models[role].state_dict().items():
                if v.is_floating_point():
                    avg[k].mul_(keep).add_(v.float(), alpha=1 - keep)
                else:
                    avg[k].copy_(v)

    def _init_from(self, source: Path) -> None:
        """Load starting weights for the decoder (and transformer) from a catalog name or files."""
        files = init_files(source, self.cfg.method, self.generator_roles, self.cfg.encoder)
        for role, path in files.items():
            state = {k: v.float() for k, v in read_state_dict(path).items()}
            target = self.models[role]
            if isinstance(target, SkipDecoder) and not any(k.startswith("body.") for k in state):
                target = target.body  # a plain decoder starts the skip decoder's body
            elif isinstance(target, SkipDecoder):  # the skips of levels this decoder lacks are left out
                n = len(target.layers)
                dropped = {k for k in state if k.startswith("skip.") and int(k.split(".")[1]) >= n}
                state = {k: v for k, v in state.items() if k not in dropped}
            elif isinstance(target, NormalisedTransform):  # a paper transformer's attention blocks
                state = {k: v for k, v in state.items() if not k.startswith("merge_conv.")}
            load_strict(target, state, source=str(path))

    # ---- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.cfg.model_dump(mode="json"),
            "step": self.step,
            "elapsed": self.elapsed,
            **{name: m.state_dict() for name, m in self.models.items()},
            **{name: o.state_dict() for name, o in self.optimizers.items()},
            "content": self.content.state_dict(),
            "style": self.style.state_dict(),
            "hardware_log": self.hardware_log,
            **({"ema": self.ema} if self.ema is not None else {}),
        }

    def save(self) -> Path:
        if self.hardware_log:  # every save, also one after an interrupt, records the steps done
            self.hardware_log[-1]["to_step"] = self.step
        with atomic_open(self.out) as fh:
            torch.save(self.state_dict(), fh)
        return self.out

    def resume(self) -> bool:
        """Load ``out`` if it exists; returns whether it did."""
        if not self.out.is_file():
            return False
        state = torch.load(self.out, map_location=self.device, weights_only=True)
        method = state.get("config", {}).get("method")
        if method != self.cfg.method:
            raise ParameterError(f"{self.out} is a {method} run; it cannot continue as {self.cfg.method}")
        upsample = TrainConfig.from_checkpoint(state["config"]).upsample
        if upsample != self.cfg.upsample:
            raise ParameterError(
                f"{self.out} trains a decoder with {upsample} upsampling; it cannot continue with "
                f"{self.cfg.upsample} ({{upsample}}={upsample})",
                settings=("upsample",),
            )
        kind = state["config"].get("decoder", "plain")
        if kind != self.cfg.decoder:
            raise ParameterError(
                f"{self.out} trains a {kind} decoder; continue it with {{decoder}}={kind}, or start a new "
                "run from its export with {init_from}",
                settings=("decoder", "init_from"),
            )
        frozen = sorted(state["config"].get("freeze", []))
        if frozen != sorted(self.cfg.freeze):  # the optimiser holds other parameters
            raise ParameterError(
                f"{self.out} was trained with freeze={frozen}; continue it with the same setting "
                f"({{freeze}}=[{', '.join(frozen)}]), or start a new run from its export with {{init_from}}",
                settings=("freeze", "init_from"),
            )
        missing = [k for k in [*self.models, *self.optimizers] if k not in state]
        if self.cfg.discriminators and set(self.cfg.discriminators) <= set(missing):
            raise ParameterError(
                f"{self.out} was trained without a GAN term; continue it with {{gan_weight}}=0, or start "
                "a new run from its export with {init_from}",
                settings=("gan_weight", "init_from"),
            )
        if missing:
            raise WeightsError(f"{self.out}: checkpoint lacks {', '.join(missing)}")
        for name, module in self.models.items():
            module.load_state_dict(state[name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])
        self.content.load_state_dict(state["content"])
        self.style.load_state_dict(state["style"])
        if self.ema is not None:  # a run that starts averaging now starts from the loaded weights
            self.ema = state.get("ema") or self._current_weights()
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.hardware_log = list(state.get("hardware_log", []))  # absent before the record existed
        return True

    # ---- training ------------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        content = self.content.next().to(self.device, memory_format=self.memory_format)
        style = self.style.next().to(self.device, memory_format=self.memory_format)
        for group in self.opt.param_groups:
            group["lr"] = _lr(self.cfg, self.step)
        method, m = self.cfg.method, self.models
        extra: dict[str, float] = {}
        judged: Judged = []  # what the discriminators see this step (none without a GAN term)
        with self._autocast():
            scale, layers = bool(self.cfg.scale_features), self.cfg.style_layers
            if method == "adain":
                terms = adain_losses(
                    self.encoder,
                    m["decoder"],
                    content,
                    style,
                    scale_features=scale,
                    style_layers=layers,
                    recon=bool(self.weights.get("recon")),
                    style_encoder=self.style_encoder,
                )
            else:
                # terms at weight 0 are logged, except the identity pair (its passes cost most of a
                # step) and the GAN term of a run that trains no discriminator
                nets = (self.encoder, m["transformer"], m["decoder"], content, style)
                identity = bool(self.weights["identity1"] or self.weights["identity2"])
                options = {"scale_features": scale, "identity": identity, "style_layers": layers}
                if method == "sanet":
                    terms, out = sanet_losses(*nets, **options, style_encoder=self.style_encoder)
                    judged = [(m["disc_style"], style, out)] if self.cfg.discriminators else []
                else:
                    terms, images = rast_losses(*nets, **options, style_encoder=self.style_encoder)
                    judged = (
                        rast_judged(m["disc_style"], m["disc_content"], content, style, images)
                        if self.cfg.discriminators
                        else []
                    )
        if judged:
            extra["disc"] = self._discriminator_step(judged)
            discs = [d for d, _, _ in judged]
            try:
                for d in discs:
                    d.requires_grad_(False)  # the generator's GAN loss does not train them
                with self._autocast():
                    terms["gan"] = generator_gan_loss(judged)
            finally:
                for d in discs:
                    d.requires_grad_(True)
        loss = None
        for term, weight in self.weights.items():
            if weight:
                part = weight * terms[term].float()
                loss = part if loss is None else loss + part
        if loss is None:
            raise ParameterError("every loss weight is 0: nothing to train")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._update_ema()
        self.step += 1
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}, **extra}

    @property
    def cfg(self) -> TrainConfig:
        return self._cfg

    @cfg.setter
    def cfg(self, config: TrainConfig) -> None:
        # without native kernels bf16 is emulated and slow: run fp32, and the checkpoint and model
        # card say so (whenever the config is set, also by a caller changing it mid-run)
        self._cfg = config.model_copy(update={"amp": False}) if config.amp and not self._bf16 else config

    def _autocast(self) -> torch.autocast:
        dtype = torch.bfloat16 if self.cfg.amp else torch.float32
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.cfg.amp)

    def _discriminator_step(self, judged: Judged) -> float:
        """One LSGAN update of the discriminators on this step's outputs (before the generator's)."""
        opt = self.optimizers["optimizer_d"]
        for group in opt.param_groups:
            group["lr"] = _d_lr(self.cfg, self.step)
        with self._autocast():
            d_loss = discriminator_loss(judged)
        opt.zero_grad(set_to_none=True)
        d_loss.backward()
        opt.step()
        return float(d_loss.detach())

    def run(
        self,
        on_log: Callable[[dict[str, float]], None] | None = None,
        *,
        max_seconds: float | None = None,
        on_save: Callable[[Path], None] | None = None,
    ) -> Path:
        """Train up to ``config.steps`` (or until ``max_seconds`` of wall time pass); returns the checkpoint.

        ``on_save`` is called after every checkpoint write (e.g. to export a snapshot).
        """
        started = time.monotonic()
        here = describe_device(self.device)
        last = self.hardware_log[-1] if self.hardware_log else None
        if last is None or last["hardware"] != here or last["to_step"] != self.step:
            self.hardware_log.append({"hardware": here, "from_step": self.step, "to_step": self.step})

        def save() -> Path:
            path = self.save()
            if on_save:
                on_save(path)
            return path

        log_path = self.out.with_suffix(".csv")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        columns = log_columns(self.cfg)
        new_log = not log_path.is_file() or self.step == 0
        if not new_log:
            _match_log_columns(log_path, columns)
        with open(log_path, "w" if new_log else "a", newline="") as fh:
            writer = csv.writer(fh)
            if new_log:
                writer.writerow(columns)
            last_ckpt = time.monotonic()
            window_start, window_steps = time.monotonic(), 0
            while self.step < self.cfg.steps:
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    break
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
                    writer.writerow([_cell(row.get(k, "")) for k in columns])
                    fh.flush()
                    if on_log:
                        on_log(row)
                    window_start, window_steps = time.monotonic(), 0
                if time.monotonic() - last_ckpt >= self.cfg.checkpoint_every_s:
                    save()
                    last_ckpt = time.monotonic()
        return save()


def _cell(value: Any) -> Any:
    """A log cell: floats to 6 significant digits; a term the step did not compute stays empty."""
    return f"{value:.6g}" if isinstance(value, float) else value


def checkpoint_weights(state: Mapping[str, Any], roles: Sequence[str]) -> dict[str, dict[str, torch.Tensor]]:
    """The weights a checkpoint ships, by role: the running average where the run kept one (ema_decay),
    else the last step's."""
    source = state.get("ema") or state
    return {role: source[role] for role in roles}


def _match_log_columns(path: Path, columns: list[str]) -> None:
    """Rewrite a resumed run's log under ``columns`` if it was written with others (a loss term added
    since): old rows keep their values by name, and columns they lack stay empty."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
        fh.seek(0)
        header = next(csv.reader(fh), [])
    if header == columns:
        return
    if "step" not in header:  # headerless (cut by hand?): DictReader would take row 1 as the names
        raise ParameterError(
            f"{path}: its first line is not a training log header (no 'step' column); restore the "
            "header or move the file away to start a new log"
        )
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def init_files(source: Path | str, method: str, roles: list[str], encoder: str) -> dict[str, Path]:
    """The files to start a run from, by role: ``source`` is a catalog name (checksums verified) or a
    weights file; for several roles, a file named ``NAME.<role>.safetensors`` finds its siblings."""
    path = Path(source)
    if not path.is_file():
        catalog = load_catalog()
        if str(source) not in catalog.names():
            raise WeightsError(
                f"{{init_from}}={source}: neither a file nor a weights name in the catalog",
                settings=("init_from",),
            )
        spec = catalog.get(str(source))
        family = {"adain"} if method == "adain" else {"sanet", "rast"}  # sanet and rast share networks
        if spec.method not in family:
            raise ParameterError(f"weights {spec.name!r} are for {spec.method or spec.kind}, not {method}")
        if spec.encoder != encoder:
            raise ParameterError(f"weights {spec.name!r} were trained with {spec.encoder}, not {encoder}")
        return {role: catalog.verified_path(spec, role) for role in roles}
    if len(roles) == 1:
        return {roles[0]: path}
    for role in roles:
        suffix = f".{role}{path.suffix}"
        if path.name.endswith(suffix):
            stem = path.name[: -len(suffix)]
            files = {r: path.with_name(f"{stem}.{r}{path.suffix}") for r in roles}
            absent = [str(p) for p in files.values() if not p.is_file()]
            if absent:
                raise WeightsError(
                    f"{{init_from}}={path}: missing {', '.join(absent)}", settings=("init_from",)
                )
            return files
    raise WeightsError(
        f"{{init_from}}={path}: {method} needs {' and '.join(roles)} weights; give a catalog name or one "
        f"file of a pair named NAME.{roles[0]}{path.suffix} / NAME.{roles[1]}{path.suffix}",
        settings=("init_from",),
    )
