"""The guard: the only way from a tool to the backend, and the one place each guardrail lives.

`Guard` is assembled from its parts: the plumbing every operation runs through (`base`: the guarded call, sealed
cursors), and the operations by kind (`reads`, `writes`, `uploads`, `trash`). Every operation gets a `Call`
(`call`): the adapter plus the folder scope, with one folder cache for the call. Items come back out only as `views`
built by the call, which check the scope and clean every string; ids going in are checked by the call, which answers
an outside item exactly as a missing one. Cursors are sealed, links are capped, uploads checked, writes audited and
destructive actions confirmed here, so a tool cannot forget any of it.

The REST shapes (`media_mcp.wix.models`, `media_mcp.wix.messages`) load with the adapter, on the first call: the
guard's modules import them for type checking, and at run time only inside the operations that build a request, so
a server answers ``initialize`` without building sixty models (about 12 ms of its start-up). ruff's TC004 fails any
run-time use of a name imported for type checking alone.
"""

from __future__ import annotations

from media_mcp.guard.reads import Reads
from media_mcp.guard.trash import Trash
from media_mcp.guard.uploads import Uploads
from media_mcp.guard.writes import Writes


class Guard(Reads, Writes, Uploads, Trash):
    """Wraps the backend's adapter; tools receive this and nothing else."""
