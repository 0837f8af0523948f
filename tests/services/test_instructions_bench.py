"""bench/graphql_instructions.py refuses what it cannot do with a clear message, not a traceback.
(Counting needs valgrind, which CI does not install; docs/services.md has the figures.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "graphql_instructions.py"


def run(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ} if path is None else {**os.environ, "PATH": path}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def test_without_valgrind_it_says_what_to_install(tmp_path: Path) -> None:
    result = run(path=str(tmp_path))
    assert result.returncode == 2
    assert "valgrind is not on PATH" in result.stderr and "Traceback" not in result.stderr


def test_a_count_of_no_queries_is_refused_naming_the_option() -> None:
    result = run("--queries", "0")
    assert result.returncode == 2
    assert "--queries must be at least 1" in result.stderr and "Traceback" not in result.stderr
