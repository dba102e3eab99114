"""A real local Prefect server for integration tests (module-scoped), and the CLI run against it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

STYLIZE = str(Path(sys.executable).parent / "stylize")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stylize(server, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STYLIZE, *map(str, args), "--port", str(server["port"])],
        env=server["env"],
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )
