"""Protocol wiring: turn a plain tool function ``fn(guard, **arguments)`` into what the SDK registers.

A tool function knows the guard and its arguments, nothing of MCP. The function `bind` makes for it holds no guard:
it finds its server's guard in the request's ``Context`` (`GUARD_ATTRIBUTE` of ``ctx.mcp_server``), so what the SDK
builds from it (the argument model, the schemas) depends only on the settings named in its markers and is built
once per process for every server with those settings (`media_mcp.server.registry.tools`). A few of its parameters
ask for something only the protocol can give; they are marked in their annotation and filled here:

- `PROGRESS`: a progress callback (from the request's ``Context``);
- `CLIENT_ROOTS`: the directories the client shares (MCP roots, asked only when the operator set none);
- `AskPerson`: the person's answer to a preview, asked through elicitation when the client can show a form;
- `SettingBound`: an argument whose upper bound is a setting (a link's life, an upload's size, a batch's length),
  so the schema states the bound in force;
- `WhenSetting`: an argument offered only when a setting enables it (else it is left out of the schema, and
  `withheld_arguments` names the setting, for the refusal of a call that gives it anyway).

Guard refusals become ``isError`` results with the guard's text; answers are structured content with the same JSON,
unindented, as text.
"""

from __future__ import annotations

import base64
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import pydantic_core
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, ListRoots, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import AcceptedElicitation
from mcp.types import CallToolResult, ImageContent, ListRootsResult, TextContent
from pydantic import BaseModel, Field

from media_mcp.guard import Guard, GuardError, PersonAnswer, Previews, TrashPlan
from media_mcp.guard.lean import lean_argument
from media_mcp.guard.text import fence
from media_mcp.settings import ServerSettings

ToolFn = Callable[..., Awaitable[BaseModel]]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PROGRESS = _Marker("PROGRESS")
"""``Annotated[Progress | None, PROGRESS]``: report progress to the client (a no-op unless it asked)."""
CLIENT_ROOTS = _Marker("CLIENT_ROOTS")
"""``Annotated[list[Path], CLIENT_ROOTS]``: the client's MCP roots, when the operator configured no upload roots."""


@dataclass(frozen=True)
class AskPerson:
    """``Annotated[PersonAnswer | None, AskPerson(plan)]``: ask the person to approve ``plan(guard, **arguments)``.

    ``plan`` answers a `TrashPlan` to show, or None when there is nothing to ask. The parameter receives None when
    nobody was asked (the client cannot show forms, or the guard's mode does not ask people).
    """

    plan: Callable[..., Awaitable[TrashPlan | None]]
    arguments: tuple[str, ...]


@dataclass(frozen=True)
class WhenSetting:
    """Offer the argument only when ``ServerSettings.<name>`` is true; otherwise the default is used."""

    name: str


@dataclass(frozen=True)
class SettingBound:
    """``Annotated[..., SettingBound("le", "max_upload_bytes")]``: the argument's ``le`` (a number's maximum) or
    ``max_length`` (a list's or a map's) is the largest of these `ServerSettings` values."""

    constraint: typing.Literal["le", "max_length"]
    names: tuple[str, ...]

    def __init__(self, constraint: typing.Literal["le", "max_length"], *names: str) -> None:
        object.__setattr__(self, "constraint", constraint)
        object.__setattr__(self, "names", names)

    def field(self, settings: ServerSettings) -> Any:
        value = max(int(getattr(settings, name)) for name in self.names)
        return Field(le=value) if self.constraint == "le" else Field(max_length=value)


class Approval(BaseModel):
    confirm: bool = Field(description="Go ahead with exactly what is listed above?")


def answer(result: BaseModel) -> CallToolResult:
    """A tool answer: the structured content (every string fenced), and the same JSON without indentation as text;
    then, for previews, each still after a line that names its file."""
    data = fence(result.model_dump(mode="json", by_alias=True, exclude_none=True))
    content: list[TextContent | ImageContent] = [TextContent(type="text", text=pydantic_core.to_json(data).decode())]
    if isinstance(result, Previews):
        for caption, still in result.captioned():
            content.append(TextContent(type="text", text=fence(caption)))
            content.append(ImageContent(type="image", data=base64.b64encode(still.data).decode(), mime_type=still.mime))
    return CallToolResult(content=list(content), structured_content=data)


def _marker(annotation: Any) -> Any:
    if typing.get_origin(annotation) is not Annotated:
        return None
    for meta in typing.get_args(annotation)[1:]:
        if isinstance(meta, _Marker | AskPerson | WhenSetting):
            return meta
    return None


def _with_signature(fn: Callable[..., Any], name: str, params: list[inspect.Parameter], returns: Any) -> None:
    fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}


GUARD_ATTRIBUTE = "guard"
"""The attribute of the `MCPServer` that holds its `Guard`."""


def guard_of(ctx: Context) -> Guard:
    """The guard of the server this request came to."""
    guard = getattr(ctx.mcp_server, GUARD_ATTRIBUTE, None)
    if not isinstance(guard, Guard):
        raise RuntimeError(f"a media-mcp tool runs only on a server with a {GUARD_ATTRIBUTE!r} (see create_server)")
    return guard


@functools.cache
def _hints(fn: ToolFn) -> dict[str, Any]:
    """A tool function's annotations, evaluated (they are strings in a module with postponed annotations) once."""
    return typing.get_type_hints(fn, include_extras=True)


def answer_of(fn: ToolFn) -> type[BaseModel]:
    """The answer model a tool function returns."""
    answer: type[BaseModel] = _hints(fn)["return"]
    return answer


def signature_settings(fn: ToolFn) -> tuple[str, ...]:
    """The settings ``bind`` reads to shape ``fn``'s arguments (bounds, and arguments offered only when enabled)."""
    names: list[str] = []
    for annotation in _hints(fn).values():
        for meta in typing.get_args(annotation)[1:] if typing.get_origin(annotation) is Annotated else ():
            if isinstance(meta, SettingBound):
                names += meta.names
            elif isinstance(meta, WhenSetting):
                names.append(meta.name)
    return tuple(sorted(set(names)))


def bind(fn: ToolFn, settings: ServerSettings) -> Callable[..., Awaitable[CallToolResult]]:
    """The SDK-facing tool for ``fn``: its own arguments, plus what its markers ask of the protocol. Only the settings
    `signature_settings` names are read here; everything else is read from the guard of each call."""
    signature = inspect.signature(fn)
    hints = _hints(fn)
    params = list(signature.parameters.values())[1:]  # the first is the guard
    exposed: list[inspect.Parameter] = []
    fixed: dict[str, Any] = {}
    withheld: dict[str, str] = {}
    roots_param: str | None = None
    ask: tuple[str, AskPerson] | None = None
    for param in params:
        annotation = hints[param.name]
        marker = _marker(annotation)
        if marker is PROGRESS:
            fixed[param.name] = PROGRESS
        elif marker is CLIENT_ROOTS:
            roots_param = param.name
        elif isinstance(marker, AskPerson):
            ask = (param.name, marker)
        elif isinstance(marker, WhenSetting) and not getattr(settings, marker.name):
            fixed[param.name] = param.default
            variable = f"{type(settings).env_prefix}{marker.name}".upper()
            withheld[param.name] = f"not enabled on this server: the operator enables it with {variable}=true"
        else:
            bounds = [m.field(settings) for m in typing.get_args(annotation)[1:] if isinstance(m, SettingBound)]
            lean_annotation = _annotated(annotation, *bounds, Field(json_schema_extra=lean_argument))
            exposed.append(param.replace(annotation=lean_annotation, kind=inspect.Parameter.KEYWORD_ONLY))
    hidden = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    if roots_param is not None:
        hidden.append(_resolved("client_roots", ListRootsResult | None, _client_roots))
    plan_resolver: Callable[..., Any] | None = None
    if ask is not None:
        plan_resolver = _plan_resolver(fn.__name__, ask[1], {p.name for p in exposed})
        hidden.append(_resolved("person_plan", TrashPlan | None, plan_resolver))
        asker = _ask_resolver(fn.__name__, plan_resolver)
        hidden.append(_resolved("person_answer", ElicitationResult[Approval], asker))
    returns = Annotated[CallToolResult, hints["return"]]

    async def tool(**kwargs: Any) -> CallToolResult:
        ctx: Context = kwargs.pop("ctx")
        guard = guard_of(ctx)
        call = {name: value for name, value in kwargs.items() if name not in _HIDDEN}
        for name, value in fixed.items():
            call[name] = _progress(ctx) if value is PROGRESS else value
        if roots_param is not None:
            call[roots_param] = guard.settings.upload_root_paths or _paths_of(kwargs.get("client_roots"))
        if ask is not None:
            call[ask[0]] = _person_answer(kwargs.get("person_plan"), kwargs.get("person_answer"))
        try:
            return answer(await fn(guard, **call))
        except GuardError as exc:
            raise ToolError(fence(str(exc))) from None

    ordered = sorted(exposed, key=lambda p: p.default is not inspect.Parameter.empty)
    _with_signature(tool, fn.__name__, [*hidden, *ordered], returns)
    tool.__doc__ = fn.__doc__
    tool.__module__ = fn.__module__
    setattr(tool, _WITHHELD, withheld)
    return tool


_HIDDEN = {"client_roots", "person_plan", "person_answer"}


def _annotated(kind: Any, *metadata: Any) -> Any:
    return Annotated[(kind, *metadata)]


def _resolved(name: str, kind: Any, resolver: Callable[..., Any]) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=_annotated(kind, Resolve(resolver)))


def _progress(ctx: Context) -> Callable[[int, int | None], Awaitable[None]]:
    async def report(done: int, total: int | None) -> None:
        await ctx.report_progress(done, total, f"{done} of {total} bytes" if total else f"{done} bytes")

    return report


async def _client_roots(ctx: Context) -> ListRoots | None:
    """The client's MCP roots, asked only when the operator set no upload roots."""
    if guard_of(ctx).settings.upload_root_paths:
        return None
    caps = ctx.client_capabilities
    return ListRoots() if caps is not None and caps.roots is not None else None


def _paths_of(roots: ListRootsResult | None) -> list[Path]:
    out = []
    for root in roots.roots if roots else []:
        parts = urlsplit(str(root.uri))
        if parts.scheme == "file":
            out.append(Path(unquote(parts.path)))
    return out


def _plan_resolver(tool: str, ask: AskPerson, exposed: set[str]) -> Callable[..., Any]:
    """A resolver taking exactly the tool arguments the plan needs (and the context), by name."""
    names = [name for name in ask.arguments if name in exposed]

    async def plan(**kwargs: Any) -> TrashPlan | None:
        ctx: Context = kwargs.pop("ctx")
        caps = ctx.client_capabilities
        if caps is None or caps.elicitation is None:
            return None
        try:
            return await ask.plan(guard_of(ctx), **kwargs)
        except GuardError as exc:
            raise ToolError(fence(str(exc))) from None

    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Any) for name in names]
    _with_signature(plan, f"{tool}_plan", params, TrashPlan | None)
    return plan


def _ask_resolver(tool: str, plan_resolver: Callable[..., Any]) -> Callable[..., Any]:
    async def ask(ctx: Context, person_plan: TrashPlan | None) -> Elicit[Approval] | None:
        """Show the person the plan (its text ends in a check code, so a changed plan is a new question)."""
        if person_plan is None:
            return None
        return Elicit(guard_of(ctx).describe(person_plan), Approval)

    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    wanted = _resolved("person_plan", TrashPlan | None, plan_resolver)
    _with_signature(ask, f"{tool}_ask", [context, wanted], Elicit[Approval] | None)
    return ask


def _person_answer(plan: TrashPlan | None, outcome: ElicitationResult[Approval] | None) -> PersonAnswer | None:
    if plan is None or outcome is None:
        return None
    if isinstance(outcome, AcceptedElicitation):
        if outcome.data is None:  # nobody was asked
            return None
        return PersonAnswer(accepted=outcome.data.confirm, shown=plan.digest, action="accept")
    return PersonAnswer(accepted=False, shown=plan.digest, action=outcome.action)


_WITHHELD = "_media_mcp_withheld"


def withheld_arguments(tool: Callable[..., Any]) -> dict[str, str]:
    """The arguments `bind` left out of ``tool`` because a setting is off, each with the setting that offers it."""
    withheld: dict[str, str] = getattr(tool, _WITHHELD, {})
    return withheld
