"""tools.phases: timing the nightly run's phases and reporting them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tools import phases

EXPECTED = ["up", "smoke", "destroy", "leftovers"]


def test_run_records_result_duration_and_passes_the_exit_code_on(tmp_path: Path):
    record = tmp_path / "nightly" / "phases.jsonl"
    ticks = iter([100.0, 1000.4])
    phase = phases.run_phase("up", ["pulumi", "up"], record, runner=lambda cmd: 0, clock=lambda: next(ticks))
    assert (phase.result, phase.exit_code, phase.seconds) == ("success", 0, 900.4)
    ticks = iter([0.0, 61.0])
    phases.run_phase("smoke", ["smoke"], record, runner=lambda cmd: 3, clock=lambda: next(ticks))
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(p["phase"], p["result"], p["exit_code"]) for p in lines] == [("up", "success", 0), ("smoke", "failure", 3)]
    assert lines[0]["started"].endswith("Z")


def test_main_run_really_runs_the_command(tmp_path: Path):
    record = tmp_path / "phases.jsonl"
    code = phases.main(["run", "leftovers", "--record", str(record), "--", sys.executable, "-c", "raise SystemExit(4)"])
    assert code == 4
    assert json.loads(record.read_text())["result"] == "failure"
    assert phases.main(["run", "gone", "--record", str(record), "--", "no-such-command-xyz"]) == 127


def test_report_lists_every_expected_phase_and_marks_what_never_ran(tmp_path: Path, monkeypatch, capsys):
    up_job = tmp_path / "up.json"  # what the up job hands over through its `phases` output
    up_job.write_text(json.dumps([{"phase": "up", "result": "failure", "exit_code": 255, "started": "2026-01-01T02:00:00Z",
                                   "finished": "2026-01-01T02:31:00Z", "seconds": 1860.0}]))
    teardown = tmp_path / "teardown.jsonl"
    teardown.write_text(json.dumps({"phase": "destroy", "result": "success", "exit_code": 0, "started": "x",
                                    "finished": "y", "seconds": 754.0}) + "\n")
    summary, out_json, output = tmp_path / "summary.md", tmp_path / "phases.json", tmp_path / "gh-output"
    summary.write_text("earlier\n")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    code = phases.main(["report", "--record", str(up_job), "--record", str(teardown), "--record", str(tmp_path / "none"),
                        "--phases", ",".join(EXPECTED), "--title", "Nightly", "--markdown", str(summary),
                        "--json", str(out_json), "--github-output", "phases", "--check"])
    assert code == 1, "a failed up fails the report"
    text = summary.read_text()
    assert text.startswith("earlier\n### Nightly: failure")
    assert "| up | failure (exit 255) | 31 min 00 s |" in text
    assert "| smoke | not run | - | - |" in text and "| leftovers | not run |" in text
    assert "| destroy | success | 12 min 34 s |" in text
    assert [p["phase"] for p in json.loads(out_json.read_text())] == EXPECTED
    name, _, value = output.read_text().strip().partition("=")
    assert name == "phases" and [p["phase"] for p in json.loads(value)] == ["up", "destroy"]


def test_report_check_passes_only_when_all_succeeded(tmp_path: Path):
    record = tmp_path / "all.jsonl"
    for name in EXPECTED:
        phases.run_phase(name, ["true"], record, runner=lambda cmd: 0)
    assert phases.main(["report", "--record", str(record), "--phases", ",".join(EXPECTED), "--check"]) == 0
    assert phases.main(["report", "--record", str(record), "--phases", "up,extra", "--check"]) == 1


def test_report_refuses_a_foreign_record(tmp_path: Path, capsys):
    record = tmp_path / "bad.jsonl"
    record.write_text('{"name": "up"}\n')
    assert phases.main(["report", "--record", str(record), "--phases", "up"]) == 2


@pytest.mark.parametrize("value", ["Up", "up;rm", ""])
def test_phase_names_are_checked(value):
    with pytest.raises(SystemExit):
        phases.main(["report", "--record", "x", "--phases", value])
