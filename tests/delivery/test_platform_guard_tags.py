"""The platform guard as the workflows run it: on a runner that has no other stack's Pulumi.<stack>.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# `pulumi config --stack <s> --json` on a runner without Pulumi.<s>.yaml: nothing; the tags live in the backend.
PULUMI_STUB = """#!/usr/bin/env bash
case "$*" in
  "stack ls --json") echo '[{"name": "dev"}, {"name": "pr-7"}, {"name": "pr-8"}, {"name": "nightly-1"}]';;
  "config --stack "*) echo '{}';;
  "stack tag ls --stack pr-7 --json") echo '{"platform-stack": "organization/eks-istio-shop/dev", "demo-kind": "app"}';;
  "stack tag ls --stack pr-8 --json") echo '{"demo-kind": "full"}';;
  "stack tag ls --stack "*) echo '{}';;
  *) exit 3;;
esac
"""


def run_guard(stack: str, tmp_path: Path) -> subprocess.CompletedProcess:
    stub = tmp_path / "pulumi"
    stub.write_text(PULUMI_STUB)
    stub.chmod(0o755)
    return subprocess.run([sys.executable, "-m", "tools.platform_guard", stack], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}, timeout=60)


def test_an_app_stack_known_only_by_its_tag_blocks_its_platforms_destroy(tmp_path: Path):
    result = run_guard("dev", tmp_path)
    assert result.returncode == 1, result.stderr
    assert "app stacks pr-7;" in result.stderr and "make destroy STACK=pr-7" in result.stderr
    assert "pr-8" not in result.stderr, "a full demo is no app stack"


def test_a_platform_no_tag_names_is_destroyed(tmp_path: Path):
    assert run_guard("pr-8", tmp_path).returncode == 0
    assert run_guard("nightly-1", tmp_path).returncode == 0


def test_a_failed_tag_listing_stops_the_destroy(tmp_path: Path):
    stub_text = PULUMI_STUB.replace('"stack tag ls --stack "*) echo \'{}\';;', '"stack tag ls --stack "*) exit 1;;')
    stub = tmp_path / "pulumi"
    stub.write_text(stub_text)
    stub.chmod(0o755)
    result = subprocess.run([sys.executable, "-m", "tools.platform_guard", "dev"], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}, timeout=60)
    assert result.returncode == 2 and "cannot tell which app stacks run on 'dev'" in result.stderr
