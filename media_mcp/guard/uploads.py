"""The guard's uploads: links to upload to, and uploads of local files, each checked against the upload policy
(types declared, named and sniffed; the size cap; the upload roots) and audited."""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import anyio.to_thread

from media_mcp.guard import policy
from media_mcp.guard.answers import (
    FileBrief,
    LocalEntry,
    LocalFailure,
    LocalListing,
    Progress,
    UploadGrant,
    UploadOutcome,
)
from media_mcp.guard.base import GuardBase, clean_name, mime_of, size_text
from media_mcp.guard.policy import GuardError
from media_mcp.guard.text import clean_labels, quoted, visible
from media_mcp.guard.views import FileView, epoch_stamp

if TYPE_CHECKING:
    # the REST shapes, imported at run time only where a call builds a request (see `media_mcp.guard.core`)
    pass

RESUMABLE_ABOVE = 10 * 1024 * 1024


class Uploads(GuardBase):
    """The guard's uploads: upload links, local files to upload, and their upload."""

    async def upload_link(
        self,
        *,
        file_name: str,
        mime_type: str,
        size_bytes: int | None,
        folder_id: str | None,
        private: bool,
        resumable: bool | None,
    ) -> UploadGrant:
        from media_mcp.wix import messages as msg

        name = clean_name(file_name, "file_name")
        mime = mime_type.strip().lower()
        policy.refuse_upload_type(self.settings, mime)
        named = mimetypes.guess_type(name, strict=False)[0]
        if named and named != mime:  # a page.html declared as image/png
            policy.refuse_upload_type(self.settings, named)
        if size_bytes is not None and size_bytes > self.settings.max_upload_bytes:
            raise GuardError(f"files larger than {self.settings.max_upload_bytes} bytes are not accepted here")
        target = self.default_folder(folder_id)
        use_tus = resumable if resumable is not None else size_bytes is None or size_bytes > RESUMABLE_ABOVE
        minutes = self._backend.upload_link_minutes(use_tus)
        expires_at = epoch_stamp(self._clock() + minutes * 60) if minutes else None
        how = "a resumable (tus) link" if use_tus else "a one-shot PUT link"
        why = " because no size was given" if size_bytes is None and resumable is None else ""
        note = f"This is {how}{why}; it works for one upload" + (
            f" and expires at {expires_at} UTC ({minutes} minutes)." if expires_at else
            "; the media service does not say how long it lasts, so use it soon."
        )  # fmt: skip
        async with self._op(f"folder {target}") as op:
            folder = await op.folder(target, target=True)
            fields: dict[str, Any] = {"mime_type": mime, "file_name": name, "size_in_bytes": size_bytes,
                                      "parent_folder_id": folder.id, "private": private}  # fmt: skip
            if use_tus:
                minted = await op.client.generate_resumable_upload_url(
                    msg.GenerateFileResumableUploadUrlRequest(**fields)
                )
                grant = UploadGrant(
                    protocol="TUS", upload_url=minted.upload_url, upload_token=minted.upload_token, private=private,
                    folder=await op.ref(folder.id),
                    steps=[
                        "Create a tus 1.0.0 upload at upload_url (POST, Tus-Resumable: 1.0.0, Upload-Length, "
                        "Upload-Metadata with base64 'filename', 'contentType' and 'token' = upload_token).",
                        "PATCH the bytes to the Location it answers (any chunk size; HEAD to resume).",
                        f"Finish with PUT {{upload_url}}/{{upload_token}}?filename={quote(name)} (empty body): "
                        "it answers the file.",
                    ],
                    expires_at=expires_at, note=note,
                )  # fmt: skip
            else:
                url = await op.client.generate_upload_url(msg.GenerateFileUploadUrlRequest(**fields))
                grant = UploadGrant(
                    protocol="PUT", upload_url=url, private=private, folder=await op.ref(folder.id),
                    steps=[
                        f"PUT the raw bytes (not multipart) to upload_url with Content-Type: {mime}; "
                        "no Authorization header.",
                        "The answer is the new file (JSON {file}); the link works once.",
                    ],
                    expires_at=expires_at, note=note,
                )  # fmt: skip
            self.audit.record(
                "generate_upload_url", "minted", folders=[folder.id], protocol=grant.protocol, private=private,
                mime_type=mime,
            )  # fmt: skip
            return grant

    async def upload_local(
        self,
        *,
        paths: Sequence[str],
        roots: list[Path],
        folder_id: str | None,
        private: bool,
        name: str | None,
        labels: list[str] | None = None,
        progress: Progress | None,
    ) -> UploadOutcome:
        """Upload local files (a directory stands for the files directly in it), one after the other, each checked
        and opened once; one that fails does not stop the others."""
        if not paths:
            raise GuardError("give path or paths")
        files = await anyio.to_thread.run_sync(self._expand, list(dict.fromkeys(paths)), roots)
        if len(files) > self.settings.max_batch_items:
            raise GuardError(
                f"that is {len(files)} files; at most {self.settings.max_batch_items} per call: split the request"
            )
        if name is not None and len(files) != 1:
            raise GuardError("name applies to one file; several keep their own names")
        total = sum(size for _, size in files) or None
        done: list[FileBrief] = []
        failed: list[LocalFailure] = []
        sent = 0
        for path, size in files:
            report = _offset_progress(progress, sent, total) if progress else None
            try:
                source, real = await anyio.to_thread.run_sync(policy.open_confined, path, roots, self._private_dirs)
                try:
                    view = await self._upload_opened(source, real, path, folder_id, private, name, labels, report)
                finally:
                    await anyio.to_thread.run_sync(source.close)
            except GuardError as exc:
                if len(files) == 1:
                    raise
                failed.append(LocalFailure(path=visible(path, 500), reason=str(exc)))
            else:
                done.append(FileBrief.of(view))
            sent += size
        where = f" into {quoted(done[0].folder.name)}" if done else ""
        message = f"Uploaded {len(done)} file(s){where}, {size_text(sum(f.size or 0 for f in done))}."
        if failed:
            message += f" {len(failed)} failed (see failed)."
        status: Literal["done", "partly_done", "nothing_to_do"] = (
            "nothing_to_do" if not done else "partly_done" if failed else "done"
        )
        return UploadOutcome(status=status, files=done, failed=failed, message=message)

    def _expand(self, paths: list[str], roots: list[Path]) -> list[tuple[str, int]]:
        """Each path with its size, a directory replaced by the regular files directly in it (blocking)."""
        expanded: list[tuple[str, int]] = []
        for path in paths:
            if not policy.is_confined_directory(path, roots, self._private_dirs):
                expanded.append((path, _size_of(path, roots)))
                continue
            listed, more = policy.list_confined(
                path, roots, self._private_dirs, recursive=False, limit=self.settings.max_batch_items
            )
            if more:
                raise GuardError(f"{path!r} holds more than {self.settings.max_batch_items} files; upload it in parts")
            if not listed:
                raise GuardError(f"{path!r} is a directory that holds no file to upload (subdirectories aside)")
            expanded.extend((f.path, f.size) for f in listed)
        return expanded

    async def local_files(
        self, path: str | None, roots: list[Path], *, recursive: bool, media_types: list[str] | None, limit: int
    ) -> LocalListing:
        """What may be uploaded: files under the upload roots whose type the upload policy accepts."""
        listed, more = await anyio.to_thread.run_sync(
            lambda: policy.list_confined(path, roots, self._private_dirs, recursive=recursive, limit=limit * 4)
        )
        files: list[LocalEntry] = []
        refused = 0
        for entry in listed:
            mime = mime_of(entry.path, None)
            if not policy.upload_type_allowed(self.settings, mime):
                refused += 1
                continue
            kind = media_type_of(mime)
            if media_types and kind not in media_types:
                continue
            if len(files) == limit:
                more = True
                break
            files.append(LocalEntry(path=visible(entry.path, 4096), size=entry.size, type=kind))
        parts = [f"{len(files)} file(s) that may be uploaded"]
        if refused:
            parts.append(f"{refused} left out: their type is not accepted here")
        if more:
            parts.append("more exist: narrow with path or media_types")
        return LocalListing(
            roots=[str(r.resolve()) for r in roots], files=files, truncated=more, message="; ".join(parts) + "."
        )

    async def _upload_opened(
        self,
        source: IO[bytes],
        real: Path,
        path: str,
        folder_id: str | None,
        private: bool,
        name: str | None,
        labels: list[str] | None,
        progress: Progress | None,
    ) -> FileView:
        """Checks and upload of a file opened by `policy.open_confined`: every read is from ``source``."""
        from media_mcp.wix import messages as msg

        size = (await anyio.to_thread.run_sync(os.fstat, source.fileno())).st_size
        if size == 0:
            raise GuardError(f"{path!r} is empty")
        if size > self.settings.max_upload_bytes:
            raise GuardError(f"{path!r} is larger than the {self.settings.max_upload_bytes} bytes this server accepts")
        display = clean_name(name or real.name, "name")
        mime = mime_of(real.name, None)
        policy.refuse_upload_type(self.settings, mime)
        head = await anyio.to_thread.run_sync(os.pread, source.fileno(), 4096, 0)
        for other in (_sniffed_markup(head), mimetypes.guess_type(display, strict=False)[0]):
            if other and other != mime:  # e.g. SVG saved as .png, or a .png named page.html
                policy.refuse_upload_type(self.settings, other)
        target = self.default_folder(folder_id)
        async with self._op(f"folder {target}") as op:
            await op.folder(target, target=True)
            fields: dict[str, Any] = {"mime_type": mime, "file_name": display, "size_in_bytes": size,
                                      "parent_folder_id": target, "private": private,
                                      "labels": clean_labels(labels) if labels else None}  # fmt: skip
            started = time.monotonic()
            if size > RESUMABLE_ABOVE:
                minted = await op.client.generate_resumable_upload_url(
                    msg.GenerateFileResumableUploadUrlRequest(**fields)
                )
                file = await op.client.upload_resumable(
                    minted, source, mime_type=mime, file_name=display, progress=progress
                )
            else:
                url = await op.client.generate_upload_url(msg.GenerateFileUploadUrlRequest(**fields))
                file = await op.client.upload(url, source, mime_type=mime, file_name=display, progress=progress)
            self.audit.record(
                "upload_file", "done", files=[file.id], folders=[target], bytes=size, private=private,
                seconds=round(time.monotonic() - started, 3),
            )  # fmt: skip
            view = await op.file_view(file)
            assert view is not None
            return view


def _sniffed_markup(first: bytes) -> str | None:
    """SVG, HTML or other XML by content, whatever the name says: backends (the library, Wix) sniff it from the bytes.

    Whatever may stand before the first tag and still leave the file markup to a browser or an XML parser is
    skipped: whitespace of any kind (form feed and vertical tab included), NULs, byte-order marks and other format
    characters; UTF-16 text (with a BOM, or ASCII with NULs between) is read as text. Any other element than SVG or
    HTML is an XML document (``application/xml``), which may hold either by namespace. The embedded library decides
    the same way, again, when it stores the bytes (``media_mcp.library.probe.markup_of``).
    """
    import re  # here, not at the top: only this function needs them
    import unicodedata

    codec, body = "utf-8", first
    for bom, name in ((b"\xef\xbb\xbf", "utf-8"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le")):
        if first.startswith(bom):
            codec, body = name, first[len(bom) :]
            break
    text = body.decode(codec, errors="replace")
    start, blank = 0, re.compile(r"[\s\x00]*")
    while True:
        found = blank.match(text, start)
        start = found.end() if found else start
        if start >= len(text) or unicodedata.category(text[start]) != "Cf":
            break
        start += 1
    head = text[start:].replace("\x00", "").lower()
    if head.startswith(("<?", "<!")):  # a prolog (XML declaration, doctype, comment): the root element decides
        if "<svg" in head or ":svg" in head:
            return "image/svg+xml"
        html = head.startswith("<!--") or any(mark in head for mark in ("<!doctype html", "<html", "xhtml"))
        return "text/html" if html else "application/xml"
    tag = re.match(r"<((?:[:_]|[^\W\d])[^\s/>]*)", head)
    if tag is None:  # no tag at all, or "<3", "< 5"
        return None
    local = tag.group(1).rsplit(":", 1)[-1]
    if local == "svg":
        return "image/svg+xml"
    html_tags = {"html", "head", "body", "script", "iframe", "frameset", "frame", "object", "embed", "h1", "div",
                 "font", "table", "a", "style", "title", "b", "br", "p", "img", "form", "input", "button", "meta",
                 "link", "base", "template", "noscript", "xmp", "plaintext", "textarea", "math", "video", "audio",
                 "marquee", "details"}  # fmt: skip
    return "text/html" if local in html_tags or "xhtml" in head else "application/xml"


def _size_of(path: str, roots: list[Path]) -> int:
    """A local file's size for progress totals (0 if unknown: the upload checks the file itself)."""
    try:
        return next((c.stat().st_size for c in policy.candidates(path, roots) if c.is_file()), 0)
    except (OSError, RuntimeError, ValueError):
        return 0


def _offset_progress(progress: Progress, before: int, total: int | None) -> Progress:
    """Progress of one file of a batch, reported as progress of the whole batch."""

    async def report(done: int, _of: int | None) -> None:
        await progress(before + done, total)

    return report


def media_type_of(mime: str) -> str:
    """The Media Manager's media type for a MIME type, as search and the summary name them."""
    top, _, sub = mime.partition("/")
    if top in ("image", "video", "audio"):
        return "VECTOR" if sub == "svg+xml" else top.upper()
    if top == "model":
        return "MODEL3D"
    if sub in ("zip", "x-zip-compressed", "x-tar", "gzip", "x-7z-compressed", "vnd.rar", "x-rar-compressed"):
        return "ARCHIVE"
    if top == "text" or sub == "pdf" or sub.startswith(("msword", "vnd.openxmlformats", "vnd.ms-", "vnd.oasis")):
        return "DOCUMENT"
    return "OTHER"
