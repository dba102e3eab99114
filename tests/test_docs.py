"""docs/manifests.md is generated from the manifest models and must match them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from flows import manifest_docs
from flows.manifest import Manifest

DOC = Path(__file__).resolve().parents[1] / "docs" / "manifests.md"


def test_manifest_reference_is_in_sync_with_the_models():
    assert DOC.read_text() == manifest_docs.render(), (
        f"docs/manifests.md is out of date; regenerate it: {manifest_docs.REGENERATE}"
    )


def test_reference_names_every_field_of_every_job_kind():
    text = manifest_docs.render()
    jobs = manifest_docs.job_models()
    assert {manifest_docs.kind_of(m) for m in jobs} >= {"image", "photoreal", "augment", "mesh"}
    for model in [Manifest, *jobs, *manifest_docs.nested_models(jobs)]:
        for name in model.model_fields:
            assert f"| `{name}` |" in text, f"{model.__name__}.{name} missing from the reference"


def test_a_new_optional_field_gets_its_row():
    class Job(BaseModel):
        kind: str
        name: str | None = Field(None, description="job name (default: the method)")
        sizes: tuple[int, ...] = (256, 512)
        steps: int = Field(ge=1, le=10)

    rows = manifest_docs.fields_table(Job).splitlines()
    assert rows[2].startswith("| `kind` | str | *required* |")
    assert "| `name` | str \\| null | `null` |  | job name (default: the method) |" in rows
    assert "| `sizes` | list[int] | `[256, 512]` |  |  |" in rows
    assert "| `steps` | int | *required* | >= 1, <= 10 |  |" in rows
