"""media-mcp: safe, practical access to a Wix site's Media Manager for AI agents."""

__version__ = "0.1.0"

__all__ = ["__version__"]
