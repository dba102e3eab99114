"""A real local Prefect server (SQLite under the project's state folder), started and stopped by the CLI.

Not Prefect's ephemeral mode: that one starts slowly per process and drops task-run records. The
server runs as its own process group on 127.0.0.1; its pid and log live in ``<state>/server``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from stylecore.paths import home_dir

DEFAULT_PORT = 4200


def state_dir() -> Path:
    """Prefect's home (database, logs) and the server's pid: ``STYLEPIPE_STATE``, default
    ``$STYLEPIPE_HOME/server`` (a per-user folder, so an installed package never writes beside its code)."""
    return Path(os.environ.get("STYLEPIPE_STATE", home_dir() / "server")).resolve()


@dataclass(frozen=True)
class ServerInfo:
    url: str  # API URL
    pid: int | None
    running: bool
    log: Path

    @property
    def ui(self) -> str:
        return self.url.removesuffix("/api")


def api_url(port: int = DEFAULT_PORT) -> str:
    return f"http://127.0.0.1:{port}/api"


def prefect_env(port: int = DEFAULT_PORT) -> dict[str, str]:
    """Settings every stylepipe process uses to talk to (or be) the local server."""
    home = state_dir() / "prefect"
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _pid_file(port: int) -> Path:
    return state_dir() / "server" / f"{port}.pid"


def status(port: int = DEFAULT_PORT) -> ServerInfo:
    pid_file = _pid_file(port)
    pid = int(pid_file.read_text()) if pid_file.is_file() else None
    if pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pid = None
    url = api_url(port)
    return ServerInfo(url, pid, healthy(url), state_dir() / "server" / f"{port}.log")


def start(port: int = DEFAULT_PORT, wait_s: float = 120.0) -> ServerInfo:
    """Start the server in the background unless one already answers; wait until it is healthy."""
    info = status(port)
    if info.running:
        return info
    (state_dir() / "server").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **prefect_env(port)}
    prefect_bin = Path(sys.executable).parent / "prefect"
    with open(info.log, "ab") as log:
        proc = subprocess.Popen(
            [
                str(prefect_bin),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--analytics-off",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() takes the whole tree down
        )
    _pid_file(port).write_text(str(proc.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {proc.returncode}; see {info.log}")
        if healthy(info.url):
            return status(port)
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not become healthy within {wait_s:.0f} s; see {info.log}")


def stop(port: int = DEFAULT_PORT, wait_s: float = 20.0) -> bool:
    """Stop a server this project started; returns whether one was running."""
    info = status(port)
    if info.pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(info.pid, signal.SIGKILL)
    _pid_file(port).unlink(missing_ok=True)
    return True


def use_server(port: int = DEFAULT_PORT, *, autostart: bool = True) -> str:
    """Point this process at a server: the user's ``PREFECT_API_URL`` if set, else the local one
    (started if needed). Must run before ``prefect`` is imported. Returns the API URL."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if autostart:
        start(port)
    (state_dir() / "prefect").mkdir(parents=True, exist_ok=True)  # also when reusing a running server
    os.environ.update(prefect_env(port))
    return api_url(port)
