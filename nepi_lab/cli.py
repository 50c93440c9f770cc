"""The ``nepi-lab`` command.

``nepi-lab demo``       run a small real experiment on this machine and print its summary
``nepi-lab types``      list the registered resource types with their help
``nepi-lab version``    print the version
``nepi-lab cleanup``    remove the network namespaces (and what runs in them) of crashed runs
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


# -- nepi-lab cleanup (the netns back end) ------------------------------------------------


def _cleanup(args: argparse.Namespace) -> int:
    from .resources.netns import cleanup_leftovers

    try:
        report = cleanup_leftovers(dry_run=args.dry_run)
    except PermissionError as exc:
        print(f"nepi-lab cleanup: {exc} (run it as root)", file=sys.stderr)
        return 1
    verb = "would remove" if args.dry_run else "removed"
    for name in report.namespaces:
        print(f"{verb} network namespace {name}")
    for name in report.interfaces:
        print(f"{verb} interface {name}")
    if report.processes:
        print(f"killed {report.processes} processes left in those namespaces")
    for tag, pid in report.live.items():
        print(f"kept the namespaces nl{tag}-* of a live run (process {pid})")
    if not (report.namespaces or report.interfaces or report.records):
        print("nothing to clean up")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nepi-lab`` console script."""
    parser = argparse.ArgumentParser(prog="nepi-lab", description="network experiments with nepi_lab")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a small real experiment on this machine")
    demo.add_argument("--results", metavar="DIR",
                      help="results root (default: $NEPI_LAB_RESULTS or <temp dir>/nepi_lab-results)")
    demo.set_defaults(run=_demo)
    commands.add_parser("types", help="list the registered resource types").set_defaults(run=_types)
    commands.add_parser("version", help="print the version").set_defaults(run=_version)
    cleanup = commands.add_parser(
        "cleanup", help="remove what crashed runs left: network namespaces nl<tag>-*, their processes, "
                        "interfaces; never a live run's")
    cleanup.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    cleanup.set_defaults(run=_cleanup)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
