"""The ``nepi-lab`` command.

``nepi-lab run FILE``    run a saved experiment (``ec.save()``'s file, or a run directory) headless
``nepi-lab show RUN``    a finished run from its directory alone: states, failures, times, traces
``nepi-lab sweep status DIR`` a sweep from its directory alone: counts per state, one row per run
``nepi-lab types [NAME]`` the registered resource types; with a name, its attributes and traces
``nepi-lab check LAB RUN...`` evaluate a lab's checks (a spec file, YAML or JSON) against run
                         directories: a table per run, the totals; ``--csv`` writes the grades
``nepi-lab demo``        run a small real experiment on this machine and print its summary
``nepi-lab cleanup``     stop what crashed runs left (processes here and on SSH hosts, network
                         namespaces, ns-3 processes and their temporary folders), collect
                         their traces, mark the runs; never a live run's
``nepi-lab version``     print the version (also ``nepi-lab --version``)

Exit status, for every subcommand:

====  =======================================================================================
0     done: the experiment finished (non-critical failures are listed, not counted), the run
      or the type or sweep was shown
1     the experiment failed: a critical resource failed, so everything was stopped and
      released (``run``); the demo did not behave as expected; ``cleanup``: namespaces need root;
      ``check``: a check failed (or could not be evaluated) for at least one run
2     a user error, said in one line on standard error: a bad command line, a file or folder
      that is missing, unreadable or damaged (a sweep directory too), an unknown type,
      resource or attribute, a value of the wrong type, a results folder that cannot hold a run;
      ``check``: a lab spec file that cannot be read (the line is named), a run directory or
      pattern that names nothing
3     ``cleanup``: a host could not be reached; its leftovers stay recorded for the next try
124   ``run --timeout``: the time ran out before every resource finished; everything was
      stopped and released (as GNU ``timeout``)
130   ``run``: interrupted by Ctrl-C (SIGINT); everything was stopped and released, the
      traces collected, and ``experiment.json`` records ``"end": "interrupted"``
====  =======================================================================================

The CLI sits above the resource back ends and below the analysis layer: it reads run
directories through :mod:`nepi_lab.core.run_directory` and sweep directories through the
runs layer's record (:func:`nepi_lab.runner.sweep.load_sweep`), never through pandas;
only ``check`` imports the lab layer (:mod:`nepi_lab.lab`, with pandas), inside the command.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import difflib
import os
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .core.controller import ExperimentController
    from .core.events import Event

#: Exit status: the experiment failed (a critical failure), or the demo misbehaved.
FAILED_STATUS = 1
#: Exit status of a user error (as argparse's own usage errors).
USAGE_STATUS = 2
#: Exit status of ``nepi-lab cleanup`` when a host could not be reached (try again later).
UNREACHABLE_STATUS = 3
#: Exit status of ``nepi-lab run`` when ``--timeout`` ran out (as GNU ``timeout``).
TIMEOUT_STATUS = 124
#: Exit status of ``nepi-lab run`` interrupted by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED_STATUS = 130


class UserError(Exception):
    """A mistake of the command line's user: one line on stderr, exit status 2."""


# -- nepi-lab types ----------------------------------------------------------------------


def _types(args: argparse.Namespace) -> int:
    from .core.registry import resource_types

    types = resource_types()
    if args.name is not None:
        return _one_type(args.name, types)
    if not types:
        print("no resource types registered")
        return 0
    width = max(map(len, types))
    for name, cls in types.items():
        print(f"{name:<{width}}  {cls.get_help()}")
    return 0


def _one_type(name: str, types: dict[str, Any]) -> int:
    from ._summary import print_rows

    cls = types.get(name)
    if cls is None:
        raise UserError(f"unknown resource type {name!r}{_did_you_mean(name, types)}; "
                        "nepi-lab types lists them")
    print(name)
    if cls.get_help():
        print(f"  {cls.get_help()}")
    if cls.get_bases():
        print(f"  derives from: {', '.join(cls.get_bases())}")
    connects = cls.get_connection_types()
    print(f"  connects to: {', '.join(connects) if connects else 'any type'}")
    print("\nattributes:")
    rows = [(a.name, a.type.value, _shown_value(a.default), _flag_names(a.flags),
             ", ".join(_shown_value(v) for v in a.allowed) if a.allowed else _range(a.range), a.help)
            for a in cls.get_attribute_declarations().values()]
    print_rows(("name", "type", "default", "flags", "allowed", "help"), rows)
    aliases = cls.get_attribute_aliases()
    if aliases:
        print("\naliases (other names of the attributes above):")
        for alias in aliases.values():
            print(f"  {alias.name} \u2192 {alias.attribute} ({alias.note})")
    traces = cls.get_trace_declarations()
    print("\ntraces:")
    if traces:
        print_rows(("name", "collected", "help"),
                   [(t.name, "always" if t.enabled else "if enabled", t.help) for t in traces.values()])
    else:
        print("  none")
    return 0


def _did_you_mean(name: str, known: Any) -> str:
    names = list(known)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.75)
    close += [n for n in names if name.lower() in n.lower() and n not in close][: 3 - len(close)]
    return " (did you mean " + " or ".join(close) + "?)" if close else ""


def _shown_value(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).replace("\n", "\\n")
    return text if len(text) <= 40 else text[:37] + "..."


def _range(bounds: Any) -> str:
    if not bounds:
        return ""
    low, high = bounds
    return f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"


def _flag_names(flags: int) -> str:
    """The names of the flags set, the widest first (``Credential``, not ``Design`` too)."""
    from .core.attributes import Flags

    found: list[Flags] = []
    for member in sorted((m for m in Flags if m.value), key=lambda m: -bin(m.value).count("1")):
        if flags & member.value == member.value and not any(f.value & member.value == member.value
                                                            for f in found):
            found.append(member)
    return ", ".join(sorted(str(m.name) for m in found))


# -- nepi-lab show -----------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    from ._summary import print_failures, print_rows, print_table, read_summary

    summary = read_summary(args.run_dir)
    outcomes = summary.outcomes()
    released = sum(r.released for r in summary.resources)
    print(f"run {summary.exp_id}/{summary.run_id} in {summary.path}")
    print(f"  {len(summary.resources)} resources: "
          f"{', '.join(f'{n} {s}' for s, n in _in_state_order(outcomes))}"
          f"{'; all released' if released == len(summary.resources) else f'; {released} released'}")
    print(f"  controller {summary.ecstate}; {_ending(summary.end)}")
    if summary.first_time is not None and summary.last_time is not None:
        took = summary.last_time - summary.first_time
        print(f"  first event {_clock(summary.first_time)}, last {took:.3f} s later")
    if summary.damaged_lines:
        print(f"  {len(summary.damaged_lines)} damaged lines of events.jsonl left out "
              f"({summary.damaged_lines[0]})")
    print()
    print_table(summary)
    if summary.failures:
        print("\nfailures:")
        print_failures(summary)
    states = [s for s in _state_names() if any(s in r.times for r in summary.resources)]
    origin = summary.first_time or 0.0
    print("\ntimes: seconds after the first event at which each state was (last) entered")
    print_rows(("guid", "name", *states),
               [(str(r.guid), r.name, *(f"{r.times[s] - origin:.3f}" if s in r.times else "" for s in states))
                for r in summary.resources])
    print("\ntraces collected into the run directory (<guid>-<type>/<trace>):")
    rows = [(str(r.guid), r.name, name, _size(size))
            for r in summary.resources for name, size in r.traces.items()]
    if rows:
        print_rows(("guid", "name", "trace", "size"), rows)
    else:
        print("  none")
    return 0


def _ending(end: str | None) -> str:
    meaning = {
        "shutdown": "ended by shutdown (or the end of its with block)",
        "exit": "released at interpreter exit",
        "signal": "released on SIGTERM",
        "interrupted": "interrupted (Ctrl-C), then released",
        "killed": "its process was killed; nepi-lab cleanup collected what it left",
    }
    if end is None:
        return "no end recorded: still running, or its process was killed (nepi-lab cleanup)"
    return meaning.get(end, f"ended: {end}")


def _state_names() -> list[str]:
    from .core.states import ResourceState

    return [s.name for s in ResourceState]


def _in_state_order(counts: Counter[str]) -> list[tuple[str, int]]:
    order = _state_names()
    return sorted(((s, n) for s, n in counts.items() if n),
                  key=lambda item: order.index(item[0]) if item[0] in order else len(order))


def _clock(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds).astimezone().isoformat(sep=" ", timespec="milliseconds")


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


# -- nepi-lab sweep status ----------------------------------------------------------------

#: Rows of ``nepi-lab sweep status`` shown without ``--all``.
SWEEP_ROWS = 40
#: Characters of a failed run's reason in ``nepi-lab sweep status`` (sweep.json has all of it).
FAILURE_WIDTH = 70


def _sweep_status(args: argparse.Namespace) -> int:
    from ._summary import format_seconds, print_rows
    from .runner.sweep import load_sweep

    if not os.path.isdir(args.sweep_dir):
        raise UserError(f"{args.sweep_dir}: no such directory" if not os.path.exists(args.sweep_dir)
                        else f"{args.sweep_dir}: not a directory (a sweep is <results>/<exp_id>/)")
    sweep = load_sweep(args.sweep_dir)
    counts = sweep.counts()
    abandoned = len(sweep.abandoned)
    print(f"sweep {sweep.exp_id} in {sweep.path}")
    names = ", ".join(sweep.parameters) or "no parameters"
    print(f"  {len(sweep.points)} points ({names}) x {sweep.repetitions} repetitions "
          f"= {len(sweep.runs)} runs")
    print(f"  {', '.join(f'{counts[s]} {s}' for s in ('done', 'failed', 'pending', 'running'))}, "
          f"{abandoned} abandoned" + (f" (kept in {sweep.path}/abandoned)" if abandoned else ""))
    if sweep.in_progress():
        print("  being run now: a live process holds its lock (sweep.lock)")
    elif counts["running"]:
        print(f"  no process is running it: the {counts['running']} running were interrupted, and the "
              f"next run() makes them again")
    runs = sweep.runs
    shown = runs if args.all else runs[:SWEEP_ROWS]
    rows = []
    for entry in shown:
        point = sweep.points[entry["point"]]
        start, end = entry.get("start"), entry.get("end")
        timed = isinstance(start, (int, float)) and isinstance(end, (int, float))
        took = format_seconds(end - start) if timed else ""
        failure = " ".join(str(entry.get("failure") or "").split())
        if len(failure) > FAILURE_WIDTH:
            failure = failure[:FAILURE_WIDTH - 3] + "..."
        rows.append((*(_shown_value(point.get(p)) for p in sweep.parameters), str(entry["repetition"]),
                     entry["state"], took, entry.get("run_dir") or "", failure))
    print()
    print_rows((*sweep.parameters, "repetition", "state", "duration", "run", "failure"), rows)
    if len(shown) < len(runs):
        print(f"... {len(runs) - len(shown)} more runs not shown (--all shows every run)")
    return 0


# -- nepi-lab run ------------------------------------------------------------------------


def _assignment(text: str) -> tuple[str, str, str]:
    """``NAME_OR_GUID.ATTR=VALUE`` -> (who, attribute, value); the name may hold dots."""
    target, equals, value = text.partition("=")
    who, dot, attribute = target.rpartition(".")
    if not equals or not dot or not who or not attribute:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME_OR_GUID.ATTRIBUTE=VALUE "
                                         "(e.g. server.port=8080 or 3.count=5)")
    return who, attribute, value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _resolve(ec: ExperimentController, who: str) -> int:
    """The guid a ``--set`` names: a resource's ``name``, else its guid."""
    named = [g for g in ec.resources if ec.get(g, "name") == who]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise UserError(f"{len(named)} resources are named {who!r} (guids {', '.join(map(str, named))}): "
                        "give the guid instead")
    if who.isdigit() and int(who) in ec.resources:
        return int(who)
    names = sorted({n for g in ec.resources if (n := ec.get(g, "name"))})
    known = f"names: {', '.join(names)}; " if names else ""
    guids = ec.resources
    shown = f"{guids[0]}-{guids[-1]}" if guids == list(range(guids[0], guids[-1] + 1)) else \
        ", ".join(map(str, guids))
    raise UserError(f"no resource named {who!r}{_did_you_mean(who, names)} ({known}guids: {shown})")


def _load(path: str, results: str | None) -> ExperimentController:
    from .core.controller import ExperimentController

    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or directory")
    kwargs = {} if results is None else {"local_dir": results}
    try:
        return ExperimentController.load(path, **kwargs)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def _run(args: argparse.Namespace) -> int:
    from .core.errors import ExperimentFailedError, InvalidInputError, WaitTimeoutError
    from .core.states import ResourceState

    ec = _load(args.file, args.results)
    out = sys.stdout
    status = 0
    try:
        with ec:  # leaving it releases everything; left by Ctrl-C, the run is recorded as interrupted
            for who, attribute, value in args.set:
                try:
                    ec.set(_resolve(ec, who), attribute, value)
                except (UserError, InvalidInputError) as exc:
                    raise UserError(f"--set {who}.{attribute}={value}: {exc}") from None
            print(f"nepi-lab run: experiment {ec.exp_id!r} from {args.file}, {len(ec.resources)} resources, "
                  f"run {ec.run_id}", file=out, flush=True)
            progress = Progress(ec, out)
            try:
                ec.deploy()
                asyncio.run(progress.follow(ec.wait_finished_async(timeout=args.timeout)))
            except KeyboardInterrupt:
                progress.close()
                print("nepi-lab run: interrupted; stopping and releasing everything, collecting the traces "
                      "(Ctrl-C again stops waiting for it: it then completes before the command exits)",
                      file=sys.stderr, flush=True)
                raise
            except ExperimentFailedError:
                status = FAILED_STATUS
            except WaitTimeoutError as exc:
                status = TIMEOUT_STATUS
                print(f"nepi-lab run: --timeout {args.timeout:g} s ran out with {len(exc.pending)} resources "
                      "not finished; stopping and releasing everything", file=sys.stderr, flush=True)
            finally:
                progress.close()
    except KeyboardInterrupt:
        if any(ec.state(g) != ResourceState.RELEASED for g in ec.resources):
            return INTERRUPTED_STATUS  # interrupted again: the release completes at exit
        status = INTERRUPTED_STATUS
    _report(ec.run_dir, out)
    if status == FAILED_STATUS:
        print("the experiment FAILED: a critical resource failed, so everything was stopped", file=out)
    return status


def _report(run_dir: str, out: TextIO) -> None:
    """The summary of a released run, from its directory (as ``nepi-lab show`` reads it)."""
    from ._summary import print_failures, print_table, read_summary

    summary = read_summary(run_dir)
    print(file=out)
    print_table(summary, out)
    if summary.failures:
        print("\nfailures:", file=out)
        print_failures(summary, out)
    print(f"\nrun directory: {run_dir}", file=out)
    print(f"  nepi-lab show {run_dir}     or in Python: nepi_lab.load_run({run_dir!r})", file=out)


class Progress:
    """Resources per state while a run goes on, on ``out``.

    On a terminal, one line rewritten in place at most 10 times a second; otherwise
    (a log, a pipe, CI) a plain line whenever the counts changed, at most once a
    second, and when the wait ends.  The counts follow the
    controller's events (a subscriber: no polling of the resources), drawn from this
    thread's own asyncio loop while it waits.
    """

    def __init__(self, ec: ExperimentController, out: TextIO, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.interval = 0.1 if self.tty else 1.0
        self._lock = threading.Lock()
        self._counts = Counter(ec.state(g).name for g in ec.resources)
        self._changed = True
        self._start = time.monotonic()
        self._shown = ""
        self._unsubscribe = ec.events.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:  # in the controller's loop thread
        with self._lock:
            if event.old is not None:
                self._counts[event.old.name] -= 1
            self._counts[event.new.name] += 1
            self._changed = True

    def line(self) -> str:
        with self._lock:
            counts = Counter(self._counts)
            self._changed = False
        parts = ", ".join(f"{n} {s}" for s, n in _in_state_order(counts))
        return f"{time.monotonic() - self._start:6.1f} s  {parts}"

    def draw(self, last: bool = False) -> None:
        if not (self._changed or last or self.tty):
            return
        text = self.line()
        if self.tty:
            self.out.write("\r\x1b[K" + text + ("\n" if last else ""))
        elif text.split("  ", 1)[-1] != self._shown.split("  ", 1)[-1]:  # a line per change of counts
            self.out.write(text + "\n")
        self._shown = text
        self.out.flush()

    async def follow(self, wait: Any) -> None:
        """Await ``wait`` (a controller wait), drawing the counts meanwhile."""
        waiter = asyncio.ensure_future(wait)
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=self.interval)
                if done:
                    break
                self.draw()
        finally:
            if waiter.done():
                self.draw(last=True)
            else:
                waiter.cancel()
        waiter.result()

    def close(self) -> None:
        """Stop following; on a terminal, end the line being rewritten."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            if self.tty and self._shown and not self._shown.endswith("\n"):
                self.out.write("\n")
                self.out.flush()


# -- nepi-lab demo, version --------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(local_dir=args.results)


def _version(args: argparse.Namespace) -> int:
    from . import __version__

    print(__version__)
    return 0


# -- nepi-lab cleanup --------------------------------------------------------------------


def _cleanup(args: argparse.Namespace) -> int:
    """Clean what dead runs left: recorded runs (processes, traces, hosts), network
    namespaces, then what dead controllers left of ns-3 (processes, the shared process's
    temporary folder).  Exit status 0: done (or nothing to do); 1: namespaces need root;
    3: a host could not be reached, its leftovers stay recorded for the next cleanup."""
    status, did = _cleanup_runs(args)
    namespaces_status, namespaces_did = _cleanup_namespaces(args)
    ns3_did = _cleanup_ns3(args)
    if not (did or namespaces_did or ns3_did):
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


# -- nepi-lab check -----------------------------------------------------------------------

#: Characters of a check's observed value and message in ``nepi-lab check``'s table.
CHECK_WIDTH = 60


def _short(value: Any, width: int = CHECK_WIDTH) -> str:
    text = " ".join(str("" if value is None else value).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _check(args: argparse.Namespace) -> int:
    from ._summary import print_rows
    from .lab import Lab

    if not os.path.isfile(args.lab):
        raise UserError(f"{args.lab}: no such file" if not os.path.exists(args.lab)
                        else f"{args.lab}: not a file (a lab spec, .yaml or .json)")
    lab = Lab.load(args.lab)
    grades = lab.grade(args.runs, student_from=args.student_from)
    print(f"lab {lab.title or os.path.basename(args.lab)}: {len(lab.checks)} checks, "
          f"{lab.max_points:g} points, {len(grades.totals)} runs")
    for student, rows in grades.frame.groupby("student", sort=False):
        print(f"\n{student}  ({rows['path'].iloc[0]})")
        print_rows(("check", "result", "observed", "expected", "points", "message"),
                   [(_short(r.name, 50), "pass" if r.passed else ("FAIL" if r.evaluated else "ERROR"),
                     _short(r.observed, 30), _short(r.expected, 30),
                     f"{r.points:g}/{r.max_points:g}", _short(r.message))
                    for r in rows.itertuples(index=False)])
    print("\ntotals:")
    print_rows(("student", "passed", "points", "percent"),
               [(str(t.student), f"{t.passed}/{t.checks}", f"{t.points:g}/{t.max_points:g}",
                 f"{t.percent:g} %") for t in grades.totals.itertuples(index=False)])
    if args.csv:
        grades.to_csv(args.csv, totals=args.totals)
        print(f"\ngrades written to {args.csv}" + (f", totals to {args.totals}" if args.totals else ""))
    elif args.totals:
        grades.totals.to_csv(args.totals, index=False)
        print(f"\ntotals written to {args.totals}")
    failed = int((~grades.frame["passed"]).sum())
    if failed:
        print(f"{failed} of {len(grades.frame)} checks failed", file=sys.stderr)
        return FAILED_STATUS
    return 0


def _cleanup_ns3(args: argparse.Namespace) -> bool:
    from .resources.ns3._process import cleanup_leftovers

    report = cleanup_leftovers(dry_run=args.dry_run)
    if report.killed:
        print(f"{'would kill' if args.dry_run else 'killed'} {len(report.killed)} ns-3 processes of dead "
              f"controllers ({', '.join(map(str, report.killed))})")
    for path in report.folders:
        print(f"{'would remove' if args.dry_run else 'removed'} the ns-3 folder {path} of a dead controller")
    for pid, paths in report.live.items():
        print(f"kept the ns-3 folder{'s' if len(paths) > 1 else ''} {', '.join(paths)} of a live "
              f"controller (process {pid})")
    return bool(report.killed or report.folders)


# -- the parser --------------------------------------------------------------------------

_EPILOG = ("exit status: 0 done; 1 the experiment failed (check: a check failed); 2 a user error (one "
           "line on stderr); "
           "3 cleanup could not reach a host; 124 run --timeout ran out; 130 run interrupted by Ctrl-C")


def build_parser() -> argparse.ArgumentParser:
    """The ``nepi-lab`` argument parser: one subcommand per action, each with its description."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="nepi-lab", epilog=_EPILOG,
        description="Network experiments with nepi_lab: run saved experiments, show finished runs and "
                    "sweeps, list resource types, run the demo.")
    parser.add_argument("--version", action="version", version=f"nepi-lab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description, epilog=_EPILOG)

    run = command("run", "run a saved experiment headless",
                  "Run a saved experiment (the JSON file of ec.save(), or a run directory: its "
                  "experiment.json) in a new run, show the resources per state while it goes on, "
                  "then the summary. Ctrl-C stops and releases everything and records the run as "
                  "interrupted.")
    run.add_argument("file", metavar="FILE", help="the experiment: a .json file or a run directory")
    run.add_argument("--set", metavar="NAME_OR_GUID.ATTR=VALUE", action="append", default=[],
                     type=_assignment,
                     help="set an attribute before deploying: the resource by its name or guid, the "
                          "value converted to the attribute's type (repeatable)")
    run.add_argument("--results", metavar="DIR",
                     help="results root (default: $NEPI_LAB_RESULTS, else ~/.local/share/nepi_lab/results)")
    run.add_argument("--timeout", metavar="S", type=_seconds,
                     help="stop and release everything if the experiment has not finished after S "
                          "seconds (exit status 124)")
    run.set_defaults(run=_run)

    show = command("show", "show a finished run from its directory",
                   "Show a run from its directory alone (no controller, no hosts): how it ended, each "
                   "resource's outcome, exit status and first line of output, the failures, the time "
                   "each state was entered and the traces collected.")
    show.add_argument("run_dir", metavar="RUN_DIR", help="the run directory, <results>/<exp_id>/<run_id>")
    show.set_defaults(run=_show)

    types = command("types", "list the resource types, or show one",
                    "Without a name, list the registered resource types with their help; with a name, "
                    "show that type's attributes (type, default, flags, allowed values, help) and traces.")
    types.add_argument("name", metavar="NAME", nargs="?", help="a type name, such as linux::Application")
    types.set_defaults(run=_types)

    check = command(
        "check", "evaluate a lab's checks against run directories",
        "Evaluate the checks of a lab spec file (YAML or JSON, see nepi_lab.lab.spec) against run "
        "directories: print, for each run, one row per check (pass, FAIL, or ERROR when it could not be "
        "evaluated, and why), then each run's points. Exit status 1 when a check failed.")
    check.add_argument("lab", metavar="LAB", help="the lab spec file (.yaml, .yml or .json)")
    check.add_argument("runs", metavar="RUN_DIR", nargs="+",
                       help="run directories, folders holding run directories, or glob patterns "
                            "(quoted: 'submissions/*')")
    check.add_argument("--csv", metavar="FILE", help="write the grades, one row per run and check, as CSV")
    check.add_argument("--totals", metavar="FILE", help="write the totals, one row per run, as CSV")
    check.add_argument("--student-from", choices=("auto", "parent", "dir", "exp_id", "parameter"),
                       default="auto",
                       help="how a run's student is named: auto (default) the folder given or matched when "
                            "it holds the run directory, else the run directory's parent; parent: the "
                            "folder holding the run directory; dir: the run directory's name; exp_id: the "
                            "run's exp_id; parameter: the run's 'student' parameter")
    check.set_defaults(run=_check)

    demo = command("demo", "run a small real experiment on this machine",
                   "Run a small real experiment on this machine (an echo server, three clients started "
                   "by a condition, an application that fails on purpose) and print its summary and "
                   "its run directory.")
    demo.add_argument("--results", metavar="DIR",
                      help="results root (default: $NEPI_LAB_RESULTS, else ~/.local/share/nepi_lab/results)")
    demo.set_defaults(run=_demo)

    sweep = command("sweep", "look at a sweep's directory",
                    "Look at a parameter sweep (nepi_lab.Sweep) from its directory alone.")
    sweep_commands = sweep.add_subparsers(dest="sweep_command", required=True, metavar="{status}")
    status = sweep_commands.add_parser(
        "status", help="a sweep's counts per state and its runs", epilog=_EPILOG,
        description="Show a sweep from its directory alone (sweep.json and its run directories; no "
                    "pandas): its parameters, how many runs are done, failed, pending, running or "
                    f"abandoned, and one row per run (the point, repetition, state, duration, failure in "
                    f"short), the first {SWEEP_ROWS} unless --all.")
    status.add_argument("sweep_dir", metavar="DIR", help="the sweep directory, <results>/<exp_id>")
    status.add_argument("--all", action="store_true", help=f"show every run, not only the first {SWEEP_ROWS}")
    status.set_defaults(run=_sweep_status)

    command("version", "print the version", "Print the version of nepi_lab.").set_defaults(run=_version)

    cleanup = command(
        "cleanup", "stop what crashed runs or unreachable hosts left",
        "Stop what crashed runs (or unreachable hosts) left: processes here and on SSH hosts, network "
        "namespaces nl<tag>-* and interfaces, ns-3 processes and folders $TMPDIR/nepi_lab-ns3-* of dead "
        "controllers; collect their traces into the run directories; never "
        "touch a live run's. Exit status 3: a host could not be reached.")
    cleanup.add_argument("--dry-run", action="store_true", help="only list what would be done")
    cleanup.set_defaults(run=_cleanup)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nepi-lab`` console script; returns the exit status."""
    from .core.errors import InvalidInputError, NepiError

    args = build_parser().parse_args(argv)
    prefix = " ".join(filter(None, ("nepi-lab", args.command, getattr(args, "sweep_command", None))))
    try:
        return args.run(args)
    except (UserError, InvalidInputError) as exc:
        _error(prefix, exc)
        return USAGE_STATUS
    except KeyboardInterrupt:
        return INTERRUPTED_STATUS
    except OSError as exc:  # a file or folder the user named, unreadable (ResultsWriteError too)
        where = f"{exc.filename}: " if exc.filename else ""
        _error(prefix, f"{where}{exc.strerror or exc}")
        return USAGE_STATUS
    except NepiError as exc:  # the experiment went wrong: said, not a traceback
        _error(prefix, exc)
        return FAILED_STATUS


def _error(prefix: str, message: object) -> None:
    """One line on stderr (a message of several lines is joined)."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    print(f"{prefix}: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
