"""`serve-model` warns when anyone on the network could use it, and compares API keys in
constant time (issue 12, finding 8)."""

from __future__ import annotations

import hmac
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ambiscope.core.alm.serve_openai import (
    ModelServer,
    exposure_warning,
    make_server,
    start_in_thread,
)
from ambiscope.tui.cli.main import main

KEY = "right-key"


class StubBackend:
    """Just enough of a backend for `GET /v1/models` (no model is loaded)."""

    name = "stub"
    model_id = "stub-model"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}


@pytest.fixture
def server() -> Iterator[ModelServer]:
    srv = make_server(StubBackend(), api_key=KEY)  # type: ignore[arg-type]
    start_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def status(srv: ModelServer, authorization: str | None) -> int:
    request = urllib.request.Request(f"{srv.url}/models")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_keys_are_compared_with_hmac_compare_digest(
    server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert status(server, f"Bearer {KEY}") == 200
    assert status(server, "Bearer wrong-key") == 401
    assert status(server, None) == 401
    assert status(server, "Bearer clé") == 401  # non-ASCII: refused, not a server error
    assert len(calls) == 4


def test_exposure_warning_only_beyond_loopback_without_a_key() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert exposure_warning(host, None) is None
    assert exposure_warning("0.0.0.0", "a-key") is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "myhost.example"):
        warning = exposure_warning(host, None)
        assert warning is not None and host in warning and "\n" not in warning


def test_serve_model_warns_on_stderr_before_loading(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-model")
    result = CliRunner().invoke(main, ["serve-model", missing, "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code != 0  # the model does not exist; the warning came first
    assert "warning: serving on 0.0.0.0 without an API key" in result.stderr
    assert "model directory not found" in result.stderr and "Traceback" not in result.output
    quiet = CliRunner().invoke(main, ["serve-model", missing, "--port", "0"])
    assert "warning" not in quiet.stderr
