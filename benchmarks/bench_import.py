"""How long ``import nepi_lab`` takes, beside the interpreter's own start-up.

Prints the best of 15 fresh interpreters for: ``python -c pass`` (baseline),
``python -c "import asyncio"`` (what any asyncio program pays) and
``python -c "import nepi_lab"``, and the cost of the import alone (difference with the
baseline).  Target: well under 0.5 s.  Also checks that the heavy libraries stay out.
"""

from __future__ import annotations

import subprocess
import sys
import time

RUNS = 15
TARGET = 0.5


def best(code: str) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    base = best("pass")
    asyncio_only = best("import asyncio")
    ours = best("import nepi_lab")
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys, nepi_lab; print(sorted(m for m in "
         "('pandas', 'matplotlib', 'ipywidgets', 'networkx', 'nest_asyncio') if m in sys.modules))"],
        capture_output=True, text=True, check=True).stdout.strip()
    cost = ours - base
    verdict = "PASS" if cost <= TARGET and heavy == "[]" else "FAIL"
    print(f"interpreter start (python -c pass)   {base * 1000:7.1f} ms   (baseline)")
    extra = (asyncio_only - base) * 1000
    print(f"python -c 'import asyncio'            {asyncio_only * 1000:7.1f} ms   (+{extra:.1f} ms)")
    print(f"python -c 'import nepi_lab'           {ours * 1000:7.1f} ms   (+{cost * 1000:.1f} ms)")
    print(f"heavy libraries loaded by the import: {heavy}")
    print(f"import nepi_lab costs {cost * 1000:.1f} ms; target <= {TARGET * 1000:.0f} ms: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
