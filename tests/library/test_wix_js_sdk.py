"""The official Wix JS SDK (@wix/sdk + @wix/media, ApiKeyStrategy) works against the library unchanged.

The library is served over HTTPS with a throwaway self-signed certificate for 127.0.0.1, and
``tests/js/wix_sdk_check.mjs`` points the SDK at it with nothing but ``host: {apiBaseUrl}``; Node
trusts the certificate through ``NODE_EXTRA_CA_CERTS`` (TLS verification stays on). The script
prints a JSON summary of every SDK call, which is checked here.

Needs Node 18+ and the pinned packages: ``npm ci --prefix tests/js`` (the README's test command runs it). Without
them the test skips, naming that command, on a developer's machine, and fails when ``CI=true`` (as CI services set it).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from tests import setup_checks
from tests.conftest import LoopbackServer

JS_DIR = setup_checks.JS_DIR
SCRIPT = JS_DIR / "wix_sdk_check.mjs"
NODE_TIMEOUT_SECONDS = 120
SITE_ID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"

EXPECTED_STEPS = [
    "folders.createFolder",
    "folders.getFolder",
    "folders.listFolders",
    "folders.searchFolders",
    "folders.updateFolder",
    "folders.listFolders (cursor paging)",
    "files.generateFileUploadUrl",
    "PUT uploadUrl (no auth)",
    "files.getFileDescriptor",
    "files.searchFiles",
    "files.listFiles",
    "files.updateFileDescriptor",
    "files.generateFileDownloadUrl + GET",
    "files.bulkDeleteFiles",
    "files.listDeletedFiles",
    "files.bulkRestoreFilesFromTrashBin",
    "folders.bulkDeleteFolders",
    "folders.bulkRestoreFoldersFromTrashBin",
    "a wrong API key fails (UNAUTHENTICATED)",
    "files.getFileDescriptor (unknown id) fails",
]


def node_or_skip() -> str:
    return setup_checks.node_or_skip(("@wix/sdk", "@wix/media"), needs="the Wix SDK packages", major=18)


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_node_skips_with_the_setup_command_unless_ci_requires_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no node on it
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=re.escape("npm ci --prefix tests/js")):
        node_or_skip()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A one-day certificate (and its key) for https://127.0.0.1, its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media-mcp test library")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "library-cert.pem"
    key_path = directory / "library-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def run_check(node: str, host: str, api_key: str, cert: Path) -> tuple[subprocess.CompletedProcess[str], Any]:
    env = {
        **os.environ,
        "LIBRARY_HOST": host,
        "API_KEY": api_key,
        "SITE_ID": SITE_ID,
        "NODE_EXTRA_CA_CERTS": str(cert),
        "STEP_TIMEOUT_MS": "20000",
    }
    env.pop("NODE_TLS_REJECT_UNAUTHORIZED", None)  # verification must stay on: only our CA is added
    done = subprocess.run(
        [node, str(SCRIPT)],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_SECONDS,
        check=False,
    )
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError:
        summary = None
    return done, summary


def test_the_official_wix_js_sdk_runs_against_the_library(library: Library, tmp_path: Path) -> None:
    node = node_or_skip()
    cert, key = self_signed(tmp_path)
    tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    with LoopbackServer(create_app(library), ssl=tls) as server:
        host = f"127.0.0.1:{server.port}"
        done, summary = run_check(node, host, library.api_key, cert)

    report = f"exit {done.returncode}\nstdout:\n{done.stdout[-6000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert isinstance(summary, dict), f"the check printed no JSON summary\n{report}"
    failed = [step for step in summary["steps"] if not step["ok"]]
    assert not failed, f"SDK steps failed: {json.dumps(failed, indent=2)}\n{report}"
    assert done.returncode == 0, report
    assert summary["ok"] is True
    assert [step["step"] for step in summary["steps"]] == EXPECTED_STEPS

    steps = {step["step"]: step for step in summary["steps"]}
    assert steps["PUT uploadUrl (no auth)"]["status"] == 200
    assert steps["files.generateFileUploadUrl"]["uploadUrlHost"] == host
    assert steps["files.generateFileDownloadUrl + GET"]["bytes"] > 0
    assert steps["folders.listFolders (cursor paging)"]["pages"] == ["sub-a", "sub-b"]
    assert steps["a wrong API key fails (UNAUTHENTICATED)"]["status"] == 401
    not_found = steps["files.getFileDescriptor (unknown id) fails"]
    assert not_found["code"] == "RESOURCE_NOT_FOUND"
    assert not_found["status"] == 400

    # The SDK, given a non-Wix host, calls the proxy-server prefix over HTTPS with the API key (and site id).
    requests = summary["requests"]
    assert requests, "the SDK sent no requests"
    for request in requests:
        assert request["url"].startswith("/wix-privatemedia-proxy-server/v1/"), request
        assert request["authorization"] is True, request
        assert request["siteIdHeader"] == SITE_ID, request
    assert any("mediaTypes=DOCUMENT&mediaTypes=IMAGE" in r["url"] for r in requests)
    assert any("sort.fieldName=displayName" in r["url"] for r in requests)
    assert all(r["status"] == 200 for r in requests[:-1]), "only the deliberate unknown-id call may fail"
    assert requests[-1]["status"] == 400

    # Everything the run created was deleted for good at its end.
    assert library.catalog.get_folder(steps["folders.createFolder"]["folderId"]) is None
    assert library.catalog.get_file(steps["PUT uploadUrl (no auth)"]["fileId"]) is None
