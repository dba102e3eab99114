"""The shared server's basic auth (PREFECT_SERVER_API_AUTH_STRING / PREFECT_API_AUTH_STRING) and the
warning for an API that other machines may reach without credentials."""

from __future__ import annotations

import os
import secrets
import subprocess

import httpx
import pytest

from flows.server import open_api_warning
from tests.prefect_server import STYLIZE, free_port, local_server, stylize


@pytest.mark.parametrize(
    ("url", "auth", "key", "warns"),
    [
        ("http://127.0.0.1:4200/api", None, None, False),
        ("http://localhost:4200/api", None, None, False),
        ("http://[::1]:4200/api", None, None, False),
        ("http://10.0.0.5:4200/api", None, None, True),
        ("http://gpu-server:4200/api", None, None, True),
        ("http://0.0.0.0:4200/api", None, None, True),  # a server bound to every interface
        ("https://prefect.example.org/api", "stylepipe:secret", None, False),
        ("https://api.prefect.cloud/api/accounts/a/workspaces/w", None, "pnu_key", False),
        (None, None, None, False),
    ],
)
def test_open_api_warning(url, auth, key, warns):
    warning = open_api_warning(url, auth, key)
    assert (warning is not None) == warns
    if warns:
        assert url in warning and "PREFECT_API_AUTH_STRING" in warning and "--auth-string-file" in warning


def test_worker_and_sharded_runs_warn_about_an_open_api(monkeypatch, capsys, tmp_path):
    from flows.cli import _warn_if_open

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))  # no user profile with an auth string
    monkeypatch.setenv("PREFECT_API_URL", "http://10.0.0.5:4200/api")
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    monkeypatch.delenv("PREFECT_API_KEY", raising=False)
    _warn_if_open("http://10.0.0.5:4200/api")
    assert "warning: the Prefect API http://10.0.0.5:4200/api is not on loopback" in capsys.readouterr().err
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "stylepipe:secret")
    _warn_if_open("http://10.0.0.5:4200/api")
    assert capsys.readouterr().err == ""


def test_an_unreadable_or_empty_auth_file_is_refused(tmp_path):
    (tmp_path / "empty").write_text("\n")
    for path in (tmp_path / "empty", tmp_path / "absent"):
        res = subprocess.run(
            [STYLIZE, "server", "start", "--port", str(free_port()), "--auth-string-file", str(path)],
            env={**os.environ, "STYLEPIPE_STATE": str(tmp_path / "state")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 1 and str(path) in res.stderr, res.stdout + res.stderr
    assert not (tmp_path / "state" / "server").exists()  # no server was started


@pytest.mark.slow
def test_a_server_with_an_auth_string_refuses_clients_without_it(tmp_path):
    user, password = "stylepipe", secrets.token_hex(8)
    (tmp_path / "auth").write_text(f"{user}:{password}\n")
    with local_server(tmp_path / "state", "--auth-string-file", str(tmp_path / "auth")) as srv:
        api = srv["api"]
        assert httpx.get(f"{api}/health", timeout=10).status_code == 200  # probes stay open
        assert httpx.post(f"{api}/flows/filter", json={}, timeout=10).status_code == 401
        for creds, code in (((user, "wrong"), 401), ((user, password), 200)):
            assert httpx.post(f"{api}/flows/filter", json={}, auth=creds, timeout=10).status_code == code

        without = {**srv, "env": {k: v for k, v in srv["env"].items() if k != "PREFECT_API_AUTH_STRING"}}
        refused = stylize(without, "deploy")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "401 Unauthorized" in refused.stderr and "PREFECT_API_AUTH_STRING" in refused.stderr

        with_auth = {**srv, "env": {**without["env"], "PREFECT_API_AUTH_STRING": f"{user}:{password}"}}
        ok = stylize(with_auth, "deploy")  # pool, automation and deployment through Prefect's client
        assert ok.returncode == 0, ok.stdout + ok.stderr
        dep = httpx.get(
            f"{api}/deployments/name/stylize-manifest/stylepipe", auth=(user, password), timeout=10
        )
        assert dep.status_code == 200 and dep.json()["work_pool_name"] == "stylepipe-gpu"
        assert stylize(with_auth, "status").returncode == 0
