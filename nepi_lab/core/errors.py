"""Every error nepi_lab raises, in one tree rooted at :class:`NepiError`.

::

    NepiError
    ├── InvalidInputError (also ValueError)      bad input, refused; nothing changed
    │   ├── UnknownResourceTypeError             .rtype, .suggestions
    │   ├── UnknownGuidError (also KeyError)     .guid
    │   ├── DuplicateGuidError                   .guid
    │   ├── UnknownAttributeError                .guid, .rtype, .attribute, .allowed, .suggestions
    │   ├── AttributeValueError                  .guid, .rtype, .attribute, .value, .allowed
    │   ├── ReadOnlyAttributeError               .guid, .rtype, .attribute, .state
    │   ├── InvalidConnectionError               .guid, .other, .rtype, .other_rtype, .allowed
    │   ├── TimeFormatError                      .value
    │   ├── UnsafeNameError                      .name, .what
    │   ├── ResultsDirectoryError                .path, .reason
    │   ├── SweepError                           .path, .reason
    │   ├── RunDirectoryError                    .path, .file, .line, .reason
    │   │   └── RunFormatError                   .version, .supported
    │   ├── UnknownTraceError                    .guid, .rtype, .trace, .allowed
    │   │   └── MissingTraceError                .where: a trace by file name never written
    │   ├── ConditionError                       .guid, .action, .others, .state
    │   │   └── ConditionCycleError              .cycle
    │   └── ExperimentFileError                  .path, .reason, .error
    │       ├── ExperimentVersionError           .version, .supported
    │       ├── ExperimentTypeError              .guid, .rtype, .module, .distribution, .suggestions
    │       └── ExperimentAttributeError         .guid, .rtype, .attribute, .allowed, .distribution
    ├── InvalidTransitionError                   .guid, .rtype, .state, .action
    ├── ResourceFailedError                      .guid, .rtype, .state, .failure
    │   └── UnreachableStateError                .guid, .rtype, .state, .target
    ├── ExperimentFailedError                    .failures
    ├── WaitTimeoutError (also TimeoutError)     .timeout, .pending
    ├── ControllerClosedError                    .exp_id
    ├── ResultsWriteError (also OSError)         .guid, .path, .kept, .errno
    ├── MissingCommandsError                     .missing, .where, .guid
    ├── DownloadError                            .url, .where, .guid, .reason
    ├── PackageInstallError                      .packages, .where, .guid, .reason
    └── CommandError                             .command, .returncode, .stderr_tail
        └── CommandTimeoutError (also TimeoutError)  .timeout

Every error keeps the data a user needs to act on it as attributes, and its message
says it in words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class NepiError(Exception):
    """Root of every error raised by nepi_lab."""


class InvalidInputError(NepiError, ValueError):
    """Bad input: refused at the call that made it, leaving the experiment unchanged."""


class UnknownResourceTypeError(InvalidInputError):
    """A resource type name that is not registered."""

    def __init__(self, rtype: str, suggestions: Sequence[str] = ()) -> None:
        self.rtype = rtype
        self.suggestions = list(suggestions)
        msg = f"unknown resource type {rtype!r}"
        if self.suggestions:
            msg += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(msg)


class UnknownGuidError(InvalidInputError, KeyError):
    """A guid that names no resource of this experiment."""

    def __init__(self, guid: Any, known: Iterable[int] = ()) -> None:
        self.guid = guid
        known = sorted(known)
        msg = f"no resource with guid {guid!r} in this experiment"
        if known:
            shown = ", ".join(map(str, known[:10])) + (", ..." if len(known) > 10 else "")
            msg += f" (guids: {shown})"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateGuidError(InvalidInputError):
    """An explicit guid that is already taken."""

    def __init__(self, guid: int, rtype: str) -> None:
        self.guid = guid
        super().__init__(f"guid {guid} is already used by a {rtype} resource")


class UnknownAttributeError(InvalidInputError):
    """An attribute name the resource type does not declare."""

    def __init__(self, guid: int | None, rtype: str, attribute: str, allowed: Iterable[str],
                 aliases: Iterable[str] = ()) -> None:
        self.guid, self.rtype, self.attribute = guid, rtype, attribute
        self.allowed = sorted(allowed)
        #: Close names, among the attributes and their aliases (NEPI's names).
        self.suggestions = _close_names(attribute, [*self.allowed, *aliases])
        who = f"resource {guid} ({rtype})" if guid is not None else rtype
        hint = f" (did you mean {' or '.join(map(repr, self.suggestions))}?)" if self.suggestions else ""
        super().__init__(
            f"{who} has no attribute {attribute!r}{hint}; its attributes are: {', '.join(self.allowed)}"
        )


def _close_names(name: object, names: list[str]) -> list[str]:
    """Up to three of ``names`` close to ``name`` (a typo, another capitalisation)."""
    if not isinstance(name, str):
        return []
    import difflib  # here: only an error's suggestions need it

    by_lower = {n.lower(): n for n in names}
    return [by_lower[n] for n in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.75)]


class AttributeValueError(InvalidInputError):
    """A value of the wrong type, or outside the allowed values or range."""

    def __init__(
        self, guid: int | None, rtype: str, attribute: str, value: Any, reason: str,
        allowed: Sequence[Any] | None = None,
    ) -> None:
        self.guid, self.rtype, self.attribute, self.value = guid, rtype, attribute, value
        self.allowed = list(allowed) if allowed is not None else None
        who = f"resource {guid} ({rtype})" if guid is not None else rtype
        shown = repr(value)
        if len(shown) > 100:  # a 400-digit number, a megabyte of text: its start says enough
            shown = f"{shown[:60]}... ({len(shown)} characters)"
        super().__init__(f"bad value {shown} for attribute {attribute!r} of {who}: {reason}")


class ReadOnlyAttributeError(InvalidInputError):
    """An attribute that may not be set now (design-only after deploy, or read-only)."""

    def __init__(self, guid: int, rtype: str, attribute: str, state: Any, reason: str) -> None:
        self.guid, self.rtype, self.attribute, self.state = guid, rtype, attribute, state
        super().__init__(f"cannot set {attribute!r} of resource {guid} ({rtype}): {reason}")


class InvalidConnectionError(InvalidInputError):
    """Two resources that cannot be connected.

    When the types refuse (see ``ResourceManager.accepts_type``), ``rtype`` is the
    type that refused, ``other_rtype`` the type it refused and ``allowed`` the type
    names ``rtype`` connects to; otherwise they are None, None and ``[]``.
    """

    def __init__(self, guid: int, other: int, reason: str, rtype: str | None = None,
                 other_rtype: str | None = None, allowed: Sequence[str] = ()) -> None:
        self.guid, self.other = guid, other
        self.rtype, self.other_rtype = rtype, other_rtype
        self.allowed = list(allowed)
        super().__init__(f"cannot connect resource {guid} to {other}: {reason}")


class TimeFormatError(InvalidInputError):
    """A time or delay that cannot be read."""

    def __init__(self, value: Any, expected: str) -> None:
        self.value = value
        super().__init__(f"cannot read time {value!r}: expected {expected}")


class UnsafeNameError(InvalidInputError):
    """A name that would reach the file system unsafely (path separators, ``..``)."""

    def __init__(self, name: Any, what: str, rule: str) -> None:
        self.name, self.what = name, what
        super().__init__(f"unsafe {what} {name!r}: {rule}")


class ResultsDirectoryError(InvalidInputError):
    """A results root (``local_dir``) in which no run directory can be made.

    ``path`` is the folder given (made absolute when it is a path at all), ``reason``
    what is wrong with it, in words (a file, not writable, a name too long ...).
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path, self.reason = path, reason
        shown = repr(path)
        if len(shown) > 200:  # a path too long to be one
            shown = f"{shown[:80]}... ({len(shown)} characters)"
        where = "" if path is None else f" in local_dir {shown}"  # None: no folder could be named
        super().__init__(f"cannot keep results{where}: {reason}")


class SweepError(InvalidInputError):
    """A sweep that cannot be made or read: its points, or a sweep directory that holds
    another sweep, or a damaged record (``sweep.json``).

    ``path`` is the sweep directory (None when the definition alone is wrong), ``reason``
    what is wrong, in words.
    """

    def __init__(self, path: str | None, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"sweep {path}: {reason}" if path else f"sweep: {reason}")


class RunDirectoryError(InvalidInputError):
    """A run directory that cannot be read: says which file, and which line, is wrong."""

    def __init__(self, path: str, reason: str, file: str | None = None, line: int | None = None) -> None:
        self.path, self.file, self.line, self.reason = path, file, line, reason
        where = path if file is None else f"{path}/{file}"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"cannot read run directory: {where}: {reason}")


class RunFormatError(RunDirectoryError):
    """A run directory written in a format version this nepi_lab does not know."""

    def __init__(self, path: str, file: str, version: object, supported: Sequence[int]) -> None:
        self.version = version
        self.supported = list(supported)
        known = ", ".join(map(str, self.supported))
        hint = (" (it was written by a newer nepi_lab: upgrade with pip install -U nepi_lab)"
                if isinstance(version, int) and version > max(self.supported) else "")
        super().__init__(path, f"unknown run format version {version!r}; this nepi_lab reads "
                               f"version {known}{hint}", file)


class UnknownTraceError(InvalidInputError):
    """A trace name the resource type does not declare."""

    def __init__(self, guid: int, rtype: str, trace: str, allowed: Iterable[str]) -> None:
        self.guid, self.rtype, self.trace = guid, rtype, trace
        self.allowed = sorted(allowed)
        names = ", ".join(self.allowed) or "none"
        super().__init__(f"resource {guid} ({rtype}) has no trace {trace!r}; its traces are: {names}")


class ConditionError(InvalidInputError):
    """A condition that can never hold."""

    def __init__(self, message: str, guid: Any = None, action: Any = None,
                 others: Sequence[int] = (), state: Any = None) -> None:
        self.guid, self.action, self.others, self.state = guid, action, list(others), state
        super().__init__(message)


class ConditionCycleError(ConditionError):
    """Conditions that wait on each other: the experiment would hang."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__(
            "conditions form a cycle and would never all hold: " + " -> ".join(self.cycle)
        )


class ExperimentFileError(InvalidInputError):
    """A file or run directory that ``ExperimentController.load`` cannot make an experiment of.

    ``path`` is what was given, ``reason`` what is wrong, in words; ``error`` is the
    typed error behind it when the file's content was refused as ``register_resource``
    and friends refuse bad input (an :class:`AttributeValueError`, an
    :class:`InvalidConnectionError` ...), else None.
    """

    def __init__(self, path: object, reason: str, error: BaseException | None = None) -> None:
        self.path, self.reason, self.error = path, reason, error
        super().__init__(f"cannot load experiment {path}: {reason}")


class ExperimentVersionError(ExperimentFileError):
    """An experiment file in a format version this nepi_lab does not read (a newer one)."""

    def __init__(self, path: object, version: object, supported: Sequence[int]) -> None:
        self.version, self.supported = version, list(supported)
        known = ", ".join(map(str, self.supported))
        reason = f"it is format version {version!r}; this nepi_lab reads version {known}"
        if isinstance(version, int) and not isinstance(version, bool) and version > max(self.supported):
            reason += " (the file was written by a newer nepi_lab: upgrade with pip install -U nepi_lab)"
        super().__init__(path, reason)


class ExperimentTypeError(ExperimentFileError):
    """A resource type the file uses that is not registered here: says what to install or import.

    ``module`` and ``distribution`` (``"name version"`` or None) say where the type
    came from when the file was written; ``suggestions`` are the closest registered names.
    """

    def __init__(self, path: object, guid: int, rtype: str, module: str | None,
                 distribution: str | None, suggestions: Sequence[str] = ()) -> None:
        self.guid, self.rtype, self.module, self.distribution = guid, rtype, module, distribution
        self.suggestions = list(suggestions)
        reason = f"resource {guid} has type {rtype!r}, which is not registered here"
        if module == "__main__":
            reason += "; it was defined in a script or a notebook: run the code that defines it, then load"
        elif not module:
            pass  # the file does not say where it came from
        elif distribution:
            package = distribution.split()[0]
            reason += (f"; it comes from module {module!r} of {distribution}: install it "
                       f"(pip install {package}) and import {module}")
        else:
            reason += f"; it comes from module {module!r}: make it importable and import {module}"
        if self.suggestions:
            reason += "; or did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(path, reason)


class ExperimentAttributeError(ExperimentFileError):
    """An attribute the file sets that the installed type does not declare.

    ``distribution`` is the type's distribution as the file recorded it (``"name
    version"``, or None); the message says when the file was written with another
    version than the one installed.
    """

    def __init__(self, path: object, guid: int, rtype: str, attribute: str, allowed: Iterable[str],
                 distribution: str | None = None, installed: str | None = None) -> None:
        self.guid, self.rtype, self.attribute = guid, rtype, attribute
        self.allowed = sorted(allowed)
        self.distribution = distribution
        reason = (f"resource {guid} ({rtype}) sets attribute {attribute!r}, which {rtype} does not "
                  f"declare here; its attributes are: {', '.join(self.allowed)}")
        if distribution and installed and distribution != installed:
            package = distribution.split()[0]
            reason += (f" (the file was written with {distribution}, this is {installed}: "
                       f"install the same version, e.g. pip install '{package}=={distribution.split()[-1]}')")
        super().__init__(path, reason)


class InvalidTransitionError(NepiError):
    """An action that the resource's current state does not allow."""

    def __init__(self, guid: int, rtype: str, state: Any, action: str, reason: str) -> None:
        self.guid, self.rtype, self.state, self.action = guid, rtype, state, action
        super().__init__(
            f"cannot {action} resource {guid} ({rtype}) while it is {getattr(state, 'name', state)}: {reason}"
        )


class ResourceFailedError(NepiError):
    """A resource failed, or one it needs failed."""

    def __init__(self, message: str, guid: int, rtype: str, state: Any, failure: Any = None) -> None:
        self.guid, self.rtype, self.state, self.failure = guid, rtype, state, failure
        super().__init__(message)


class UnreachableStateError(ResourceFailedError):
    """A resource can no longer reach the state something waits for."""

    def __init__(self, guid: int, rtype: str, state: Any, target: Any, failure: Any = None) -> None:
        self.target = target
        why = f": {failure.message}" if failure is not None else ""
        super().__init__(
            f"resource {guid} ({rtype}) is {state.name} and can no longer reach {target.name}{why}",
            guid, rtype, state, failure,
        )


class ExperimentFailedError(NepiError):
    """A critical resource failed, so the experiment was stopped and released."""

    def __init__(self, failures: Sequence[Any]) -> None:
        self.failures = list(failures)
        lines = [f"  - {f}" for f in self.failures] or ["  (no failure recorded)"]
        super().__init__("the experiment failed:\n" + "\n".join(lines))


class WaitTimeoutError(NepiError, TimeoutError):
    """A blocking call ran out of time; says who was where, waiting for what."""

    def __init__(self, what: str, timeout: float, pending: Sequence[str]) -> None:
        self.timeout = timeout
        self.pending = list(pending)
        body = "\n".join(f"  - {p}" for p in self.pending)
        super().__init__(f"{what} timed out after {timeout:g} s; still waiting on:\n{body}")


class ControllerClosedError(NepiError):
    """The controller was shut down; start a new one."""

    def __init__(self, exp_id: str, call: str) -> None:
        self.exp_id = exp_id
        super().__init__(
            f"{call}() called after shutdown() of experiment {exp_id!r}; create a new ExperimentController"
        )


class ResultsWriteError(NepiError, OSError):
    """What a run produced could not be written into the run directory (a full disk).

    The resource's outcome is its own (an application that exited 0 is FINISHED): this
    error is recorded beside it, in ``ec.failures`` and the run's ``experiment.json``,
    and the complete copy is kept where it was (``kept``: the host and path).
    """

    def __init__(self, guid: int | None, path: str, error: OSError, kept: str | None = None) -> None:
        self.guid, self.path, self.kept = guid, path, kept
        who = f"of resource {guid} " if guid is not None else ""
        msg = f"could not write {path} {who}into the run directory: {error.strerror or error}"
        if kept:
            msg += f"; the complete copy is kept at {kept}"
        super().__init__(msg)
        self.errno = error.errno
        self.strerror = error.strerror

    def __str__(self) -> str:  # OSError would format it as "[Errno ...]"
        return str(self.args[0])


class CommandError(NepiError):
    """A command exited with an error status."""

    def __init__(self, command: str, returncode: int | None, stderr_tail: str = "",
                 where: str = "") -> None:
        self.command, self.returncode, self.stderr_tail = command, returncode, stderr_tail
        msg = f"command {command!r}"
        if where:
            msg += f" on {where}"
        msg += " timed out" if returncode is None else f" exited with status {returncode}"
        if stderr_tail:
            msg += f"; stderr ends with: {stderr_tail.strip()[-500:]}"
        super().__init__(msg)


class CommandTimeoutError(CommandError, TimeoutError):
    """A command ran longer than its ``timeout``; it was killed (its whole process group)."""

    def __init__(self, command: str, timeout: float, stderr_tail: str = "", where: str = "") -> None:
        super().__init__(command, None, stderr_tail, where)
        self.timeout = timeout
        self.args = (str(self.args[0]).replace(" timed out", f" timed out after {timeout:g} s", 1),)


class MissingCommandsError(NepiError):
    """Commands a resource depends on are not installed on its host."""

    def __init__(self, missing: Sequence[str], where: str, guid: int | None = None) -> None:
        self.missing, self.where, self.guid = list(missing), where, guid
        who = f"application {guid} needs" if guid is not None else "needs"
        super().__init__(
            f"{who} {', '.join(self.missing)}, not found on {where}; install "
            f"{'it' if len(self.missing) == 1 else 'them'} there (e.g. apt-get install ...), "
            f"set the application's installDepends to let it do so, or fix the 'depends' attribute"
        )


class MissingTraceError(UnknownTraceError):
    """A trace asked for by file name (``ec.trace(app, "bw.txt")``) that the resource
    never wrote: no such file in its folder on the host, nor in the run directory.
    A kind of :class:`UnknownTraceError`, which is what a type without file traces raises."""

    def __init__(self, guid: int, rtype: str, trace: str, allowed: Iterable[str], where: str) -> None:
        super().__init__(guid, rtype, trace, allowed)
        self.where = where
        names = ", ".join(self.allowed) or "none"
        self.args = (f"resource {guid} ({rtype}) has no trace {trace!r}: no file of that name is in {where} "
                     f"and its declared traces are: {names}",)


class DownloadError(NepiError):
    """An ``http://`` or ``https://`` entry of ``sources``, ``files``, ``libs`` or ``bins``
    could not be downloaded on the host."""

    def __init__(self, url: str, where: str, reason: str, guid: int | None = None) -> None:
        self.url, self.where, self.reason, self.guid = url, where, reason, guid
        who = f"application {guid}: " if guid is not None else ""
        why = reason.strip()[-500:] or "no reason given"
        super().__init__(f"{who}cannot download {url} on {where}: {why}")


class PackageInstallError(NepiError):
    """Packages could not be installed on a host (``installDepends``, or
    :meth:`~nepi_lab.resources.linux.node.Node.install_packages`): no package manager,
    no root (nor ``sudo -n``), the package manager failed (``reason`` ends with its
    message) or took too long."""

    def __init__(self, packages: Sequence[str], where: str, reason: str, guid: int | None = None) -> None:
        self.packages, self.where, self.reason, self.guid = list(packages), where, reason, guid
        who = f"application {guid}: " if guid is not None else ""
        why = reason.strip()[-800:] or "no reason given"
        super().__init__(f"{who}cannot install {', '.join(self.packages)} on {where}: {why}")
