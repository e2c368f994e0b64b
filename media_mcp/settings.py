"""Settings, read once at start-up from ``MEDIA_MCP_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


def default_data_dir() -> Path:
    """The platform's per-user data directory for media-mcp."""
    import platformdirs

    return Path(platformdirs.user_data_dir("media-mcp", appauthor=False))


class FromEnvironment(BaseModel):
    """Settings whose fields come from environment variables, unless given as arguments.

    A field is read from ``<env_prefix><FIELD NAME>``, or from its validation alias when it has one, in any case
    (``MEDIA_MCP_READ_ONLY`` and ``media_mcp_read_only`` alike). The values are strings, which pydantic reads as the
    field's type (``true``, ``8765``, a path); a value that does not fit is a `pydantic.ValidationError` on that field
    (which the command reports by the field's name alone: settings carry secrets).
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    env_prefix: ClassVar[str] = ""

    def __init__(self, **values: Any) -> None:
        super().__init__(**(self.from_environment() | values))

    @classmethod
    def from_environment(cls) -> dict[str, str]:
        """The fields set in this process's environment, by field name."""
        environment = {name.lower(): value for name, value in os.environ.items()}
        found: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            variable = field.validation_alias if isinstance(field.validation_alias, str) else cls.env_prefix + name
            if variable.lower() in environment:
                found[name] = environment[variable.lower()]
        return found


class LibrarySettings(FromEnvironment):
    """How the embedded Wix-compatible media library runs."""

    env_prefix = "MEDIA_MCP_"

    data_dir: Path = Field(default_factory=default_data_dir, description="SQLite database, blobs and keys.")
    library_host: str = Field(default="127.0.0.1", description="Address the library listens on.")
    library_port: int = Field(default=8765, ge=0, le=65535, description="Port the library listens on.")
    library_api_key: SecretStr | None = Field(
        default=None, description="API key clients must send; generated and stored in the data directory if unset."
    )
    library_public_url: str | None = Field(
        default=None, description="Base URL put into minted links; default: the URL the request came in on."
    )
    library_allow_private_imports: bool = Field(
        default=False, description="Let import-from-URL fetch loopback, private and link-local addresses."
    )
    library_max_file_bytes: int = Field(default=5 * 1024**3, ge=1, description="Largest file accepted, in bytes.")
    library_upload_link_minutes: int = Field(default=60, ge=1, le=10080, description="Life of a PUT upload link.")
    library_resumable_link_minutes: int = Field(
        default=1440, ge=1, le=10080, description="Life of a resumable (tus) upload token."
    )
    library_import_timeout_seconds: float = Field(default=120.0, gt=0, description="Time budget of one import.")
    library_start_timeout_seconds: float = Field(
        default=25.0,
        gt=0,
        le=3600,
        description="How long a start waits for another media-mcp process holding the data directory's members.lock "
        "(one cleaning up after a crash) before it gives up, naming the lock.",
    )
    library_search_budget_seconds: float = Field(
        default=2.0,
        gt=0,
        le=600,
        description="Time budget of one file or folder search or listing; past it the search is stopped and refused "
        "(400 SEARCH_TOO_BROAD), so a broad search cannot keep the library busy.",
    )
    library_processing_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Worker processes that process uploads and imports at once (0: half the CPUs, 1 to 4).",
    )
    library_processing_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Time one file's processing may take; past it the file is FAILED."
    )
    library_transform_cache_bytes: int = Field(
        default=256 * 1024**2,
        ge=0,
        description="Disk space for rendered variants of Wix image URLs (/v1/fill, fit, crop) in the data directory; "
        "the least recently used go first. 0 keeps none (every request renders).",
    )


class WixSettings(FromEnvironment):
    """How to reach Wix: an API key with a site id, or OAuth client credentials."""

    api_key: SecretStr | None = Field(default=None, validation_alias="WIX_API_KEY")
    site_id: str | None = Field(default=None, validation_alias="WIX_SITE_ID")
    client_id: str | None = Field(default=None, validation_alias="WIX_CLIENT_ID")
    client_secret: SecretStr | None = Field(default=None, validation_alias="WIX_CLIENT_SECRET")
    instance_id: str | None = Field(default=None, validation_alias="WIX_INSTANCE_ID")
    api_url: str = Field(default="https://www.wixapis.com", validation_alias="MEDIA_MCP_WIX_API_URL")
    rate_limit_per_minute: int = Field(default=190, ge=1, validation_alias="MEDIA_MCP_WIX_RATE_LIMIT_PER_MINUTE")
    rate_limit_window_seconds: float = Field(default=60.0, gt=0, validation_alias="MEDIA_MCP_WIX_RATE_WINDOW_SECONDS")
    timeout_seconds: float = Field(default=30.0, gt=0, validation_alias="MEDIA_MCP_WIX_TIMEOUT_SECONDS")
    call_budget_seconds: float = Field(default=60.0, gt=0, validation_alias="MEDIA_MCP_WIX_CALL_BUDGET_SECONDS")

    @property
    def uses_api_key(self) -> bool:
        return self.api_key is not None and bool(self.site_id)

    @property
    def uses_oauth(self) -> bool:
        return bool(self.client_id and self.client_secret and self.instance_id)

    @property
    def configured(self) -> bool:
        """Wix credentials are present (so ``auto`` picks Wix over the embedded library)."""
        return self.uses_api_key or self.uses_oauth


DEFAULT_UPLOAD_TYPES = (
    "image/jpeg,image/png,image/gif,image/webp,image/avif,image/heic,image/heif,image/tiff,image/bmp,"
    "video/*,audio/*,application/pdf,text/plain,text/csv,application/zip,model/*,font/*,"
    "application/msword,application/vnd.openxmlformats-officedocument.*,application/vnd.ms-*,"
    "application/vnd.oasis.opendocument.*"
)
"""Upload types allowed by default: media and documents; nothing a browser would execute."""


def _split(value: str, sep: str = ",") -> list[str]:
    return [part.strip() for part in value.split(sep) if part.strip()]


class ServerSettings(FromEnvironment):
    """The MCP server and its guardrails (DESIGN.md section 4)."""

    env_prefix = "MEDIA_MCP_"

    backend: Literal["auto", "wix", "local"] = Field(default="auto", description="Where media lives.")
    read_only: bool = Field(default=False, description="Register no tool that writes or mints a write capability.")
    confirm: Literal["auto", "token", "block", "allow"] = Field(
        default="auto", description="How destructive actions are confirmed."
    )
    confirm_secret: SecretStr | None = Field(
        default=None, description="HMAC key for confirmation tokens (share it across replicas)."
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Redis the replicas of a fleet share: the Wix rate limit and spent tokens."
    )
    redis_timeout_seconds: float = Field(default=0.5, gt=0, le=30, description="Bound of every Redis call.")
    fleet_size: int = Field(
        default=1, ge=1, le=1000, description="Replicas in the fleet: each one's share of the limit without Redis."
    )
    allow_permanent_delete: bool = Field(default=False, description="Offer permanent deletion (always confirmed).")
    max_trash_items: int = Field(default=50, ge=1, le=1000, description="Most items one trash call may touch.")
    max_batch_items: int = Field(
        default=100, ge=1, le=1000, description="Most files one update, link or upload call may touch."
    )
    private_link_minutes: int = Field(default=5, ge=1, description="Life of a private file's link when none is asked.")
    private_link_max_minutes: int = Field(default=15, ge=1, description="Longest link for a private file.")
    public_link_max_minutes: int = Field(default=60, ge=1, description="Longest link for a public file.")
    preview_max_bytes: int = Field(
        default=400_000, ge=10_000, le=5_000_000, description="Most bytes of images one preview_files answer carries."
    )
    allowed_folders: str = Field(default="", description="Comma-separated folder ids the agent is confined to.")
    upload_roots: str = Field(default="", description="Local directories upload_file may read (os.pathsep-separated).")
    upload_allowed_types: str = Field(default=DEFAULT_UPLOAD_TYPES, description="MIME types uploads may have.")
    max_upload_bytes: int = Field(default=1024**3, ge=1, description="Largest upload, in bytes.")
    audit_log: str | None = Field(default=None, description="JSONL audit log path ('stderr' allowed).")
    http_token: SecretStr | None = Field(default=None, description="Bearer token HTTP clients must send.")
    http_allowed_hosts: str = Field(
        default="",
        description="Comma-separated Host values HTTP accepts besides the bound address (name, name:port, name:*).",
    )
    http_max_sessions: int = Field(
        default=10_000, ge=1, le=100_000, description="Most MCP sessions open at once over HTTP; past it, 503."
    )
    http_session_idle_seconds: float = Field(
        default=1800, ge=10, le=86_400, description="An HTTP session with no request for this long is closed."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("MEDIA_MCP_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        return value

    @property
    def allowed_folder_ids(self) -> list[str]:
        return _split(self.allowed_folders)

    @property
    def upload_root_paths(self) -> list[Path]:
        import os

        return [Path(p).expanduser() for p in _split(self.upload_roots, os.pathsep)]

    @property
    def upload_type_patterns(self) -> list[str]:
        return [p.lower() for p in _split(self.upload_allowed_types)]
