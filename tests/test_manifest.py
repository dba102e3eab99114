"""Manifest validation: every problem reported with its location, before any work starts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from flows.manifest import ManifestError, load_manifest, manifest_label, output_name, plan
from stylecore.imageio import write_image
from stylecore.methods import get_method
from stylecore.weights import weights_dir
from tests.conftest import synthetic_image


@pytest.fixture()
def tree(tmp_path) -> Path:
    for i in range(3):
        write_image(synthetic_image(32, 40, seed=i), tmp_path / "photos" / f"p{i}.jpg")
    for i in range(2):
        write_image(synthetic_image(32, 32, seed=10 + i), tmp_path / "styles" / f"s{i}.png")
    return tmp_path


def write_manifest(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def job(**kw) -> dict:
    return {
        "kind": "image",
        "name": "j",
        "method": "gatys",
        "contents": ["photos/*.jpg"],
        "styles": ["styles"],
        **kw,
    }


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as exc:
        plan(load_manifest(path), path)
    return exc.value.problems


def test_a_good_manifest_plans_product_pairs(tree):
    path = write_manifest(tree, {"schema_version": 1, "jobs": [job(params={"steps": 5})]})
    p = plan(load_manifest(path), path)
    assert len(p.items) == 6
    assert p.output_root == str((tree / "output").resolve())
    names = [i.output.as_posix() for i in p.items]
    assert len(set(names)) == 6 and all(n.startswith("j/") for n in names)
    # deterministic: planning again gives the same names
    assert names == [i.output.as_posix() for i in plan(load_manifest(path), path).items]


def test_defaults_merge_under_jobs_and_zip_random_pairing(tree):
    data = {
        "schema_version": 1,
        "defaults": {"size": 64, "method": "gatys"},
        "jobs": [
            job(name="z", pairing="zip", contents=["photos/p0.jpg", "photos/p1.jpg"]),
            job(name="r", pairing="random", seed=3, count=5),
        ],
    }
    p = plan(load_manifest(write_manifest(tree, data)), tree / "m.yaml")
    assert p.jobs[0].spec.size == 64 and len(p.jobs[0].items) == 2
    assert len(p.jobs[1].items) == 5
    again = plan(load_manifest(tree / "m.yaml"), tree / "m.yaml")
    assert [i.styles for i in again.jobs[1].items] == [i.styles for i in p.jobs[1].items]


def test_unknown_keys_and_bad_types_are_located(tree):
    data = {"schema_version": 1, "colour": "red", "jobs": [job(sise=3), job(name="k", size="big")]}
    found = problems_of(write_manifest(tree, data))
    assert "colour: unknown key (not allowed here)" in found
    assert "jobs[0].sise: unknown key (not allowed here)" in found
    assert any(p.startswith("jobs[1].size:") for p in found)


def test_empty_glob_missing_file_and_bad_params(tree):
    data = {
        "schema_version": 1,
        "jobs": [
            job(styles=["styles/*.webp"]),
            job(name="b", contents=["photos/nope.jpg"], params={"steps": -1, "optimiser": "adam"}),
        ],
    }
    found = problems_of(write_manifest(tree, data))
    assert "jobs[0].styles[0]: no files match 'styles/*.webp' (in " + str(tree) + ")" in found
    assert any(p.startswith("jobs[1].contents[0]: file not found:") for p in found)
    assert any(p.startswith("jobs[1].params.steps:") for p in found)
    assert any(p.startswith("jobs[1].params.optimiser:") for p in found)


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", "..", ""])
def test_output_names_cannot_escape_the_root(tree, name):
    found = problems_of(write_manifest(tree, {"schema_version": 1, "jobs": [job(name=name)]}))
    assert any(p.startswith("jobs[0].name:") for p in found)


def test_duplicate_job_names_unknown_kind_unknown_method(tree):
    data = {"schema_version": 1, "jobs": [job(), job(), {"kind": "hologram", "name": "h"}]}
    found = problems_of(write_manifest(tree, data))
    assert any("unknown job kind 'hologram'" in p for p in found)
    data = {"schema_version": 1, "jobs": [job(), job(method="gatis")]}
    found = problems_of(write_manifest(tree, data))
    assert "jobs[1].name: 'j' is used by jobs[0] too" in found
    assert any(p.startswith("jobs[1].method:") and "Did you mean 'gatys'" in p for p in found)


def test_yaml_errors_and_versions(tree):
    assert "not valid YAML" in problems_of(write_manifest(tree, "jobs: [\n  - {kind: image"))[0]
    assert (
        "schema_version: 2 is not supported"
        in problems_of(write_manifest(tree, {"schema_version": 2, "jobs": [job()]}))[0]
    )
    assert problems_of(tree / "absent.yaml") == ["file not found"]


def test_a_bad_style_file_is_a_validation_problem(tree):
    (tree / "styles" / "broken.png").write_bytes(b"")
    found = problems_of(write_manifest(tree, {"schema_version": 1, "jobs": [job()]}))
    assert any("broken.png: empty file (0 bytes)" in p for p in found)


def test_method_without_weights_is_reported(tree, monkeypatch):
    # the project's catalog, but none of its weight files: what a checkout without weights/ looks like
    bare = tree / "bare-weights"
    bare.mkdir()
    (bare / "catalog.json").write_text((Path(__file__).parents[1] / "weights" / "catalog.json").read_text())
    monkeypatch.setenv("STYLEPIPE_WEIGHTS", str(bare))
    found = problems_of(write_manifest(tree, {"schema_version": 1, "jobs": [job(method="rast")]}))
    assert any(p.startswith("jobs[0].method: rast needs weights 'rast-vgg16hed-norm'") for p in found)
    path = write_manifest(tree, {"schema_version": 1, "jobs": [job(method="gatys")]})
    plan(load_manifest(path), path)  # gatys needs no trained weights


def test_output_name_is_readable_and_parameter_sensitive(tree):
    spec = load_manifest(write_manifest(tree, {"schema_version": 1, "jobs": [job()]})).jobs[0]
    c, s = tree / "photos" / "p0.jpg", (tree / "styles" / "s0.png",)
    name = output_name(spec, c, s, tree)
    assert name.startswith("p0__s0__gatys-") and name.endswith(".jpg")
    other = spec.model_copy(update={"params": {"steps": 9}})
    assert output_name(other, c, s, tree) != name
    # the method's default weights count as named: a new default gives new outputs
    adain = spec.model_copy(update={"method": "adain", "params": {}})
    default = get_method("adain").default_weights
    named = adain.model_copy(update={"weights": default})
    assert output_name(adain, c, s, tree) == output_name(named, c, s, tree)
    plain = adain.model_copy(update={"weights": "adain-vgg16hed"})
    assert output_name(plain, c, s, tree) != output_name(adain, c, s, tree)


def test_new_weights_under_the_same_name_give_new_output_names(tree, tmp_path, monkeypatch):
    spec = load_manifest(write_manifest(tree, {"schema_version": 1, "jobs": [job(method="sanet")]})).jobs[0]
    c, s = tree / "photos" / "p0.jpg", (tree / "styles" / "s0.png",)
    folder = tmp_path / "weights"
    folder.mkdir()
    catalog = json.loads((weights_dir() / "catalog.json").read_text())
    (folder / "catalog.json").write_text(json.dumps(catalog))
    monkeypatch.setenv("STYLEPIPE_WEIGHTS", str(folder))
    before = output_name(spec, c, s, tree)
    assert output_name(spec, c, s, tree) == before  # the same weights: the same name
    (entry,) = [e for e in catalog["weights"] if e["name"] == get_method("sanet").default_weights]
    entry["files"][1]["sha256"] = "0" * 64  # the transformer file replaced
    (folder / "catalog.json").write_text(json.dumps(catalog))
    os.utime(folder / "catalog.json", ns=(1, 1))  # a rewrite within the clock's tick still counts
    after = output_name(spec, c, s, tree)
    assert after != before and after.startswith("p0__s0__sanet-")


def test_a_job_without_a_name_is_named_after_its_method_or_kind(tree):
    data = {
        "schema_version": 1,
        "jobs": [
            {k: v for k, v in job().items() if k != "name"},
            {"kind": "photoreal", "contents": ["photos/p0.jpg"], "styles": ["styles/s0.png"]},
        ],
    }
    p = plan(load_manifest(write_manifest(tree, data)), tree / "m.yaml")
    assert [j.spec.name for j in p.jobs] == ["gatys", "photoreal"]
    assert all(i.output.parts[0] == "gatys" for i in p.jobs[0].items)  # the output folder follows
    assert all(i.output.parts[0] == "photoreal" for i in p.jobs[1].items)


def test_two_jobs_with_the_same_default_name_are_refused_naming_both(tree):
    unnamed = {k: v for k, v in job().items() if k != "name"}
    data = {"schema_version": 1, "jobs": [unnamed, {**unnamed, "params": {"steps": 3}}]}
    (found,) = problems_of(write_manifest(tree, data))
    assert found.startswith("jobs[1].name: 'gatys' is used by jobs[0] too (a job without a name is named")
    data = {"schema_version": 1, "jobs": [job(name="gatys"), unnamed]}  # an explicit name meets a default
    (found,) = problems_of(write_manifest(tree, data))
    assert found.startswith("jobs[1].name: 'gatys' is used by jobs[0] too (")


def test_manifest_label_is_its_name_else_its_stem(tree):
    assert manifest_label(write_manifest(tree, {"schema_version": 1, "jobs": [job()]})) == "m"
    named = write_manifest(tree, {"schema_version": 1, "name": "nightly", "jobs": [job()]})
    assert manifest_label(named) == "nightly"
    assert manifest_label(write_manifest(tree, "jobs: [\n  - {kind")) == "m"  # bad YAML: still a label
    assert manifest_label(tree / "absent.yaml") == "absent"
