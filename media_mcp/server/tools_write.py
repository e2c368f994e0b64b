"""Tools that write or mint a write capability: upload links, folders, file updates, imports, uploads.

None of these is registered in read-only mode.
"""

import mimetypes
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import Context, ListRoots, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ListRootsResult, ToolAnnotations
from pydantic import Field

from media_mcp.server.fencing import LABEL_CAP, clean, clean_labels
from media_mcp.server.outputs import FileBrief, FileResult, FolderItem, FolderResult, UploadRecipe
from media_mcp.server.policy import confine, refuse_upload_type
from media_mcp.server.state import ServerState
from media_mcp.server.tools_read import FileId, in_trash, trashed_error

if TYPE_CHECKING:
    from media_mcp.wix.client import WixMediaClient

RESUMABLE_ABOVE = 10 * 1024 * 1024
FolderArg = Annotated[str | None, Field(max_length=100, description="Target folder (default 'media-root').")]


def _clean_name(name: str, what: str) -> str:
    cleaned = clean(name)
    if not cleaned or cleaned in (".", ".."):
        raise ToolError(f"{what} is empty once invisible and control characters are removed")
    return cleaned


def _default_folder(state: ServerState, folder_id: str | None) -> str:
    if folder_id:
        return folder_id
    allowed = state.settings.allowed_folder_ids
    return allowed[0] if allowed else "media-root"


def _sniffed_markup(source: Path) -> str | None:
    """SVG or HTML by content, whatever the name says: backends (the library, Wix) sniff these from the bytes."""
    with source.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "image/svg+xml"
    if head.startswith((b"<!doctype html", b"<html", b"<script")) or (head.startswith(b"<?xml") and b"<html" in head):
        return "text/html"
    return None


def _named_type(name: str) -> str | None:
    """The type a name's extension suggests (what a browser would assume), if any."""
    return mimetypes.guess_type(name, strict=False)[0]


def _mime_of(name: str, given: str | None) -> str:
    if given:
        return given.strip().lower()
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def register(mcp: MCPServer, state: ServerState) -> None:  # noqa: C901 - one closure per tool
    settings = state.settings
    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)

    @mcp.tool(annotations=writes)
    async def generate_upload_url(
        file_name: Annotated[
            str, Field(min_length=1, max_length=255, description="Name with extension, e.g. cat.png.")
        ],
        mime_type: Annotated[str, Field(min_length=3, max_length=100, description="e.g. image/png.")],
        size_bytes: Annotated[int | None, Field(ge=1, description="Exact size (needed for large files).")] = None,
        folder_id: FolderArg = None,
        private: Annotated[bool, Field(description="Private: reachable only through short-lived links.")] = False,
        resumable: Annotated[bool | None, Field(description="Use tus; default: above 10 MB.")] = None,
    ) -> UploadRecipe:
        """A single-use upload link and the steps to use it; share it only with the uploader."""
        from media_mcp.wix import messages as msg

        name = _clean_name(file_name, "file_name")
        refuse_upload_type(settings, mime_type)
        named = _named_type(name)
        if named and named != mime_type.strip().lower():  # a page.html declared as image/png
            refuse_upload_type(settings, named)
        if size_bytes is not None and size_bytes > settings.max_upload_bytes:
            raise ToolError(f"files larger than {settings.max_upload_bytes} bytes are not accepted by this server")
        folder = _default_folder(state, folder_id)
        use_tus = resumable if resumable is not None else (size_bytes or 0) > RESUMABLE_ABOVE

        async def run(client: "WixMediaClient") -> UploadRecipe:
            await state.scope().require_folder(client, folder)
            fields = {"mime_type": mime_type, "file_name": name, "size_in_bytes": size_bytes,
                      "parent_folder_id": folder, "private": private}  # fmt: skip
            if use_tus:
                minted = await client.generate_resumable_upload_url(msg.GenerateFileResumableUploadUrlRequest(**fields))
                recipe = UploadRecipe(
                    protocol="TUS", upload_url=minted.upload_url, upload_token=minted.upload_token, private=private,
                    folder_id=folder,
                    steps=[
                        "Create a tus 1.0.0 upload at upload_url (POST, Tus-Resumable: 1.0.0, Upload-Length, "
                        "Upload-Metadata with base64 'filename', 'contentType' and 'token' = upload_token).",
                        "PATCH the bytes to the Location it answers (any chunk size; HEAD to resume).",
                        f"Finish with PUT {{upload_url}}/{{upload_token}}?filename={name} (empty body): "
                        "it answers the file.",
                    ],
                )  # fmt: skip
            else:
                url = await client.generate_upload_url(msg.GenerateFileUploadUrlRequest(**fields))
                recipe = UploadRecipe(
                    protocol="PUT", upload_url=url, private=private, folder_id=folder,
                    steps=[
                        f"PUT the raw bytes (not multipart) to upload_url with Content-Type: {mime_type}; "
                        "no Authorization header.",
                        "The answer is the new file (JSON {file}); the link works once.",
                    ],
                )  # fmt: skip
            state.audit.record(
                "generate_upload_url", "minted", folders=[folder], protocol=recipe.protocol, private=private,
                mime_type=mime_type,
            )  # fmt: skip
            return recipe

        return await state.call(f"folder {folder}", run)

    @mcp.tool(annotations=writes)
    async def create_folder(
        name: Annotated[str, Field(min_length=1, max_length=1000, description="The new folder's name.")],
        parent_folder_id: Annotated[
            str | None, Field(max_length=100, description="Parent folder (default: top level).")
        ] = None,
    ) -> FolderResult:
        """Create a folder."""
        folder_name = _clean_name(name, "name")
        parent = _default_folder(state, parent_folder_id)

        async def run(client: "WixMediaClient") -> FolderResult:
            await state.scope().require_folder(client, parent)
            folder = await client.create_folder(folder_name, parent)
            state.audit.record("create_folder", "done", folders=[folder.id], parent=parent)
            return FolderResult(folder=FolderItem.of(folder))

        return await state.call(f"folder {parent}", run)

    @mcp.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def update_file(
        file_id: FileId,
        name: Annotated[str | None, Field(min_length=1, max_length=255, description="New name.")] = None,
        folder_id: Annotated[str | None, Field(max_length=100, description="New folder.")] = None,
        labels: Annotated[
            list[Annotated[str, Field(max_length=LABEL_CAP)]] | None,
            Field(max_length=100, description="New labels (replacing the old)."),
        ] = None,
    ) -> FileResult:
        """Rename, move or relabel a file (old values are overwritten)."""
        from media_mcp.wix import messages as msg

        if name is None and folder_id is None and labels is None:
            raise ToolError("give at least one of name, folder_id, labels")
        new_name = _clean_name(name, "name") if name is not None else None
        new_labels = clean_labels(labels, cap=100) if labels is not None else None

        async def run(client: "WixMediaClient") -> FileResult:
            scope = state.scope()
            file = await client.get_file(file_id)
            await scope.require_file(client, file)
            if in_trash(file):
                raise trashed_error(file)
            if folder_id is not None:
                await scope.require_folder(client, folder_id)
            updated = await client.update_file(
                msg.FileUpdate(id=file.id, display_name=new_name, parent_folder_id=folder_id, labels=new_labels)
            )
            state.audit.record(
                "update_file", "done", files=[file.id], renamed=new_name is not None, moved_to=folder_id,
                relabelled=new_labels is not None,
            )  # fmt: skip
            return FileResult(file=FileBrief.of(updated))

        return await state.call(f"file {file_id}", run)

    @mcp.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
        ),
    )
    async def import_file(
        url: Annotated[str, Field(min_length=8, max_length=2000, description="Public http(s) URL.")],
        name: Annotated[str | None, Field(max_length=255, description="Name, with extension.")] = None,
        folder_id: FolderArg = None,
        private: Annotated[bool, Field(description="Make it private.")] = False,
        mime_type: Annotated[
            str | None, Field(max_length=100, description="Its type, if the URL does not say.")
        ] = None,
    ) -> FileResult:
        """Import a file from a public URL; it arrives PENDING: poll get_file until READY."""
        from media_mcp.wix import messages as msg

        if not url.lower().startswith(("http://", "https://")):
            raise ToolError("only http(s) URLs can be imported")
        display = _clean_name(name, "name") if name else None
        mime = _mime_of(display or url.split("?")[0].rsplit("/", 1)[-1], mime_type)
        if mime_type or mime != "application/octet-stream":
            refuse_upload_type(settings, mime)
        folder = _default_folder(state, folder_id)

        async def run(client: "WixMediaClient") -> FileResult:
            await state.scope().require_folder(client, folder)
            file = await client.import_file(
                msg.ImportFileRequest(url=url, display_name=display, parent_folder_id=folder, private=private,
                                      mime_type=mime_type)
            )  # fmt: skip
            state.audit.record("import_file", "started", files=[file.id], folders=[folder], private=private)
            return FileResult(
                file=FileBrief.of(file), message="Import started; call get_file until status is READY (or FAILED)."
            )

        return await state.call(f"folder {folder}", run)

    async def client_roots(ctx: Context) -> ListRoots | None:
        """The client's MCP roots, asked only when the operator set no upload roots."""
        if settings.upload_root_paths:
            return None
        caps = ctx.client_capabilities
        return ListRoots() if caps is not None and caps.roots is not None else None

    @mcp.tool(annotations=writes)
    async def upload_file(
        path: Annotated[
            str, Field(min_length=1, max_length=4096, description="Local file path inside an upload root.")
        ],
        roots: Annotated[ListRootsResult | None, Resolve(client_roots)],
        ctx: Context,
        folder_id: FolderArg = None,
        private: Annotated[bool, Field(description="Make it private.")] = False,
        name: Annotated[str | None, Field(max_length=255, description="Name in the Media Manager.")] = None,
    ) -> FileResult:
        """Upload a local file from an allowed upload root, with progress."""
        allowed = settings.upload_root_paths or _paths_of(roots)
        source = confine(path, allowed)
        size = source.stat().st_size
        if size == 0:
            raise ToolError(f"{path!r} is empty")
        if size > settings.max_upload_bytes:
            raise ToolError(f"{path!r} is larger than the {settings.max_upload_bytes} bytes this server accepts")
        display = _clean_name(name or source.name, "name")
        mime = _mime_of(source.name, None)
        refuse_upload_type(settings, mime)
        for other in (_sniffed_markup(source), _named_type(display)):
            if other and other != mime:  # e.g. SVG saved as .png, or a .png named page.html
                refuse_upload_type(settings, other)
        folder = _default_folder(state, folder_id)
        return await _upload(state, ctx, source, size, display, mime, folder, private)


async def _upload(
    state: ServerState, ctx: Context, source: Path, size: int, display: str, mime: str, folder: str, private: bool
) -> FileResult:
    from media_mcp.wix import messages as msg

    async def progress(done: int, total: int | None) -> None:
        await ctx.report_progress(done, total or size, f"{done} of {size} bytes")

    async def run(client: "WixMediaClient") -> FileResult:
        await state.scope().require_folder(client, folder)
        fields = {"mime_type": mime, "file_name": display, "size_in_bytes": size, "parent_folder_id": folder,
                  "private": private}  # fmt: skip
        started = time.monotonic()
        if size > RESUMABLE_ABOVE:
            minted = await client.generate_resumable_upload_url(msg.GenerateFileResumableUploadUrlRequest(**fields))
            file = await client.upload_resumable(minted, source, mime_type=mime, file_name=display, progress=progress)
        else:
            url = await client.generate_upload_url(msg.GenerateFileUploadUrlRequest(**fields))
            file = await client.upload(url, source, mime_type=mime, file_name=display, progress=progress)
        state.audit.record(
            "upload_file", "done", files=[file.id], folders=[folder], bytes=size, private=private,
            seconds=round(time.monotonic() - started, 3),
        )  # fmt: skip
        return FileResult(file=FileBrief.of(file))

    return await state.call(f"folder {folder}", run)


def _paths_of(roots: ListRootsResult | None) -> list[Path]:
    from urllib.parse import unquote, urlsplit

    out = []
    for root in roots.roots if roots else []:
        parts = urlsplit(str(root.uri))
        if parts.scheme == "file":
            out.append(Path(unquote(parts.path)))
    return out
