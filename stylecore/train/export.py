"""Turn a training checkpoint into shipped weights: fp16 safetensors, a catalog entry, a model card.

AdaIN ships one file, ``<name>.safetensors`` (role ``decoder``). SANet and RAST ship two, named by
role: ``<name>.decoder.safetensors`` and ``<name>.transformer.safetensors`` (arch ``sanet-transformer``
or ``sanet-transformer-norm``), which is what :meth:`stylecore.methods.base.Stylizer.load` loads by
role. RAST's discriminators are only needed for training and stay in the checkpoint.

A snapshot (:func:`write_snapshot`) is the same fp16 files under the method's own name with the
training config, step and hardware in their metadata, written after every checkpoint: a machine
that sends back only a few small files returns these, and :func:`export_checkpoint` takes them as
it takes a checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import save

from stylecore.errors import ParameterError, StyleCoreError, WeightsError
from stylecore.fsio import atomic_copy, atomic_write_bytes, atomic_write_text, restored_on_error
from stylecore.nets.decoder import SKIP_LAYERS
from stylecore.train.loop import METHOD_ROLES, TrainConfig, Trainer, checkpoint_weights, init_files
from stylecore.train.losses import TERM_DESCRIPTIONS
from stylecore.weights import read_state_dict, sha256_file, upsert_entry, weights_dir

METHOD_TITLES = {
    "adain": "AdaIN decoder",
    "sanet": "SANet transformer and decoder",
    "rast": "RAST (SANet architecture) transformer and decoder",
}
METHOD_USES = {
    "adain": "Fast artistic style transfer of photos with any painting (`method: adain`), in batch jobs, "
    "dataset augmentation (`StyleAugment`) and previews",
    "sanet": "Artistic style transfer of photos with any painting (`method: sanet`), where the style's "
    "local patterns should follow the content's structure (style attention)",
    "rast": "Artistic style transfer of photos with any painting (`method: rast`), where the photo's "
    "content should stay recognisable (restoration losses)",
}


def hardware_summary(record: list[dict[str, Any]] | None) -> str:
    """The checkpoint's ``hardware_log`` as one line: which device trained which steps."""
    if not record:
        return "not recorded (the checkpoint predates the record)"
    parts = [f"steps {r['from_step']}-{r['to_step']}: {r['hardware']}" for r in record]
    if record[0]["from_step"] > 0:  # resumed from a checkpoint written before the record existed
        parts.insert(0, f"steps 0-{record[0]['from_step']}: not recorded")
    return "; ".join(parts)


def write_fp16(state: dict[str, torch.Tensor], target: Path) -> str:
    atomic_write_bytes(target, save({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}))
    return sha256_file(target)


def weights_filename(name: str, method: str, role: str) -> str:
    """The file one role of shipped weights goes in (see the module docstring)."""
    return f"{name}.safetensors" if len(METHOD_ROLES[method]) == 1 else f"{name}.{role}.safetensors"


def write_snapshot(trainer: Trainer, folder: Path, *, data: str | None = None) -> list[Path]:
    """The run's shipped weights as they are now (the running average where the run keeps one) as
    fp16 safetensors in ``folder``, named as exported weights of the method's own name
    (``adain.safetensors``; ``sanet.decoder.safetensors`` and ``sanet.transformer.safetensors``), with
    the config, step, training time, hardware and ``data`` (the card's data row) in their metadata;
    plus a copy of the CSV log (``<method>.csv``). No optimiser state: a further run starts from them
    with ``init_from``. Returns the weights files."""
    method, device = trainer.cfg.method, trainer.device
    meta = {
        "config": json.dumps(trainer.cfg.model_dump(mode="json")),
        "step": str(trainer.step),
        "elapsed": f"{trainer.elapsed:.1f}",
        "hardware": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        **({"data": data} if data else {}),
    }
    written = []
    for role, weights in checkpoint_weights(trainer.state_dict(), METHOD_ROLES[method]).items():
        state = {k: v.detach().half().contiguous() for k, v in weights.items()}
        path = Path(folder) / weights_filename(method, method, role)
        written.append(atomic_write_bytes(path, save(state, metadata=meta)))
    log = trainer.out.with_suffix(".csv")
    if log.is_file():
        atomic_copy(log, Path(folder) / f"{method}.csv")
    return written


def read_snapshot(path: Path) -> dict[str, Any]:
    """A snapshot (any one file of it) as a checkpoint: config, step, elapsed, hardware, data (if
    recorded) and the weights by role."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        config = json.loads(meta["config"])
        roles = METHOD_ROLES[config["method"]]
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"{path}: not a training snapshot ({type(exc).__name__}: {exc})") from None
    method = config["method"]
    states = {role: read_state_dict(path.with_name(weights_filename(method, method, role))) for role in roles}
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


def export_checkpoint(
    checkpoint: Path,
    name: str,
    *,
    root: Path | None = None,
    hardware: str | None = None,
    metrics: dict[str, Any] | None = None,
    note: str | None = None,
    data: str | None = None,
    blend_from: Path | str | None = None,
    blend: float = 1.0,
) -> dict[str, Any]:
    """Write the fp16 safetensors and ``<name>.md`` into the weights folder and catalog them.

    ``checkpoint`` is a file :class:`~stylecore.train.loop.Trainer` wrote, or any file of a snapshot
    (``.safetensors``, :func:`write_snapshot`; its recorded hardware and data row are the defaults).
    ``data`` describes the training images where the config's folders would not (a packed copy).

    ``blend_from`` (a catalog name or file, as ``init_from`` takes) ships ``blend`` x the trained
    weights + (1 - ``blend``) x those weights instead (:func:`blend_states`), and the card says so.
    ``blend`` up to 1 interpolates; above 1 (at most :data:`MAX_BLEND`) it extrapolates."""
    if not 0.0 <= blend <= MAX_BLEND:
        raise ParameterError(f"{{blend}}={blend}: a share between 0 and {MAX_BLEND:g}", settings=("blend",))
    root = Path(root) if root is not None else weights_dir()
    snapshot = Path(checkpoint).suffix == ".safetensors"
    try:
        if snapshot:
            ckpt = read_snapshot(checkpoint)
        else:
            ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        cfg = ckpt["config"]
        config = TrainConfig.from_checkpoint(cfg)
        roles = METHOD_ROLES[config.method]
        states = checkpoint_weights(ckpt, roles)
    except (OSError, KeyError, RuntimeError, ValidationError) as exc:
        raise WeightsError(f"{checkpoint}: not a stylepipe training checkpoint ({exc})") from None
    if blend_from is not None:
        try:
            starts = init_files(blend_from, config.method, list(roles), config.encoder)
        except StyleCoreError as exc:  # its message names init_from: say which setting it was here
            text = exc.template.replace("{init_from}", "{blend_from}")
            raise WeightsError(text, settings=("blend_from",) if "{blend_from}" in text else ()) from None
        states = {
            role: blend_states(read_state_dict(path), states[role], blend) for role, path in starts.items()
        }
    if snapshot:
        hardware = hardware or ckpt["hardware"]
        note = note or f"{ckpt['step']} steps ({ckpt['elapsed'] / 60:.1f} min) on {hardware}"
        data = data or ckpt.get("data")
    method, encoder = config.method, config.encoder
    root.mkdir(parents=True, exist_ok=True)
    arch = {"decoder": config.decoder_arch(), "transformer": config.transformer_arch()}
    filenames = {role: weights_filename(name, method, role) for role in roles}
    files: list[dict[str, str]] = []  # filled below, where the files are written
    meta = {
        "steps": ckpt["step"],
        "crop": config.size,
        "batch": config.batch,
        "lr": config.lr,
        "lr_decay": config.lr_decay,
        "loss_weights": config.loss_weights(),
        "scale_features": bool(config.scale_features),
        "upsample": config.upsample,
        **({"style_encoder": config.style_encoder} if config.style_encoder else {}),
        **({"ema_decay": config.ema_decay} if "ema" in ckpt else {}),
        "train_seconds": round(ckpt["elapsed"], 1),
        "hardware": hardware or hardware_summary(ckpt.get("hardware_log")),
        "exported": datetime.now(UTC).strftime("%Y-%m-%d"),
        **({"metrics": metrics} if metrics else {}),
        **({"note": note} if note else {}),
        **({"data": data} if data else {}),
        **({"blend": {"from": str(blend_from), "share": blend}} if blend_from is not None else {}),
    }
    entry = {
        "name": name,
        "kind": "method",
        "arch": method,
        "encoder": encoder,
        "location": "project",
        "files": files,
        "license": "MIT",
        "source": "trained by stylepipe (stylize train) on the offline corpus; see the model card",
        "preprocessing": "RGB in [0,1] (the encoder does its own preprocessing)",
        "description": f"{method} {' + '.join(roles)} for {encoder}, fp16",
        "card": f"{name}.md",
        "meta": meta,
    }
    # files, card and catalog together: a failure puts back the files as they were
    with restored_on_error([*(root / f for f in filenames.values()), root / f"{name}.md"]):
        for role, filename in filenames.items():
            digest = write_fp16(states[role], root / filename)
            files.append({"role": role, "filename": filename, "arch": arch[role], "sha256": digest})
        atomic_write_text(root / f"{name}.md", model_card(name, config, meta, files))
        upsert_entry(entry, root)
    return entry


# Further out, extrapolated weights left what either run learnt (SANet's reconstruction SSIM: 0.96 at a
# share of 1, 0.84 at 3, 0.62 at 4); the bound also catches a share typed as a percentage.
MAX_BLEND = 2.0


def blend_states(
    start: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor], share: float
) -> dict[str, torch.Tensor]:
    """``share`` x ``trained`` + (1 - ``share``) x ``start``, key by key.

    With ``share`` <= 1 and ``start`` the run's starting point, this is weight-space interpolation
    between a fine-tuned network and its start, as WiSE-FT (Wortsman et al., CVPR 2022): it moves the
    trained network's behaviour back towards the start's without another run. With ``share`` > 1 and
    ``start`` a sibling run that lacked one loss term, it extrapolates along their difference, as task
    arithmetic (Ilharco et al., ICLR 2023): ``trained + (share - 1) x (trained - start)`` strengthens what
    that term changed. A plain decoder as ``start`` of a :class:`~stylecore.nets.decoder.SkipDecoder` is
    its body, with the skips at zero, as ``init_from`` loads it."""
    plain = not any(k.startswith("body.") for k in start)
    out = {}
    for key, value in trained.items():
        origin = key.removeprefix("body.") if plain else key
        if origin in start:
            base = start[origin].float()
        elif plain and key.startswith("skip."):
            base = torch.zeros_like(value, dtype=torch.float32)
        else:
            raise WeightsError(f"the starting weights lack {origin!r}: not the network that was trained")
        if base.shape != value.shape:
            raise WeightsError(
                f"{origin}: shape {tuple(base.shape)} against the trained {tuple(value.shape)}"
            )
        out[key] = share * value.float() + (1.0 - share) * base
    return out


def read_metrics(path: Path | str) -> dict[str, Any]:
    """The scalar figures of a JSON object (e.g. a ``benchmarks/quality.py`` result) for a model card;
    nested settings are flattened one level (``settings.size``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot read measured figures ({exc})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: measured figures must be a JSON object, not {type(data).__name__}")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if isinstance(v, str | int | float)})
        elif isinstance(value, str | int | float):
            flat[key] = round(value, 4) if isinstance(value, float) else value
    return flat


def _layer_note(term: str, config: TrainConfig) -> str:
    if term != "style" or not config.style_layers:
        return ""
    named = ", ".join(f"{k} x{v:g}" for k, v in config.style_layers.items())
    return f"; layers weighted {named}, the others x1 (`style_layers`, not in the paper)"


def metric_rows(metrics: Mapping[str, Any] | None, empty: str) -> str:
    """The rows of a model card's Measured table (``empty`` as the one row where nothing was measured)."""
    return "\n".join(f"| {k} | {v} |" for k, v in (metrics or {}).items()) or f"| {empty} | |"


def model_card(name: str, config: TrainConfig, meta: dict[str, Any], files: list[dict[str, Any]]) -> str:
    metric_lines = metric_rows(meta.get("metrics"), "(none measured for this export)")
    lineage = f"\n**Lineage:** {meta['note']}\n" if meta.get("note") else ""
    minutes = meta["train_seconds"] / 60
    file_rows = "\n".join(
        f"| file ({f['role']}) | `{f['filename']}` (fp16, arch `{f['arch']}`, sha256 `{f['sha256']}`) |"
        for f in files
    )
    descriptions = TERM_DESCRIPTIONS[config.method]
    loss_rows = "\n".join(
        f"| {term} | {weight:g} | {descriptions[term]}{_layer_note(term, config)} |"
        for term, weight in meta["loss_weights"].items()
    )
    scaling = (
        "Features were divided by each layer's mean activation before the losses compared them "
        "(`stylecore/train/scales.py`), so the weights act as on `vgg_normalised`."
        if config.scale_features
        else "The losses compared raw encoder features."
    )
    if config.other_style_encoder:
        scaling += (
            f" The style term was computed on `{config.style_encoder}` (its features divided by their "
            f"layer scales), the content term on `{config.encoder}`."
        )
    data = meta.get("data") or (
        f"content: {', '.join(map(str, config.content_dirs))}; style: {', '.join(map(str, config.style_dirs))}"
    )
    extra = ""
    if config.discriminators:
        scales = f"{config.gan_scales}-scale"
        nets = f"two {scales} PatchGANs" if len(config.discriminators) == 2 else f"one {scales} PatchGAN"
        extra = (
            f"| discriminators | {nets} (LSGAN), Adam lr {config.d_lr or config.lr}, "
            f"betas (0.5, 0.999); not shipped |\n"
        )
    ema = (
        f"| shipped weights | running average of the training weights, decay {meta['ema_decay']:g} per step "
        f"(`ema_decay`; the average began when the setting was turned on) |\n"
        if "ema_decay" in meta
        else ""
    )
    if "blend" in meta:
        share, origin = meta["blend"]["share"], meta["blend"]["from"]
        if share <= 1:
            ema += (
                f"| blended | {share:g} x the trained weights + {1 - share:g} x `{origin}`, parameter by "
                "parameter (weight-space interpolation, as WiSE-FT; `stylize weights export --blend-from`) |\n"
            )
        else:
            ema += (
                f"| extrapolated | {share:g} x the trained weights - {share - 1:g} x `{origin}`, parameter by "
                f"parameter: the trained weights moved {share - 1:g} x further along their difference from "
                "those (as task arithmetic; `stylize weights export --blend-from --blend`) |\n"
            )
    start = (
        f"as `init_from={config.init_from}` loaded it" if config.init_from else "at its seeded initialisation"
    )
    frozen = (
        f"| kept fixed | {', '.join(config.freeze)}: {start}, not trained (`freeze`) |\n"
        if config.freeze
        else ""
    )
    names = SKIP_LAYERS[: config.skips]
    levels = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    stages = ("first upsampling", "first two upsamplings", "three upsamplings")[config.skips - 1]
    skip = (
        f"| skip connections | not in the paper: 1x1 convolutions add AdaIN-transferred {levels} (the "
        f"content's features with the style's mean/std at each level) after the decoder's {stages} "
        "(`SkipDecoder`, `stylecore/nets/decoder.py`); "
        + (
            f"training started from `init_from={config.init_from}` (a plain decoder there loads the body and "
            "leaves the skips at zero; a skip decoder loads whole)"
            if config.init_from
            else "the skips started at zero"
        )
        + " |\n"
        if config.decoder == "skip"
        else ""
    )
    return f"""# {name}

{METHOD_TITLES[config.method]} for the `{config.encoder}` encoder, trained with stylepipe (`stylize train`).
{lineage}
| | |
| --- | --- |
{file_rows}
| data | {data} |
| held out | the evaluation split ({len(config.exclude)} files), never seen in training |
| steps | {meta["steps"]} |
| crops | {config.size} px random crops of images scaled to a short side of {config.load_size or round(config.size * 1.5)} px |
| batch | {config.batch} |
| decoder upsampling | {config.upsample} |
{skip}| optimiser | Adam, lr {config.lr} / (1 + {config.lr_decay} x step) |
{extra}{frozen}{ema}| precision | {"bf16 autocast" if config.amp else "fp32"} |
| hardware | {meta["hardware"]} |
| training time | {minutes:.0f} min of compute |
| licence | MIT (weights); the training images keep their own licences and are not redistributed |

## Intended use

{METHOD_USES[config.method]}. Load it by name: `get_method("{config.method}").load("{name}")`, or
`weights: {name}` in a manifest job.

## Limitations

- It works only with the `{config.encoder}` encoder it was trained against; the catalog refuses other pairings.
- Measured figures, where given below, come from the held-out evaluation pairs at the size they name; other
  images and sizes give other figures.
- The balance of content and style is the one the loss weights below set in training; at inference `alpha`
  only moves the output back towards the content.

## Losses

Unweighted terms as defined in `stylecore/train/losses.py`; total = sum of weight x term.
{scaling}

| term | weight | definition |
| --- | --- | --- |
{loss_rows}

## Measured

| metric | value |
| --- | --- |
{metric_lines}
"""
