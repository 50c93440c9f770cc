"""Experiments for the sweep tests, importable by the tests and by the sweep scripts
they start in subprocesses (the same build on both sides)."""

from __future__ import annotations

import os


def echo(ec, n, word, *, home, seconds=0.0):
    """One localhost application printing ``<n> <word> <random 16-bit number>``, after
    ``seconds`` of sleep.  The word ``bad`` makes build() raise; ``n == 3`` makes the
    application fail unless the file ``<home>/fixed`` exists."""
    if word == "bad":
        raise ValueError("no experiment for the word 'bad'")
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    fixed = os.path.join(home, "fixed")
    check = f" && test -e {fixed}" if n == 3 else ""
    ec.register_resource("linux::Application", connectedTo=node,
                         command=f"sleep {seconds}; echo {n} {word} $(od -An -N2 -tu2 /dev/urandom){check}")


def printed(run):
    """The metrics of an ``echo`` run: the number and the random value it printed."""
    n, _, value = run.trace(run.guids[1], "stdout").split()
    return {"printed_n": int(n), "value": int(value)}


def sleeper(ec, n, *, home, seconds=1.0):
    """One localhost application that sleeps ``seconds`` and prints ``n``: the same
    output in every run, so that two sweeps' run directories compare equal."""
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    ec.register_resource("linux::Application", connectedTo=node, command=f"sleep {seconds}; echo {n}")
