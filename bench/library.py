"""The embedded library under load: big transfers against ``cp``, its memory during an upload, search at scale.

Everything talks to a real ``media-mcp library`` subprocess on 127.0.0.1, the way a client would:

* transfers: a file of random bytes goes up through a minted upload URL and comes back through a minted
  download URL; ``cp`` of the same file on the same disk is the baseline (with and without an fsync of
  the copy, since the library fsyncs every upload before answering); the upload's own baseline is the same PUT
  into nginx (Debian's build, its dav module: ``dav_methods PUT``), started here on loopback with its config in
  the work directory, then an fsync of the file it wrote (no nginx installed: that row is left out, and the
  report says how to install it);
* memory: the server's VmRSS before an upload and its VmHWM (peak) after it, the peak reset in between;
* search: two catalogs (1k and 100k files by default) are seeded straight into the database with the
  library's own `Catalog.add_file` while no server runs, then ``files/search`` is timed over HTTP.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import math
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench import results_file
from media_mcp.library.catalog import Catalog
from media_mcp.library.db import Database
from media_mcp.library.rows import FileRow
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
from media_mcp.wix import models as m

HELP = "embedded library: 1 GiB upload vs nginx, upload/download vs cp, server memory, search at 1k vs 100k files"
DESCRIPTION = __doc__

MIB = 1024 * 1024
MB = 1_000_000
API = "/site-media/v1"
HOST = "127.0.0.1"
RESULTS = Path(__file__).resolve().parent / "results" / "library.json"

TARGET_TRANSFER_RATIO = 0.7
TARGET_NGINX_RATIO = 0.9
"""The upload's budget (issue 10): at least 0.9x the throughput of nginx's PUT (dav module) plus an fsync."""
TARGET_MEMORY_MIB = 64.0
TARGET_SEARCH_RATIO = 2.0


# --- options -----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=3, help="runs of each transfer (median reported; default 3)")
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the transferred file (default 1024)")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()), help="where temporary files go (same disk)"
    )
    parser.add_argument("--small", type=int, default=1000, help="files in the small search catalog (default 1000)")
    parser.add_argument("--large", type=int, default=100_000, help="files in the large catalog (default 100000)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per search query (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per query first (default 20)")
    parser.add_argument("--only", choices=["transfer", "search"], help="run one part only")
    parser.add_argument("--nginx", help="the nginx binary of the upload baseline (default: nginx on PATH)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the work directory for inspection")
    parser.add_argument("--seed", type=int, default=20240601, help="random seed for the seeded catalogs")


# --- the library as a subprocess ---------------------------------------------------------------


def _library_command() -> list[str]:
    """The ``media-mcp`` entry point of this interpreter's environment (so the server runs the same code)."""
    script = Path(sys.executable).parent / "media-mcp"
    if script.is_file():
        return [str(script)]
    found = shutil.which("media-mcp")
    return [found] if found else [sys.executable, "-m", "media_mcp"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class LibraryServer:
    """``media-mcp library`` on a free loopback port with a known API key; stopped with SIGINT."""

    def __init__(self, data_dir: Path, log_path: Path, start_timeout: float = 60.0) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.api_key = secrets.token_urlsafe(24)
        self.base = ""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> LibraryServer:
        for _ in range(3):  # a start fails fast if another program took the free port in between
            if self._try_start():
                return self
        raise RuntimeError(f"the library did not start; its log ({self.log_path}):\n{self._log_tail()}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _try_start(self) -> bool:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_MCP_")}
        env["MEDIA_MCP_LIBRARY_API_KEY"] = self.api_key
        command = [*_library_command(), "library", "--data-dir", str(self.data_dir), "--host", HOST]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [*command, "--port", str(port)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
            )
        self.base = f"http://{HOST}:{port}"
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(trust_env=False, timeout=2.0) as probe:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    return False  # e.g. the port was taken in between: try another
                with contextlib.suppress(httpx.TransportError):
                    if probe.get(f"{self.base}/healthz").status_code == 200:
                        return True
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the library did not answer /healthz within {self.start_timeout:.0f}s")

    def stop(self, timeout: float = 20.0) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait(timeout)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def _status_kib(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status, such as VmRSS (resident now) or VmHWM (resident peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: ``echo 5 > /proc/<pid>/clear_refs``); False if not possible."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib(pid, "VmHWM") <= _status_kib(pid, "VmRSS") + 1024


@dataclass
class MemorySample:
    rss_before_mib: float
    peak_mib: float
    growth_mib: float
    peak_was_reset: bool


class PeakMemory:
    """Measures a process's resident-memory peak over a block, relative to its RSS when the block began."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sample: MemorySample | None = None

    @contextmanager
    def watch(self) -> Iterator[None]:
        reset = _reset_peak(self.pid)
        before = _status_kib(self.pid, "VmRSS")
        yield
        peak = _status_kib(self.pid, "VmHWM")
        self.sample = MemorySample(before / 1024, peak / 1024, max(0, peak - before) / 1024, reset)


# --- nginx: the baseline of the upload ---------------------------------------------------------

NGINX_INSTALL = "apt-get install nginx-light (or nginx): Debian's builds include the dav module"
NGINX_START_TIMEOUT = 20.0
NGINX_STOP_TIMEOUT = 10.0


def find_nginx(given: str | None = None) -> tuple[str | None, str]:
    """The nginx binary to use and its version line, or None and why not (missing, or built without the dav module)."""
    if given:
        binary = given if os.access(given, os.X_OK) else None
    else:  # /usr/sbin is not on every user's PATH
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if binary is None:
        where = f"{given} is not an executable" if given else "nginx is not installed"
        return None, f"{where}, so the upload has no nginx row; to add it: {NGINX_INSTALL}"
    try:
        shown = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{binary} -V failed ({exc}), so the upload has no nginx row"
    described = shown.stdout + shown.stderr
    version = next((line.split(":", 1)[1].strip() for line in described.splitlines() if "version:" in line), "nginx")
    if "--with-http_dav_module" not in described:
        return None, f"{binary} ({version}) is built without the dav module, so no nginx row; {NGINX_INSTALL}"
    return binary, version


def nginx_config(prefix: Path, port: int, *, as_root: bool) -> str:
    """A self-contained nginx.conf: everything under ``prefix``, one worker, PUT through the dav module."""
    temp = {name: prefix / "temp" / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in (*temp.values(), prefix / "www" / "put"):
        path.mkdir(parents=True, exist_ok=True)
    user = "user root root;\n" if as_root else ""  # workers would drop to nobody, who cannot write to the prefix
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    client_max_body_size 0;
    server {{
        listen {HOST}:{port};
        server_name localhost;
        root {prefix / "www"};
        location /put/ {{
            dav_methods PUT;
            dav_access user:rw;
        }}
        location = /ready {{
            return 204;
        }}
    }}
}}
"""


class NginxServer:
    """nginx on a free loopback port with a config in ``prefix`` (``nginx -c <conf> -p <prefix> -e <log>``,
    ``daemon off``), as a child of this process; stopped with SIGQUIT (graceful), killed if it does not exit."""

    def __init__(self, binary: str, prefix: Path) -> None:
        self.binary = binary
        self.prefix = prefix
        self.base = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NginxServer:
        self.prefix.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a start fails fast if another program took the free port in between
            if self._try_start():
                return self
        raise RuntimeError(f"nginx did not start; its log:\n{self._log_tail()}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def put_path(self, name: str) -> Path:
        """Where a PUT to ``/put/<name>`` lands."""
        return self.prefix / "www" / "put" / name

    def _try_start(self) -> bool:
        port = _free_port()
        conf = self.prefix / "nginx.conf"
        conf.write_text(nginx_config(self.prefix, port, as_root=os.geteuid() == 0))
        command = [self.binary, "-c", str(conf), "-p", f"{self.prefix}/", "-e", str(self.prefix / "error.log")]
        with open(self.prefix / "stderr.log", "ab") as log:
            self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.base = f"http://{HOST}:{port}"
        deadline = time.monotonic() + NGINX_START_TIMEOUT
        with httpx.Client(trust_env=False, timeout=2.0) as probe:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    return False
                with contextlib.suppress(httpx.TransportError):
                    if probe.get(f"{self.base}/ready").status_code == 204:
                        return True
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"nginx did not answer within {NGINX_START_TIMEOUT:.0f}s; its log:\n{self._log_tail()}")

    def stop(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                return proc.wait(NGINX_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait(NGINX_STOP_TIMEOUT)

    def _log_tail(self) -> str:
        text = ""
        for name in ("stderr.log", "error.log"):
            with contextlib.suppress(OSError):
                text += (self.prefix / name).read_text(errors="replace")[-1500:]
        return text or "(no log)"


def time_nginx_put(client: httpx.Client, nginx: NginxServer, source: Path, size: int) -> float:
    """PUT the file to nginx (dav module), then fsync what it wrote, as the library fsyncs an upload."""
    target = nginx.put_path("big.bin")
    target.unlink(missing_ok=True)
    _settle()
    start = time.perf_counter()
    response = client.put(
        f"{nginx.base}/put/big.bin",
        content=_blocks(source),
        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
    )
    if response.status_code not in (201, 204):
        raise RuntimeError(f"nginx answered the PUT with {response.status_code}: {response.text[:300]}")
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - start
    if target.stat().st_size != size:
        raise RuntimeError(f"nginx stored {target.stat().st_size} bytes, expected {size}")
    target.unlink()
    return elapsed


# --- statistics ----------------------------------------------------------------------------------


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


@dataclass
class Throughput:
    runs_mb_s: list[float]
    median_mb_s: float

    @classmethod
    def of(cls, size: int, seconds: list[float]) -> Throughput:
        rates = [size / MB / s for s in seconds]
        return cls([round(r, 1) for r in rates], round(statistics.median(rates), 1))


@dataclass
class Latency:
    calls: int
    median_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    matched: int

    @classmethod
    def of(cls, seconds: list[float], matched: int) -> Latency:
        ms = [s * 1000 for s in seconds]
        return cls(
            calls=len(ms),
            median_ms=round(statistics.median(ms), 3),
            p95_ms=round(_percentile(ms, 95), 3),
            mean_ms=round(statistics.fmean(ms), 3),
            min_ms=round(min(ms), 3),
            max_ms=round(max(ms), 3),
            matched=matched,
        )


@dataclass
class Check:
    name: str
    value: float
    target: str
    passed: bool


# --- transfers -------------------------------------------------------------------------------------


def make_source(path: Path, size: int) -> tuple[str, str]:
    """Write ``size`` random bytes; return their sha256 and md5 (the library reports md5 as ``hash``)."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(MIB, left))
            out.write(block)
            sha.update(block)
            md5.update(block)
            left -= len(block)
    return sha.hexdigest(), md5.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def _settle() -> None:
    """Flush earlier writes so they are not charged to the next timed operation."""
    os.sync()


def time_cp(source: Path, target: Path, *, fsync: bool) -> float:
    target.unlink(missing_ok=True)
    _settle()
    start = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    if fsync:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - start
    if target.stat().st_size != source.stat().st_size:
        raise RuntimeError("cp produced a file of the wrong size")
    target.unlink()
    return elapsed


def _blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(MIB):
            yield block


def _api(client: httpx.Client, server: LibraryServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"{server.base}{API}{path}", json=body, headers={"Authorization": server.api_key})
    if response.status_code != 200:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
    data: dict[str, Any] = response.json()
    return data


def time_upload(client: httpx.Client, server: LibraryServer, source: Path, size: int, md5: str) -> tuple[float, str]:
    """PUT the file through a freshly minted upload URL; returns (seconds, file id)."""
    minted = _api(
        client,
        server,
        "/files/generate-upload-url",
        {"mimeType": "application/octet-stream", "fileName": "big.bin", "sizeInBytes": str(size)},
    )
    _settle()
    start = time.perf_counter()
    response = client.put(
        minted["uploadUrl"],
        content=_blocks(source),
        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
    )
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
    descriptor = response.json()["file"]
    if int(descriptor["sizeInBytes"]) != size or descriptor["hash"] != md5:
        raise RuntimeError(f"upload stored {descriptor['sizeInBytes']} bytes with md5 {descriptor['hash']}")
    return elapsed, str(descriptor["id"])


RESUMABLE_CHUNK = 32 * MIB
"""Bytes per tus PATCH in the resumable upload measurement."""


def time_resumable(
    client: httpx.Client, server: LibraryServer, source: Path, size: int, md5: str
) -> tuple[float, float]:
    """Upload through tus (create, PATCHes of `RESUMABLE_CHUNK`, then the final PUT that makes the file); returns
    (seconds for the whole upload, seconds for the final PUT alone)."""
    minted = _api(
        client,
        server,
        "/files/generate-resumable-upload-url",
        {"mimeType": "application/octet-stream", "fileName": "big.bin", "uploadProtocol": "TUS"},
    )
    url, token = minted["uploadUrl"], minted["uploadToken"]
    tus = {"Tus-Resumable": "1.0.0"}
    metadata = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in (("token", token), ("filename", "big.bin"))
    )
    _settle()
    start = time.perf_counter()
    created = client.post(url, headers={**tus, "Upload-Length": str(size), "Upload-Metadata": metadata})
    if created.status_code != 201:
        raise RuntimeError(f"tus create answered {created.status_code}: {created.text[:500]}")
    location = httpx.URL(url).join(created.headers["Location"])
    offset = 0
    with source.open("rb") as fh:
        while chunk := fh.read(RESUMABLE_CHUNK):
            patched = client.patch(
                location,
                content=chunk,
                headers={**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
            )
            if patched.status_code != 204:
                raise RuntimeError(f"tus PATCH at {offset} answered {patched.status_code}: {patched.text[:500]}")
            offset += len(chunk)
    final_start = time.perf_counter()
    done = client.put(f"{url}/{token}", params={"filename": "big.bin"})
    end = time.perf_counter()
    if done.status_code != 200:
        raise RuntimeError(f"the final PUT answered {done.status_code}: {done.text[:500]}")
    descriptor = done.json()["file"]
    if int(descriptor["sizeInBytes"]) != size or descriptor["hash"] != md5:
        raise RuntimeError(f"resumable upload stored {descriptor['sizeInBytes']} bytes with md5 {descriptor['hash']}")
    return end - start, end - final_start


def time_md5(source: Path) -> float:
    """Seconds to read ``source`` and take its md5: what a final PUT costs if it has to hash the file again."""
    _settle()
    start = time.perf_counter()
    digest = hashlib.md5(usedforsecurity=False)
    for block in _blocks(source):
        digest.update(block)
    return time.perf_counter() - start


def time_download(client: httpx.Client, server: LibraryServer, file_id: str, target: Path, size: int) -> float:
    """GET the file through a freshly minted download URL, streaming it into ``target``."""
    minted = _api(client, server, "/files/generate-file-download-url", {"fileId": file_id})
    url = minted["downloadUrls"][0]["url"]
    target.unlink(missing_ok=True)
    _settle()
    start = time.perf_counter()
    with client.stream("GET", url) as response, open(target, "wb") as out:
        if response.status_code != 200:
            raise RuntimeError(f"download answered {response.status_code}")
        for chunk in response.iter_raw():
            out.write(chunk)
    elapsed = time.perf_counter() - start
    if target.stat().st_size != size:
        raise RuntimeError(f"downloaded {target.stat().st_size} bytes, expected {size}")
    return elapsed


def _lean_get(url: str, target: Path) -> int:
    """GET ``url`` over a bare socket into ``target`` (1 MiB ``recv_into``): a client that costs next to nothing,
    to tell the library's own speed from httpx's (which reads 64 KiB at a time through h11)."""
    parts = urlsplit(url)
    if parts.hostname != HOST or parts.port is None:
        raise RuntimeError(f"refusing to fetch {url}: not {HOST}")
    buf = bytearray(MIB)
    view = memoryview(buf)
    with socket.create_connection((HOST, parts.port), timeout=600) as sock, open(target, "wb") as out:
        request = f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        head = bytearray()
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(buf)
            if not n:
                raise RuntimeError("the connection closed before the response headers")
            head += view[:n]
        header, _, body = bytes(head).partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "200":
            raise RuntimeError(f"lean download answered {lines[0]}")
        length = next(int(v) for k, _, v in (x.partition(":") for x in lines[1:]) if k.lower() == "content-length")
        out.write(body)
        got = len(body)
        while got < length and (n := sock.recv_into(buf)):
            out.write(view[:n])
            got += n
    return got


def time_lean_download(client: httpx.Client, server: LibraryServer, file_id: str, target: Path, size: int) -> float:
    minted = _api(client, server, "/files/generate-file-download-url", {"fileId": file_id})
    target.unlink(missing_ok=True)
    _settle()
    start = time.perf_counter()
    got = _lean_get(minted["downloadUrls"][0]["url"], target)
    elapsed = time.perf_counter() - start
    if got != size or target.stat().st_size != size:
        raise RuntimeError(f"lean download got {got} bytes, expected {size}")
    target.unlink()
    return elapsed


@dataclass
class TransferResults:
    size_bytes: int
    repeats: int
    cp: Throughput
    cp_fsync: Throughput
    upload: Throughput
    download: Throughput
    download_lean_client: Throughput
    upload_vs_cp: float
    upload_vs_cp_fsync: float
    download_vs_cp: float
    download_vs_cp_fsync: float
    resumable: Throughput
    nginx_put: Throughput | None
    upload_vs_nginx: float | None
    nginx: str
    """nginx's version, or why there is no nginx row."""
    resumable_final_put_ms: list[float]
    md5_reread_ms: list[float]
    sha256_verified: bool
    upload_memory: list[MemorySample]
    download_memory: list[MemorySample]
    idle_rss_mib: float
    notes: list[str] = field(default_factory=list)


def bench_transfers(work: Path, size: int, repeats: int, nginx_binary: str | None = None) -> TransferResults:
    nginx_found, nginx_about = find_nginx(nginx_binary)
    if nginx_found is None:
        print(f"transfer: {nginx_about}", file=sys.stderr, flush=True)
    source = work / "source.bin"
    print(f"transfer: writing {size / MIB:.0f} MiB of random data to {source}", flush=True)
    sha, md5 = make_source(source, size)
    copy, fetched = work / "copy.bin", work / "download.bin"
    times: dict[str, list[float]] = {
        "cp": [], "cp_fsync": [], "upload": [], "download": [], "download_lean": [], "resumable": [],
    }  # fmt: skip
    if nginx_found is not None:
        times["nginx_put"] = []
    final_put: list[float] = []
    md5_reread: list[float] = []
    up_mem: list[MemorySample] = []
    down_mem: list[MemorySample] = []
    verified = False
    with (
        LibraryServer(work / "transfer-data", work / "transfer-server.log") as server,
        contextlib.ExitStack() as stack,
        httpx.Client(trust_env=False, timeout=httpx.Timeout(600.0)) as client,
    ):
        nginx = stack.enter_context(NginxServer(nginx_found, work / "nginx")) if nginx_found else None
        memory = PeakMemory(server.pid)
        idle = _status_kib(server.pid, "VmRSS") / 1024
        time_cp(source, copy, fsync=False)  # warm-up, untimed: the first copy after creating the source is slow
        for run in range(1, repeats + 1):
            times["cp"].append(time_cp(source, copy, fsync=False))
            times["cp_fsync"].append(time_cp(source, copy, fsync=True))
            if nginx is not None and run % 2 == 0:  # the baseline goes first every other run: drift hits both alike
                times["nginx_put"].append(time_nginx_put(client, nginx, source, size))
            with memory.watch():
                elapsed, file_id = time_upload(client, server, source, size, md5)
            times["upload"].append(elapsed)
            up_mem.append(_sample(memory))
            if nginx is not None and run % 2 == 1:
                times["nginx_put"].append(time_nginx_put(client, nginx, source, size))
            with memory.watch():
                times["download"].append(time_download(client, server, file_id, fetched, size))
            down_mem.append(_sample(memory))
            if not verified:
                if _sha256(fetched) != sha:
                    raise RuntimeError("the downloaded file differs from the uploaded one (sha256)")
                verified = True
            fetched.unlink()
            times["download_lean"].append(time_lean_download(client, server, file_id, fetched, size))
            whole, final = time_resumable(client, server, source, size, md5)
            times["resumable"].append(whole)
            final_put.append(final)
            md5_reread.append(time_md5(source))
            print(
                f"transfer run {run}/{repeats}: "
                + ", ".join(f"{k} {size / MB / v[-1]:.0f} MB/s" for k, v in times.items())
                + f", resumable final PUT {final_put[-1] * 1000:.0f} ms (md5 re-read {md5_reread[-1] * 1000:.0f} ms)"
                + f", upload peak growth {up_mem[-1].growth_mib:.1f} MiB",
                flush=True,
            )
    rates = {k: Throughput.of(size, v) for k, v in times.items()}
    return TransferResults(
        size_bytes=size,
        repeats=repeats,
        cp=rates["cp"],
        cp_fsync=rates["cp_fsync"],
        upload=rates["upload"],
        download=rates["download"],
        download_lean_client=rates["download_lean"],
        upload_vs_cp=_ratio(rates["upload"], rates["cp"]),
        upload_vs_cp_fsync=_ratio(rates["upload"], rates["cp_fsync"]),
        download_vs_cp=_ratio(rates["download"], rates["cp"]),
        download_vs_cp_fsync=_ratio(rates["download"], rates["cp_fsync"]),
        resumable=rates["resumable"],
        nginx_put=rates.get("nginx_put"),
        upload_vs_nginx=_ratio(rates["upload"], rates["nginx_put"]) if "nginx_put" in rates else None,
        nginx=nginx_about,
        resumable_final_put_ms=[round(v * 1000, 1) for v in final_put],
        md5_reread_ms=[round(v * 1000, 1) for v in md5_reread],
        sha256_verified=verified,
        upload_memory=up_mem,
        download_memory=down_mem,
        idle_rss_mib=round(idle, 1),
        notes=[
            "MB = 10^6 bytes; each timed operation starts after os.sync() so earlier writes are not charged to it",
            "the source file is in the page cache for cp and for the upload alike",
            "the library fsyncs an upload before answering; cp does not (cp_fsync = cp, then fsync of the copy)",
            "the download is streamed to a file without fsync, like plain cp",
            "download_lean_client: the same download read by a bare-socket client (info: the library's own speed)",
            "cp is warmed up once (untimed) before the first run",
            "nginx_put: the same PUT (same client, same 1 MiB blocks) to nginx's dav module (dav_methods PUT) on "
            "127.0.0.1, one worker, started by the benchmark with its config in the work directory; the file it "
            "wrote is then fsynced, inside the timing, as the library fsyncs an upload before answering; nginx "
            "and the library take turns going first",
            f"resumable: tus create, PATCHes of {RESUMABLE_CHUNK // MIB} MiB, then the final PUT; the library hashes"
            " PATCHed bytes as they arrive, so the final PUT re-reads the file only after a restart (md5_reread_ms:"
            " reading the source and taking its md5, what the final PUT would cost otherwise)",
        ],
    )


def _sample(memory: PeakMemory) -> MemorySample:
    assert memory.sample is not None
    return memory.sample


def _ratio(a: Throughput, b: Throughput) -> float:
    return round(a.median_mb_s / b.median_mb_s, 3)


# --- search: seeding ----------------------------------------------------------------------------

# fmt: off
WORDS = [
    "beach", "sunset", "mountain", "city", "portrait", "product", "logo", "banner", "hero", "team", "office",
    "summer", "winter", "autumn", "spring", "forest", "river", "ocean", "street", "night", "coffee", "food",
    "wedding", "party", "concert", "studio", "interview", "podcast", "promo", "tutorial", "invoice", "report",
    "brochure", "menu", "catalog", "flyer", "poster", "icon", "avatar", "background", "texture",
]
LABELS = [
    "campaign-2024", "social", "print", "web", "hero", "approved", "draft", "archive", "featured", "homepage",
    "newsletter", "brand", "press", "internal", "client-x", "client-y",
]
# fmt: on
RARE = "zebracrossing"  # planted in exactly RARE_COUNT files of every catalog
RARE_COUNT = 10
COMMON = "sunset"
# (media type, weight, [(extension, MIME type)])
KINDS: tuple[tuple[str, int, tuple[tuple[str, str], ...]], ...] = (
    ("IMAGE", 55, (("jpg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp"))),
    ("VIDEO", 10, (("mp4", "video/mp4"), ("mov", "video/quicktime"))),
    ("AUDIO", 8, (("mp3", "audio/mpeg"), ("wav", "audio/wav"))),
    ("DOCUMENT", 15, (("pdf", "application/pdf"), ("docx", "application/msword"))),
    ("VECTOR", 5, (("svg", "image/svg+xml"),)),
    ("ARCHIVE", 4, (("zip", "application/zip"),)),
    ("MODEL3D", 3, (("glb", "model/gltf-binary"),)),
)
SEED_BATCH = 5000


class _OneTransaction(Database):
    """A stand-in database whose every transaction is one already open: lets the library's own `Catalog`
    run a batch of `add_file` calls (the exact SQL the server runs, FTS row included) under a single commit,
    instead of paying a synchronous commit per file."""

    def __init__(self, shared: sqlite3.Connection) -> None:  # borrows an open transaction; owns nothing
        self.shared = shared

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        yield self.shared

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        yield self.shared


def _batched_catalog(conn: sqlite3.Connection) -> Catalog:
    return Catalog(_OneTransaction(conn))


@dataclass
class SeedResult:
    files: int
    folders: int
    visitor_files: int
    seconds: float
    database_mib: float


def seed_catalog(data_dir: Path, count: int, rng: random.Random) -> SeedResult:
    """Fill a fresh data directory with ``count`` files (no blobs) while no server has it open."""
    start = time.perf_counter()
    now = time.time()
    rare = set(rng.sample(range(count), RARE_COUNT))
    kinds = [k for k in KINDS for _ in range(k[1])]
    with Library.open(LibrarySettings(data_dir=data_dir)) as lib:
        with lib.db.tx() as conn:
            folders = _seed_folders(_batched_catalog(conn), max(10, count // 500), now, rng)
        visitor = 0
        for first in range(0, count, SEED_BATCH):
            with lib.db.tx() as conn:
                catalog = _batched_catalog(conn)
                for i in range(first, min(count, first + SEED_BATCH)):
                    media_type, _, variants = rng.choice(kinds)
                    ext, mime = rng.choice(variants)
                    words = [RARE] if i in rare else rng.sample(WORDS, 2)
                    name = f"{'-'.join(words)}-{i:04d}.{ext}"
                    roll = rng.random()
                    parent = m.MEDIA_ROOT_ID if roll < 0.4 or i in rare else rng.choice(folders)
                    if roll > 0.95 and i not in rare:
                        parent, visitor = m.VISITOR_UPLOADS_ID, visitor + 1
                    created = now - rng.uniform(0, 2 * 365 * 86400)
                    catalog.add_file(
                        FileRow(
                            id=lib.new_file_id(m.MediaType(media_type), name),
                            display_name=name,
                            parent_id=parent,
                            root="media",
                            state="OK",
                            private=rng.random() < 0.1,
                            media_type=media_type,
                            mime_type=mime,
                            size=rng.randint(10_000, 50_000_000),
                            hash=secrets.token_hex(16),
                            blob=secrets.token_hex(16),
                            status="READY",
                            created=created,
                            updated=min(now, created + rng.uniform(0, 30 * 86400)),
                            width=rng.choice((0, 640, 1280, 1920, 4000)),
                            height=rng.choice((0, 480, 720, 1080, 3000)),
                            labels=rng.sample(LABELS, rng.randint(0, 3)),
                        )
                    )
    size = sum(p.stat().st_size for p in data_dir.iterdir() if p.is_file() and p.name.startswith("library"))
    return SeedResult(count, len(folders), visitor, round(time.perf_counter() - start, 2), round(size / MIB, 1))


def _seed_folders(catalog: Catalog, count: int, now: float, rng: random.Random) -> list[str]:
    """``count`` folders under the media root, some nested; returns their ids."""
    ids: list[str] = []
    for i in range(count):
        parent = rng.choice(ids) if ids and rng.random() < 0.3 else m.MEDIA_ROOT_ID
        folder_id = secrets.token_hex(16)
        catalog.create_folder(folder_id, f"{rng.choice(WORDS).title()} {i}", parent, now - rng.uniform(0, 1e7))
        ids.append(folder_id)
    return ids


# --- search: timing -----------------------------------------------------------------------------

QUERIES: dict[str, dict[str, Any]] = {
    "text_selective": {"search": RARE},
    "first_page": {},
    "media_type": {"mediaTypes": ["VIDEO"]},
    "sort_name": {"sort": {"fieldName": "displayName", "order": "ASC"}},
    "text_common": {"search": COMMON},
}
GATED_QUERIES = ("text_selective", "first_page", "media_type", "sort_name")
QUERY_LABELS = {
    "text_selective": f"text '{RARE}' ({RARE_COUNT} matches)",
    "first_page": "no text, first page (updatedDate DESC, 50)",
    "media_type": "mediaTypes [VIDEO], first page",
    "sort_name": "sort displayName ASC, first page",
    "text_common": f"text '{COMMON}' (~5% of files; info only)",
    "healthz": "(info) GET /healthz: the per-request floor",
}


def time_search(server: LibraryServer, calls: int, warmup: int) -> dict[str, Latency]:
    url = f"{server.base}{API}/files/search"
    headers = {"Authorization": server.api_key}
    out: dict[str, Latency] = {}
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        for name, body in QUERIES.items():
            first = client.post(url, json=body, headers=headers)
            if first.status_code != 200:
                raise RuntimeError(f"search {name} answered {first.status_code}: {first.text[:500]}")
            matched = len(first.json()["files"])
            expected = {"text_selective": RARE_COUNT, "text_common": matched or -1}.get(name, 50)
            if matched != expected:
                raise RuntimeError(f"search {name} found {matched} files, expected {expected}")
            for _ in range(warmup):
                client.post(url, json=body, headers=headers)
            samples: list[float] = []
            for _ in range(calls):
                start = time.perf_counter()
                response = client.post(url, json=body, headers=headers)
                samples.append(time.perf_counter() - start)
                if response.status_code != 200:
                    raise RuntimeError(f"search {name} answered {response.status_code}")
            out[name] = Latency.of(samples, matched)
        out["healthz"] = _time_healthz(client, server, calls, warmup)
    return out


def _time_healthz(client: httpx.Client, server: LibraryServer, calls: int, warmup: int) -> Latency:
    """No database, no auth: what any request costs (a Nagle/delayed-ACK stall shows up here as ~40 ms)."""
    samples: list[float] = []
    for i in range(warmup + calls):
        start = time.perf_counter()
        response = client.get(f"{server.base}/healthz")
        if i >= warmup:
            samples.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"/healthz answered {response.status_code}")
    return Latency.of(samples, 0)


@dataclass
class SearchResults:
    seeds: dict[str, SeedResult]
    latency: dict[str, dict[str, Latency]]
    median_ratio: dict[str, float]
    p95_ratio: dict[str, float]
    notes: list[str] = field(default_factory=list)


def bench_search(work: Path, small: int, large: int, calls: int, warmup: int, seed: int) -> SearchResults:
    seeds: dict[str, SeedResult] = {}
    latency: dict[str, dict[str, Latency]] = {}
    for count in (small, large):
        data_dir = work / f"search-{count}"
        print(f"search: seeding {count} files into {data_dir}", flush=True)
        seeds[str(count)] = seed_catalog(data_dir, count, random.Random(seed + count))
        print(f"search: seeded in {seeds[str(count)].seconds:.1f}s; timing {calls} calls per query", flush=True)
        with LibraryServer(data_dir, work / f"search-{count}.log") as server:
            latency[str(count)] = time_search(server, calls, warmup)
        for name, lat in latency[str(count)].items():
            print(f"  {count:>7} {name:<15} median {lat.median_ms:7.2f} ms  p95 {lat.p95_ms:7.2f} ms", flush=True)
    lo, hi = latency[str(small)], latency[str(large)]
    return SearchResults(
        seeds=seeds,
        latency=latency,
        median_ratio={q: round(hi[q].median_ms / lo[q].median_ms, 3) for q in QUERY_LABELS},
        p95_ratio={q: round(hi[q].p95_ms / lo[q].p95_ms, 3) for q in QUERY_LABELS},
        notes=[
            "one persistent HTTP/1.1 connection; time = request sent to response body read",
            "catalogs seeded with Catalog.add_file in batched transactions while no server ran",
            f"scope MEDIA_ROOT; ~5% of files are visitor uploads, 10% private, {RARE_COUNT} carry '{RARE}'",
        ],
    )


# --- report ---------------------------------------------------------------------------------------


def _environment(work: Path) -> dict[str, Any]:
    return {
        **results_file.environment("uvicorn", "starlette", "httpx", "httptools", "uvloop"),
        "work_dir": str(work),
        "filesystem": _filesystem(work),
        "uvicorn_http_auto": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "uvicorn_loop_auto": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "sqlite": sqlite3.sqlite_version,
    }


def _filesystem(path: Path) -> str:
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and str(path.resolve()).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} on {parts[0]}"
    return kind


def _checks(transfer: TransferResults | None, search: SearchResults | None) -> list[Check]:
    checks: list[Check] = []
    if transfer is not None:
        if transfer.upload_vs_nginx is not None:
            checks.append(Check("upload vs nginx PUT + fsync", transfer.upload_vs_nginx, f">= {TARGET_NGINX_RATIO}x",
                                transfer.upload_vs_nginx >= TARGET_NGINX_RATIO))  # fmt: skip
        checks.append(Check("upload vs cp", transfer.upload_vs_cp, f">= {TARGET_TRANSFER_RATIO}x",
                            transfer.upload_vs_cp >= TARGET_TRANSFER_RATIO))  # fmt: skip
        checks.append(Check("download vs cp", transfer.download_vs_cp, f">= {TARGET_TRANSFER_RATIO}x",
                            transfer.download_vs_cp >= TARGET_TRANSFER_RATIO))  # fmt: skip
        worst = max(s.growth_mib for s in transfer.upload_memory)
        checks.append(Check("library memory growth during upload (MiB, worst run)", round(worst, 1),
                            f"<= {TARGET_MEMORY_MIB:.0f} MiB", worst <= TARGET_MEMORY_MIB))  # fmt: skip
    if search is not None:
        for query in GATED_QUERIES:
            ratio = search.median_ratio[query]
            checks.append(Check(f"search {query}: median large/small", ratio, f"<= {TARGET_SEARCH_RATIO}x",
                                ratio <= TARGET_SEARCH_RATIO))  # fmt: skip
    return checks


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _transfer_markdown(t: TransferResults) -> str:
    def row(label: str, tp: Throughput, vs_cp: str, vs_sync: str) -> list[str]:
        return [label, f"{tp.median_mb_s:.0f}", ", ".join(f"{r:.0f}" for r in tp.runs_mb_s), vs_cp, vs_sync]

    rows = [
        row("cp (baseline)", t.cp, "1.00", f"{_ratio(t.cp, t.cp_fsync):.2f}"),
        row("cp + fsync of the copy", t.cp_fsync, f"{_ratio(t.cp_fsync, t.cp):.2f}", "1.00"),
        row(
            "upload: PUT minted URL (library fsyncs)", t.upload, f"{t.upload_vs_cp:.2f}", f"{t.upload_vs_cp_fsync:.2f}"
        ),  # fmt: skip
        *(
            [
                row(
                    "nginx PUT (dav) + fsync (upload baseline)",
                    t.nginx_put,
                    f"{_ratio(t.nginx_put, t.cp):.2f}",
                    f"{_ratio(t.nginx_put, t.cp_fsync):.2f}",
                )
            ]
            if t.nginx_put is not None
            else []
        ),  # fmt: skip
        row(
            "download: GET minted URL to file", t.download, f"{t.download_vs_cp:.2f}", f"{t.download_vs_cp_fsync:.2f}"
        ),  # fmt: skip
        row(
            f"upload: resumable (tus, {RESUMABLE_CHUNK // MIB} MiB PATCHes, final PUT)",
            t.resumable,
            f"{_ratio(t.resumable, t.cp):.2f}",
            f"{_ratio(t.resumable, t.cp_fsync):.2f}",
        ),
        row(
            "(info) download, bare-socket client instead of httpx",
            t.download_lean_client,
            f"{_ratio(t.download_lean_client, t.cp):.2f}",
            f"{_ratio(t.download_lean_client, t.cp_fsync):.2f}",
        ),
    ]
    mem_rows = [
        [
            phase,
            str(i + 1),
            f"{s.rss_before_mib:.1f}",
            f"{s.peak_mib:.1f}",
            f"{s.growth_mib:.1f}",
            "yes" if s.peak_was_reset else "no",
        ]  # fmt: skip
        for phase, samples in (("upload", t.upload_memory), ("download", t.download_memory))
        for i, s in enumerate(samples)
    ]
    if t.nginx_put is not None and t.upload_vs_nginx is not None:
        nginx = (
            f"\n\nUpload vs nginx ({t.nginx}): library {t.upload.median_mb_s:.0f} MB/s, nginx PUT + fsync "
            f"{t.nginx_put.median_mb_s:.0f} MB/s (medians): {t.upload_vs_nginx:.2f}x, target >= {TARGET_NGINX_RATIO}x"
        )
    else:
        nginx = f"\n\n**no nginx row**: {t.nginx}"
    return (
        f"### Transfers: {t.size_bytes / MIB:.0f} MiB file, {t.repeats} repeat(s), MB = 10^6 bytes, "
        f"sha256 verified: {'yes' if t.sha256_verified else 'no'}\n\n"
        + _table(["operation", "median MB/s", "runs MB/s", "vs cp", "vs cp+fsync"], rows)
        + nginx
        + f"\n\nResumable upload's final PUT: median {statistics.median(t.resumable_final_put_ms):.0f} ms"
        f" (runs {', '.join(f'{v:.0f}' for v in t.resumable_final_put_ms)}),"
        f" {statistics.median(t.resumable_final_put_ms) / statistics.median(t.md5_reread_ms):.3f}x the"
        f" {statistics.median(t.md5_reread_ms):.0f} ms it takes to read the file again for its md5 (which the final"
        " PUT does only after a restart)\n"
        + f"\n\n### Library process memory (idle RSS {t.idle_rss_mib:.1f} MiB)\n\n"
        + _table(["phase", "run", "RSS before MiB", "VmHWM after MiB", "growth MiB", "peak reset"], mem_rows)
    )


def _search_markdown(s: SearchResults) -> str:
    small, large = list(s.latency)
    seeds = "; ".join(
        f"{k} files: {v.folders} folders, seeded in {v.seconds:.1f}s, db {v.database_mib:.1f} MiB"
        for k, v in s.seeds.items()
    )
    rows = []
    for query, label in QUERY_LABELS.items():
        lo, hi = s.latency[small][query], s.latency[large][query]
        rows.append([
            label, f"{lo.median_ms:.2f}", f"{lo.p95_ms:.2f}", f"{hi.median_ms:.2f}", f"{hi.p95_ms:.2f}",
            f"{s.median_ratio[query]:.2f}", f"{s.p95_ratio[query]:.2f}",
        ])  # fmt: skip
    calls = s.latency[small][GATED_QUERIES[0]].calls
    header = ["query", f"{small} median ms", f"{small} p95 ms", f"{large} median ms", f"{large} p95 ms",
              "median ratio", "p95 ratio"]  # fmt: skip
    text = f"### Search latency over HTTP ({calls} timed calls per query)\n\n{seeds}\n\n" + _table(header, rows)
    floor = max(s.latency[small]["healthz"].median_ms, s.latency[large]["healthz"].median_ms)
    if floor > 20:
        text += (
            f"\n\n**warning**: even /healthz takes {floor:.0f} ms: a ~40 ms floor is the Nagle / delayed-ACK stall of "
            "a server socket without TCP_NODELAY; the search numbers above measure that, not the search"
        )
    return text


def _summary_markdown(checks: list[Check]) -> str:
    rows = [[c.name, f"{c.value:g}", c.target, "PASS" if c.passed else "FAIL"] for c in checks]
    return "### Summary\n\n" + _table(["check", "measured", "target", "result"], rows)


def _print_report(env: dict[str, Any], transfer: TransferResults | None, search: SearchResults | None) -> None:
    parts = [
        "## media-mcp library benchmark\n",
        f"python {env['python']}, {env['cpus']} CPUs, uvicorn {env['uvicorn']} "
        f"(http: {env['uvicorn_http_auto']}, loop: {env['uvicorn_loop_auto']}), sqlite {env['sqlite']}, "
        f"work dir {env['work_dir']} ({env['filesystem']}); load average at start {env['loadavg_at_start']}, "
        f"at end {env['loadavg_at_end']}\n",
    ]
    busy = max(env["loadavg_at_start"][0], env["loadavg_at_end"][0])
    if busy > 0.5 * (env["cpus"] or 1):
        parts.append(f"**warning**: the machine was busy (1-min load {busy:.1f}): other work skews these numbers\n")
    if transfer is not None:
        parts.append(_transfer_markdown(transfer) + "\n")
    if search is not None:
        parts.append(_search_markdown(search) + "\n")
    parts.append(_summary_markdown(_checks(transfer, search)))
    print("\n".join(parts), flush=True)


# --- entry point ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1 or args.size_mib < 1 or args.calls < 1 or args.small < RARE_COUNT:
        print("--repeats, --size-mib and --calls must be positive; --small at least 10", file=sys.stderr)
        return 2
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="media-mcp-bench-", dir=args.work_dir))
    began = time.time()
    transfer: TransferResults | None = None
    search: SearchResults | None = None
    try:
        env = _environment(work)
        if args.only in (None, "transfer"):
            transfer = bench_transfers(work, args.size_mib * MIB, args.repeats, args.nginx)
        if args.only in (None, "search"):
            search = bench_search(work, args.small, args.large, args.calls, args.warmup, args.seed)
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    checks = _checks(transfer, search)
    env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    document = results_file.write(args, "library", began, env, {"transfer": transfer, "search": search}, checks)
    _print_report(env, transfer, search)
    print(f"\nresults written to {args.output} ({document['duration_seconds']:.0f}s)")
    return 0 if document["all_passed"] else 1
