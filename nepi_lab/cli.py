"""The ``nepi-lab`` command.

``nepi-lab demo``       run a small real experiment on this machine and print its summary
``nepi-lab types``      list the registered resource types with their help
``nepi-lab version``    print the version
"""

from __future__ import annotations

import argparse
import sys


def _types(args: argparse.Namespace) -> int:
    from .core.registry import resource_types

    types = resource_types()
    if not types:
        print("no resource types registered")
        return 0
    width = max(map(len, types))
    for name, cls in types.items():
        print(f"{name:<{width}}  {cls.get_help()}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(local_dir=args.results)


def _version(args: argparse.Namespace) -> int:
    from . import __version__

    print(__version__)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nepi-lab`` console script."""
    parser = argparse.ArgumentParser(prog="nepi-lab", description="network experiments with nepi_lab")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a small real experiment on this machine")
    demo.add_argument("--results", metavar="DIR", help="results root (default: $NEPI_LAB_RESULTS or <temp dir>/nepi_lab-results)")
    demo.set_defaults(run=_demo)
    commands.add_parser("types", help="list the registered resource types").set_defaults(run=_types)
    commands.add_parser("version", help="print the version").set_defaults(run=_version)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
