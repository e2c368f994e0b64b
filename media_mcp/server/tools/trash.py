"""Moving things to the trash (after confirmation of exactly what goes) and back.

The guard decides everything: what the request holds, whether the approval given (the person's answer, a
confirmation token, or the operator's policy) covers exactly that, and what to answer. These functions only pass
the arguments on.
"""

from typing import Annotated

from pydantic import Field

from media_mcp.guard import Guard, PersonAnswer, RestoreOutcome, TrashOutcome, TrashPlan
from media_mcp.server.binding import AskPerson, SettingBound, WhenSetting

Ids = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=1000)]] | None, SettingBound("max_length", "max_trash_items")
]


async def plan_for_person(
    guard: Guard, file_ids: list[str] | None, folder_ids: list[str] | None, permanent: bool = False
) -> TrashPlan | None:
    """The plan to show the person, or None when the guard will not ask a person (or there is nothing to ask)."""
    if guard.confirm_mode(permanent) != "auto":
        return None
    plan = await guard.plan_trash(file_ids or [], folder_ids or [], permanent=permanent)
    return plan if plan.files or plan.folders else None


async def move_to_trash(
    guard: Guard,
    answer: Annotated[
        PersonAnswer | None, AskPerson(plan_for_person, arguments=("file_ids", "folder_ids", "permanent"))
    ],
    file_ids: Annotated[Ids, Field(description="Files to trash.")] = None,
    folder_ids: Annotated[Ids, Field(description="Folders, with all they hold.")] = None,
    confirmation_token: Annotated[
        str | None, Field(max_length=512, description="From the previous call, once the user agreed.")
    ] = None,
    permanent: Annotated[
        bool,
        Field(description="Delete for good instead of trashing. Irreversible; always confirmed."),
        WhenSetting("allow_permanent_delete"),
    ] = False,
) -> TrashOutcome:
    """Move files and folders (with all inside) to the trash; undo with restore_from_trash.

    It may answer 'confirmation_required' with a preview of all that would go and a confirmation_token: show it to
    the user and, only if they agree, call again with the same ids and the token (changed content: a fresh preview)."""
    return await guard.trash(
        file_ids or [], folder_ids or [], permanent=permanent, token=confirmation_token, answer=answer
    )


async def restore_from_trash(
    guard: Guard,
    file_ids: Annotated[Ids, Field(description="Files to restore.")] = None,
    folder_ids: Annotated[Ids, Field(description="Folders, with what they held.")] = None,
) -> RestoreOutcome:
    """Restore trashed files and folders where they were; answers where each went, or why not."""
    return await guard.restore(file_ids or [], folder_ids or [])
