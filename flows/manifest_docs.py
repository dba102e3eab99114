"""The manifest reference, ``docs/manifests.md``, generated from the pydantic models that validate manifests.

Every table comes from the models' fields (type, default, constraints, description), so the reference
cannot drift from what ``stylize validate`` accepts; ``tests/test_docs.py`` fails when the committed file
differs from :func:`render`. Regenerate with::

    python -m flows.manifest_docs > docs/manifests.md
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from flows.manifest import PHOTOREAL_PRESETS, Manifest

REGENERATE = "python -m flows.manifest_docs > docs/manifests.md"

INTRO = """\
A manifest is a YAML file that lists jobs: what to stylize, with which method, and where the results go.
`stylize validate M.yaml` checks it without running anything; `stylize run M.yaml` runs it as one Prefect
flow run. The examples in `manifests/` are complete manifests.

```yaml
schema_version: 1
name: my-run                      # shown in the Prefect UI and the run record
output: ../output/my-run          # a folder relative to this file, or an fsspec URL (s3://...)
defaults: {size: 512, format: jpg}
jobs:
  - kind: image
    name: adain                   # the output sub-folder
    method: adain
    contents: [photos/*.jpg]      # files, folders or globs, relative to this file
    styles: [styles/starry_night.jpg, styles/great_wave.jpg]
    params: {alpha: 0.8, preserve_color: false}
```

How a manifest is read:

- **Strict.** Unknown keys are errors, at every level. `schema_version` must be `1`.
- **`defaults`** is merged under every job before validation: a key a job sets wins; a default that a
  job kind does not know is an error for that job.
- **Paths** are relative to the manifest file. A folder stands for the images in it (not recursive); a
  glob (`*`, `?`, `[..]`, `**`) expands in sorted order; an entry that matches nothing is an error.
- **Job names** are 1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit, and unique
  within the manifest: a name is the job's output sub-folder and can never escape the output root.
- **Pairing** of contents with styles: `product` (every content with every style), `zip` (first with
  first; the counts must match) or `random` (each content draws one style, seeded by `seed`; `count`
  items in all).
- **Output names** are `<content>__<style>__<method>-<hash>.<format>`, where the hash covers the method,
  weights (the method's default where the job names none, with the sha256 of its files as the weights
  catalog records them), parameters, sizes and the full input paths: a re-run with the same settings
  finds its outputs and skips them; a change of settings, or new weights under the same name, writes
  new files.
- **Every problem is reported at once**, each with its location (`jobs[1].styles[0]: no files match
  'styles/*.png'`), and nothing runs.

In the tables below, *required* marks a field without a default; `null` is YAML's empty value.
"""


# ---- rendering of types, defaults and constraints ----------------------------------------------------

_CONSTRAINTS: tuple[tuple[type, str, str], ...] = (
    (at.Ge, "ge", ">="),
    (at.Gt, "gt", ">"),
    (at.Le, "le", "<="),
    (at.Lt, "lt", "<"),
    (at.MinLen, "min_length", "at least {} item(s)"),
    (at.MaxLen, "max_length", "at most {} item(s)"),
)


def type_name(annotation: Any) -> str:
    """A type as a reader of YAML sees it: ``list[str]``, ``int | null``, ``"jpg" | "png"``."""
    if annotation is type(None):
        return "null"
    origin = get_origin(annotation)
    if origin is Annotated:
        return type_name(get_args(annotation)[0])
    if origin is Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else _value(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(annotation))
    if origin in (list, tuple, dict, set, frozenset):
        args = get_args(annotation)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"list[{type_name(args[0])}]"
        if origin is tuple:
            return "[" + ", ".join(type_name(a) for a in args) + "]"
        if origin is dict:
            return "mapping" if not args or args[1] is Any else f"mapping of {type_name(args[1])}"
        return f"list[{type_name(args[0])}]" if args else "list"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _value(value: Any) -> str:
    """A default as it would be written in YAML (flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, BaseModel):
        return _value(value.model_dump())
    return str(value)


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return f"`{_value(info.default_factory())}`"  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return "*required*"
    return f"`{_value(info.default)}`"


def constraints_text(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for cls, attr, label in _CONSTRAINTS:
            if isinstance(meta, cls):
                bound = getattr(meta, attr)
                parts.append(label.format(bound) if "{}" in label else f"{label} {_value(bound)}")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _doc(model: type[BaseModel]) -> str:
    """The model's docstring as paragraphs (it is written for readers of the docs as well)."""
    doc = model.__doc__ or ""
    if doc == BaseModel.__doc__ or not doc.strip():
        return ""
    lines = [line.strip() for line in doc.strip().splitlines()]
    return "\n".join(lines).replace("``", "`")


def fields_table(
    model: type[BaseModel], *, skip: Iterable[str] = (), first: Iterable[str] = ("kind",)
) -> str:
    """One row per field: name, type, default, constraints, description."""
    skip, first = set(skip), list(first)
    names = [n for n in first if n in model.model_fields] + [
        n for n in model.model_fields if n not in first and n not in skip
    ]
    rows = ["| field | type | default | constraints | description |", "| --- | --- | --- | --- | --- |"]
    for name in names:
        info = model.model_fields[name]
        rows.append(
            f"| `{name}` | {_cell(type_name(info.annotation))} | {_cell(default_text(info))} "
            f"| {_cell(constraints_text(info))} | {_cell(info.description or _fallback(model, name))} |"
        )
    return "\n".join(rows)


def model_section(title: str, model: type[BaseModel], *, level: int = 2, **kw: Any) -> str:
    parts = [f"{'#' * level} {title}", ""]
    doc = _doc(model)
    if doc:
        parts += [doc, ""]
    parts.append(fields_table(model, **kw))
    return "\n".join(parts) + "\n"


# ---- the document ------------------------------------------------------------------------------------

# Meanings of fields whose model gives no description, by (model, field); a description on the model wins.
FALLBACK_DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("Manifest", "schema_version"): "version of the manifest format",
    ("Manifest", "name"): "the manifest's name (run records, the Prefect UI)",
    ("Manifest", "device"): "auto, cpu, cuda or cuda:N (`stylize run --device` and a worker's device win)",
    ("Manifest", "jobs"): "the jobs, each a table below by its `kind`",
    ("_Job", "seed"): "seed of every random choice the job makes (pairing: random, augment draws)",
    ("_Job", "style_size"): "longest side of the style images (null: the job's `size`)",
    ("_Job", "format"): "output image format",
    ("_Job", "quality"): "JPEG/WebP quality",
    ("_Job", "method"): "a registered method (`stylize methods`)",
    ("_PairJob", "pairing"): "how contents meet styles: product, zip or random",
    ("MeshJobSpec", "pairing"): "how meshes meet styles: product or zip",
    ("MeshJobSpec", "turntable_views"): "rendered views in the turntable strip",
    ("MeshJobSpec", "preview_size"): "side of each view in the turntable and before/after images",
    ("SegFolders", "content"): "folder of the content images' segmentations",
    ("SegFolders", "style"): "folder of the style images' segmentations",
}


def _fallback(model: type[BaseModel], name: str) -> str:
    for cls in model.__mro__:
        text = FALLBACK_DESCRIPTIONS.get((cls.__name__, name))
        if text:
            return text
    return ""


def job_models() -> list[type[BaseModel]]:
    """The job models of the manifest's discriminated union, in its order."""
    annotation = Manifest.model_fields["jobs"].annotation  # list[Annotated[A | B | ..., Field(...)]]
    (inner,) = get_args(annotation)
    union = get_args(inner)[0] if get_origin(inner) is Annotated else inner
    return [m for m in get_args(union) if isinstance(m, type) and issubclass(m, BaseModel)]


def kind_of(model: type[BaseModel]) -> str:
    return "/".join(str(a) for a in get_args(model.model_fields["kind"].annotation))


def nested_models(models: Iterable[type[BaseModel]]) -> list[type[BaseModel]]:
    """Models that fields of ``models`` take as values (``masks: SegFolders``), each once."""
    seen: list[type[BaseModel]] = []

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in seen:
                seen.append(annotation)
            return
        for arg in get_args(annotation):
            walk(arg)

    for model in models:
        for info in model.model_fields.values():
            walk(info.annotation)
    return seen


def _method_sections() -> list[str]:
    from stylecore.methods import get_method, list_methods

    out = [
        "## Method parameters (`params` of image, photoreal and augment jobs)",
        "",
        "`params` is checked against the job's method. The same keys are `-p KEY=VALUE` for `stylize image`.",
        "",
    ]
    for name in list_methods():
        cls = get_method(name)
        weights = (
            f"; default weights `{cls.default_weights}`" if cls.default_weights else "; no trained weights"
        )
        out += [f"### `method: {name}`{weights}", "", fields_table(cls.Params), ""]
    return out


def _mesh_params_section() -> str:
    from stylecore.mesh import MeshStyleConfig

    return model_section(
        "Mesh parameters (`params` of mesh jobs)",
        MeshStyleConfig,
        skip=("styles",),  # the job's own `styles` fill it
    )


def _presets_section() -> str:
    rows = ["| preset | parameters it sets (a job's own `params` win) |", "| --- | --- |"]
    rows += [f"| `{name}` | `{_value(params)}` |" for name, params in PHOTOREAL_PRESETS.items()]
    return "\n".join(
        [
            "## Photo-realistic presets",
            "",
            "With a preset and no explicit `pairing`, each photo is paired with one seeded-random style.",
            "",
            *rows,
            "",
        ]
    )


def render() -> str:
    """The whole of ``docs/manifests.md``."""
    jobs = job_models()
    parts = [
        "# Manifest reference",
        "",
        f"<!-- Generated from flows/manifest.py by flows/manifest_docs.py; do not edit. "
        f"Regenerate: {REGENERATE} -->",
        "",
        INTRO,
        model_section("Top level", Manifest, first=("schema_version",)),
        "Job kinds: " + ", ".join(f"`{kind_of(m)}`" for m in jobs) + ".",
        "",
    ]
    parts += [model_section(f"`kind: {kind_of(m)}`", m) for m in jobs]
    parts += [model_section(f"`{m.__name__}`", m, level=3) for m in nested_models(jobs)]
    parts.append(_presets_section())
    parts += _method_sections()
    parts.append(_mesh_params_section())
    return "\n".join(parts).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
