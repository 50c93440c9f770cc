"""Which Python and which ipykernel a Jupyter kernelspec starts (for ``--kernel``), and
whether it has the extras a notebook needs."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

_VERSION = "from importlib.metadata import version; print(version('ipykernel'))"


def kernel_python(name: str) -> str:
    """The interpreter the kernelspec ``name`` starts (raises ``NoSuchKernel``)."""
    from jupyter_client.kernelspec import KernelSpecManager

    python = KernelSpecManager().get_kernel_spec(name).argv[0]
    # as jupyter_client does when it launches the kernel
    if python in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        python = sys.executable
    return python


def ipykernel_version(python: str) -> str:
    """The ipykernel installed for ``python``."""
    return subprocess.run([python, "-c", _VERSION], capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()


def describe(name: str) -> str:
    """``NAME: <python> (ipykernel X.Y.Z)``, or why it cannot be said."""
    try:
        python = kernel_python(name)
        return f"{name}: {python} (ipykernel {ipykernel_version(python)})"
    except Exception as exc:  # a header line, never a crash
        return f"{name}: {type(exc).__name__}: {exc}"


#: The module each extra a notebook may need brings (``nepi_lab_test.needs`` in its metadata).
_EXTRA_MODULES = {"ns3": "ns"}
_FIND = "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"


def notebook_needs(path: str | os.PathLike[str]) -> list[str]:
    """The extras a notebook needs (``["ns3"]``), from ``nepi_lab_test.needs`` in its metadata."""
    with open(path, encoding="utf-8") as f:
        return list(json.load(f).get("metadata", {}).get("nepi_lab_test", {}).get("needs", []))


@functools.lru_cache
def missing_extra(kernel: str, extra: str) -> str | None:
    """Why the kernelspec ``kernel`` cannot run a notebook that needs ``extra`` (None: it can):
    its interpreter is asked, without importing the module."""
    python = kernel_python(kernel)
    found = subprocess.run([python, "-c", _FIND, _EXTRA_MODULES[extra]], timeout=60).returncode == 0
    return None if found else (f"kernel {kernel} ({python}) lacks the {extra} extra: "
                               f"pip install 'nepi_lab[{extra}]' there")
