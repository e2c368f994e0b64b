"""Benchmarks for media-mcp: ``python -m bench <suite>`` (see ``python -m bench --help``)."""
