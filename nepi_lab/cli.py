"""The ``nepi-lab`` command.

``nepi-lab demo``       run a small real experiment on this machine and print its summary
``nepi-lab types``      list the registered resource types with their help
``nepi-lab version``    print the version
``nepi-lab cleanup``    stop what crashed runs left (processes here and on SSH hosts, network
                        namespaces), collect their traces, mark the runs; never a live run's
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


# -- nepi-lab cleanup --------------------------------------------------------------------

#: Exit status of ``nepi-lab cleanup`` when a host could not be reached (try again later).
UNREACHABLE_STATUS = 3


def _cleanup(args: argparse.Namespace) -> int:
    """Clean what dead runs left: recorded runs (processes, traces, hosts), then network
    namespaces.  Exit status 0: done (or nothing to do); 1: namespaces need root; 3: a
    host could not be reached, its leftovers stay recorded for the next cleanup."""
    status, did = _cleanup_runs(args)
    namespaces_status, namespaces_did = _cleanup_namespaces(args)
    if not (did or namespaces_did):
        print("nothing to clean up")
    return max(status, namespaces_status)


def _cleanup_runs(args: argparse.Namespace) -> tuple[int, bool]:
    from .resources.linux._cleanup import cleanup_runs

    status, did = 0, False
    for run in cleanup_runs(dry_run=args.dry_run):
        why = (f"its process {run.owner} is gone" if not run.alive
               else "its release could not reach the host")
        if not run.hosts and run.alive:
            print(f"kept run {run.name} of a live process ({run.owner})")
            continue
        did = True
        for host in run.hosts:
            if args.dry_run:
                print(f"would stop what run {run.name} left on {host.where} and collect its traces ({why})")
                continue
            if host.error is not None:
                print(f"could not reach {host.where} for run {run.name}: {host.error}; its processes and "
                      f"files stay recorded in {run.run_dir}/hosts.json", file=sys.stderr)
                status = UNREACHABLE_STATUS
                continue
            print(f"stopped {host.stopped} processes of run {run.name} on {host.where}")
            if host.collected:
                print(f"collected {len(host.collected)} traces of run {run.name} from {host.where} into "
                      f"{run.run_dir}")
        if run.marked:
            print(f"marked run {run.name} as killed in {run.run_dir}/experiment.json ({why})")
    return status, did


def _cleanup_namespaces(args: argparse.Namespace) -> tuple[int, bool]:
    import os

    from .resources.netns import cleanup_leftovers
    from .resources.netns._namespace import OUR_NAME, list_namespaces

    if os.geteuid() != 0 and not args.dry_run and not any(OUR_NAME.match(n) for n in list_namespaces()):
        return 0, False  # none of ours: nothing a non-root user would need root for
    try:
        report = cleanup_leftovers(dry_run=args.dry_run)
    except PermissionError as exc:
        print(f"nepi-lab cleanup: {exc} (run it as root)", file=sys.stderr)
        return 1, True
    verb = "would remove" if args.dry_run else "removed"
    for name in report.namespaces:
        print(f"{verb} network namespace {name}")
    for name in report.interfaces:
        print(f"{verb} interface {name}")
    if report.processes:
        print(f"killed {report.processes} processes left in those namespaces")
    for tag, pid in report.live.items():
        print(f"kept the namespaces nl{tag}-* of a live run (process {pid})")
    return 0, bool(report.namespaces or report.interfaces or report.records)


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
        "cleanup", help="stop what crashed runs (or unreachable hosts) left: processes here and on SSH "
                        "hosts, network namespaces nl<tag>-* and interfaces; collect their traces into the "
                        "run directories; never a live run's. Exit status 3: a host could not be reached")
    cleanup.add_argument("--dry-run", action="store_true", help="only list what would be done")
    cleanup.set_defaults(run=_cleanup)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
