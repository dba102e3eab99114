"""The one atomic-write helper: whole files or nothing, no temporary file left, every site uses it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from stylecore.fsio import atomic_copy, atomic_open, atomic_write_bytes, atomic_write_text, restored_on_error

PROJECT = Path(__file__).resolve().parent.parent


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_text_bytes_and_copy_replace_whole_files(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "a.json", json.dumps({"x": "é"}))  # the folder is made
    assert json.loads(path.read_text(encoding="utf-8")) == {"x": "é"}
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    copy = atomic_copy(path, tmp_path / "b.bin")
    assert copy.read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == _leftovers(tmp_path / "sub") == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "log.csv", "old\n")
    seen = []
    with pytest.raises(RuntimeError, match="broke"), atomic_open(path, "w", newline="") as fh:
        fh.write("half")
        seen = _leftovers(tmp_path)
        raise RuntimeError("broke")
    assert len(seen) == 1 and seen[0].startswith(".log.csv.")  # it wrote beside the target
    assert path.read_text() == "old\n" and _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="whole files"), atomic_open(path, "a"):
        pass


def _renames(node: ast.AST) -> bool:
    """``os.replace(a, b)``, ``os.rename``, ``path.rename(b)`` or ``path.replace(b)`` (one argument:
    ``str.replace`` takes two, ``dataclasses.replace`` keywords)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    owner, attr = node.func.value, node.func.attr
    if attr in ("rename", "renames"):
        return True
    if attr != "replace":
        return False
    return (isinstance(owner, ast.Name) and owner.id == "os") or (len(node.args) == 1 and not node.keywords)


def test_every_rename_over_a_file_is_in_fsio():
    """Renames over a file appear only in stylecore/fsio.py (flows/store.py moves files through fsspec
    for remote stores: ``fs.mv``)."""
    offenders = [
        f"{path.relative_to(PROJECT)}:{node.lineno}"
        for folder in ("stylecore", "flows")
        for path in sorted((PROJECT / folder).rglob("*.py"))
        if path != PROJECT / "stylecore" / "fsio.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if _renames(node)
    ]
    assert not offenders, "atomic writes outside stylecore.fsio: " + ", ".join(offenders)


def test_restored_on_error_puts_back_old_files_and_removes_new_ones(tmp_path):
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(b"before")
    with pytest.raises(RuntimeError), restored_on_error([old, new]):
        old.write_bytes(b"after")
        new.write_bytes(b"fresh")
        raise RuntimeError("catalog not written")
    assert old.read_bytes() == b"before" and not new.exists()
    with restored_on_error([old, new]):  # a clean exit keeps what the block wrote
        old.write_bytes(b"after")
    assert old.read_bytes() == b"after"
