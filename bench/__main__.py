"""``python -m bench <suite> [options]``: each suite registers its own options and runner."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bench import fleet, library, mcp, media, reliability, transforms


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = argparse.ArgumentParser(prog="python -m bench", description="media-mcp benchmarks")
    suites = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    sub = suites.add_parser("library", help=library.HELP, description=library.DESCRIPTION)
    library.add_arguments(sub)
    runners["library"] = library.run
    sub = suites.add_parser("mcp", help=mcp.HELP, description=mcp.DESCRIPTION)
    mcp.add_arguments(sub)
    runners["mcp"] = mcp.run
    sub = suites.add_parser("reliability", help=reliability.HELP, description=reliability.DESCRIPTION)
    reliability.add_arguments(sub)
    runners["reliability"] = reliability.run
    sub = suites.add_parser("media", help=media.HELP, description=media.DESCRIPTION)
    media.add_arguments(sub)
    runners["media"] = media.run
    sub = suites.add_parser("transforms", help=transforms.HELP, description=transforms.DESCRIPTION)
    transforms.add_arguments(sub)
    runners["transforms"] = transforms.run
    sub = suites.add_parser("fleet", help=fleet.HELP, description=fleet.DESCRIPTION)
    fleet.add_arguments(sub)
    runners["fleet"] = fleet.run
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    parser, runners = _parser()
    args = parser.parse_args(argv)
    return runners[args.suite](args)


if __name__ == "__main__":
    sys.exit(main())
