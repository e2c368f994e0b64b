"""Moving things to the trash (after confirmation) and back.

``MEDIA_MCP_CONFIRM``: ``auto`` asks the human through elicitation when the client can, else uses
the token flow; ``token`` always uses the token flow; ``block`` refuses; ``allow`` acts at once.
Permanent deletion exists only with ``MEDIA_MCP_ALLOW_PERMANENT_DELETE=true`` and is always confirmed.
"""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import AcceptedElicitation
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from media_mcp.server.confirm import TokenRefused
from media_mcp.server.fencing import clean, visible
from media_mcp.server.outputs import Preview, RestoreResult, TrashResult
from media_mcp.server.state import ServerState

if TYPE_CHECKING:
    from media_mcp.wix.client import WixMediaClient

Ids = Annotated[list[Annotated[str, Field(min_length=1, max_length=1000)]] | None, Field(max_length=1000)]
PREVIEW_LINES = 25


class TrashConfirmation(BaseModel):
    confirm: bool = Field(description="Move these items to the trash?")


@dataclass
class Plan:
    files: list[str]
    folders: list[str]
    items: list[Preview]
    origins: dict[str, str]
    all_in_trash: bool = False
    """Every item is in the trash already: trashing them again changes nothing."""

    @property
    def total_bytes(self) -> int:
        return sum(item.size or 0 for item in self.items)


def _ids(values: list[str] | None) -> list[str]:
    from media_mcp.wix.ids import plain_file_id

    return list(dict.fromkeys(plain_file_id(v) for v in values or []))


async def _plan(state: ServerState, client: "WixMediaClient", file_ids: list[str], folder_ids: list[str]) -> Plan:
    """Look every item up (they must all exist and be in scope) and describe it for the preview."""
    scope = state.scope()
    items: list[Preview] = []
    origins: dict[str, str] = {}
    trashed = 0
    for start in range(0, len(file_ids), 100):
        for file in await client.get_files(file_ids[start : start + 100]):
            await scope.require_file(client, file)
            trashed += file.state.value == "DELETED" or file.parent_folder_id == "trash-root"
            items.append(Preview(id=file.id, kind="file", name=clean(file.display_name), size=file.size_in_bytes))
            origins[file.id] = file.parent_folder_id or "media-root"
    for folder_id in folder_ids:
        if folder_id in ("media-root", "trash-root", "visitor-uploads"):
            raise ToolError(f"{folder_id!r} is a system folder and cannot be moved to the trash")
        folder = await client.get_folder(folder_id)
        await scope.require_folder(client, folder.id)
        trashed += folder.state.value == "DELETED"
        items.append(Preview(id=folder.id, kind="folder", name=clean(folder.display_name)))
        origins[folder.id] = folder.parent_folder_id or "media-root"
    return Plan(files=file_ids, folders=folder_ids, items=items, origins=origins, all_in_trash=trashed == len(items))


def _describe(plan: Plan, permanent: bool) -> str:
    verb = "Delete PERMANENTLY (cannot be undone)" if permanent else "Move to the trash"
    lines = [f"{verb}: {len(plan.items)} item(s), {plan.total_bytes} bytes in files."]
    for item in plan.items[:PREVIEW_LINES]:
        size = f", {item.size} bytes" if item.size is not None else ""
        lines.append(f"- {item.kind} '{item.name}' ({item.id}{size})")
    if len(plan.items) > PREVIEW_LINES:
        lines.append(f"... and {len(plan.items) - PREVIEW_LINES} more")
    return "\n".join(lines)


def register(mcp: MCPServer, state: ServerState) -> None:  # noqa: C901 - one closure per tool
    settings = state.settings

    def check_counts(files: list[str], folders: list[str]) -> None:
        if not files and not folders:
            raise ToolError("give file_ids and/or folder_ids")
        if len(files) + len(folders) > settings.max_trash_items:
            raise ToolError(
                f"at most {settings.max_trash_items} items per call (MEDIA_MCP_MAX_TRASH_ITEMS); split the request"
            )

    def mode_for(permanent: bool) -> str:
        if settings.confirm == "allow" and permanent:
            return "auto"  # permanent deletion is always confirmed
        return settings.confirm

    async def ask_human(
        file_ids: list[str] | None, folder_ids: list[str] | None, ctx: Context
    ) -> Elicit[TrashConfirmation] | None:
        """Ask the person (not the model) when the client can show a form; None means: no question."""
        return await ask(file_ids, folder_ids, ctx, False)

    async def ask_human_permanent(
        file_ids: list[str] | None, folder_ids: list[str] | None, permanent: bool, ctx: Context
    ) -> Elicit[TrashConfirmation] | None:
        return await ask(file_ids, folder_ids, ctx, permanent)

    async def ask(
        file_ids: list[str] | None, folder_ids: list[str] | None, ctx: Context, permanent: bool
    ) -> Elicit[TrashConfirmation] | None:
        caps = ctx.client_capabilities
        if mode_for(permanent) != "auto" or caps is None or caps.elicitation is None:
            return None
        files, folders = _ids(file_ids), _ids(folder_ids)
        check_counts(files, folders)
        plan = await state.call("one of the items", lambda client: _plan(state, client, files, folders))
        return Elicit(_describe(plan, permanent), TrashConfirmation)

    async def act(files: list[str], folders: list[str], permanent: bool, plan: Plan, how: str) -> TrashResult:
        async def run(client: "WixMediaClient") -> None:
            if files:
                await client.bulk_delete_files(files, permanent=permanent)
            if folders:
                await client.bulk_delete_folders(folders, permanent=permanent)

        try:
            await state.call("one of the items", run)
        except ToolError:
            state.audit.record("move_to_trash", "failed", files=files, folders=folders, permanent=permanent)
            raise
        if not permanent:
            state.remember_origins(plan.origins)
        state.audit.record(
            "move_to_trash", "done", files=files, folders=folders, permanent=permanent, confirmed_by=how,
            origins=None if permanent else plan.origins,
        )  # fmt: skip
        if permanent:
            message = f"Deleted {len(plan.items)} item(s) permanently. This cannot be undone."
        else:
            message = (
                f"Moved {len(plan.items)} item(s) to the trash. To undo: restore_from_trash(file_ids={files!r}, "
                f"folder_ids={folders!r})."
            )
        return TrashResult(
            status="done", permanent=permanent, items=plan.items, count=len(plan.items), total_bytes=plan.total_bytes,
            message=message,
        )  # fmt: skip

    async def trash(
        file_ids: list[str] | None,
        folder_ids: list[str] | None,
        confirmation_token: str | None,
        permanent: bool,
        answer: ElicitationResult[TrashConfirmation],
    ) -> TrashResult:
        files, folders = _ids(file_ids), _ids(folder_ids)
        check_counts(files, folders)
        mode = mode_for(permanent)
        if mode == "block":
            state.audit.record("move_to_trash", "blocked", files=files, folders=folders)
            raise ToolError("this server does not move things to the trash (MEDIA_MCP_CONFIRM=block)")
        plan = await state.call("one of the items", lambda client: _plan(state, client, files, folders))
        action = "delete" if permanent else "trash"
        if mode == "allow":
            return await act(files, folders, permanent, plan, "policy")
        asked = not isinstance(answer, AcceptedElicitation) or answer.data is not None
        if asked:  # the person saw the list in a form and answered
            if isinstance(answer, AcceptedElicitation) and answer.data.confirm:
                return await act(files, folders, permanent, plan, "human")
            state.audit.record("move_to_trash", "cancelled", files=files, folders=folders, answer=answer.action)
            return TrashResult(
                status="cancelled", permanent=permanent, items=plan.items, count=len(plan.items),
                total_bytes=plan.total_bytes, message="The person declined; nothing was moved. Do not retry unasked.",
            )  # fmt: skip
        if confirmation_token:
            try:
                state.tokens.check(confirmation_token, action, files, folders)
            except TokenRefused as exc:
                state.audit.record("move_to_trash", "token_refused", files=files, folders=folders)
                raise ToolError(str(exc)) from None
            if state.tokens.spent(confirmation_token) and not plan.all_in_trash:  # say, replayed after a restore
                state.audit.record("move_to_trash", "token_refused", files=files, folders=folders)
                raise ToolError(
                    "the confirmation_token was already used and these items are no longer all in the trash; call "
                    "again without it and ask the user again"
                )
            done = await act(files, folders, permanent, plan, "token")
            state.tokens.spend(confirmation_token)  # a replay (say after a restore) must ask the user again
            return done
        token, expires = state.tokens.mint(action, files, folders)
        what = "delete these permanently" if permanent else "move these to the trash"
        return TrashResult(
            status="confirmation_required", permanent=permanent, items=plan.items, count=len(plan.items),
            total_bytes=plan.total_bytes, confirmation_token=token,
            expires_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            message=f"Show this list to the user. Only if they agree, call move_to_trash again with the same ids "
            f"and confirmation_token to {what}.",
        )  # fmt: skip

    annotations = ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
    )
    token_field = Field(max_length=512, description="From the previous call, once the user agreed.")
    doc = (
        "Move files/folders (with contents) to the trash; undo with restore_from_trash. A call may answer "
        "'confirmation_required' with a preview and confirmation_token: show the preview to the user, and only if "
        "they agree repeat the call with the same ids and the token."
    )

    if settings.allow_permanent_delete:

        async def move_to_trash_permanent(
            answer: Annotated[ElicitationResult[TrashConfirmation], Resolve(ask_human_permanent)],
            file_ids: Annotated[Ids, Field(description="Files to trash.")] = None,
            folder_ids: Annotated[Ids, Field(description="Folders to trash (contents follow).")] = None,
            confirmation_token: Annotated[str | None, token_field] = None,
            permanent: Annotated[
                bool, Field(description="Delete for good instead of trashing. Irreversible; always confirmed.")
            ] = False,
        ) -> TrashResult:
            return await trash(file_ids, folder_ids, confirmation_token, permanent, answer)

        mcp.add_tool(
            move_to_trash_permanent, name="move_to_trash", description=doc,
            annotations=annotations,
        )  # fmt: skip
    else:

        async def move_to_trash(
            answer: Annotated[ElicitationResult[TrashConfirmation], Resolve(ask_human)],
            file_ids: Annotated[Ids, Field(description="Files to trash.")] = None,
            folder_ids: Annotated[Ids, Field(description="Folders to trash (contents follow).")] = None,
            confirmation_token: Annotated[str | None, token_field] = None,
        ) -> TrashResult:
            return await trash(file_ids, folder_ids, confirmation_token, False, answer)

        mcp.add_tool(move_to_trash, description=doc, annotations=annotations)

    @mcp.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def restore_from_trash(
        file_ids: Annotated[Ids, Field(description="Files to restore.")] = None,
        folder_ids: Annotated[Ids, Field(description="Folders to restore (contents follow).")] = None,
    ) -> RestoreResult:
        """Bring trashed files/folders back where they were (see search_files(root='TRASH_ROOT'))."""
        files, folders = _ids(file_ids), _ids(folder_ids)
        check_counts(files, folders)
        scope = state.scope()
        if scope.active:
            for item in files + folders:
                origin = state.origins.get(item) or state.audit.trashed_from(item)
                if origin is None:
                    raise ToolError(
                        f"{visible(item)} was not trashed through this server, so it cannot be shown to come from the "
                        "folders this server may use; the site owner can restore it in the Media Manager"
                    )

                async def check(client: "WixMediaClient", origin: str = origin) -> None:
                    await scope.require_folder(client, origin)

                await state.call("the original folder", check)

        async def run(client: "WixMediaClient") -> None:
            if files:
                await client.bulk_restore_files(files)
            if folders:
                await client.bulk_restore_folders(folders)

        try:
            await state.call("one of the items", run)
        except ToolError:
            state.audit.record("restore_from_trash", "failed", files=files, folders=folders)
            raise
        state.audit.record("restore_from_trash", "done", files=files, folders=folders)
        state.forget_origins(files + folders)
        return RestoreResult(
            status="done",
            restored_files=files,
            restored_folders=folders,
            message=f"Restored {len(files) + len(folders)} item(s) to their original folders.",
        )
