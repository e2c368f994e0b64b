"""The embedded Wix-compatible media library: the Wix Media REST API over SQLite and files on disk."""
