"""Uploads through minted links: the single ``PUT``, and resumable tus 1.0.0 with its final ``PUT``.

These endpoints take no API key: the signed token in the link (or in ``Upload-Metadata``) is the
whole authorisation, as on Wix.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import os
import re
import secrets
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from media_mcp.library.api_files import catalog_error, with_failures
from media_mcp.library.assets import needs_processing
from media_mcp.library.blobs import Received, RunningHash, TooLarge
from media_mcp.library.catalog import CatalogError
from media_mcp.library.datadir import fsync_dir
from media_mcp.library.db import in_thread
from media_mcp.library.errors import ApiError
from media_mcp.library.probe import Probe, guess_mime, is_markup, media_type_of, probe
from media_mcp.library.processor import finished
from media_mcp.library.records import Records, Resumable
from media_mcp.library.rows import FileRow
from media_mcp.library.service import Library
from media_mcp.library.tokens import AUD_RESUMABLE, AUD_UPLOAD, TokenExpired, TokenInvalid
from media_mcp.library.web import base_url, library, respond
from media_mcp.wix import messages as msg
from media_mcp.wix import models as m

log = logging.getLogger("media_mcp.library.upload")

TUS_VERSION = "1.0.0"
_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_NUMBER_RE = re.compile(r"[0-9]{1,19}")
MAX_ACTIVE_PER_TOKEN = 4
"""Unfinished resumable uploads one token may have; creating one more answers 429 (DELETE one, or finish)."""
OCTET_STREAM = "application/octet-stream"
_busy: set[str] = set()


class Refused(ApiError):
    """The received bytes are not what the link allows: they are discarded, and the link stays unspent."""


def minted_type(req: dict[str, Any]) -> str:
    """The type an upload link was minted for: its ``mimeType``.

    For ``application/octet-stream``, the type the name given when minting suggests, unless that is markup: markup
    is stored only for a link minted for it by its type. A name sent later (``?filename=``, tus metadata) never
    counts: it sets the display name only.
    """
    mime = str(req["mime"]).strip().lower()
    if mime != OCTET_STREAM:
        return mime
    named = guess_mime(str(req.get("name") or ""))
    return named if named and not is_markup(named) else OCTET_STREAM


def byte_cap(lib: Library, req: dict[str, Any]) -> int:
    """The most bytes a link may bring: the cap it was minted with (and its declared size), within this library's."""
    cap = lib.settings.library_max_file_bytes
    for bound in (req.get("cap"), req.get("size")):
        if bound is not None:
            cap = min(cap, int(bound))
    return cap


def admit(found: Probe, minted: str) -> Probe:
    """What a received file is stored as, decided on its content and what its link was minted for.

    Content that is markup (SVG, HTML, any XML, other active content) is refused unless the link was minted for a
    markup type, and then stored as that type, never as the sniffed one.
    """
    if not is_markup(found.mime_type):
        return found
    if not is_markup(minted):
        raise Refused(
            400,
            "MISMATCH_MIME_TYPE",
            f"the content is {found.mime_type} (markup a browser may run), but this link was minted for {minted}: "
            "send a file of that type",
            data={"mimeType": minted, "contentType": found.mime_type},
        )
    return found if found.mime_type == minted else Probe(media_type=media_type_of(minted), mime_type=minted)


def _id_name(name: str, mime: str) -> str:
    """The name a file's id takes its extension from: never one that names markup the file is not stored as."""
    named = guess_mime(name)
    if named is None or named == mime or not is_markup(named):
        return name
    return "file" + (mimetypes.guess_extension(mime) or "")


def _number(header: str) -> int | None:
    """A tus length or offset: plain ASCII digits of a sane length, else None."""
    return int(header) if _NUMBER_RE.fullmatch(header) else None


def _token_claims(lib: Library, token: str, audience: str) -> dict[str, Any]:
    try:
        return lib.signer.check(token, audience)
    except TokenExpired as exc:
        raise ApiError(403, "UPLOAD_URL_EXPIRED", "this upload link has expired; generate a new one") from exc
    except TokenInvalid as exc:
        raise ApiError(403, "INVALID_UPLOAD_TOKEN", "this upload link is not valid") from exc


async def _upload_request(lib: Library, claims: dict[str, Any]) -> dict[str, Any] | None:
    """What the token was minted for: kept server-side under its ``jti`` (see `api_files._mint_upload_token`)."""
    return await in_thread(lib.records.upload_request, str(claims["jti"]))


async def _claim(lib: Library, claims: dict[str, Any]) -> str:
    jti = str(claims["jti"])
    expires = float(claims.get("exp", lib.clock() + 86400))
    status = await in_thread(lib.records.claim, jti, expires, lib.member, lib.data.alive)
    if status == "done":
        raise ApiError(429, "UPLOAD_TOKEN_ALREADY_USED", "this upload link was already used; generate a new one")
    if status == "busy":
        raise ApiError(409, "UPLOAD_IN_PROGRESS", "an upload with this link is already in progress")
    return jti


async def _store(
    lib: Library, request: Request, received: Received, req: dict[str, Any], jti: str, sent_name: str | None = None
) -> Response:
    """Make a received file visible: probe it, link its bytes in place, commit its row, then drop the source.

    A file that needs processing is PENDING until it is processed; the answer waits for that a few seconds at most
    (`ProcessingLimits.answer_within_seconds`), so a small file is described READY with what processing found.
    The source (``incoming/`` file or tus ``.part``) goes only once the row has committed, so a crash
    at any point leaves either the file or everything needed to finish it again. On a refusal the
    received bytes stay where they are; the caller decides their fate (`Refused`: discard them).
    The name (``?filename=``, the minted ``fileName``, else ``sent_name``) is the display name only: the type
    comes from what the link was minted for and from the content.
    """
    name = (request.query_params.get("filename") or req.get("name") or sent_name or "").strip()
    if not name:
        raise ApiError(400, "MISSING_FILENAME", "give the file name: ?filename=<name.ext> or fileName when minting")
    if received.size == 0:
        raise ApiError(400, "ZERO_FILE_SIZE", "the upload is empty")
    declared = req.get("size")
    if declared is not None and int(declared) != received.size:
        raise ApiError(400, "SIZE_MISMATCH", f"received {received.size} bytes, the link was minted for {declared}")
    cap = byte_cap(lib, req)
    if received.size > cap:
        raise Refused(400, "FILE_SIZE_OVER_LIMIT", f"received {received.size} bytes, this link takes at most {cap}")
    name = name[:255]
    minted = minted_type(req)
    # not a store call: off the store's few threads (a crafted image can take a while to measure); no name given,
    # so the type comes from the content, else from what the link was minted for
    found = admit(await anyio.to_thread.run_sync(probe, received.path, received.head, minted, ""), minted)
    now = lib.clock()
    processed = needs_processing(found.media_type, found.mime_type)
    row = FileRow(
        id=lib.new_file_id(found.media_type, _id_name(name, found.mime_type)),
        display_name=name,
        parent_id=str(req["parent"]),
        root="media",
        state="OK",
        private=bool(req["private"]),
        media_type=found.media_type.value,
        mime_type=found.mime_type,
        size=received.size,
        hash=received.md5,
        blob=None,
        status=(m.OperationStatus.PENDING if processed else m.OperationStatus.READY).value,
        created=now,
        updated=now,
        width=found.width,
        height=found.height,
        labels=[str(label) for label in req.get("labels", [])],
    )
    blob = await anyio.to_thread.run_sync(lib.blobs.link, received)  # may copy the file: not on a store thread
    row.blob = blob
    try:
        row = await in_thread(
            lib.catalog.add_file, row, [str(p) for p in req.get("path", [])], partial(_spend, jti=jti, file_id=row.id)
        )
    except CatalogError as exc:
        lib.blobs.discard(blob)
        raise catalog_error(exc) from exc
    except BaseException:
        lib.blobs.discard(blob)
        raise
    received.path.unlink(missing_ok=True)
    if processed:
        await finished(lib.processor.submit(row.id), lib.processor.limits.answer_within_seconds)
        latest = await in_thread(lib.catalog.get_file, row.id)
        row = latest or row
    (file,) = await with_failures(lib, [lib.render_file(row, base_url(request))])
    return respond(msg.UploadFileResponse(file=file))


def _spend(conn: Any, *, jti: str, file_id: str) -> None:
    Records.spend(conn, jti, file_id)


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def put_upload(request: Request) -> Response:
    """``PUT <uploadUrl>?filename=…`` with the raw bytes; single use."""
    lib = library(request)
    claims = _token_claims(lib, request.path_params["token"], AUD_UPLOAD)
    req = await _upload_request(lib, claims)
    if req is None:
        raise ApiError(403, "INVALID_UPLOAD_TOKEN", "this upload link is not valid")
    limit = byte_cap(lib, req)  # declared or not, no byte past it is taken
    length = _number(request.headers.get("content-length", ""))
    if length is not None and length > limit:
        raise ApiError(400, "FILE_SIZE_OVER_LIMIT", f"the upload is larger than allowed: more than {limit} bytes")
    jti = await _claim(lib, claims)
    received: Received | None = None
    try:
        try:
            with lib.transfer() as transfer:
                received = await lib.blobs.receive(_body(request), limit)
            if received is None or transfer.cancelled_caught:
                raise ApiError(
                    503,
                    "LIBRARY_STOPPING",
                    "the media library stopped while this upload arrived; send it again with the same link",
                )
        except TooLarge as exc:
            raise ApiError(400, "FILE_SIZE_OVER_LIMIT", f"the upload is larger than allowed: {exc}") from exc
        except ClientDisconnect as exc:
            log.info("upload interrupted: the client went away mid-body")
            raise ApiError(400, "UPLOAD_INTERRUPTED", "the connection closed before the whole body arrived") from exc
        return await _store(lib, request, received, req, jti)
    except BaseException:
        if received is not None:
            received.path.unlink(missing_ok=True)
        with anyio.CancelScope(shield=True):  # a cancelled upload must still free its link for another try
            await anyio.to_thread.run_sync(lib.records.release, jti)
        raise


# --- tus 1.0.0 ------------------------------------------------------------------------------


def _tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


def _tus_error(status: int, message: str) -> Response:
    return Response(message, status_code=status, headers=_tus_headers(), media_type="text/plain")


def _require_tus(request: Request) -> Response | None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        return _tus_error(412, f"Tus-Resumable: {TUS_VERSION} is required")
    return None


def parse_metadata(header: str) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs."""
    out: dict[str, str] = {}
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition(" ")
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode() if value.strip() else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"metadata {key!r} is not base64 text") from exc
    return out


async def tus_options(request: Request) -> Response:
    lib = library(request)
    return Response(
        status_code=204,
        headers=_tus_headers(
            **{
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": "creation,termination",
                "Tus-Max-Size": str(lib.settings.library_max_file_bytes),
            }
        ),
    )


async def tus_create(request: Request) -> Response:
    lib = library(request)
    if bad := _require_tus(request):
        return bad
    length = _number(request.headers.get("upload-length", ""))
    if length is None:
        return _tus_error(400, "Upload-Length must be a non-negative integer")
    if length > lib.settings.library_max_file_bytes:
        return _tus_error(413, f"Upload-Length is over the limit of {lib.settings.library_max_file_bytes} bytes")
    if length == 0:
        return _tus_error(400, "ZERO_FILE_SIZE: the upload is empty")
    try:
        meta = parse_metadata(request.headers.get("upload-metadata", ""))
    except ValueError as exc:
        return _tus_error(400, str(exc))
    try:
        claims = lib.signer.check(meta.get("token", ""), AUD_RESUMABLE)
    except TokenExpired:
        return _tus_error(403, "the upload token has expired; generate a new one")
    except TokenInvalid:
        return _tus_error(403, "Upload-Metadata must carry a valid 'token' from generate-resumable-upload-url")
    req = await _upload_request(lib, claims)
    if req is None:
        return _tus_error(403, "Upload-Metadata must carry a valid 'token' from generate-resumable-upload-url")
    if await in_thread(lib.records.spent, str(claims["jti"])):
        return _tus_error(403, "this upload token was already used; generate a new one")
    declared = req.get("size")
    if declared is not None and int(declared) != length:
        return _tus_error(400, f"Upload-Length {length} differs from the {declared} bytes the token was minted for")
    if length > (cap := byte_cap(lib, req)):
        return _tus_error(413, f"Upload-Length is over the limit of {cap} bytes this token was minted with")
    now = lib.clock()
    await _sweep_expired(lib, now)
    upload_id = secrets.token_hex(16)
    record = Resumable(
        id=upload_id,
        token_jti=str(claims["jti"]),
        token=meta["token"],
        length=length,
        offset=0,
        filename=meta.get("filename"),
        content_type=meta.get("contentType") or meta.get("filetype"),
        expires=float(claims.get("exp", now + 86400)),
    )
    if not await in_thread(lib.records.create_resumable, record, now, MAX_ACTIVE_PER_TOKEN):
        return _tus_error(
            429, f"this token already has {MAX_ACTIVE_PER_TOKEN} unfinished uploads: finish or DELETE one first"
        )
    lib.part_path(upload_id).touch(mode=0o600, exist_ok=False)  # a record without its part is dropped at start-up
    fsync_dir(lib.data.resumable)  # so acknowledged bytes survive a power cut, not only a killed process
    location = f"{base_url(request)}/upload/tus/files/{upload_id}"
    return Response(status_code=201, headers=_tus_headers(Location=location, **{"Upload-Offset": "0"}))


async def _sweep_expired(lib: Library, now: float) -> None:
    """Forget resumable uploads whose token has expired, and their ``.part`` files (not only at start-up)."""
    expired = [i for i in await in_thread(lib.records.expired_resumable, now) if i not in _busy]
    if expired:
        await in_thread(lib.records.drop_resumable, expired)
        for upload_id in expired:
            lib.running.pop(upload_id, None)
            lib.part_path(upload_id).unlink(missing_ok=True)


async def _resumable(lib: Library, request: Request) -> Resumable | None:
    upload_id = request.path_params["upload_id"]
    if not _UPLOAD_ID_RE.match(upload_id):
        return None
    record = await in_thread(lib.records.get_resumable, upload_id)
    if record is None or record.expires <= lib.clock():
        return None
    return record


async def tus_head(request: Request) -> Response:
    lib = library(request)
    record = await _resumable(lib, request)
    if record is None:
        return _tus_error(404, "no such upload")
    return Response(
        status_code=200,
        headers=_tus_headers(**{"Upload-Offset": str(record.offset), "Upload-Length": str(record.length)}),
    )


def _append_open(path: os.PathLike[str], offset: int) -> Any:
    fh = open(path, "r+b")  # noqa: SIM115 - closed by the caller
    fh.truncate(offset)  # drop bytes a crash may have left past the committed offset
    fh.seek(offset)
    return fh


def _sync_close(fh: Any) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()


async def tus_patch(request: Request) -> Response:
    lib = library(request)
    if bad := _require_tus(request):
        return bad
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/offset+octet-stream":
        return _tus_error(415, "Content-Type must be application/offset+octet-stream")
    record = await _resumable(lib, request)
    if record is None:
        return _tus_error(404, "no such upload")
    if _number(request.headers.get("upload-offset", "")) != record.offset:
        return _tus_error(409, f"Upload-Offset must be {record.offset}")
    if record.id in _busy:
        return _tus_error(409, "another request is writing this upload")
    _busy.add(record.id)
    offset = record.offset
    # hash as the bytes arrive, if the hash so far covers exactly the bytes kept (else the final PUT rehashes)
    running = lib.running.pop(record.id, None)
    if running is None or running.offset != offset:
        running = RunningHash() if offset == 0 else None

    def write(fh: Any, chunk: bytes) -> None:
        fh.write(chunk)
        if running is not None:
            running.add(chunk)

    try:
        fh = await anyio.to_thread.run_sync(_append_open, lib.part_path(record.id), offset)
        try:
            with lib.transfer():  # a stop ends the PATCH with what arrived: the client resumes from there
                async for chunk in request.stream():
                    if offset + len(chunk) > record.length:
                        return _tus_error(400, "more bytes than Upload-Length")
                    await anyio.to_thread.run_sync(write, fh, chunk)
                    offset += len(chunk)
        except ClientDisconnect:
            log.info("resumable upload %s interrupted at %d bytes", record.id, offset)
        finally:
            # keep what arrived intact: fsync first, then record the new offset
            await anyio.to_thread.run_sync(_sync_close, fh)
            await in_thread(lib.records.set_offset, record.id, offset)
            if running is not None and running.offset == offset:
                lib.running[record.id] = running
    finally:
        _busy.discard(record.id)
    return Response(status_code=204, headers=_tus_headers(**{"Upload-Offset": str(offset)}))


async def tus_delete(request: Request) -> Response:
    lib = library(request)
    if bad := _require_tus(request):
        return bad
    record = await _resumable(lib, request)
    if record is None or record.id in _busy:
        return _tus_error(404, "no such upload")
    await in_thread(lib.records.drop_resumable, [record.id])
    lib.running.pop(record.id, None)
    lib.part_path(record.id).unlink(missing_ok=True)
    return Response(status_code=204, headers=_tus_headers())


async def tus_finish(request: Request) -> Response:
    """``PUT <uploadUrl>/<uploadToken>?filename=…``: turn the finished transfer into a file."""
    lib = library(request)
    claims = _token_claims(lib, request.path_params["token"], AUD_RESUMABLE)
    req = await _upload_request(lib, claims)
    if req is None:
        raise ApiError(403, "INVALID_UPLOAD_TOKEN", "this upload link is not valid")
    jti = await _claim(lib, claims)
    try:
        record = await in_thread(lib.records.completed_for, jti)
        if record is None:
            raise ApiError(400, "UPLOAD_NOT_COMPLETE", "no finished resumable upload for this token: send every byte")
        if record.id in _busy:
            raise ApiError(409, "UPLOAD_IN_PROGRESS", "the resumable upload is still being written")
        leftovers = [i for i in await in_thread(lib.records.for_token, jti) if i != record.id]
        _busy.add(record.id)
        try:
            running = lib.running.pop(record.id, None)
            known = running if running is not None and running.offset == record.length else None
            received = await lib.blobs.receive_file(lib.part_path(record.id), known)
            try:
                response = await _store(lib, request, received, req, jti, record.filename)
            except Refused:  # the bytes go; the token stays unspent, for a new transfer of a correct file
                await in_thread(lib.records.drop_resumable, [record.id])
                lib.part_path(record.id).unlink(missing_ok=True)
                raise
        finally:
            _busy.discard(record.id)
        for leftover in leftovers:
            lib.part_path(leftover).unlink(missing_ok=True)
        return response
    except BaseException:
        with anyio.CancelScope(shield=True):  # a cancelled finish must still free the token for another try
            await anyio.to_thread.run_sync(lib.records.release, jti)
        raise


routes = [
    Route("/upload/tus", tus_options, methods=["OPTIONS"]),
    Route("/upload/tus", tus_create, methods=["POST"]),
    Route("/upload/tus/files/{upload_id}", tus_head, methods=["HEAD"]),
    Route("/upload/tus/files/{upload_id}", tus_patch, methods=["PATCH"]),
    Route("/upload/tus/files/{upload_id}", tus_delete, methods=["DELETE"]),
    Route("/upload/tus/{token}", tus_finish, methods=["PUT"]),
    Route("/upload/{token}", put_upload, methods=["PUT"]),
]
