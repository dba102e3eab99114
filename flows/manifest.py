"""YAML manifests: pydantic models, path/glob expansion and validation before any work starts.

A manifest is loaded with ``yaml.safe_load``, its ``defaults`` block is merged under each job, and the
result is validated by :class:`Manifest` (``extra="forbid"``, a ``schema_version``, jobs told apart by
``kind``). Then :func:`plan` resolves every path relative to the manifest file, expands globs and
folders in sorted order, pairs contents with styles and checks everything it can without running a
model. All problems are collected with their location (``jobs[1].styles[0]: no files match ...``) and
raised together as :class:`ManifestError`.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from stylecore.errors import StyleCoreError
from stylecore.imageio import SUPPORTED_SUFFIXES
from stylecore.runner import WorkItem, check_readable
from stylecore.weights import CATALOG_FILE, load_catalog, sha256_file, weights_dir

SCHEMA_VERSION = 1
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ManifestError(StyleCoreError):
    """Every problem of a manifest, each as ``location: message``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _plain_folder(name: str) -> str:
    if not JOB_NAME.match(name) or name in (".", ".."):
        raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


class _Named(_Model):
    """A job's ``name`` is its output folder. A job without one is named by :meth:`default_name`; two
    jobs may not share a name (:func:`plan` says which), since numbering them by position would move
    a job's outputs to another folder (and lose its resume) when a job is added before it."""

    name: str | None = Field(
        None, description="job name and output sub-folder (default: an image job's method, else its kind)"
    )
    _defaulted: bool = PrivateAttr(False)

    @field_validator("name")
    @classmethod
    def _name_is_a_plain_folder(cls, v: str | None) -> str | None:
        return None if v is None else _plain_folder(v)

    def default_name(self) -> str:
        return self.kind  # type: ignore[attr-defined]  (every job class has its ``kind``)

    @model_validator(mode="after")
    def _name_or_default(self) -> _Named:
        if self.name is None:
            default = self.default_name()
            try:
                _plain_folder(default)
            except ValueError as exc:
                raise ValueError(f"name: the default {default!r} {exc}; give the job a name") from None
            object.__setattr__(self, "name", default)  # a frozen model: set once, while validating
            self._defaulted = True
        return self

    @property
    def named_by_default(self) -> bool:
        return self._defaulted


class _Job(_Named):
    """What every job that stylizes images has."""

    weights: str | None = Field(None, description="catalog name (default: the method's default)")
    styles: list[str] = Field(min_length=1, description="files, folders or globs, relative to the manifest")
    seed: int = 0
    params: dict[str, Any] = Field(default_factory=dict, description="method parameters")
    style_size: int | None = Field(None, ge=16, le=8192)
    format: Literal["jpg", "png", "webp"] = "jpg"
    quality: int = Field(95, ge=1, le=100)
    metrics: bool = Field(True, description="compute f_c, f_s and SSIM for every output")
    batch: int = Field(1, ge=1, le=256, description="same-size contents stylized together (GPU: 8-32)")


class _PairJob(_Job):
    """What every job that pairs contents with styles has."""

    contents: list[str] = Field(min_length=1, description="files, folders or globs, relative to the manifest")
    pairing: Literal["product", "zip", "random"] = "product"
    count: int | None = Field(None, ge=1, description="pairs to draw with pairing: random")


class ImageJobSpec(_PairJob):
    """Artistic transfer of content images with style images."""

    kind: Literal["image"]
    method: str = "adain"
    size: int | None = Field(512, ge=16, le=8192, description="longest side of the content (null: as is)")
    mix: list[float] | None = Field(None, description="mix all styles with these weights (one per style)")

    def default_name(self) -> str:
        return self.method

    @property
    def masks(self) -> None:
        return None


class SegFolders(_Model):
    """Where the colour-coded segmentations are: ``<folder>/<image stem>.png``."""

    content: str
    style: str


PHOTOREAL_PRESETS: dict[str, dict[str, Any]] = {
    # Night needs the biggest change in brightness: a lighter hold on the content features.
    "day_to_night": {"content_weight": 0.2},
    "day_to_sunset": {"content_weight": 0.3},
}


class PhotorealJobSpec(_PairJob):
    """Photo-realistic transfer (structure kept): day-to-night, day-to-sunset, any photo look."""

    kind: Literal["photoreal"]
    preset: Literal["day_to_night", "day_to_sunset"] | None = Field(
        None, description="parameter preset; with a style folder, pairs each photo with a seeded random style"
    )
    masks: SegFolders | None = Field(None, description="semantic masks: sky goes to sky")
    size: int | None = Field(
        None, ge=16, le=16384, description="longest side of the output (null: input size)"
    )

    @property
    def method(self) -> str:
        return "photoreal"

    @property
    def mix(self) -> None:
        return None

    def effective_params(self) -> dict[str, Any]:
        return {**PHOTOREAL_PRESETS.get(self.preset or "", {}), **self.params}

    def effective_pairing(self) -> str:
        if self.preset and "pairing" not in self.model_fields_set:
            return "random"
        return self.pairing


class AugmentJobSpec(_Job):
    """A labelled dataset comes back stylized, with the same classes and relative paths.

    ``source`` is an ImageFolder root (one folder per class) or a CSV/Parquet list with ``path`` and
    ``label`` columns (paths relative to the list file). A ``fraction`` of the images of each class is
    chosen, and each chosen image gets ``per_image`` copies ``<stem>__st<k>.<format>``, each with a
    style from the pool and an alpha from the ``alpha`` range, drawn from (seed, path, copy).
    """

    kind: Literal["augment"]
    source: str = Field(description="ImageFolder root, or a .csv/.parquet list of path,label")
    method: str = "adain"
    per_image: int = Field(1, ge=1, le=100, description="stylized copies of each chosen image")
    fraction: float = Field(1.0, gt=0.0, le=1.0, description="share of each class's images to stylize")
    alpha: float | tuple[float, float] = Field((0.5, 1.0), description="strength, or a range drawn per copy")
    size: int | None = Field(512, ge=16, le=8192, description="longest side (null: as the source)")
    metrics: bool = Field(False, description="f_c/f_s/SSIM per output (off: augmentation wants speed)")

    @field_validator("alpha")
    @classmethod
    def _alpha_range(cls, v: float | tuple[float, float]) -> float | tuple[float, float]:
        from stylecore.augment import check_alpha

        try:
            check_alpha(v)
        except StyleCoreError as exc:
            raise ValueError(str(exc)) from None
        return v

    @property
    def mix(self) -> None:
        return None

    @property
    def masks(self) -> None:
        return None


MESH_SUFFIXES = frozenset({".obj", ".ply", ".glb", ".gltf"})


class MeshJobSpec(_Named):
    """StyleMesh: a stylized texture for each mesh x style, optimised through rendered views.

    Outputs per pair: ``<job>/<mesh>__<style>-<hash>/<mesh>.obj`` (+ ``.mtl``, ``.png``), a turntable
    strip and a before/after image. The hash covers the mesh file's bytes, so a changed mesh is
    stylized again and an unchanged one is skipped (what a nightly run wants).
    """

    kind: Literal["mesh"]
    meshes: list[str] = Field(min_length=1, description="mesh files (.obj .ply .glb), folders or globs")
    styles: list[str] = Field(min_length=1, description="style images, folders or globs")
    pairing: Literal["product", "zip"] = "product"
    params: dict[str, Any] = Field(
        default_factory=dict, description="StyleMesh settings: iterations, texture_size, render_size, ..."
    )
    turntable_views: int = Field(8, ge=1, le=64)
    preview_size: int = Field(256, ge=32, le=2048)

    @property
    def method(self) -> str:
        return "stylemesh"

    @property
    def weights(self) -> None:
        return None

    @property
    def metrics(self) -> bool:
        return False

    def config(self, styles: list[Path]):
        from stylecore.mesh import MeshStyleConfig

        return MeshStyleConfig.model_validate({**self.params, "styles": styles})


# The union is discriminated on ``kind``.
JobSpec = Annotated[
    ImageJobSpec | PhotorealJobSpec | AugmentJobSpec | MeshJobSpec, Field(discriminator="kind")
]
JOB_KINDS = ("image", "photoreal", "augment", "mesh")
AnyJob = ImageJobSpec | PhotorealJobSpec | AugmentJobSpec | MeshJobSpec
ImageLikeJob = ImageJobSpec | PhotorealJobSpec | AugmentJobSpec  # jobs that run in chunks of images


class Manifest(_Model):
    schema_version: Literal[1]
    name: str | None = Field(None, description="names its runs, with the start time (default: the file stem)")
    output: str = Field("output", description="output root: a folder (relative to the manifest) or a URL")
    device: str = "auto"
    chunk_size: int = Field(100, ge=1, le=10000, description="items per Prefect task")
    defaults: dict[str, Any] = Field(default_factory=dict, description="merged under every job")
    jobs: list[JobSpec] = Field(min_length=1)


# ---- loading ---------------------------------------------------------------------------------------


def _format_loc(loc: Iterable[Any]) -> str:
    """pydantic's ``('jobs', 0, 'image', 'styles', 1)`` -> ``jobs[0].styles[1]``."""
    parts = list(loc)
    out = ""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i >= 2 and parts[i - 2] == "jobs" and isinstance(parts[i - 1], int) and part in JOB_KINDS:
            continue  # the discriminator tag pydantic inserts after the job index
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def load_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(str(path), [f"cannot read: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ManifestError(str(path), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if not isinstance(data, dict):
        raise ManifestError(str(path), ["expected a mapping with schema_version, output and jobs"])
    if data.get("schema_version") not in (None, SCHEMA_VERSION):
        raise ManifestError(
            str(path),
            [
                f"schema_version: {data['schema_version']!r} is not supported "
                f"(this stylepipe reads version {SCHEMA_VERSION})"
            ],
        )
    defaults = data.get("defaults") or {}
    jobs = data.get("jobs")
    if isinstance(defaults, dict) and isinstance(jobs, list):
        data = {**data, "jobs": [{**defaults, **j} if isinstance(j, dict) else j for j in jobs]}
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_format_loc(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise ManifestError(str(path), problems) from None


def manifest_label(path: Path) -> str:
    """What a manifest's runs are called: its ``name``, else its file stem (never fails: a run is
    named before its manifest is validated)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        data = None
    name = data.get("name") if isinstance(data, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else path.stem


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (not allowed here)"
    if error["type"] == "union_tag_invalid":
        return f"unknown job kind {error['input'].get('kind')!r}; supported: {', '.join(JOB_KINDS)}"
    if error["type"] == "union_tag_not_found":
        return f"each job needs a 'kind' (supported: {', '.join(JOB_KINDS)})"
    return error["msg"]


# ---- planning ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedJob:
    index: int
    spec: AnyJob
    items: tuple[WorkItem, ...]
    labels: tuple[dict[str, Any], ...] = ()  # augment jobs: one labels-file row per item
    settings: dict[str, Any] | None = None  # augment jobs: what the folder's augment.json records


@dataclass(frozen=True)
class Plan:
    manifest: Manifest
    source: Path
    output_root: str
    jobs: tuple[PlannedJob, ...]

    @property
    def items(self) -> list[WorkItem]:
        return [item for job in self.jobs for item in job.items]


def expand(
    patterns: list[str],
    base: Path,
    where: str,
    problems: list[str],
    suffixes: frozenset[str] = SUPPORTED_SUFFIXES,
) -> list[Path]:
    """Files, folders (their files with ``suffixes``: images by default) and globs, relative to
    ``base``; sorted within each entry."""
    files: list[Path] = []
    for i, pattern in enumerate(patterns):
        loc = f"{where}[{i}]"
        full = base / pattern
        if glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file())
            if not found:
                problems.append(f"{loc}: no files match {pattern!r} (in {base})")
        elif full.is_dir():
            found = sorted(p for p in full.iterdir() if p.suffix.lower() in suffixes and p.is_file())
            if not found:
                what = "images" if suffixes is SUPPORTED_SUFFIXES else "files " + "/".join(sorted(suffixes))
                problems.append(f"{loc}: folder {pattern!r} holds no {what}")
        elif full.is_file():
            found = [full]
        else:
            problems.append(f"{loc}: file not found: {full}")
            found = []
        files += found
    return list(dict.fromkeys(files))


def job_params(job: AnyJob) -> dict[str, Any]:
    """The method parameters a job runs with (a photoreal preset fills in what ``params`` leaves out)."""
    return job.effective_params() if isinstance(job, PhotorealJobSpec) else dict(job.params)


def output_name(
    job: ImageJobSpec | PhotorealJobSpec, content: Path, styles: tuple[Path, ...], base: Path
) -> str:
    """Deterministic and readable: ``<content>__<style>__<method>-<8 hex>.<fmt>``; the hash covers the
    job's parameters, the weights (the method's default where the job names none) with the catalog's
    sha256 of their files, and the full input paths, so different inputs never share a name, and new
    weights, under a new name or the same one, give new outputs rather than keeping those of the old."""
    from stylecore.methods import get_method, list_methods  # torch: imported when a plan is made

    weights = job.weights
    if weights is None and job.method in list_methods():
        weights = get_method(job.method).default_weights
    key = json.dumps(
        {
            "content": _rel(content, base),
            "styles": [_rel(s, base) for s in styles],
            "method": job.method,
            "weights": weights,
            "weights_sha256": weights_checksums(weights),
            "params": job_params(job),
            "size": job.size,
            "style_size": job.style_size,
            "mix": job.mix,
            "masks": job.masks.model_dump() if job.masks else None,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    style_tag = styles[0].stem if len(styles) == 1 else "mix-" + "+".join(s.stem for s in styles)
    return f"{content.stem}__{style_tag}__{job.method}-{digest}.{job.format}"


def weights_checksums(name: str | None) -> tuple[tuple[str, str | None], ...] | None:
    """``((role, sha256), ...)`` of catalog entry ``name`` as the catalog records them (no file is read
    or hashed); None for no weights, or a name the catalog lacks (the plan reports that itself)."""
    if name is None:
        return None
    catalog = weights_dir() / CATALOG_FILE
    try:
        stamp = catalog.stat().st_mtime_ns
    except OSError:
        return None
    return _checksums(str(catalog.parent), stamp, name)


@functools.lru_cache(maxsize=256)
def _checksums(root: str, stamp: int, name: str) -> tuple[tuple[str, str | None], ...] | None:
    # keyed on the catalog's mtime: a plan names thousands of outputs, and the catalog rarely changes
    try:
        catalog = load_catalog(Path(root))
        spec = catalog.get(name)
        return tuple(sorted((f.role, catalog.expected_sha256(spec, f.role)) for f in spec.files))
    except StyleCoreError:
        return None


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def plan(manifest: Manifest, source: Path, *, output: str | None = None, check_files: bool = True) -> Plan:
    """Resolve every job into work items, or raise :class:`ManifestError` with every problem."""
    from stylecore.errors import ParameterError, UnknownNameError
    from stylecore.methods import get_method, list_methods
    from stylecore.weights import load_catalog

    base = source.parent
    problems: list[str] = []
    root = output or manifest.output
    if "://" not in root:
        root = str((base / root).resolve())
    names = [j.name for j in manifest.jobs]
    for i, job in enumerate(manifest.jobs):
        first = names.index(job.name)
        if first != i:
            hint = ""
            if job.named_by_default or manifest.jobs[first].named_by_default:
                hint = " (a job without a name is named after its method, or its kind if not an image job)"
            problems.append(f"jobs[{i}].name: {job.name!r} is used by jobs[{first}] too{hint}")
    catalog = load_catalog()
    planned = []
    for i, job in enumerate(manifest.jobs):
        where = f"jobs[{i}]"
        if isinstance(job, MeshJobSpec):  # no image method: its own settings are checked there
            planned.append(PlannedJob(i, job, tuple(plan_mesh(job, where, base, problems))))
            continue
        try:
            cls = get_method(job.method)
            cls.Params.model_validate(job_params(job))
        except UnknownNameError as exc:
            problems.append(f"{where}.method: {exc}")
        except ValidationError as exc:
            problems += [f"{where}.params.{_format_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]
        if job.weights is not None and job.weights not in catalog.names():
            problems.append(f"{where}.weights: {UnknownNameError('weights', job.weights, catalog.names())}")
        elif job.method in list_methods():
            wanted = job.weights or get_method(job.method).default_weights
            if wanted is not None and not (wanted in catalog.names() and catalog.is_installed(wanted)):
                problems.append(
                    f"{where}.method: {job.method} needs weights {wanted!r}, which are not installed "
                    f"(stylize weights list; or use method: gatys, which needs none)"
                )
        if isinstance(job, AugmentJobSpec):
            items, labels, settings = plan_augment(job, where, base, root, problems)
            planned.append(PlannedJob(i, job, tuple(items), tuple(labels), settings))
            continue
        if isinstance(job, PhotorealJobSpec) and job.masks is not None:
            for side in ("content", "style"):
                if not (base / getattr(job.masks, side)).is_dir():
                    problems.append(
                        f"{where}.masks.{side}: folder not found: {base / getattr(job.masks, side)}"
                    )
        contents = expand(job.contents, base, f"{where}.contents", problems)
        styles = expand(job.styles, base, f"{where}.styles", problems)
        if check_files:
            problems += [f"{where}: {p}" for p in check_readable([*styles])]
        try:
            pairs = pair(job, contents, styles)
        except ParameterError as exc:
            problems.append(f"{where}.pairing: {exc}")
            pairs = []
        items = []
        for c, st in pairs:
            segs = find_segs(job, c, st, base) if isinstance(job, PhotorealJobSpec) else None
            name = Path(job.name) / output_name(job, c, st, base)
            items.append(WorkItem(c, st, name, tuple(job.mix) if job.mix else None, segs=segs))
        items = tuple(items)
        planned.append(PlannedJob(i, job, items))
    if problems:
        raise ManifestError(str(source), problems)
    return Plan(manifest, source, root, tuple(planned))


def find_segs(
    job: PhotorealJobSpec, content: Path, styles: tuple[Path, ...], base: Path
) -> tuple[Path, Path] | None:
    """``(<content folder>/<stem>.png, <style folder>/<stem>.png)`` when both exist, else None."""
    if job.masks is None:
        return None
    c_seg = base / job.masks.content / f"{content.stem}.png"
    s_seg = base / job.masks.style / f"{styles[0].stem}.png"
    return (c_seg, s_seg) if c_seg.is_file() and s_seg.is_file() else None


def pair(
    job: ImageJobSpec | PhotorealJobSpec, contents: list[Path], styles: list[Path]
) -> list[tuple[Path, tuple[Path, ...]]]:
    from stylecore.errors import ParameterError

    if not contents or not styles:
        return []
    if job.mix is not None:
        if len(job.mix) != len(styles):
            raise ParameterError(f"mix has {len(job.mix)} weights for {len(styles)} styles")
        return [(c, tuple(styles)) for c in contents]
    pairing = job.effective_pairing() if isinstance(job, PhotorealJobSpec) else job.pairing
    if pairing == "product":
        return [(c, (s,)) for c in contents for s in styles]
    if pairing == "zip":
        if len(contents) != len(styles):
            raise ParameterError(
                f"zip needs as many contents as styles, got {len(contents)} and {len(styles)}"
            )
        return [(c, (s,)) for c, s in zip(contents, styles, strict=True)]
    rng = random.Random(job.seed)
    count = job.count or len(contents)
    return [(c, (rng.choice(styles),)) for c in (contents * (count // len(contents) + 1))[:count]]


# ---- augment jobs ------------------------------------------------------------------------------------

AUGMENT_SETTINGS = "augment.json"  # in the job's folder: what its copies were made with


def augment_settings(job: AugmentJobSpec, base: Path, styles: list[Path]) -> dict[str, Any]:
    """Everything that decides an augment job's outputs; a job folder holds copies of one setting only."""
    return {
        "source": _rel(base / job.source, base),
        "styles": [_rel(s, base) for s in styles],
        **job.model_dump(
            mode="json",
            include={
                "method",
                "weights",
                "params",
                "alpha",
                "per_image",
                "fraction",
                "seed",
                "size",
                "style_size",
                "format",
            },
        ),
    }


def plan_augment(
    job: AugmentJobSpec, where: str, base: Path, root: str, problems: list[str]
) -> tuple[list[WorkItem], list[dict[str, Any]], dict[str, Any] | None]:
    """Items ``<job>/<relative path stem>__st<k>.<format>`` for the chosen images, their label rows,
    and the settings the job folder records (checked here against what it already holds)."""
    from collections import defaultdict

    from flows.store import OutputStore
    from stylecore.augment import check_alpha, draw, scan_dataset, select

    images, found = scan_dataset(base / job.source)
    problems += [f"{where}.source: {p}" for p in found]
    styles = expand(job.styles, base, f"{where}.styles", problems)
    problems += [f"{where}: {p}" for p in check_readable(styles)]
    if "alpha" in job.params:
        problems.append(f"{where}.params.alpha: set alpha on the job itself (a number or a [lo, hi] range)")
    if not images or not styles:
        return [], [], None
    store = OutputStore(root)
    settings_file = f"{job.name}/{AUGMENT_SETTINGS}"
    now = augment_settings(job, base, styles)
    if store.exists(settings_file):
        before = json.loads(store.read_bytes(settings_file))
        changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
        if changed:
            problems.append(
                f"{where}: {store.path(job.name)} holds copies made with other settings "
                f"(changed: {', '.join(changed)}); give the job a new name or remove that folder"
            )
    by_class: dict[str, list[str]] = defaultdict(list)
    for im in images:
        by_class[im.label].append(im.rel)
    chosen = select(by_class, job.fraction, job.seed)
    classes = sorted(by_class)
    alpha = check_alpha(job.alpha)
    items, labels, seen = [], [], {}
    for im in images:
        if im.rel not in chosen:
            continue
        stem = im.rel.rsplit(".", 1)[0]
        for k in range(job.per_image):
            s, a = draw(job.seed, im.rel, k, len(styles), alpha)
            a = round(a, 4)
            rel = f"{stem}__st{k}.{job.format}"
            if rel in seen:
                problems.append(
                    f"{where}.source: {seen[rel]} and {im.rel} would both write {rel}; rename one"
                )
            seen[rel] = im.rel
            items.append(WorkItem(im.path, (styles[s],), Path(job.name) / rel, params=(("alpha", a),)))
            labels.append(
                {
                    "path": rel,
                    "label": im.label,
                    "class_index": classes.index(im.label),
                    "source": im.rel,
                    "style": styles[s].name,
                    "alpha": a,
                    "copy": k,
                }
            )
    return items, labels, now


# ---- mesh jobs -----------------------------------------------------------------------------------------


def plan_mesh(job: MeshJobSpec, where: str, base: Path, problems: list[str]) -> list[WorkItem]:
    """One item per (mesh, style): its output is the OBJ, ``<job>/<mesh>__<style>-<hash>/<mesh>.obj``."""
    meshes = expand(job.meshes, base, f"{where}.meshes", problems, MESH_SUFFIXES)
    for i, m in enumerate(meshes):
        if m.suffix.lower() not in MESH_SUFFIXES:
            problems.append(
                f"{where}.meshes: {m.name} is not a mesh file ({', '.join(sorted(MESH_SUFFIXES))})"
            )
            meshes[i] = None  # type: ignore[call-overload]
    meshes = [m for m in meshes if m is not None]
    styles = expand(job.styles, base, f"{where}.styles", problems)
    problems += [f"{where}: {p}" for p in check_readable(styles)]
    try:
        job.config(styles)
    except ValidationError as exc:
        problems += [f"{where}.params.{_format_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]
        return []
    if job.pairing == "zip" and len(meshes) != len(styles) and meshes and styles:
        problems.append(
            f"{where}.pairing: zip needs as many meshes as styles, got {len(meshes)} and {len(styles)}"
        )
        return []
    pairs = (
        list(zip(meshes, styles, strict=True))
        if job.pairing == "zip"
        else [(m, s) for m in meshes for s in styles]
    )
    items = []
    for mesh, style in pairs:
        key = json.dumps(
            {
                "mesh_sha256": sha256_file(mesh),
                "mesh": _rel(mesh, base),
                "style": _rel(style, base),
                "params": job.params,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        folder = f"{mesh.stem}__{style.stem}-{digest}"
        items.append(WorkItem(mesh, (style,), Path(job.name) / folder / f"{mesh.stem}.obj"))
    return items
