"""Time the phases of an end-to-end run and report them (the nightly workflow's up, smoke, destroy, leftovers).

    python -m tools.phases run NAME --record FILE -- COMMAND [ARGS...]
    python -m tools.phases report --record FILE [--record FILE ...] --phases up,smoke,destroy,leftovers \
        [--markdown PATH] [--json PATH] [--github-output NAME] [--check]

`run` runs the command with its output passed through, appends one JSON line to FILE (phase, result,
exit code, start, end, seconds) and exits with the command's exit code. `report` reads one or more
records (JSON lines, or a JSON list as `--github-output` writes it), lists every expected phase in
order (a phase that never ran is `not run`), and writes a Markdown table (appended to PATH, so it can
be $GITHUB_STEP_SUMMARY) and the JSON. With --check it exits 1 unless every expected phase succeeded.
These durations are where real `up` and `destroy` times come from.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

SUCCESS = "success"
FAILURE = "failure"
NOT_RUN = "not run"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class Phase:
    phase: str
    result: str
    exit_code: Optional[int]
    started: Optional[str]
    finished: Optional[str]
    seconds: Optional[float]


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def run_phase(name: str, command: Sequence[str], record: Path,
              runner: Callable[[Sequence[str]], int] = lambda cmd: subprocess.call(list(cmd)),
              clock: Callable[[], float] = time.monotonic) -> Phase:
    started, start = _now(), clock()
    try:
        code = runner(command)
    except FileNotFoundError:
        print(f"phases: {name}: command not found: {command[0]}", file=sys.stderr)
        code = 127
    phase = Phase(name, SUCCESS if code == 0 else FAILURE, code, started, _now(), round(clock() - start, 1))
    record.parent.mkdir(parents=True, exist_ok=True)
    with record.open("a") as out:
        out.write(json.dumps(asdict(phase)) + "\n")
    return phase


def load(paths: Iterable[Path]) -> list[Phase]:
    phases: list[Phase] = []
    for path in paths:
        if not path.is_file():
            continue  # a job that never got to its first phase leaves no record
        text = path.read_text().strip()
        if not text:
            continue
        items = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
        phases.extend(Phase(**item) for item in items)
    return phases


def complete(phases: list[Phase], expected: Sequence[str]) -> list[Phase]:
    """Every expected phase once, in order (the last record of a phase wins); unexpected ones after."""
    latest = {phase.phase: phase for phase in phases}
    ordered = [latest.get(name, Phase(name, NOT_RUN, None, None, None, None)) for name in expected]
    return ordered + [phase for name, phase in latest.items() if name not in expected]


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def markdown(phases: list[Phase], title: str) -> str:
    overall = SUCCESS if phases and all(p.result == SUCCESS for p in phases) else FAILURE
    total = sum(p.seconds or 0 for p in phases)
    lines = [f"### {title}: {overall}", "", "| phase | result | duration | started (UTC) |", "| --- | --- | --- | --- |"]
    for p in phases:
        lines.append(f"| {p.phase} | {p.result}{'' if p.exit_code in (0, None) else f' (exit {p.exit_code})'} "
                     f"| {_duration(p.seconds)} | {p.started or '-'} |")
    lines.append(f"| total | {overall} | {_duration(total)} | |")
    return "\n".join(lines) + "\n"


def _phase_names(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names or any(not set(name) <= _NAME_CHARS for name in names):
        raise argparse.ArgumentTypeError(f"{value!r}: phase names are lowercase letters, digits and hyphens, "
                                         "separated by commas")
    return names


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.phases", description="Time and report run phases.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one phase's command and record its result and duration")
    run.add_argument("name", type=lambda v: _phase_names(v)[0])
    run.add_argument("--record", type=Path, required=True)
    report = sub.add_parser("report", help="merge records into a table")
    report.add_argument("--record", type=Path, action="append", required=True)
    report.add_argument("--phases", type=_phase_names, required=True, help="expected phases, in order")
    report.add_argument("--title", default="End-to-end run")
    report.add_argument("--markdown", type=Path, help="append the table here (e.g. $GITHUB_STEP_SUMMARY)")
    report.add_argument("--json", type=Path, help="write the phases here as a JSON list")
    report.add_argument("--github-output", metavar="NAME",
                        help="append NAME=<phases as one-line JSON> to $GITHUB_OUTPUT")
    report.add_argument("--check", action="store_true", help="exit 1 unless every expected phase succeeded")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is the phase's command, options and all.
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    if args.command == "run":
        if not command:
            parser.error("run: give the command after --")
        return run_phase(args.name, command, args.record).exit_code or 0

    try:
        phases = complete(load(args.record), args.phases)
    except (ValueError, TypeError) as exc:
        print(f"phases: error: a record is not what `phases run` writes: {exc}", file=sys.stderr)
        return 2
    text = markdown(phases, args.title)
    print(text, end="")
    if args.markdown:
        with args.markdown.open("a") as out:
            out.write(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(p) for p in phases], indent=1) + "\n")
    if args.github_output:
        ran = [asdict(p) for p in phases if p.result != NOT_RUN]
        with open(os.environ["GITHUB_OUTPUT"], "a") as out:
            out.write(f"{args.github_output}={json.dumps(ran, separators=(',', ':'))}\n")
    if args.check and any(p.result != SUCCESS for p in phases[:len(args.phases)]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
