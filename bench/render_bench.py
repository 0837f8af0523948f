"""Wall time and peak memory of the offline render (a benchmark, not a test).

    python bench/render_bench.py [--stack dev] [--runs 5]

Each run is a fresh process, as in CI and `make render`; peak memory is that process's maximum
resident set size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(stack: str, out: Path) -> tuple[float, float]:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "tools.render", stack, "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"render failed: {process.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times, peaks = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.runs):
            elapsed, peak = one_run(args.stack, Path(scratch) / f"run-{i}")
            times.append(elapsed)
            peaks.append(peak)
            print(f"run {i + 1}: {elapsed:.2f} s, peak {peak:.0f} MiB")
    print(f"render of stack '{args.stack}', median of {args.runs} runs: "
          f"wall {statistics.median(times):.2f} s, peak memory {statistics.median(peaks):.0f} MiB "
          f"(max {max(peaks):.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
