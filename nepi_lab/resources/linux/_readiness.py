"""When an application counts as STARTED: at once, or once it is *ready*.

An application is STARTED once its command was spawned.  A client conditioned on a
server's STARTED then races the server's start-up (NEPI had the same race: its own
condition test lost it in 13 % of runs, and its users added delays).  These
attributes of ``linux::Application`` make STARTED mean ready, for any command:

``readyPort``     a TCP port that listens on the host (in the node's network namespace)
``readyPattern``  a regular expression (Python's ``re``) found in the stdout trace
``readyFile``     a file that exists on the host (relative: to the folder the command
                  runs in)
``readyTimeout``  seconds to wait for them (default 30): past it, or if the command ends
                  with an error first, the application fails, saying which was not met

With several set, all must hold.  A command that ends with status 0 before it was seen
ready counts as done (FINISHED), as for the typed servers.  The typed tools with their
own readiness (``linux::Iperf3Server``, ``linux::Tcpdump``) keep theirs.  The checks
are made as the typed servers' are: backing off from 2 ms to 50 ms, from the
controller (one ``/proc/net/tcp`` read, one read of stdout, one ``test -e`` each).
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any

from ...core.attributes import Attribute, Types
from ...core.errors import AttributeValueError

if TYPE_CHECKING:
    from .application import Application

DEFAULT_TIMEOUT = 30.0


def _check_pattern(rm: Any, _old: Any, new: Any) -> Any:
    if new not in (None, ""):
        try:
            re.compile(new)
        except re.error as exc:
            raise AttributeValueError(rm.guid, rm._rtype, "readyPattern", new,
                                      f"not a regular expression: {exc}") from None
    return new


ATTRIBUTES = (
    Attribute("readyPort", "STARTED once this TCP port listens on the host (the command is ready)",
              type=Types.Integer, range=(1, 65535)),
    Attribute("readyPattern", "STARTED once this regular expression is found in stdout",
              set_hook=_check_pattern),
    Attribute("readyFile", "STARTED once this file exists on the host (relative: to the folder the "
              "command runs in)"),
    Attribute("readyTimeout", "seconds to wait for readyPort, readyPattern and readyFile before failing",
              type=Types.Double, default=DEFAULT_TIMEOUT, range=(0, None)),
)

NAMES = ("readyPort", "readyPattern", "readyFile")


def wanted(app: Application) -> bool:
    """Whether any readiness attribute is set."""
    return any(app.get(name) not in (None, "") for name in NAMES)


def describe(app: Application) -> str:
    """What ``app`` waits for, in words (for a timeout's message)."""
    said = []
    if app.get("readyPort") is not None:
        said.append(f"TCP port {app.get('readyPort')} listening")
    if app.get("readyPattern") not in (None, ""):
        said.append(f"{app.get('readyPattern')!r} in stdout")
    if app.get("readyFile") not in (None, ""):
        said.append(f"file {app.get('readyFile')!r}")
    return " and ".join(said)


async def until_listening(app: Application, port: int) -> None:
    """Return once TCP ``port`` listens on ``app``'s host (``readyPort``; the typed servers')."""
    executor = app.node.executor

    async def listening() -> bool:
        return port in await executor.listening_tcp_ports()
    await app._probe(listening)


async def until_ready(app: Application, folder: str) -> None:
    """Return once every readiness attribute of ``app`` holds (``folder``: where its
    command runs, for a relative ``readyFile``)."""
    executor = app.node.executor
    port, pattern, file = app.get("readyPort"), app.get("readyPattern"), app.get("readyFile")
    if port is not None:
        await until_listening(app, port)
    if pattern not in (None, ""):
        compiled = re.compile(pattern)
        stdout = app.host_path("stdout")

        async def printed() -> bool:
            text = await executor.read_file(stdout)
            return bool(compiled.search(text if isinstance(text, str) else str(text)))
        await app._probe(printed)
    if file not in (None, ""):
        path = file if file.startswith("/") else f"{folder.rstrip('/')}/{file}"
        test = f"test -e {shlex.quote(path)}"

        async def exists() -> bool:
            return (await executor.run(test, check=False)).returncode == 0
        await app._probe(exists)
