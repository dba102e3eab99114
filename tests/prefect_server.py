"""A real local Prefect server for integration tests (module-scoped), and the CLI run against it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
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


@contextlib.contextmanager
def local_server(state: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[dict]:
    """``stylize server start`` on a free port with its own state folder (``args`` go to the command),
    stopped on exit; yields what :func:`stylize` takes."""
    port = free_port()
    env = {**os.environ, "STYLEPIPE_STATE": str(state), **(env or {})}
    env.pop("PREFECT_API_URL", None)
    subprocess.run([STYLIZE, "server", "start", "--port", str(port), *args], env=env, check=True, timeout=180)
    try:
        yield {"env": env, "port": port, "api": f"http://127.0.0.1:{port}/api", "state": state}
    finally:
        subprocess.run([STYLIZE, "server", "stop", "--port", str(port)], env=env, timeout=60)
