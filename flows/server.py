"""A real local Prefect server (SQLite under the project's state folder), started and stopped by the CLI.

Not Prefect's ephemeral mode: that one starts slowly per process and drops task-run records. The
server runs as its own process group, on 127.0.0.1 unless told otherwise; its pid and log live in
``<state>/server``. A server that other machines reach should require an auth string (Prefect's
basic auth: ``PREFECT_SERVER_API_AUTH_STRING`` on the server, ``PREFECT_API_AUTH_STRING`` on every
client and worker); :func:`open_api_warning` says when a client would talk to one without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from stylecore.fsio import atomic_write_text
from stylecore.paths import home_dir

DEFAULT_PORT = 4200
SERVER_AUTH_ENV = "PREFECT_SERVER_API_AUTH_STRING"  # the server's
CLIENT_AUTH_ENV = "PREFECT_API_AUTH_STRING"  # every client's and worker's: the same string
HEARTBEAT_S = 30  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY of stylepipe's runs (Prefect's minimum)


def state_dir() -> Path:
    """Prefect's home (database, logs) and the server's pid: ``STYLEPIPE_STATE``, default
    ``$STYLEPIPE_HOME/server`` (a per-user folder, so an installed package never writes beside its code)."""
    return Path(os.environ.get("STYLEPIPE_STATE", home_dir() / "server")).resolve()


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    url: str  # API URL
    pid: int | None
    running: bool
    log: Path

    @property
    def ui(self) -> str:
        return self.url.removesuffix("/api")


def api_url(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> str:
    if host in ("0.0.0.0", "::", ""):  # every interface: this machine reaches it on loopback
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/api"


def prefect_env(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> dict[str, str]:
    """Settings every stylepipe process uses to talk to (or be) the local server."""
    home = state_dir() / "prefect"
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url(port, host),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
    }


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_api_warning(url: str | None, auth_string: str | None, api_key: str | None = None) -> str | None:
    """A warning when ``url`` is not on loopback (other machines may reach it) and requests to it carry
    no credentials: whoever reaches such a server can create deployments whose steps run commands on
    every worker."""
    if not url or auth_string or api_key:
        return None
    host = urlsplit(url).hostname or ""
    if is_loopback(host):
        return None
    return (
        f"the Prefect API {url} is not on loopback and no auth string is set ({CLIENT_AUTH_ENV}): whoever "
        "reaches that server can create deployments whose steps run commands on every worker. Start the "
        "server with an auth string "
        f"(stylize server start --auth-string-file FILE, or {SERVER_AUTH_ENV}), set {CLIENT_AUTH_ENV} "
        "to the same string on every client and worker, and keep the port on a private network or "
        "behind a TLS reverse proxy."
    )


def read_auth_string(path: Path) -> str:
    """The auth string kept in ``path``: one line, such as ``user:password``."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeError(f"{path}: cannot read the auth string ({exc})") from None
    if not text or "\n" in text:
        raise RuntimeError(f"{path}: expected one line, the auth string (for example user:password)")
    return text


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _pid_file(port: int) -> Path:
    return state_dir() / "server" / f"{port}.pid"


def _host_file(port: int) -> Path:
    return state_dir() / "server" / f"{port}.host"


def status(port: int = DEFAULT_PORT) -> ServerInfo:
    pid_file = _pid_file(port)
    pid = int(pid_file.read_text()) if pid_file.is_file() else None
    if pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pid = None
    url = local_url(port)
    return ServerInfo(url, pid, healthy(url), state_dir() / "server" / f"{port}.log")


def local_url(port: int = DEFAULT_PORT) -> str:
    """The API URL of the server on ``port`` of this machine, on the interface it was started on."""
    host = _host_file(port).read_text().strip() if _host_file(port).is_file() else ""
    return api_url(port, host or "127.0.0.1")


def start(
    port: int = DEFAULT_PORT,
    wait_s: float = 120.0,
    *,
    host: str = "127.0.0.1",
    auth_string: str | None = None,
) -> ServerInfo:
    """Start the server in the background unless one already answers; wait until it is healthy.

    ``auth_string`` (else ``PREFECT_SERVER_API_AUTH_STRING`` from the environment) makes every API
    request but the health check need that string as HTTP basic auth."""
    info = status(port)
    if info.running:
        return info
    (state_dir() / "server").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **prefect_env(port, host)}
    if auth_string is not None:
        env[SERVER_AUTH_ENV] = auth_string
    atomic_write_text(_host_file(port), host)
    info = dataclasses.replace(info, url=local_url(port))
    prefect_bin = Path(sys.executable).parent / "prefect"
    with open(info.log, "ab") as log:
        proc = subprocess.Popen(
            [
                str(prefect_bin),
                "server",
                "start",
                "--host",
                host,
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
    atomic_write_text(_pid_file(port), str(proc.pid))
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
    _host_file(port).unlink(missing_ok=True)
    return True


def use_server(port: int = DEFAULT_PORT, *, autostart: bool = True) -> str:
    """Point this process at a server: the user's ``PREFECT_API_URL`` if set, else the local one
    (started if needed). Must run before ``prefect`` is imported. Returns the API URL.

    Runs made here send heartbeats, as worker runs do: the dead-run automation of ``stylize deploy``
    watches every run from its Pending state on, and would crash a live run that sends none."""
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_S))
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if autostart:
        start(port)
    (state_dir() / "prefect").mkdir(parents=True, exist_ok=True)  # also when reusing a running server
    url = local_url(port)
    os.environ.update({**prefect_env(port), "PREFECT_API_URL": url})
    if os.environ.get(SERVER_AUTH_ENV):  # this shell starts the local server with it: use it too
        os.environ.setdefault(CLIENT_AUTH_ENV, os.environ[SERVER_AUTH_ENV])
    return url
