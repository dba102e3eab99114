"""Derive new weights from catalogued ones without training: weight-space blends and scaled parameters.

Shipped weights are often a point on a line between two trained networks (:func:`blend_states`), and a
method's balance can be moved by scaling one module's parameters. :func:`derive_weights` does either or
both to a catalog entry, writes the fp16 files under a new (or the same) name, and records each step in
the catalog's ``meta.blend`` list and the model card, so that the shipped files can be made again from
their sources.

A scale names parameters by file role and key prefix: ``transformer:sanet5_1.out_conv`` is the output
convolution of SANet's relu5_1 attention, whose result is added to the content's relu5_1 features, so a
factor of 0.5 halves that attention's contribution and leaves everything else as trained.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stylecore.errors import ParameterError, WeightsError
from stylecore.fsio import atomic_write_text, restored_on_error
from stylecore.train.export import MAX_BLEND, blend_states, metric_rows, weights_filename, write_fp16
from stylecore.weights import WeightsSpec, load_catalog, read_state_dict, upsert_entry

MEASURED_HEADER = "## Measured"


@dataclass(frozen=True)
class Scale:
    """Multiply the parameters of file ``role`` whose key is ``prefix`` or starts with ``prefix.``."""

    role: str
    prefix: str
    factor: float

    @classmethod
    def parse(cls, text: str) -> Scale:
        """``ROLE:PREFIX=FACTOR``, e.g. ``transformer:sanet5_1.out_conv=0.5``."""
        match = re.fullmatch(r"\s*([\w-]+):([\w.]+)\s*=\s*(\S+)\s*", text)
        if match is None:
            raise ParameterError(
                f"{{scale}}={text!r}: expected ROLE:PREFIX=FACTOR, e.g. transformer:sanet5_1.out_conv=0.5",
                settings=("scale",),
            )
        role, prefix, factor = match.groups()
        try:
            value = float(factor)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ParameterError(
                f"{{scale}}={text!r}: the factor {factor!r} is not a number", settings=("scale",)
            )
        return cls(role, prefix, value)

    def __str__(self) -> str:
        return f"{self.role}:{self.prefix}={self.factor:g}"


def derive_weights(
    source: str,
    name: str,
    *,
    toward: str | None = None,
    share: float = 1.0,
    scales: Sequence[Scale] = (),
    root: Path | None = None,
    note: str | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``name``: the catalog entry ``source``, blended with ``toward`` and/or with ``scales`` applied.

    The blend is ``share`` x ``source`` + (1 - ``share``) x ``toward``, parameter by parameter
    (:func:`~stylecore.train.export.blend_states`; a share above 1 extrapolates away from ``toward``);
    the scales then multiply the parameters they name. ``name`` may be ``source`` itself (the files are
    read before any is written). The new entry keeps ``source``'s description and card, with the
    derivation added; figures measured on ``source`` are dropped unless ``metrics`` gives new ones."""
    catalog = load_catalog(root)
    spec = catalog.get(source)
    if spec.kind != "method" or spec.location != "project":
        raise WeightsError(
            f"weights {source!r} are not trained method weights of this project (kind {spec.kind!r}, "
            f"location {spec.location!r}): only those can be derived from"
        )
    if toward is None and share != 1.0:
        raise ParameterError(
            f"{{share}}={share:g} needs {{toward}}: the weights to blend with", settings=("share", "toward")
        )
    if toward is None and not scales:
        raise ParameterError(
            "nothing to derive: give {toward} (with {share}), {scale}, or both",
            settings=("toward", "share", "scale"),
        )
    if not 0.0 <= share <= MAX_BLEND:
        raise ParameterError(f"{{share}}={share:g}: a share between 0 and {MAX_BLEND:g}", settings=("share",))
    roles = [f.role for f in spec.files]
    states = {role: read_state_dict(catalog.verified_path(spec, role)) for role in roles}
    steps: list[dict[str, Any]] = []
    if toward is not None:
        other = catalog.get(toward)
        if (other.method, other.encoder) != (spec.method, spec.encoder):
            raise WeightsError(
                f"weights {toward!r} are {other.method or other.kind} for {other.encoder}, "
                f"{source!r} {spec.method} for {spec.encoder}: blend weights of one method and encoder"
            )
        missing = [r for r in roles if r not in {f.role for f in other.files}]
        if missing:
            raise WeightsError(f"weights {toward!r} have no {', '.join(missing)} file to blend with")
        for role in roles:
            start = read_state_dict(catalog.verified_path(other, role))
            states[role] = blend_states(start, states[role], share)
        steps.append({"from": toward, "share": share})
    for scale in scales:
        if scale.role not in states:
            raise ParameterError(
                f"{{scale}}={scale}: {source!r} has no {scale.role!r} file (it has {', '.join(roles)})",
                settings=("scale",),
            )
        state = states[scale.role]
        keys = [k for k in state if k == scale.prefix or k.startswith(scale.prefix + ".")]
        if not keys:
            prefixes = sorted({k.rsplit(".", 1)[0] for k in state})
            shown = ", ".join(prefixes[:12]) + (", ..." if len(prefixes) > 12 else "")
            raise ParameterError(
                f"{{scale}}={scale}: no parameter of the {scale.role} starts with {scale.prefix!r} "
                f"(its modules: {shown})",
                settings=("scale",),
            )
        for key in keys:
            state[key] = state[key].float() * scale.factor
        steps.append({"scale": f"{scale.role}:{scale.prefix}", "factor": scale.factor})

    folder = catalog.root
    targets = [folder / weights_filename(name, spec.arch, f.role) for f in spec.files]
    with restored_on_error([*targets, folder / f"{name}.md"]):  # files and catalog never disagree
        return _write_derived(spec, name, states, steps, folder, note, metrics)


def _write_derived(
    spec: WeightsSpec,
    name: str,
    states: Mapping[str, Any],
    steps: list[dict[str, Any]],
    folder: Path,
    note: str | None,
    metrics: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The fp16 files, the card and the catalog entry of a derivation."""
    files = []
    for f in spec.files:
        filename = weights_filename(name, spec.arch, f.role)
        files.append(
            {**asdict(f), "filename": filename, "sha256": write_fp16(states[f.role], folder / filename)}
        )
    meta = {k: v for k, v in spec.meta.items() if k != "metrics"}
    earlier = meta.get("blend")
    history = [] if earlier is None else list(earlier) if isinstance(earlier, list) else [earlier]
    meta["blend"] = history + steps
    meta["exported"] = datetime.now(UTC).strftime("%Y-%m-%d")
    if metrics:
        meta["metrics"] = dict(metrics)
    # the key order `stylize weights export` writes, so an in-place derivation's diff shows only what changed
    entry: dict[str, Any] = {"name": name, "kind": spec.kind, "arch": spec.arch, "encoder": spec.encoder}
    entry.update(location=spec.location, files=files, license=spec.license, source=spec.source)
    entry.update(preprocessing=spec.preprocessing, description=spec.description)
    if spec.package is not None:
        entry["package"] = spec.package
    entry.update(card=f"{name}.md", meta=meta)
    card = (folder / spec.card).read_text() if spec.card and (folder / spec.card).is_file() else ""
    atomic_write_text(folder / f"{name}.md", derived_card(card, spec, name, files, steps, note, metrics))
    upsert_entry(entry, folder)
    return entry


def describe_steps(source: str, steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per derivation step, as the model card gives them."""
    out = []
    for step in steps:
        if "scale" in step:
            role, prefix = step["scale"].split(":", 1)
            out.append(f"the {role}'s `{prefix}` parameters multiplied by {step['factor']:g}")
        elif step["share"] <= 1:
            out.append(f"{step['share']:g} x `{source}` + {1 - step['share']:g} x `{step['from']}`")
        else:
            out.append(
                f"{step['share']:g} x `{source}` - {step['share'] - 1:g} x `{step['from']}` "
                f"({step['share'] - 1:g} x further from `{step['from']}`)"
            )
    return out


def derived_card(
    card: str,
    spec: WeightsSpec,
    name: str,
    files: Sequence[Mapping[str, Any]],
    steps: Sequence[Mapping[str, Any]],
    note: str | None,
    metrics: Mapping[str, Any] | None,
) -> str:
    """``spec``'s model card for the derived files: new name and checksums, the steps, fresh figures."""
    sentence = "; then ".join(describe_steps(spec.name, steps))
    sums = ", ".join(f"{f.role} sha256 {(f.sha256 or '?')[:12]}" for f in spec.files)
    cli = " ".join(
        [f"stylize weights derive {name} --from {spec.name}"]
        + [f"--toward {s['from']} --share {s['share']:g}" for s in steps if "from" in s]
        + [f"--scale {s['scale']}={s['factor']:g}" for s in steps if "scale" in s]
    )
    derivation = (
        f"**Derived** from `{spec.name}` as it was (files {sums}), parameter by parameter, without training: "
        f"{sentence} (`{cli}`).{' ' + note if note else ''} Figures in the text below that are not under "
        "Measured were measured before this step.\n"
    )
    if not card:
        card = f"# {spec.name}\n\n{spec.description}\n\n{MEASURED_HEADER}\n"
    card = re.sub(r"\A# .*", f"# {name}", card, count=1)
    card = card.replace(f'load("{spec.name}")', f'load("{name}")').replace(
        f"weights: {spec.name}`", f"weights: {name}`"
    )
    for f in files:
        card = re.sub(
            rf"\| file \({re.escape(f['role'])}\) \| `[^`]+` \(fp16, arch `[^`]+`, sha256 `[0-9a-f]+`\) \|",
            f"| file ({f['role']}) | `{f['filename']}` (fp16, arch `{f['arch']}`, sha256 `{f['sha256']}`) |",
            card,
        )
    head, sep, _ = card.partition(MEASURED_HEADER)
    rows = metric_rows(metrics, "(none measured for these weights)")
    head = head if sep else head.rstrip() + "\n\n"
    # after the card's opening text (description, lineage), before its table
    at = head.find("\n| | |\n")
    at = at + 1 if at >= 0 else head.find("\n\n") + 2
    head = f"{head[:at]}{derivation}\n{head[at:]}"
    return f"{head}{MEASURED_HEADER}\n\n| metric | value |\n| --- | --- |\n{rows}\n"
