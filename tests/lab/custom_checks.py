"""Functions of custom checks, importable by name (``tests.lab.custom_checks:six_resources``)."""

from __future__ import annotations


def six_resources(run) -> tuple[bool, int]:
    """Passes when the run has six resources besides its node (seven in all)."""
    return len(run.guids) == 7, len(run.guids)


def hello_said_world(run) -> bool:
    """Passes when the application named hello printed 'world' (read through its frame)."""
    frame = run.resources_frame()
    guid = int(frame.loc[frame["name"] == "hello", "guid"].iloc[0])
    return "world" in run.trace(guid, "stdout")
