"""Streamable HTTP: /healthz, MCP sessions (stateful and stateless), DNS-rebinding protection, the bearer token.

The app is built in-process with ``run.http_app`` and served by uvicorn (lifespan on, so the SDK's session manager
runs), on 127.0.0.1 or, for the bind class tests, on the loopback address it is built for (127.0.0.2, 127.0.1.1,
::1; on Linux every 127.x address answers without setup). Wildcard and LAN binds are never bound: the app is built as
if for them and served on a loopback address. No DNS: IP literals, and ``localhost`` only as a Host value.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from media_mcp.server.run import StartupError, http_app, is_default_loopback
from media_mcp.settings import ServerSettings
from tests.conftest import LoopbackServer, PNG_16x8
from tests.server.conftest import MakeServer, ShowsApps
from tests.tool_names import ALL_TOOLS, APP_ONLY_TOOLS

pytestmark = pytest.mark.anyio

TOKEN = "correct-horse-battery-staple"
TIMEOUT = 30.0
JSON_RPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}  # fmt: skip
TOOLS = ALL_TOOLS


@contextmanager
def serve(
    make_server: MakeServer,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    stateless: bool = False,
    allowed_hosts: list[str] | None = None,
    **more: Any,
) -> Iterator[str]:
    """The HTTP app as built for ``host`` (with the HTTP settings in ``more``), served on 127.0.0.1; yields the base
    URL."""
    settings = ServerSettings(http_token=SecretStr(token) if token else None, **more)
    app = http_app(make_server(), settings, host, stateless, allowed_hosts or [])
    with LoopbackServer(app, lifespan="on") as server:
        yield server.url


def rpc_message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a response, whether plain JSON or an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        messages = [json.loads(d) for d in data if d]
        assert messages, response.text
        last: dict[str, Any] = messages[-1]
        return last
    body: dict[str, Any] = response.json()
    return body


async def use_tools(client: Client, upload_root: Path) -> None:
    """A short tour over the session: list, write, upload, search, read."""
    assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
    folder = await client.call_tool("create_folder", {"name": "Over HTTP"})
    assert not folder.is_error and folder.structured_content is not None, folder.content
    folder_id = folder.structured_content["folder"]["id"]
    (upload_root / "cat.png").write_bytes(PNG_16x8)
    uploaded = await client.call_tool("upload_file", {"path": "cat.png", "folder_id": folder_id})
    assert not uploaded.is_error and uploaded.structured_content is not None, uploaded.content
    file_id = uploaded.structured_content["files"][0]["id"]
    found = await client.call_tool("search_files", {"folder_id": folder_id})
    assert found.structured_content is not None and [row[0] for row in found.structured_content["rows"]] == [file_id]
    details = await client.call_tool("get_file", {"file_id": file_id})
    assert details.structured_content is not None
    assert details.structured_content["files"][0]["width"] == 16


async def test_healthz_needs_no_auth(make_server: MakeServer) -> None:
    with serve(make_server) as url:
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            reply = await http.get("/healthz")
            assert reply.status_code == 200
            assert reply.json()["status"] == "ok"
            assert (await http.head("/healthz")).status_code == 200


async def test_mcp_session(make_server: MakeServer, upload_root: Path, mode: str) -> None:
    with serve(make_server) as url, anyio.fail_after(TIMEOUT):
        async with Client(f"{url}/mcp", mode=mode) as client:
            await use_tools(client, upload_root)


async def test_rebinding_host_and_foreign_origin_are_refused(make_server: MakeServer) -> None:
    with serve(make_server) as url, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            evil_host = await http.post("/mcp", headers={**JSON_RPC_HEADERS, "Host": "evil.example"}, json=INITIALIZE)
            assert evil_host.status_code == 421
            evil_origin = {**JSON_RPC_HEADERS, "Origin": "http://evil.example"}
            assert (await http.post("/mcp", headers=evil_origin, json=INITIALIZE)).status_code == 403
            own_origin = {**JSON_RPC_HEADERS, "Origin": url}
            fine = await http.post("/mcp", headers=own_origin, json=INITIALIZE)
            assert fine.status_code == 200, fine.text
            assert rpc_message(fine)["result"]["serverInfo"]["name"] == "media-mcp"


ANY_V4 = "0.0.0.0"  # noqa: S104 - the wildcard named; the tests never bind it
# every bind but the default loopback one (127.0.0.1, ::1, localhost, in any spelling) needs the token
NEEDS_TOKEN = [
    "127.0.0.2", "127.0.1.1", "127.255.255.254", "::ffff:127.0.0.2", ANY_V4, "::", "[::]", "192.0.2.1",
    "::ffff:192.0.2.1", "2001:db8::1", "[2001:db8::1]", "media.example", "localhost.example",
]  # fmt: skip
DEFAULT_LOOPBACK = ["127.0.0.1", "localhost", "LOCALHOST", "localhost.", "::1", "[::1]", "0:0:0:0:0:0:0:1",
                    "::ffff:127.0.0.1"]  # fmt: skip


@pytest.mark.parametrize("host", NEEDS_TOKEN)
async def test_bind_other_than_default_loopback_without_token_refuses_to_start(
    make_server: MakeServer, host: str
) -> None:
    assert not is_default_loopback(host)
    with pytest.raises(StartupError, match="MEDIA_MCP_HTTP_TOKEN"):
        http_app(make_server(), ServerSettings(http_token=None), host, False, [])
    assert http_app(make_server(), ServerSettings(http_token=SecretStr(TOKEN)), host, False, []) is not None


@pytest.mark.parametrize("host", DEFAULT_LOOPBACK)
async def test_default_loopback_needs_no_token(make_server: MakeServer, host: str) -> None:
    assert is_default_loopback(host)
    assert http_app(make_server(), ServerSettings(http_token=None), host, False, []) is not None


@pytest.mark.parametrize("host", ["evil host", "http://127.0.0.1", "127.0.0.1:8000", "[::1", "", "::1]"])
async def test_junk_bind_refuses_to_start(make_server: MakeServer, host: str) -> None:
    with pytest.raises(StartupError, match="--host"):
        http_app(make_server(), ServerSettings(http_token=SecretStr(TOKEN)), host, False, [])


@pytest.mark.parametrize("entry", ["*", "http://media.example", "media.example/mcp", "media.example:x", "a b", ":80"])
async def test_junk_allowed_host_refuses_to_start(make_server: MakeServer, entry: str) -> None:
    with pytest.raises(StartupError, match="MEDIA_MCP_HTTP_ALLOWED_HOSTS"):
        http_app(make_server(), ServerSettings(http_token=None), "127.0.0.1", False, [entry])
    with pytest.raises(StartupError, match="MEDIA_MCP_HTTP_ALLOWED_HOSTS"):
        http_app(make_server(), ServerSettings(http_allowed_hosts=f"ok.example,{entry}"), "127.0.0.1", False, [])


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MEDIA_MCP_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, "-m", "media_mcp", "--transport", "http", *args],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "host",
    [
        "192.0.2.1",
        *(pytest.param(host, marks=pytest.mark.slow) for host in ("127.0.0.2", "127.0.1.1", "::ffff:127.0.0.2")),
    ],
)
def test_cli_bind_without_token_exits_2(tmp_path: Path, host: str) -> None:
    """The CLI path of the same refusal. 192.0.2.1 (TEST-NET-1) is never assigned here, and the 127.x binds are on
    port 0, so even a regression could not expose a server beyond this machine (it would fail on the timeout)."""
    done = run_cli(tmp_path, "--host", host, "--port", "0")
    assert done.returncode == 2, done.stderr
    assert "MEDIA_MCP_HTTP_TOKEN" in done.stderr.decode()
    assert done.stdout == b""


def test_cli_junk_allowed_host_exits_2(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--port", "0", "--allowed-host", "http://media.example")
    assert done.returncode == 2, done.stderr
    assert "MEDIA_MCP_HTTP_ALLOWED_HOSTS" in done.stderr.decode()
    assert done.stdout == b""


async def test_bearer_token_off_loopback(make_server: MakeServer, upload_root: Path, mode: str) -> None:
    public = "0.0.0.0"  # noqa: S104 - the app is built as if for it, but served on 127.0.0.1
    with serve(make_server, host=public, token=TOKEN, allowed_hosts=["127.0.0.1:*"]) as url:
        with anyio.fail_after(TIMEOUT):
            async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
                assert (await http.get("/healthz")).status_code == 200
                missing = await http.post("/mcp", headers=JSON_RPC_HEADERS, json=INITIALIZE)
                assert missing.status_code == 401
                assert missing.headers["www-authenticate"].startswith("Bearer")
                for wrong in ("Bearer nope", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"):
                    refused = await http.post(
                        "/mcp", headers={**JSON_RPC_HEADERS, "Authorization": wrong}, json=INITIALIZE
                    )
                    assert refused.status_code == 401, wrong
                    assert TOKEN not in refused.text
                both = [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {TOKEN}")]
                for pair in (both, both[::-1]):  # two headers are refused, in either order
                    twice = [*JSON_RPC_HEADERS.items(), *pair]
                    assert (await http.post("/mcp", headers=twice, json=INITIALIZE)).status_code == 401
                lower = await http.post("/mcp", headers={**JSON_RPC_HEADERS, "Authorization": f"bearer {TOKEN}"},
                                        json=INITIALIZE)  # fmt: skip
                assert lower.status_code == 200, lower.text  # the scheme's name is case-insensitive
                good = {**JSON_RPC_HEADERS, "Authorization": f"Bearer {TOKEN}"}
                right = await http.post("/mcp", headers=good, json=INITIALIZE)
                assert right.status_code == 200, right.text
                # the token does not switch the rebinding protection off
                rebound = await http.post("/mcp", headers={**good, "Host": "evil.example"}, json=INITIALIZE)
                assert rebound.status_code == 421
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(TIMEOUT)) as authed,
                Client(streamable_http_client(f"{url}/mcp", http_client=authed), mode=mode) as client,
            ):
                await use_tools(client, upload_root)


async def test_sessions_past_the_limit_are_refused_and_the_open_ones_keep_working(make_server: MakeServer) -> None:
    with serve(make_server, http_max_sessions=2) as url, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            opened = [await http.post("/mcp", headers=JSON_RPC_HEADERS, json=INITIALIZE) for _ in range(2)]
            assert [reply.status_code for reply in opened] == [200, 200]
            sessions = [reply.headers["mcp-session-id"] for reply in opened]
            full = await http.post("/mcp", headers=JSON_RPC_HEADERS, json=INITIALIZE)
            assert full.status_code == 503
            assert "mcp-session-id" not in full.headers

            def of(session: str) -> dict[str, str]:
                return {**JSON_RPC_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}

            listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            for session in sessions:
                await http.post(
                    "/mcp", headers=of(session), json={"jsonrpc": "2.0", "method": "notifications/initialized"}
                )
                listed = await http.post("/mcp", headers=of(session), json=listing)
                assert listed.status_code == 200 and rpc_message(listed)["result"]["tools"], listed.text
            ended = await http.delete("/mcp", headers=of(sessions[0]))
            assert ended.status_code in (200, 204), ended.text
            room = await http.post("/mcp", headers=JSON_RPC_HEADERS, json=INITIALIZE)
            assert room.status_code == 200 and room.headers["mcp-session-id"] not in sessions


async def test_stateless(make_server: MakeServer, upload_root: Path, mode: str) -> None:
    with serve(make_server, stateless=True) as url, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            listed = await http.post(
                "/mcp", headers=JSON_RPC_HEADERS, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            )
            assert listed.status_code == 200, listed.text
            assert "mcp-session-id" not in listed.headers
            assert {t["name"] for t in rpc_message(listed)["result"]["tools"]} == TOOLS
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "search_folders", "arguments": {}},
            }
            called = await http.post("/mcp", headers=JSON_RPC_HEADERS, json=call)
            assert called.status_code == 200, called.text
            assert "mcp-session-id" not in called.headers
            result = rpc_message(called)["result"]
            assert not result.get("isError") and result["structuredContent"]["folders"] == []
        async with Client(f"{url}/mcp", mode=mode) as client:
            await use_tools(client, upload_root)


@pytest.mark.parametrize("stateless", [False, True])
async def test_the_media_browsers_tools_only_where_the_server_knows_the_client_shows_apps(
    make_server: MakeServer, mode: str, stateless: bool
) -> None:
    """Stateless HTTP in the 2025-11-25 era has no handshake per request, so the server cannot know the client shows
    MCP Apps: there the browser's own tools are neither listed nor callable (the safe side); elsewhere they are."""
    known = not (stateless and mode == "legacy")
    with serve(make_server, stateless=stateless) as url, anyio.fail_after(TIMEOUT):
        async with Client(f"{url}/mcp", mode=mode, extensions=[ShowsApps()]) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert (names >= APP_ONLY_TOOLS) is known and (not APP_ONLY_TOOLS & names) is not known
            result = await client.call_tool("browse_media", {})
            assert result.is_error is not known


# --- every bind: Host/Origin checks derived from what it binds ------------------------------------------------------


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1) to bind")


@contextmanager
def serve_bound(
    make_server: MakeServer,
    build_for: str,
    listen_on: str,
    *,
    token: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
    stateless: bool = False,
) -> Iterator[int]:
    """The app as built for ``--host build_for`` and the port actually bound, served by uvicorn on ``listen_on`` (a
    loopback literal); yields the port. The socket listens before the app is built, so the port is known."""
    sock = socket.socket(socket.AF_INET6 if ":" in listen_on else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((listen_on, 0))
        sock.listen(128)
        port: int = sock.getsockname()[1]
        settings = ServerSettings(http_token=SecretStr(token) if token else None)
        app = http_app(make_server(), settings, build_for, stateless, list(allowed_hosts), port=port)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            yield port
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            assert not thread.is_alive(), "the server did not stop"
    finally:
        sock.close()


@dataclass(frozen=True)
class BindCase:
    """``--host build_for`` served on ``listen_on`` (reached at ``connect``); Host values with ``{port}`` (the port
    bound) and ``{other}`` (another port) filled in."""

    build_for: str
    listen_on: str
    good: tuple[str, ...]
    bad: tuple[str, ...]
    token: bool = False
    allowed: tuple[str, ...] = ()
    connect: str = ""

    def url(self, port: int) -> str:
        where = self.connect or self.listen_on
        return f"http://[{where}]:{port}" if ":" in where else f"http://{where}:{port}"


FOREIGN = ("evil.example", "evil.example:{port}", "localhost.evil.example:{port}", "127.0.0.1.nip.io:{port}",
           "localhost@evil.example:{port}", f"{ANY_V4}:{{port}}", "{port}", "")  # fmt: skip
V4_DEFAULT = BindCase(
    "127.0.0.1", "127.0.0.1",
    good=("127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}", "LOCALHOST.:{port}", "[::ffff:127.0.0.1]:{port}"),
    bad=("[::1]:{port}", "127.0.0.2:{port}", "127.0.0.1:{other}", "127.0.0.1", "localhost", "localhost..:{port}",
         "127.0.0.1:{port}:1", *FOREIGN),
)  # fmt: skip
# fmt: off
V6_BAD = ("127.0.0.1:{port}", "[::2]:{port}", "::1:{port}", "[::1]", "[::1]:{other}", "[::1%25lo]:{port}", *FOREIGN)
CASES = {
    "127.0.0.1": V4_DEFAULT,
    "localhost": BindCase("localhost", "127.0.0.1", V4_DEFAULT.good, V4_DEFAULT.bad),
    "127.0.0.2": BindCase(
        "127.0.0.2", "127.0.0.2", token=True,
        good=("127.0.0.2:{port}", "[::ffff:127.0.0.2]:{port}"),
        bad=("localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "127.0.0.2:{other}", "127.0.0.2", *FOREIGN),
    ),
    "127.0.1.1": BindCase(
        "127.0.1.1", "127.0.1.1", token=True, allowed=("media.example",),
        good=("127.0.1.1:{port}", "media.example:{port}", "Media.Example"),
        bad=("localhost:{port}", "127.0.0.1:{port}", "127.0.1.1:{other}", "media.example.evil.example", *FOREIGN),
    ),
    "::1": BindCase(
        "::1", "::1",
        good=("[::1]:{port}", "[0:0:0:0:0:0:0:1]:{port}", "[0::1]:{port}", "localhost:{port}"), bad=V6_BAD,
    ),
    "[::1]": BindCase("[::1]", "::1", good=("[::1]:{port}", "localhost:{port}"), bad=V6_BAD),
    "0:0:0:0:0:0:0:1": BindCase("0:0:0:0:0:0:0:1", "::1", good=("[::1]:{port}", "localhost:{port}"), bad=V6_BAD),
    "::ffff:127.0.0.1": BindCase(  # an IPv6 socket on the IPv4 loopback address: reached over IPv4
        "::ffff:127.0.0.1", "::ffff:127.0.0.1", connect="127.0.0.1",
        good=("127.0.0.1:{port}", "localhost:{port}", "[::ffff:127.0.0.1]:{port}", "[::ffff:7f00:1]:{port}"),
        bad=("[::1]:{port}", "127.0.0.2:{port}", "127.0.0.1:{other}", *FOREIGN),
    ),
    # never bound: built for a wildcard or LAN bind, served on loopback; loopback names on any port, plus configured
    ANY_V4: BindCase(
        ANY_V4, "127.0.0.1", token=True, allowed=("media.example", "10.1.2.3:8443"),
        good=("127.0.0.1:{port}", "localhost:{other}", "[::1]:{port}", "media.example", "MEDIA.example.:{port}",
              "10.1.2.3:8443"),
        bad=("127.0.0.2:{port}", "10.1.2.3:{port}", "10.1.2.3", "media.example.evil.example:{port}", *FOREIGN),
    ),
    "::": BindCase(
        "::", "::1", token=True, allowed=("media.example:8443", "[2001:db8::5]:*"),
        good=("[::1]:{port}", "127.0.0.1:{port}", "media.example:8443", "[2001:db8:0::5]:1", "[2001:db8::5]"),
        bad=("media.example:{port}", "media.example", "[2001:db8::6]:{port}", "2001:db8::5", *FOREIGN),
    ),
    "192.0.2.1": BindCase(  # a LAN address: its own address is not accepted unless configured
        "192.0.2.1", "127.0.0.1", token=True, allowed=("lan.example:*",),
        good=("lan.example:{port}", "lan.example", "localhost:{port}", "127.0.0.1:{port}"),
        bad=("192.0.2.1:{port}", "lan.example.:{port}x", *FOREIGN),
    ),
}
# fmt: on
V6_LISTEN = {"::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::"}


DEFAULT_RUN = {"127.0.0.1", "::1", ANY_V4, "192.0.2.1"}
"""The binds the default test run tries: the default, IPv6 loopback, the wildcard and a LAN address. The other
spellings and addresses of the same kinds run with the slow tests."""


def _cases() -> list[Any]:
    def marks(name: str) -> list[Any]:
        return ([needs_ipv6] if name in V6_LISTEN else []) + ([] if name in DEFAULT_RUN else [pytest.mark.slow])

    return [pytest.param(case, id=name, marks=marks(name)) for name, case in CASES.items()]


def _fill(value: str, port: int) -> str:
    return value.replace("{port}", str(port)).replace("{other}", str(port + 1 if port < 65535 else port - 1))


def upload_call(request_id: int) -> dict[str, Any]:
    arguments = {"file_name": "cat.png", "mime_type": "image/png"}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": "generate_upload_url", "arguments": arguments}}  # fmt: skip


@pytest.mark.parametrize("case", _cases())
async def test_every_bind_checks_host_and_origin(make_server: MakeServer, case: BindCase) -> None:
    """initialize and tools/call (generate_upload_url) on the bind: foreign Host → 421, foreign Origin → 403, the bind's
    own Host values (with their Origins, or none) → 200; /healthz answers whatever the Host, other paths do not."""
    token = TOKEN if case.token else None
    with serve_bound(make_server, case.build_for, case.listen_on, token=token, allowed_hosts=case.allowed) as port:
        good = [_fill(h, port) for h in case.good]
        bad = [_fill(h, port) for h in case.bad]
        auth = {"Authorization": f"Bearer {TOKEN}"} if token else {}
        base = {**JSON_RPC_HEADERS, **auth}
        foreign_origins = ["http://evil.example", "null", "file://", f"http://{bad[0]}", f"https://{bad[0]}",
                           f"ftp://{good[0]}", f"http://{good[0]}/", f"http://{good[0]}@evil.example",
                           f"http://evil.example#{good[0]}", f"http://{good[0]}.evil.example"]  # fmt: skip
        async with httpx.AsyncClient(base_url=case.url(port), timeout=TIMEOUT, trust_env=False) as http:
            with anyio.fail_after(TIMEOUT):
                for host in bad:
                    refused = await http.post("/mcp", headers={**base, "Host": host}, json=INITIALIZE)
                    assert refused.status_code == 421, (host, refused.status_code)
                    assert (await http.get("/healthz", headers={"Host": host})).status_code == 200
                    assert (await http.get("/elsewhere", headers={**auth, "Host": host})).status_code == 421
                for origin in foreign_origins:
                    refused = await http.post(
                        "/mcp", headers={**base, "Host": good[0], "Origin": origin}, json=INITIALIZE
                    )
                    assert refused.status_code == 403, (origin, refused.status_code)
                session = ""
                for host in good:
                    for origin in ("", f"http://{host}", f"https://{host}", f"HTTP://{host}"):
                        headers = {**base, "Host": host} | ({"Origin": origin} if origin else {})
                        fine = await http.post("/mcp", headers=headers, json=INITIALIZE)
                        assert fine.status_code == 200, (host, origin, fine.text)
                        assert rpc_message(fine)["result"]["serverInfo"]["name"] == "media-mcp"
                        session = fine.headers["mcp-session-id"]
                in_session = {**base, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
                initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
                ack = await http.post("/mcp", headers={**in_session, "Host": good[0]}, json=initialized)
                assert ack.status_code == 202, ack.text
                for host in bad:
                    refused = await http.post("/mcp", headers={**in_session, "Host": host}, json=upload_call(2))
                    assert refused.status_code == 421, (host, refused.status_code)
                for origin in foreign_origins:
                    headers = {**in_session, "Host": good[0], "Origin": origin}
                    refused = await http.post("/mcp", headers=headers, json=upload_call(3))
                    assert refused.status_code == 403, (origin, refused.status_code)
                for n, host in enumerate(good):
                    headers = {**in_session, "Host": host, "Origin": f"http://{host}"}
                    called = await http.post("/mcp", headers=headers, json=upload_call(10 + n))
                    assert called.status_code == 200, (host, called.text)
                    result = rpc_message(called)["result"]
                    assert not result.get("isError") and result["structuredContent"]["upload_url"], result
                if token:  # the Host check does not replace the token
                    assert (await http.post("/mcp", headers={**JSON_RPC_HEADERS, "Host": good[0]})).status_code == 401


async def _raw(port: int, request: bytes) -> bytes:
    """One HTTP/1.0 request over a plain socket to 127.0.0.2 (httpx always sends one Host); the status line back."""
    with anyio.fail_after(TIMEOUT):
        async with await anyio.connect_tcp("127.0.0.2", port) as stream:
            await stream.send(request)
            reply = b""
            while b"\r\n" not in reply:
                reply += await stream.receive()
    return reply.split(b"\r\n", 1)[0]


async def test_missing_or_doubled_host_is_refused(make_server: MakeServer) -> None:
    body = json.dumps(INITIALIZE).encode()
    head = (b"POST /mcp HTTP/1.0\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n" % len(body))  # fmt: skip
    with serve_bound(make_server, "127.0.0.2", "127.0.0.2", token=TOKEN) as port:
        auth = b"Authorization: Bearer %s\r\n" % TOKEN.encode()
        own = b"Host: 127.0.0.2:%d\r\n" % port
        assert b" 200 " in await _raw(port, head + auth + own + b"\r\n" + body)
        assert b" 421 " in await _raw(port, head + auth + b"\r\n" + body)
        doubled = await _raw(port, head + auth + own + b"Host: evil.example\r\n\r\n" + body)
        assert b" 421 " in doubled or b" 400 " in doubled, doubled
        two_origins = b"Origin: http://127.0.0.2:%d\r\nOrigin: http://evil.example\r\n" % port
        assert b" 403 " in await _raw(port, head + auth + own + two_origins + b"\r\n" + body)


async def test_mcp_session_on_a_bind_other_than_the_default(
    make_server: MakeServer, upload_root: Path, mode: str
) -> None:
    """The SDK client on --host 127.0.0.2 with the token: Host is the bind's own, so it just works."""
    with serve_bound(make_server, "127.0.0.2", "127.0.0.2", token=TOKEN) as port, anyio.fail_after(TIMEOUT):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(TIMEOUT), trust_env=False) as authed,
            Client(streamable_http_client(f"http://127.0.0.2:{port}/mcp", http_client=authed), mode=mode) as client,
        ):
            await use_tools(client, upload_root)


@needs_ipv6
async def test_mcp_session_on_ipv6_loopback(make_server: MakeServer, upload_root: Path, mode: str) -> None:
    with serve_bound(make_server, "0:0:0:0:0:0:0:1", "::1") as port, anyio.fail_after(TIMEOUT):
        async with Client(f"http://[::1]:{port}/mcp", mode=mode) as client:
            await use_tools(client, upload_root)
