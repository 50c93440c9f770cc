"""The executor for this machine: commands as local processes, files as local files."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
from collections.abc import Sequence
from typing import Any

from ...core.traces import TraceAttr, read_trace_file
from . import _process, _tracking
from ._process import Process, descriptors, raise_open_file_limit, read_pipe, write_pipe
from .executor import (
    MAKEDIRS_ATTEMPTS,
    STDERR_TAIL,
    CommandResult,
    CommandTimeoutError,
    Executor,
    parse_proc_net_tcp,
)

log = logging.getLogger("nepi_lab")

#: The shell that runs command lines, as ``subprocess.run(shell=True)`` does.
SHELL = "/bin/sh"

#: A trace collected across file systems (no hard link) is copied in the loop up to this
#: size (tens of microseconds), larger ones in a worker thread.
COPY_IN_LOOP = 256 * 1024

_RUN_VARIABLE = os.fsencode(_tracking.RUN_VARIABLE)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _raise(error: OSError) -> None:
    raise error


class LocalExecutor(Executor):
    """Runs commands on this machine, each in its own process group.

    Parameters
    ----------
    prefix : sequence of str
        Put before every command's argv, e.g. ``["ip", "netns", "exec", "h1"]`` to run
        inside a network namespace (files stay this machine's).
    where : str
        How messages name the host.

    Commands inherit the controller's environment as it was when the executor was
    made (at the node's deploy), plus what each call adds.

    Once :meth:`track` named the run, every command carries its marker and, where
    this machine allows it and there is no ``prefix`` (``ip netns exec`` mounts a
    ``/sys`` of its own; a namespace's processes are found through the namespace
    anyway), runs in the node's cgroup.  The shell moves itself there before it runs
    the command, and gets back the open-file limit the interpreter started with
    (:func:`raise_open_file_limit`, called when the first executor is made): a few
    shell builtins on the same line, so ``$0``, ``$@`` and line numbers in error
    messages stay as they were.

    Releasing an application (:meth:`stop_owner`) kills the processes of the node's
    cgroup that carry its marker (without a cgroup: those of the whole machine, read
    from ``/proc``); releasing the node (:meth:`stop_tracked`) kills everything left in
    its cgroup, also a process that rewrote its environment, and removes it.  One
    cgroup per node rather than per application: making and removing 1,000 cgroups
    would cost a third of a millisecond each on the spawn path.
    """

    def __init__(self, prefix: Sequence[str] = (), where: str = "localhost") -> None:
        raise_open_file_limit()
        self.prefix = list(prefix)
        self.where = where
        self._processes: set[Process] = set()
        self._base_env = dict(os.environ)
        # encoded once: Popen would encode every variable of every command again
        self._base_env_bytes = {os.fsencode(k): os.fsencode(v) for k, v in self._base_env.items()}
        self._owners: set[int] = set()  # owners that started processes here, not swept since
        self._cgroups: _tracking.RunCgroups | None = None
        self._cgroup_made: asyncio.Future[None] | None = None  # the node's cgroup, made off the loop
        self._sweeps = _tracking.SweepQueue(self._sweep)

    def __repr__(self) -> str:
        return f"<LocalExecutor {self.where}{' ' + ' '.join(self.prefix) if self.prefix else ''}>"

    def track(self, run: str, owner: int) -> None:
        super().track(run, owner)
        if not self.prefix:
            self._cgroups = _tracking.run_cgroups(run)
            if self._cgroups is not None:
                self._cgroup_made = _tracking.prepare(self._cgroups, owner)

    async def _cgroup_ready(self) -> None:
        """Wait until the worker thread made the node's cgroup (see :func:`._tracking.prepare`):
        there ``mkdir`` may wait for the kernel's ``cgroup_mutex``, which must not block the loop."""
        made = self._cgroup_made
        if made is not None:
            if not made.done():
                await asyncio.shield(made)
            self._cgroup_made = None

    def _argv(self, command: str) -> list[str]:
        head = []
        if self._cgroups is not None and self.owner is not None:
            procs = self._cgroups.procs_file(self.owner)
            if procs is not None:
                head.append(f"echo $$ >{shlex.quote(procs)}||exit 125;")
        if _process.original_open_file_limit is not None:
            head.append(f"ulimit -S -n {_process.original_open_file_limit};")
        return [*self.prefix, SHELL, "-c", "".join(head) + command]

    def _environment(self, env: dict[str, str] | None, path: Sequence[str] = (),
                     marker: str | None = None) -> dict[bytes, bytes] | None:
        if not env and not path and marker is None:
            return None
        merged = self._base_env_bytes.copy()
        if path:
            merged[b"PATH"] = os.fsencode(os.pathsep.join([*path, self._base_env.get("PATH", os.defpath)]))
        if env:
            for name, value in env.items():
                merged[os.fsencode(name)] = os.fsencode(value)
        if marker is not None:
            merged[_RUN_VARIABLE] = os.fsencode(marker)
        return merged

    def _marker(self, owner: int | None) -> str | None:
        """The marker of ``owner``'s processes (None: not tracked), noted as started."""
        if self.tracked_run is None or owner is None:
            return None
        value = _tracking.marker(self.tracked_run, owner)
        self._owners.add(owner)
        _tracking.note_started(value)
        return value

    async def _start(self, command: str, argv: list[str], **kwargs: object) -> Process:
        process = await Process.spawn(argv, command=command, **kwargs)  # type: ignore[arg-type]
        self._processes.add(process)
        # forget it once it ended: the set holds only what may still need killing
        process._exit.add_done_callback(lambda _: self._processes.discard(process))
        return process

    # -- commands --------------------------------------------------------------------

    async def run(self, command: str, *, check: bool = True, timeout: float | None = None,
                  input: str | bytes | None = None, cwd: str | None = None,
                  env: dict[str, str] | None = None) -> CommandResult:
        environment = self._environment(env, marker=self._marker(self.owner))
        if self._cgroup_made is not None:
            await self._cgroup_ready()
        held = 3 if input is None else 4  # the pidfd and our ends of the pipes
        await descriptors.acquire(held)
        try:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            in_r = in_w = None
            if input is not None:
                in_r, in_w = os.pipe()
        except BaseException:
            descriptors.release(held)
            raise
        try:  # from here on the process gives the descriptors back (when it ends, or fails)
            process = await self._start(command, self._argv(command), cwd=cwd, env=environment,
                                        stdin=in_r, stdout=out_w, stderr=err_w, reserved=held)
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, in_r):
                if fd is not None:
                    os.close(fd)
        work = [read_pipe(out_r), read_pipe(err_r), process.wait()]
        if in_w is not None:
            work.append(write_pipe(in_w, input.encode() if isinstance(input, str) else input))  # type: ignore[union-attr]
        gathered = asyncio.gather(*work)
        try:
            results = await asyncio.wait_for(gathered, timeout)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            process.kill()
            raise CommandTimeoutError(command, timeout or 0.0, "", self.where) from None
        except BaseException:  # cancelled: leave nothing running
            process.kill()
            raise
        result = CommandResult(results[2], _decode(results[0]), _decode(results[1]), command)
        if check:
            result.check_returncode(self.where)
        return result

    async def spawn(self, command: str, *, stdout: str, stderr: str, stdin: str | None = None,
                    cwd: str | None = None, env: dict[str, str] | None = None,
                    path: Sequence[str] = (), owner: int | None = None) -> Process:
        environment = self._environment(env, path, self._marker(self.owner if owner is None else owner))
        if self._cgroup_made is not None:
            await self._cgroup_ready()
        argv = self._argv(command)
        await descriptors.acquire(1)  # before the files are opened: they need descriptors too
        files: list[Any] = []
        try:
            out = open(stdout, "ab")  # noqa: SIM115 - handed to the child, closed below
            files.append(out)
            err = out if stderr == stdout else open(stderr, "ab")  # noqa: SIM115
            files.append(err)
            inp = open(stdin, "rb") if stdin is not None else None  # noqa: SIM115
            files.append(inp)
        except BaseException:
            descriptors.release(1)
            for f in files:
                if f is not None:
                    f.close()
            raise
        try:  # the process gives the descriptor back (when it ends, or fails)
            return await self._start(command, argv, cwd=cwd, env=environment,
                                     stdin=inp, stdout=out, stderr=err, reserved=1)
        finally:
            for f in files:
                if f is not None:
                    f.close()

    def kill_all(self) -> int:
        alive = [p for p in self._processes if p.returncode is None]
        for process in alive:
            process.kill()
        return len(alive)

    queues_spawns = True  # for the descriptors its processes hold (see _process.Descriptors)

    def spawn_queue(self) -> str | None:
        if not descriptors.full:
            return None
        return (f"waits for a running process to end: the open-file limit leaves descriptors for "
                f"{descriptors.capacity} processes at once ({descriptors.waiting} commands waiting)")

    async def stop_owner(self, owner: int) -> int:
        if self.tracked_run is None or owner not in self._owners:
            return 0  # it started nothing here
        value = _tracking.marker(self.tracked_run, owner)
        killed = await self._sweeps.stop([value])
        self._owners.discard(owner)
        _tracking.note_swept([value])
        return killed

    async def stop_tracked(self) -> int:
        if self.tracked_run is None:
            return 0
        if self._cgroup_made is not None:
            await self._cgroup_ready()  # else the worker could make it after it is removed
        cgroups = self._cgroups
        killed = 0
        if cgroups is not None and self.owner is not None and self.owner in cgroups.owners():
            killed += await cgroups.stop(self.owner)  # everything in it, whatever its environment
        if self._owners:
            values = [_tracking.marker(self.tracked_run, owner) for owner in sorted(self._owners)]
            killed += await self._sweeps.stop(values)
            _tracking.note_swept(values)
            self._owners.clear()
        return killed

    async def _sweep(self, values: set[str]) -> int:
        cgroups = self._cgroups
        if cgroups is not None and self.owner is not None and self.owner in cgroups.owners():
            # only the node's cgroup can hold them: no need to read all of /proc
            return _tracking.kill_marked(values, among=lambda: cgroups.pids(self.owner))  # type: ignore[arg-type]
        return _tracking.kill_marked(values)

    async def missing_commands(self, names: Sequence[str], path: Sequence[str] = ()) -> list[str]:
        if self.prefix:  # the namespace or container may see other files: ask it
            return await super().missing_commands(names, path)
        search = os.pathsep.join([*path, self._base_env.get("PATH", os.defpath)])
        import shutil  # here and below: a run that copies nothing does not import it (~2.5 ms)

        return [n for n in names if shutil.which(n, path=search) is None]

    async def listening_tcp_ports(self) -> set[int]:
        if self.prefix:  # /proc/net belongs to the reader's network namespace
            return await super().listening_tcp_ports()
        text = []
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(name) as f:
                    text.append(f.read())
            except OSError:
                continue
        return parse_proc_net_tcp("\n".join(text))

    # -- files -----------------------------------------------------------------------

    async def home_dir(self) -> str:
        return os.path.expanduser("~")

    async def makedirs(self, path: str) -> None:
        try:  # the usual case, one system call: the parent exists
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
        except FileNotFoundError:
            for attempt in range(1, MAKEDIRS_ATTEMPTS + 1):
                try:
                    os.makedirs(path, exist_ok=True)
                    return
                except FileNotFoundError:  # a parent was removed meanwhile (see Executor.makedirs)
                    if attempt == MAKEDIRS_ATTEMPTS:
                        raise

    async def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        if isinstance(data, str):
            data = data.encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)

    async def upload(self, local: str, remote: str) -> None:
        import shutil

        loop = asyncio.get_running_loop()
        if os.path.isdir(local):
            await loop.run_in_executor(None, lambda: shutil.copytree(local, remote, dirs_exist_ok=True))
        else:
            await loop.run_in_executor(None, shutil.copy2, local, remote)

    async def download(self, remote: str, local: str) -> bool:
        try:  # a hard link: instant, and survives the removal of the host's copy
            os.link(remote, local)
            return True
        except FileExistsError:  # collected before (the application ran again)
            if os.path.samefile(remote, local):
                return True
            os.unlink(local)
        except FileNotFoundError:
            if not os.path.exists(remote):
                return False
        except OSError:  # another file system, or links refused: copy below
            pass
        if not os.path.exists(remote):
            return False
        try:
            os.link(remote, local)
        except OSError:  # copy: a small file at once, a large one off the loop (it may be 1 GB)
            import shutil

            try:
                small = os.stat(remote).st_size <= COPY_IN_LOOP
            except FileNotFoundError:
                return False
            if small:
                shutil.copyfile(remote, local)
            else:
                await asyncio.get_running_loop().run_in_executor(None, shutil.copyfile, remote, local)
        return True

    async def download_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        return [await self.download(remote, local) for remote, local in pairs]  # links: no need for tasks

    async def list_files(self, folder: str) -> list[str]:
        try:
            with os.scandir(folder) as entries:
                return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    async def read_file(self, path: str, attr: TraceAttr = TraceAttr.ALL, block: int = 512,
                        offset: int = 0) -> str | bytes | int:
        return read_trace_file(path, attr, block, offset)

    async def tail(self, path: str, size: int = STDERR_TAIL) -> str:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - size))
                return _decode(f.read())
        except FileNotFoundError:
            return ""

    async def remove_tree(self, path: str) -> None:
        try:  # the usual case, an application's folder: a few files, no subfolder
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        break
                    os.unlink(entry.path)
                else:
                    os.rmdir(path)
                    return
        except FileNotFoundError:
            return
        except OSError:
            pass
        try:  # a node's folder (bin/, src/): bottom-up, without importing shutil (~2.5 ms)
            for folder, dirs, files in os.walk(path, topdown=False, onerror=_raise):
                for name in files:
                    os.unlink(os.path.join(folder, name))
                for name in dirs:
                    os.rmdir(os.path.join(folder, name))  # a link to a folder fails: shutil's turn
            os.rmdir(path)
            return
        except OSError:
            pass
        import shutil

        shutil.rmtree(path, ignore_errors=True)

    async def remove_empty_dirs(self, paths: Sequence[str]) -> None:
        for path in paths:
            try:
                os.rmdir(path)
            except OSError:
                return

