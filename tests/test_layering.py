"""stylecore is the pure library: it never imports the Prefect, Typer or Rich layers (nor flows)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import stylecore

FORBIDDEN = {"prefect", "typer", "rich", "flows", "click"}
ROOT = Path(stylecore.__file__).parent


def test_no_forbidden_imports_in_source():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {n}"
                for n in names
                if n.split(".")[0] in FORBIDDEN
            ]
    assert not offenders, "\n".join(offenders)


def test_importing_everything_loads_no_forbidden_module():
    code = (
        "import sys, pkgutil, importlib, stylecore\n"
        "for m in pkgutil.walk_packages(stylecore.__path__, 'stylecore.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {sorted(FORBIDDEN)!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"stylecore pulled in: {out.stdout.strip()}"
