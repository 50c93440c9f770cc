"""Fixtures for the linux resources: real processes, temporary folders, loopback only."""

from __future__ import annotations

import asyncio
import time
import uuid

import psutil
import pytest


@pytest.fixture
def node(ec, home):
    """A localhost node living in the temporary ``home``."""
    return ec.register_resource("linux::Node", hostname="localhost", home=home)


@pytest.fixture
def marker():
    """A unique word to put in the command lines (or environment) of a test's processes."""
    return f"nepi-lab-test-{uuid.uuid4().hex}"


def processes_with(marker: str) -> list[psutil.Process]:
    """Live processes whose command line or environment carries ``marker``."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            in_cmdline = any(marker in word for word in p.info["cmdline"] or ())
            if in_cmdline or any(marker in value for value in p.environ().values()):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_for_processes(marker: str, count: int, timeout: float = 5.0) -> list[psutil.Process]:
    """The processes carrying ``marker`` once there are ``count`` of them (a started
    shell forks its children a little after it is spawned)."""
    deadline = time.monotonic() + timeout
    while len(found := processes_with(marker)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def all_gone(marker: str, timeout: float = 3.0) -> bool:
    """Whether every process carrying ``marker`` is gone within ``timeout`` seconds.

    A SIGKILL is delivered asynchronously: a killed process may show for a few
    milliseconds after ``killpg`` returned.
    """
    deadline = time.monotonic() + timeout
    while processes_with(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for_trace(ec, guid, name, expected, timeout=5.0):
    """The trace once it equals ``expected`` (or whatever it is after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while (text := ec.trace(guid, name)) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return text


def run_on_loop(ec, coro, timeout=30):
    """Run ``coro`` on the controller's loop and return its result (for node methods)."""
    return asyncio.run_coroutine_threadsafe(coro, ec.loop).result(timeout)
