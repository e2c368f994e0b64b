"""The tools the server offers, written out once for the tests (the registry must agree: a test compares them)."""

READ_TOOLS = frozenset(  # fmt: skip
    {
        "search_folders",
        "search_files",
        "get_file",
        "get_folder",
        "summarize_media",
        "preview_files",
        "generate_download_url",
    }
)
"""What a read-only server offers."""
WRITE_TOOLS = frozenset(
    {"generate_upload_url", "move_to_trash", "restore_from_trash", "create_folder", "update_file", "update_folder",
     "import_file", "upload_file", "list_local_files"}
)  # fmt: skip
"""What only a server that may write offers (list_local_files reads, but serves uploads only)."""
ALL_TOOLS = READ_TOOLS | WRITE_TOOLS
APP_ONLY_TOOLS = frozenset({"browse_media", "browser_thumbnails", "browser_trash"})
"""Tools for the media browser alone: listed only to a client that renders MCP Apps (browser_trash not read-only)."""
