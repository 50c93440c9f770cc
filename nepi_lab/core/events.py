"""The append-only log of state changes, and the hook observers subscribe to.

Every transition of every resource (and its registration) becomes one
:class:`Event`.  The log keeps them in compact rows of integers (an experiment of
100,000 resources makes over half a million events), writes each as a JSON line to
the run directory as it happens (its time exact: integer nanoseconds written ``e-9``),
and calls subscribers, which is how the live graph, the progress bars and anything
else a user writes observe the experiment.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from array import array
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, overload

from .states import ResourceState

if TYPE_CHECKING:
    import datetime as _dt  # imported where a datetime is made (~1 ms)

log = logging.getLogger("nepi_lab")

Subscriber = Callable[["Event"], Any]

#: Version of the event-log line format (``events.jsonl``).
EVENT_FORMAT = 1


class Event(NamedTuple):
    """One state change: frozen, cheap, and convertible with :meth:`to_dict`."""

    time: float  #: wall-clock time, seconds since the epoch
    guid: int  #: the resource
    rtype: str  #: its type name
    old: ResourceState | None  #: state before (None for the registration)
    new: ResourceState  #: state after
    detail: str | None  #: why, when there is something to say (failure reason ...)
    #: For resources of a simulation (``ns3::``): the simulated time of the change, in
    #: seconds; None for everything else.
    sim_time: float | None = None

    @property
    def datetime(self) -> _dt.datetime:
        """The time as a local ``datetime``."""
        import datetime as _dt  # here: ~1 ms to import, which most runs never need

        return _dt.datetime.fromtimestamp(self.time)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict, with state names (``sim_time`` only when there is one)."""
        d = {
            "time": self.time,
            "guid": self.guid,
            "type": self.rtype,
            "from": None if self.old is None else self.old.name,
            "to": self.new.name,
            "detail": self.detail,
        }
        if self.sim_time is not None:
            d["sim_time"] = self.sim_time
        return d


_STATES = list(ResourceState)
_NAMES = [json.dumps(s.name) for s in ResourceState]
_WIDTH = 16  # a transition is stored as one code: (old + 1) * _WIDTH + new
_CODE_MASK = (1 << 8) - 1
_EXTRA = 1 << 8  # flag of a stored key: the event has a detail or a simulated time (see _extras)
_TYPE_SHIFT = 9  # a stored key is (type index << _TYPE_SHIFT) | flag | code
_FLUSH_SLICE = 4096  # events formatted and written at a time: a burst is not held as text at once
_NS = 1_000_000_000
#: The start of an event's JSON line, its time as in seconds_text (nanoseconds, e-9);
#: the rest is the tail of its key (EventLog._tail).
_LINE = b'{"time": %de-9, "guid": %d%s'


def seconds(time_ns: int) -> float:
    """Epoch nanoseconds as float seconds, correctly rounded: the float that reading
    :func:`seconds_text` gives (``json.loads``, ``float``)."""
    return time_ns / _NS  # int / int: correctly rounded, even beyond 2**53


def seconds_text(time_ns: int) -> str:
    """Epoch nanoseconds as the exact JSON number of seconds: ``1764600000123456789e-9``.

    Any JSON reader gets the seconds from it (as :func:`seconds` gives them), and it
    is several times cheaper to write than ``repr()`` of a float (which was the bulk of
    writing a large event log).
    """
    return f"{time_ns}e-9"


def _code(old: int, new: int) -> int:
    return (old + 1) * _WIDTH + new


# the JSON text '"from": "READY", "to": "STARTED"' of every code (old -1: registration)
_FROM_TO = [""] * (_WIDTH * (len(_STATES) + 1))
for _old in range(-1, len(_STATES)):
    for _new in range(len(_STATES)):
        _FROM_TO[_code(_old, _new)] = (
            f'"from": {"null" if _old < 0 else _NAMES[_old]}, "to": {_NAMES[_new]}'
        )


class EventLog:
    """Append-only sequence of :class:`Event`, with subscription.

    Subscribers are called synchronously, in the thread that made the change (the
    controller's event-loop thread for every lifecycle change), right after the
    event is recorded.  A subscriber that raises is logged and otherwise ignored:
    an observer never breaks the experiment.

    Example
    -------
    >>> import shutil, tempfile
    >>> from nepi_lab import ExperimentController
    >>> results = tempfile.mkdtemp()
    >>> with ExperimentController(local_dir=results) as ec:
    ...     seen = []
    ...     unsubscribe = ec.events.subscribe(seen.append)
    ...     node = ec.register_resource("linux::Node", hostname="localhost")
    ...     unsubscribe()
    >>> [(e.guid, e.rtype, e.old, e.new.name) for e in seen]       # the registration
    [(1, 'linux::Node', None, 'NEW')]
    >>> shutil.rmtree(results)
    """

    def __init__(self) -> None:
        # One row of three integers per event, in one array: an experiment of 100,000
        # resources makes 700,000 events, 24 bytes each.  A row is added by one
        # ``extend``, which no other thread can interleave with (it runs no Python
        # code): appending takes no lock.  Times are epoch nanoseconds, written exactly
        # (seconds_text), several times cheaper than repr() of a float.
        self._rows = array("q")  # time, guid, key: (type index << _TYPE_SHIFT) | _EXTRA? | code
        self._types: list[str] = []  # the type names seen, in order
        self._type_index: dict[str, int] = {}  # type name -> its index in _types
        # (detail, sim_time) of each event flagged _EXTRA, in the order of those events
        # (appended with its row under the lock); matched to event indexes by _extras()
        self._pending_extras: list[tuple[str | None, float | None]] = []
        self._scanned = 0  # events before this one have their extras in _detail / _sim_time
        self._detail: dict[int, str] = {}
        self._sim_time: dict[int, float] = {}  # simulated times, for the few events that have one
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._fd: int | None = None  # the file, written with os.write: we know what reached it
        self.path: str | None = None
        self._request_flush: Callable[[], None] | None = None
        self._flush_pending = False
        self._written = 0  # events whose whole line is in the file
        self._skip = 0  # bytes of the next event's line already in the file (a partial write)
        self.write_error: OSError | None = None  #: why the file is behind, while it is
        self._tails: dict[int, bytes] = {}  # key -> the end of its JSON line, from ', "type"' on

    # -- writing ---------------------------------------------------------------

    def attach_file(self, path: str, request_flush: Callable[[], None]) -> None:
        """Write every event, past and future, as a JSON line to ``path``.

        ``request_flush`` is called once per batch of events; it must arrange for
        :meth:`flush` to run soon (the controller schedules it on its loop a few
        milliseconds later, so a burst is written at once and a dying process loses
        at most those milliseconds).
        """
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.path = path
        self._request_flush = request_flush
        self.flush()

    def _type_key(self, rtype: str) -> int:
        """The type part of a stored key (registers a new type name)."""
        index = self._type_index.get(rtype)
        if index is None:
            with self._lock:
                index = self._type_index.get(rtype)
                if index is None:
                    index = self._type_index[rtype] = len(self._types)
                    self._types.append(rtype)
        return index << _TYPE_SHIFT

    def append(self, time: float, guid: int, rtype: str, old: int, new: int,
               detail: str | None = None, sim_time: float | None = None) -> None:
        """Record one change at ``time`` (seconds since the epoch; ``old`` is -1 for a
        registration; ``sim_time``: the simulated time of a change inside a simulation).

        The event's time is the nanosecond nearest ``time``, which reads back as ``time``.
        """
        numerator, denominator = float(time).as_integer_ratio()  # exact: no rounding on the way
        self.append_ns((2 * numerator * _NS + denominator) // (2 * denominator), guid, rtype, old, new,
                       detail, sim_time)

    def append_ns(self, time_ns: int, guid: int, rtype: str, old: int, new: int,
                  detail: str | None = None, sim_time: float | None = None) -> None:
        """:meth:`append` at ``time_ns``, in epoch nanoseconds (the controller's own clock)."""
        index = self._type_index.get(rtype)
        key = ((index << _TYPE_SHIFT if index is not None else self._type_key(rtype))
               | ((old + 1) * _WIDTH + new))
        if detail is None and sim_time is None:
            self._rows.extend((time_ns, guid, key))
        else:
            with self._lock:  # the extras in the order of their rows
                self._rows.extend((time_ns, guid, key | _EXTRA))
                self._pending_extras.append((detail, sim_time))
        # A flush that reset the flag after this row was added writes it; one that had
        # not reset it yet had not measured the rows yet either.
        if not self._flush_pending and self._request_flush is not None:
            self._flush_pending = True
            self._request_flush()
        if self._subscribers:
            self._publish(Event(time_ns / _NS, guid, rtype, None if old < 0 else _STATES[old], _STATES[new],
                                detail, sim_time))

    def append_three(self, guid: int, rtype: str, old: int, path: tuple[int, int, int],
                     time1: int, time2: int, time3: int) -> None:
        """Record three consecutive changes of one resource, ``old`` -> ``path[0]`` ->
        ``path[1]`` -> ``path[2]``, at ``time1``, ``time2``, ``time3`` (epoch nanoseconds):
        what :meth:`append_ns` does for each, at once (and without making an object that
        the garbage collector would count: at 100,000 resources its collections are a
        large part of the time)."""
        index = self._type_index.get(rtype)
        base = index << _TYPE_SHIFT if index is not None else self._type_key(rtype)
        new1, new2, new3 = path
        self._rows.extend((time1, guid, base | ((old + 1) * _WIDTH + new1),
                           time2, guid, base | ((new1 + 1) * _WIDTH + new2),
                           time3, guid, base | ((new2 + 1) * _WIDTH + new3)))
        if not self._flush_pending and self._request_flush is not None:
            self._flush_pending = True
            self._request_flush()
        if self._subscribers:
            for before, new, time in ((old, new1, time1), (new1, new2, time2), (new2, new3, time3)):
                self._publish(Event(time / _NS, guid, rtype, None if before < 0 else _STATES[before],
                                    _STATES[new], None))

    def _publish(self, event: Event) -> None:
        """Call every subscriber with ``event``; one that raises is logged, never the run's."""
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # an observer must not break the run
                log.exception("event subscriber %r raised", subscriber)

    def _extras(self) -> tuple[dict[int, str], dict[int, float]]:
        """The details and simulated times, by event index (every event's so far)."""
        if self._pending_extras:
            with self._lock:
                self._match_extras()
        return self._detail, self._sim_time

    def _match_extras(self) -> None:
        """Give the pending extras their event indexes (with the lock held: every row
        flagged _EXTRA then has its extras in the list, in the rows' order)."""
        pending = self._pending_extras
        if not pending:
            return
        first = self._scanned
        keys = self._rows[3 * first + 2::3]
        taken = 0
        for offset, key in enumerate(keys):
            if key & _EXTRA:
                detail, sim_time = pending[taken]
                if detail is not None:
                    self._detail[first + offset] = detail
                if sim_time is not None:
                    self._sim_time[first + offset] = sim_time
                taken += 1
        del pending[:taken]
        self._scanned = first + len(keys)

    def _tail(self, key: int) -> bytes:
        """The end of the JSON line of an event with ``key``: type, from, to, a null detail
        (ASCII: ``json.dumps`` escapes the rest)."""
        tail = self._tails.get(key)
        if tail is None:
            rtype = self._types[key >> _TYPE_SHIFT]
            tail = self._tails[key] = (
                f', "type": {json.dumps(rtype)}, {_FROM_TO[key & _CODE_MASK]}, "detail": null}}\n'.encode())
        return tail

    def flush(self) -> None:
        """Write the events recorded since the last flush to the file.

        Only what did not reach the file is written (a partial write on a full disk
        is continued, never repeated).  While the disk refuses, the events stay in
        memory (they are the log) and the next flush tries again; the first failure
        and the recovery are logged once.  Never raises.
        """
        self._flush_pending = False  # before the rows are measured: see append
        with self._lock:
            if self._fd is None:
                return
            end = len(self._rows) // 3
            self._match_extras()  # up to at least `end`
            details, sim_times = self._detail, self._sim_time
            tails = self._tails
            while self._written < end:
                start = self._written
                stop = min(end, start + _FLUSH_SLICE)
                # time, guid, key of each event: the key replaced by the end of its line
                values = self._rows[3 * start:3 * stop].tolist()
                keys = values[2::3]
                try:
                    values[2::3] = map(tails.__getitem__, keys)
                except KeyError:  # a key not met yet (values is left as it was)
                    for key in set(keys) - tails.keys():
                        self._tail(key)
                    values[2::3] = map(tails.__getitem__, keys)
                if details:
                    for i, detail in details.items():
                        if start <= i < stop:
                            at = 3 * (i - start) + 2
                            values[at] = values[at][:-7] + json.dumps(detail).encode() + b"}\n"
                if sim_times:
                    for i, sim_time in sim_times.items():
                        if start <= i < stop:
                            at = 3 * (i - start) + 2
                            values[at] = values[at][:-2] + f', "sim_time": {sim_time!r}}}\n'.encode()
                # every line in one formatting, in C: a Python step per line was most of a flush
                self._write((_LINE * (stop - start)) % tuple(values), start, stop)
                if self._written != stop:  # the disk refused: the next flush goes on from there
                    return

    def _write(self, data: bytes, start: int, end: int) -> None:
        """Write ``data``, the lines of events ``start`` to ``end``, from where the file stopped."""
        skip = self._skip
        view = memoryview(data)[skip:]
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd, view[done:])  # type: ignore[arg-type]
        except OSError as exc:
            if self.write_error is None:
                log.warning("the event log %s cannot be written (%s): events are kept in memory "
                            "and written once it can be", self.path, exc.strerror or exc)
            self.write_error = exc
        if done == len(view):
            self._written, self._skip = end, 0
            if self.write_error is not None:
                log.warning("the event log %s is written again", self.path)
                self.write_error = None
            return
        # in the file: data[:written], whole lines (each ends with the only newline of its
        # line: JSON escapes the others), then part of one
        written = skip + done
        self._written = start + data.count(b"\n", 0, written)
        self._skip = written - (data.rfind(b"\n", 0, written) + 1)

    def close(self) -> None:
        """Flush and close the file (never raises); the in-memory log stays readable."""
        self.flush()
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    os.close(fd)
                except OSError as exc:  # e.g. a delayed write error reported at close
                    log.warning("closing the event log %s: %s", self.path, exc)

    # -- observing -------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` on every future event; returns an unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    # -- reading ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows) // 3

    def _event(self, i: int) -> Event:
        rows = self._rows
        key = rows[3 * i + 2]
        old, new = divmod(key & _CODE_MASK, _WIDTH)
        detail = sim_time = None
        if key & _EXTRA:
            details, sim_times = self._extras()
            detail, sim_time = details.get(i), sim_times.get(i)
        return Event(rows[3 * i] / _NS, rows[3 * i + 1], self._types[key >> _TYPE_SHIFT],
                     None if old == 0 else _STATES[old - 1], _STATES[new], detail, sim_time)

    @overload
    def __getitem__(self, i: int) -> Event: ...
    @overload
    def __getitem__(self, i: slice) -> list[Event]: ...
    def __getitem__(self, i: int | slice) -> Event | list[Event]:
        if isinstance(i, slice):
            return [self._event(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("event index out of range")
        return self._event(i)

    def __iter__(self) -> Iterator[Event]:
        for i in range(len(self)):
            yield self._event(i)

    def for_guid(self, guid: int) -> list[Event]:
        """The events of one resource, in order."""
        return [self._event(i) for i, g in enumerate(self._rows[1::3]) if g == guid]

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every event as a dict (see :meth:`Event.to_dict`)."""
        return [e.to_dict() for e in self]

    def to_dataframe(self):  # -> pandas.DataFrame
        """Every event as a pandas DataFrame: time, guid, type, from, to, detail, and
        ``sim_time`` (float seconds, NaN where none) when a simulation recorded any."""
        import pandas as pd

        records = self.to_dicts()
        columns = ["time", "guid", "type", "from", "to", "detail"]
        has_sim_time = bool(self._extras()[1])
        if has_sim_time:
            columns.append("sim_time")
        frame = pd.DataFrame.from_records(records, columns=columns)
        if has_sim_time:
            frame["sim_time"] = frame["sim_time"].astype("float64")
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame

    def __repr__(self) -> str:
        return f"<EventLog of {len(self)} events>"
