"""Serving the library: HTTPS with a real certificate, and the ``media-mcp library`` command as a process."""

from __future__ import annotations

import ipaddress
import os
import queue
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from media_mcp import __version__
from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
from tests.conftest import FakeClock, LoopbackServer, PNG_16x8

WAIT = 30.0  # seconds: the bound on every wait for a child process or a server

# --- HTTPS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    @property
    def uvicorn(self) -> dict[str, str]:
        return {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    """A self-signed certificate for 127.0.0.1 (its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media-mcp test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return Tls(cert_path, key_path)


SITE = "/site-media/v1"
PROXY = "/wix-privatemedia-proxy-server/v1"


@pytest.mark.anyio
async def test_https_under_both_prefixes(library: Library, tls: Tls) -> None:
    auth = {"Authorization": library.api_key}
    with LoopbackServer(create_app(library), ssl=tls.uvicorn) as server:
        assert server.url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(base_url=server.url, verify=tls.client_context(), timeout=20) as http:
            health = await http.get("/healthz")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"

            created = await http.post(f"{PROXY}/folders", json={"displayName": "over tls"}, headers=auth)
            assert created.status_code == 200, created.text
            folder_id = created.json()["folder"]["id"]
            for prefix in (SITE, PROXY):
                got = await http.get(f"{prefix}/folders/{folder_id}", headers=auth)
                assert got.status_code == 200, got.text
                assert got.json()["folder"]["displayName"] == "over tls"

            minted = await http.post(
                f"{SITE}/files/generate-upload-url",
                json={"mimeType": "image/png", "fileName": "tls.png", "parentFolderId": folder_id},
                headers=auth,
            )
            assert minted.status_code == 200, minted.text
            upload_url = minted.json()["uploadUrl"]
            assert upload_url.startswith(f"{server.url}/upload/")
            put = await http.put(upload_url, content=PNG_16x8, headers={"Content-Type": "image/png"})
            assert put.status_code == 200, put.text
            file_id = put.json()["file"]["id"]

            for prefix in (SITE, PROXY):
                found = await http.post(f"{prefix}/files/search", json={"search": "tls"}, headers=auth)
                assert found.status_code == 200, found.text
                assert [f["id"] for f in found.json()["files"]] == [file_id]
                refused = await http.post(f"{prefix}/files/search", json={})
                assert refused.status_code == 401

            link = await http.post(f"{PROXY}/files/generate-file-download-url", json={"fileId": file_id}, headers=auth)
            assert link.status_code == 200, link.text
            url = link.json()["downloadUrls"][0]["url"]
            assert url.startswith("https://")
            assert (await http.get(url)).content == PNG_16x8

        async with httpx.AsyncClient(base_url=server.url, timeout=20) as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get("/healthz")


# --- the command line ---------------------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    """The environment without any MEDIA_MCP_* setting (the API key among them), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_MCP_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "media_mcp", *args],
        env=env if env is not None else cli_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


class Cli:
    """``media-mcp library`` running as a child process; stderr is read line by line in a thread."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "media_mcp", "library", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def __enter__(self) -> Cli:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def wait_for_line(self, contains: str) -> str:
        """The first stderr line containing ``contains`` (failing after WAIT seconds or at exit)."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no stderr line with {contains!r} in {WAIT}s: {''.join(self.stderr)}") from None
            if line is None:
                raise AssertionError(f"the library exited ({self.proc.wait()}): {''.join(self.stderr)}")
            self.stderr.append(line)
            if contains in line:
                return line

    def base_url(self) -> str:
        line = self.wait_for_line("serving the Wix Media REST API at ")
        url = line.split(" at ", 1)[1].strip()
        assert url.endswith(SITE), line
        return url.removesuffix(SITE)

    def wait_healthy(self, base: str, verify: ssl.SSLContext | bool = True) -> httpx.Response:
        """Connect once the server listens: it announces itself just before it binds."""
        deadline = time.monotonic() + WAIT
        with httpx.Client(timeout=5, verify=verify) as client:
            while True:
                try:
                    return client.get(f"{base}/healthz")
                except httpx.ConnectError:
                    assert self.proc.poll() is None, f"the library exited: {''.join(self.stderr)}"
                    if time.monotonic() > deadline:
                        raise

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        """Send ``sig``; return the exit code, all of stdout and the rest of stderr."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        while (line := self.lines.get(timeout=WAIT)) is not None:
            self.stderr.append(line)
        return code, out, "".join(self.stderr)


@pytest.fixture
def cli_data(tmp_path: Path) -> Path:
    return tmp_path / "cli-data"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_serves_with_a_generated_key_and_stops_cleanly(cli_data: Path, sig: int) -> None:
    port = free_port()
    with Cli("--data-dir", str(cli_data), "--port", str(port), env=cli_env()) as cli:
        base = cli.base_url()
        assert base == f"http://127.0.0.1:{port}"
        key_path = cli_data / "api_key"
        cli.wait_for_line(f"API key: {key_path}")
        health = cli.wait_healthy(base)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"

        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(cli_data.stat().st_mode) == 0o700
        key = key_path.read_text().strip()
        assert len(key) >= 32

        with httpx.Client(base_url=base, timeout=10) as http:
            made = http.post(f"{SITE}/folders", json={"displayName": "cli"}, headers={"Authorization": key})
            assert made.status_code == 200, made.text
            listed = http.get(f"{PROXY}/folders", headers={"Authorization": f"Bearer {key}"})
            assert listed.status_code == 200, listed.text
            assert [f["displayName"] for f in listed.json()["folders"]] == ["cli"]
            missing = http.get(f"{SITE}/folders")
            assert missing.status_code == 401
            assert missing.json()["details"]["applicationError"]["code"] == "UNAUTHENTICATED"
            wrong = http.get(f"{SITE}/folders", headers={"Authorization": key + "x"})
            assert wrong.status_code == 401

        code, out, err = cli.stop(sig)
    assert code == 0, err
    assert out == ""
    assert "Traceback" not in err
    assert key not in err  # the key itself is never printed, only where it lives


def test_cli_serves_https(cli_data: Path, tls: Tls) -> None:
    port = free_port()
    args = ("--data-dir", str(cli_data), "--port", str(port), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key))
    with Cli(*args, env=cli_env()) as cli:
        base = cli.base_url()
        assert base == f"https://127.0.0.1:{port}"
        assert cli.wait_healthy(base, verify=tls.client_context()).status_code == 200
        key = (cli_data / "api_key").read_text().strip()
        with httpx.Client(base_url=base, verify=tls.client_context(), timeout=10) as http:
            assert http.get(f"{SITE}/folders", headers={"Authorization": key}).status_code == 200
        code, out, err = cli.stop()
    assert code == 0, err
    assert out == ""


def test_env_data_dir_and_a_second_library_on_it(tmp_path: Path) -> None:
    data = tmp_path / "from-env"
    env = cli_env(MEDIA_MCP_DATA_DIR=str(data))
    with Cli("--port", str(free_port()), env=env) as first:
        base = first.base_url()
        first.wait_for_line(f"data:    {data}")
        assert first.wait_healthy(base).status_code == 200
        assert (data / "api_key").is_file()
        assert (data / "library.sqlite3").is_file()

        # a second library on the same data directory serves it too: what one stores, the other has
        with Cli("--data-dir", str(data), "--port", str(free_port()), env=cli_env()) as second:
            other = second.base_url()
            assert second.wait_healthy(other).status_code == 200
            key = {"Authorization": (data / "api_key").read_text().strip()}
            made = httpx.post(f"{base}{SITE}/folders", json={"displayName": "Shared"}, headers=key, timeout=WAIT)
            assert made.status_code == 200, made.text
            folder = made.json()["folder"]["id"]
            seen = httpx.get(f"{other}{SITE}/folders/{folder}", headers=key, timeout=WAIT)
            assert seen.status_code == 200 and seen.json()["folder"]["displayName"] == "Shared"
            code, out, err = second.stop()
            assert (code, out) == (0, ""), err

        code, out, err = first.stop()
    assert code == 0, err
    assert out == ""


def test_a_port_in_use_exits_1_naming_the_port_and_its_setting(cli_data: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_cli("library", "--data-dir", str(cli_data), "--port", str(port))
    assert done.returncode == 1
    assert "MEDIA_MCP_LIBRARY_PORT" in done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
    assert "in use" in done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("given", ["--tls-cert", "--tls-key"])
def test_tls_options_go_together(cli_data: Path, tls: Tls, given: str) -> None:
    path = tls.cert if given == "--tls-cert" else tls.key
    done = run_cli("library", "--data-dir", str(cli_data), "--port", str(free_port()), given, str(path))
    assert done.returncode == 2
    assert "--tls-cert and --tls-key go together" in done.stderr
    assert done.stdout == ""
    assert not cli_data.exists()


def test_tls_files_must_exist(cli_data: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    done = run_cli("library", "--data-dir", str(cli_data), "--tls-cert", str(missing), "--tls-key", str(missing))
    assert done.returncode == 2
    assert f"{missing} is not a readable file" in done.stderr


def test_invalid_port_is_a_usage_error(cli_data: Path) -> None:
    done = run_cli("library", "--data-dir", str(cli_data), "--port", "70000")
    assert done.returncode == 2
    assert "invalid setting" in done.stderr
    assert "library_port" in done.stderr


def test_version_and_help() -> None:
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"media-mcp {__version__}"

    top = run_cli("--help")
    assert top.returncode == 0
    assert "library" in top.stdout

    sub = run_cli("library", "--help")
    assert sub.returncode == 0
    for option in ("--data-dir", "--host", "--port", "--tls-cert", "--tls-key"):
        assert option in sub.stdout

    # no command is ``serve``: MCP over stdio, which ends cleanly when stdin closes at once
    bare = run_cli()
    assert bare.returncode == 0
    assert bare.stdout == ""
    assert "serving MCP over stdio" in bare.stderr


# --- in process ---------------------------------------------------------------------------------


def test_data_dir_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDIA_MCP_DATA_DIR", str(tmp_path / "env-dir"))
    monkeypatch.delenv("MEDIA_MCP_LIBRARY_PORT", raising=False)
    settings = LibrarySettings()
    assert settings.data_dir == tmp_path / "env-dir"
    assert settings.library_port == 8765


def test_configured_api_key_is_used_and_not_stored(tmp_path: Path, clock: FakeClock) -> None:
    settings = LibrarySettings(data_dir=tmp_path / "keyed", library_api_key=SecretStr("configured-key-123"))
    with Library.open(settings, clock=clock) as lib:
        assert lib.api_key == "configured-key-123"
        assert not lib.data.api_key_path.exists()
