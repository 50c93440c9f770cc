"""Where a sweep's runs are made: in this process (one at a time, or ``max_parallel``
at once) or on the workers of a Dask distributed cluster.

Every executor makes one run from the same three things (the build function, the
point, the sweep's ``exp_id``) and reports a :class:`Outcome`; only the sweep's own
thread (:meth:`Sweep.run`'s) writes the sweep's record.

In this process
    :class:`LocalExecutor`.  The sweep's thread makes each run's controller (so the
    record names its run directory before it starts) and, with ``max_parallel`` 1,
    builds, deploys and waits for it itself, as a script would; with more, one thread
    per run does so.  Concurrent runs never share a name: each has its own controller,
    hence its own run directory (``run_id``s are distinct even when made in the same
    microsecond), its own namespace tag (``nl<tag>-``) and its own folders on its
    hosts.  Ports are the experiment's: two runs of an experiment that listens on a
    fixed port of the same host collide, as two scripts would (see the README's
    Sweeps section).

On a Dask cluster
    :class:`DaskExecutor`.  Each run is a task (:func:`remote_run`) that a worker runs
    on its machine, in a temporary results folder: the worker's processes, its
    namespaces, the SSH hosts it reaches.  The finished run directory comes back as
    a tar archive in the task's result and is unpacked into the sweep directory under
    the same name, atomically (a run directory appears whole or not at all).  A
    worker that dies mid-run loses only its temporary folder: the scheduler gives the
    task to another worker (up to its ``allowed-failures``, 3 by default, after which
    the run is recorded as failed, saying so), and the client takes each task's
    result once.  Processes the dead worker's run had started are left to
    ``nepi-lab cleanup`` on that machine, as for any killed controller.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import io
import itertools
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..core.controller import ExperimentController
from ..core.errors import InvalidInputError, SweepError, WaitTimeoutError
from ..core.states import ECState

#: How often a run made in a thread of its own looks whether the sweep is stopping, in
#: seconds: the longest a stop (Ctrl-C in the sweep's thread) waits for a run to notice.
STOP_CHECK = 0.25

_tokens = itertools.count()


@dataclasses.dataclass
class Outcome:
    """How one run ended: ``failure`` (None: it went through) and, for a run made
    elsewhere, its run directory as a tar archive (``run_id``: the folder it holds) and
    when it started and ended there.  ``interrupted``: the sweep stopped it before it
    ended (it is made again later)."""

    failure: str | None = None
    run_id: str | None = None
    archive: bytes | None = None
    start: float | None = None
    end: float | None = None
    interrupted: bool = False


def make_run(ec: ExperimentController, build: Callable[..., Any], point: Mapping[str, Any],
             timeout: float | None, stop: threading.Event | None = None) -> Outcome:
    """Build, deploy and wait for the run of ``ec``, then shut it down: how it ended.

    ``stop`` (set by the sweep's thread) ends the run early, recorded as interrupted in
    its ``experiment.json``; without it, as in the sweep's own thread, Ctrl-C does the
    same and the KeyboardInterrupt goes on.
    """
    failure = None
    interrupted = False
    try:
        with ec:  # always released, also on Ctrl-C (then recorded as interrupted)
            try:
                build(ec, **point)
            except Exception as exc:  # the user's code: any error fails this run only
                failure = f"build() raised {type(exc).__name__}: {exc}"
            else:
                ec.deploy()
                if stop is None:
                    ec.wait_finished(timeout=timeout)
                else:
                    interrupted = _wait_or_stop(ec, timeout, stop)
                    if interrupted:
                        ec._close(None, "interrupted")
    except Exception as exc:  # deploy refused, the experiment failed, a timeout
        failure = failure or reason(ec, exc)
    if interrupted:
        return Outcome(interrupted=True)
    if failure is None and ec.ecstate == ECState.FAILED:
        failure = reason(ec, None)
    return Outcome(failure=failure)


def _wait_or_stop(ec: ExperimentController, timeout: float | None, stop: threading.Event) -> bool:
    """Wait until ``ec``'s resources are finished (WaitTimeoutError past ``timeout``), or
    until ``stop`` is set: True if stopped."""
    waited = 0.0
    while not stop.is_set():
        step = STOP_CHECK if timeout is None else min(STOP_CHECK, max(timeout - waited, 0.0))
        try:
            ec.wait_finished(timeout=step)
        except WaitTimeoutError:
            waited += step
            if timeout is not None and waited >= timeout:
                ec.wait_finished(timeout=0)  # raises the timeout's error with its message
            continue
        return False
    return True


def reason(ec: ExperimentController, exc: BaseException | None) -> str:
    """Why a run failed, in one line: the first critical failure, else the error."""
    failures = ec.description().get("failures", [])
    critical = [f for f in failures if f.get("critical", True)]
    if critical:
        f = critical[0]
        return f"resource {f.get('guid')} ({f.get('rtype')}) failed in {f.get('step')}: " \
               f"{f.get('error')}: {f.get('message')}"
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"
    return "the experiment failed"


class LocalExecutor:
    """Runs in this process: in the sweep's thread (``inline``: one at a time, as a
    script would, so that Ctrl-C reaches it) or in a thread each."""

    def __init__(self, max_parallel: int, inline: bool) -> None:
        self.parallelism = max_parallel
        self.inline = inline and max_parallel == 1
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, build: Callable[..., Any], point: Mapping[str, Any], ec: ExperimentController,
              timeout: float | None) -> concurrent.futures.Future[Outcome]:
        """Make the run of ``ec``; its outcome, done at once when made in this thread."""
        future: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        if self.inline:
            future.set_result(make_run(ec, build, point, timeout))
            return future

        def body() -> None:
            try:
                future.set_result(make_run(ec, build, point, timeout, self._stop))
            except BaseException as exc:  # noqa: BLE001  (handed to the sweep's thread)
                future.set_exception(exc)

        thread = threading.Thread(target=body, name=f"nepi_lab-sweep-run-{next(_tokens)}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return future

    @staticmethod
    def outcome(result: Outcome) -> Outcome:
        return result

    def stop(self) -> None:
        """The sweep stops: the runs in progress end, recorded as interrupted."""
        self._stop.set()

    def close(self) -> None:
        """Wait for the runs' threads (after :meth:`stop`, they are releasing)."""
        for thread in self._threads:
            thread.join()


class DaskExecutor:
    """Runs on a Dask distributed cluster through ``client`` (a ``distributed.Client``)."""

    def __init__(self, client: Any, exp_id: str, max_parallel: int | None) -> None:
        try:
            import distributed
        except ImportError:
            raise ModuleNotFoundError("running a sweep on Dask needs dask.distributed: "
                                      "pip install 'nepi_lab[dask]'") from None
        if not isinstance(client, distributed.Client):
            raise InvalidInputError(f"executor must be a dask.distributed.Client (or None: in this "
                                    f"process), not {type(client).__name__}")
        if client.status not in ("running", "connecting", "newly-created"):
            raise InvalidInputError(f"the Dask client is {client.status}: connect it to a scheduler first")
        self.client = client
        self.exp_id = exp_id
        threads = sum(client.nthreads().values()) or 1
        self.parallelism = threads if max_parallel is None else min(threads, max_parallel)
        self._tasks: list[Any] = []

    def start(self, build: Callable[..., Any], point: Mapping[str, Any], ec: None,
              timeout: float | None) -> concurrent.futures.Future[Any]:
        key = f"nepi_lab-{self.exp_id}-{os.getpid()}-{next(_tokens)}"
        try:
            task = self.client.submit(remote_run, build, dict(point), self.exp_id, timeout, key=key,
                                      pure=False)
        except Exception as exc:  # noqa: BLE001  (said in words; nothing was submitted)
            root: BaseException = exc  # the first error raised "from": what could not be pickled
            while root.__cause__ is not None:
                root = root.__cause__
            hint = ""
            if any(word in f"{exc} {root}".lower() for word in ("pickle", "serializ")):
                hint = (" (the build function and its arguments are pickled to the workers: define it at "
                        "module level or in the notebook, without locks, sockets or open files)")
            raise SweepError(None, f"cannot send a run to the Dask cluster{hint}: "
                                   f"{type(root).__name__}: {root}") from exc
        self._tasks.append(task)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        # called in the client's thread: the result is fetched by outcome(), in the sweep's
        task.add_done_callback(lambda _: future.set_result(task))
        return future

    def outcome(self, task: Any) -> Outcome:
        """The outcome of a finished task, fetched from its worker (in the sweep's thread)."""
        try:
            failure, run_id, archive, start, end = task.result()
        except concurrent.futures.CancelledError:
            return Outcome(interrupted=True)
        except Exception as exc:  # noqa: BLE001  (the worker's error, or a worker lost too often)
            name = type(exc).__name__
            if name == "KilledWorker":
                return Outcome(failure=f"its workers died while running it, too often for the scheduler "
                                       f"to try again ({exc})")
            return Outcome(failure=f"on the Dask worker: {name}: {exc}")
        finally:
            task.release()
        return Outcome(failure=failure, run_id=run_id, archive=archive, start=start, end=end)

    def stop(self) -> None:
        """The sweep stops: tasks not begun are cancelled; the runs in progress on the
        workers end on their own and their results are dropped (they are made again)."""
        with contextlib.suppress(Exception):
            self.client.cancel([t for t in self._tasks if not t.done()])

    def close(self) -> None:
        self._tasks = []


def remote_run(build: Callable[..., Any], point: dict[str, Any], exp_id: str,
               timeout: float | None) -> tuple[str | None, str, bytes, float, float]:
    """A Dask task: make one run in a temporary results folder of this worker, and give
    back ``(failure, run_id, the run directory as a tar.gz archive, start, end)`` (wall
    clock times of this machine)."""
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="nepi_lab-sweep-") as results:
        ec = ExperimentController(exp_id=exp_id, local_dir=results, parameters=point)
        outcome = make_run(ec, build, point, timeout)
        end = time.time()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
            tar.add(ec.run_dir, arcname=ec.run_id)
        return outcome.failure, ec.run_id, buffer.getvalue(), start, end


def unpack(archive: bytes, run_id: str, sweep_dir: str) -> str:
    """Put the run directory ``run_id`` from ``archive`` into ``sweep_dir``, whole or not
    at all; returns its path.  Members outside ``run_id/``, links leaving it and special
    files are refused (tarfile's ``data`` filter)."""
    target = os.path.join(sweep_dir, run_id)
    if os.path.lexists(target):
        raise FileExistsError(f"{target} exists already")
    staging = tempfile.mkdtemp(prefix=".incoming-", dir=sweep_dir)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.name != run_id and not member.name.startswith(run_id + "/"):
                    raise ValueError(f"the archive of run {run_id} holds {member.name!r}")
            tar.extractall(staging, filter="data")
        os.rename(os.path.join(staging, run_id), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
