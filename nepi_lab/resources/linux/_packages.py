"""Packages on a host: what ``depends`` asks for, and installing what is missing.

``depends`` items
-----------------
NEPI's ``depends`` listed *package* names, installed with yum or apt-get at every
deploy; ours lists what the application needs, checked on the host, and installed only
with the application's ``installDepends``.  Each space-separated item is one of:

``name``
    satisfied when ``name`` is a command on the host (PATH, ``${BIN}`` first) or an
    installed package of that name (``dpkg-query`` or ``rpm``): NEPI's package lists
    (``"gcc make libpcap-dev"``) keep working.  Installed as package ``name``.
``command=package``
    satisfied only when ``command`` exists; installed as package ``package``, for
    commands whose package has another name (``ping=iputils-ping``,
    ``ip=iproute2``, ``dig=dnsutils``).

The package of a command is never looked up (``apt-file``, ``dnf provides``): that
needs an index apt does not have by default, is slow, and the answer differs between
distributions; the ``command=package`` form says it once, in the scenario.

Installing
----------
:data:`INSTALL` is run on the host, with the packages as arguments: the package
manager is the host's (``apt-get`` on Debian and Ubuntu, ``dnf`` or else ``yum`` on
Fedora and RHEL), as root, through ``sudo -n`` (never prompting) when the user is
not root.  apt-get runs with ``DEBIAN_FRONTEND=noninteractive``; when a package is
unknown to apt's lists (or the install fails before any ``apt-get update`` ran), it
runs ``apt-get update`` once and tries again.  What fails says why, with the package
manager's message; the caller bounds it with a timeout.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple


@functools.cache
def name_pattern() -> re.Pattern[str]:
    """A command name: never starting with ``-``, so no name can pass for an option
    (compiled on first use, as the other patterns: an application without ``depends``
    never needs it)."""
    return re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


@functools.cache
def package_pattern() -> re.Pattern[str]:
    """A package name: Debian's and RPM's characters, plus ``:`` for an architecture;
    never starting with ``-``."""
    return re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+:-]*")


class Depend(NamedTuple):
    """One ``depends`` item: the command it needs and the package that provides it.

    Example
    -------
    >>> parse_depends("make ping=iputils-ping")[1]
    Depend(command='ping', package='iputils-ping', explicit=True)
    """

    command: str  #: the command (or, for an item without ``=``, maybe a package only)
    package: str  #: the package installed when it is missing
    explicit: bool  #: written ``command=package``: only the command satisfies it


def parse_depends(text: str | None) -> list[Depend]:
    """The items of ``depends`` (see the module docstring); ValueError says which is wrong."""
    items = []
    for word in (text or "").split():
        command, eq, package = word.partition("=")
        if not name_pattern().fullmatch(command):
            raise ValueError(f"{word!r}: {command!r} is not a command name")
        if eq and not package_pattern().fullmatch(package):
            raise ValueError(f"{word!r}: {package!r} is not a package name (write command=package)")
        items.append(Depend(command, package if eq else command, bool(eq)))
    return items


#: Prints the items (``command`` ``package`` ``explicit`` triples in ``$@``) that are
#: not satisfied, one ``command`` per line.  ``$1`` is the PATH to put first.
MISSING = r"""[ -n "$1" ] && PATH="$1:$PATH"; shift
installed() {
  if command -v dpkg-query >/dev/null 2>&1; then
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q ' installed$'
  elif command -v rpm >/dev/null 2>&1; then
    rpm -q --quiet "$1" 2>/dev/null
  else
    return 1
  fi
}
while [ "$#" -ge 3 ]; do
  command -v "$1" >/dev/null 2>&1 || { [ "$3" = 0 ] && installed "$2"; } || printf '%s\n' "$1"
  shift 3
done
"""

#: Installs the packages given as arguments with the host's package manager, as root.
INSTALL = r"""if [ "$(id -u)" = 0 ]; then
  root=
elif ! command -v sudo >/dev/null 2>&1; then
  echo "installing packages needs root: the user $(id -un) is not root and sudo is not installed" >&2
  exit 126
elif ! sudo -n true 2>/dev/null; then
  echo "installing packages needs root: the user $(id -un) is not root and may not use sudo" \
    "without a password (sudo -n failed: give it a NOPASSWD entry in /etc/sudoers.d, or install" \
    "the packages by hand)" >&2
  exit 126
else
  root="sudo -n"
fi
if command -v apt-get >/dev/null 2>&1; then
  aptget() { $root env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=120 "$@"; }
  updated=
  for p; do
    apt-cache show "$p" >/dev/null 2>&1 && continue
    aptget update || exit
    updated=1
    break
  done
  aptget install "$@" && exit 0
  [ -z "$updated" ] || exit
  aptget update && aptget install "$@"
elif command -v dnf >/dev/null 2>&1; then
  $root dnf -y install "$@"
elif command -v yum >/dev/null 2>&1; then
  $root yum -y install "$@"
else
  echo "no package manager nepi_lab knows on this host (apt-get, dnf or yum): install them by hand" >&2
  exit 127
fi
"""
