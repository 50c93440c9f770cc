"""Which Python and which ipykernel a Jupyter kernelspec starts (for ``--kernel``)."""

from __future__ import annotations

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
