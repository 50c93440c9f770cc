"""Fixtures for the netns resources: real namespaces, veths and bridges, made as root.

Every test is checked to leave the machine as it found it: the same network
namespaces (``ip netns list``), the same interfaces in the root namespace, no run
record, no child process and no extra thread.  Traffic flows only inside the
namespaces the tests create.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from nepi_lab.core.owner import is_alive
from nepi_lab.resources.netns._namespace import OUR_NAME, RECORD_DIR, _read_records

from ...guards import wait_until as wait_until  # the netns tests import it from here


def _missing_capability() -> str | None:
    """Why namespaces cannot be tested here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); CI runs the tests as root"
    for tool in ("ip", "tc", "nft", "ping", "iperf3"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs iproute2, nftables, iputils-ping, iperf3)"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "pyroute2 is not installed: pip install 'nepi_lab[netns]'"
    probe = f"nepi-lab-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"this machine cannot make network namespaces: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


MISSING = _missing_capability()


@pytest.fixture(autouse=True)
def needs_namespaces():
    if MISSING:
        pytest.skip(MISSING)


def namespaces() -> set[str]:
    """Names listed by ``ip netns list``."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def root_interfaces() -> set[str]:
    """Interface names of the root namespace (``ip -o link``)."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()}


def records() -> set[str]:
    """Run records (``<tag>.json``) in /run/nepi_lab/netns."""
    try:
        return set(os.listdir(RECORD_DIR))
    except FileNotFoundError:
        return set()


def foreign_live_tags() -> set[str]:
    """Tags of runs owned by another live process: someone else's experiment, or another
    test session on this machine, whose namespaces come and go as they please."""
    return {tag for tag, record in _read_records().items()
            if record.get("pid") != os.getpid() and is_alive(record)}


def _differences(before):
    foreign = foreign_live_tags()
    after = (namespaces(), root_interfaces(), records())
    foreign |= foreign_live_tags()

    def mine(name: str) -> bool:
        match = OUR_NAME.match(name)
        return not (match and match.group(1) in foreign)

    problems = {
        "namespaces added": {n for n in after[0] - before[0] if mine(n)},
        "namespaces removed": {n for n in before[0] - after[0] if not OUR_NAME.match(n)},
        "interfaces added": {n for n in after[1] - before[1] if mine(n)},
        "interfaces removed": {n for n in before[1] - after[1] if not OUR_NAME.match(n)},
        "records added": {r for r in after[2] - before[2] if r[:-5] not in foreign},
    }
    return {k: v for k, v in problems.items() if v}


@pytest.fixture(autouse=True)
def nothing_left_behind(needs_namespaces):
    """Each test leaves ``ip netns list``, the root namespace's ``ip link`` and the run
    records as it found them.

    Other processes' live runs (another test session on this machine) are told apart by
    their records and not counted; what is ours, or has no live owner, is.
    """
    before = (namespaces(), root_interfaces(), records())
    yield
    deadline = time.monotonic() + 1.0  # a foreign run may be between two steps: look again
    while (problems := _differences(before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not problems, problems


def ping_counts(text: str) -> tuple[int, int]:
    """(transmitted, received) from ping's summary line."""
    for line in text.splitlines():
        if "packets transmitted" in line:
            words = line.replace(",", "").split()
            return int(words[0]), int(words[3])
    raise AssertionError(f"no ping summary in {text!r}")

