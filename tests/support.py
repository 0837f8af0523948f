"""Helpers for tests that look at the offline render of a stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Render:
    directory: Path
    resources: list[dict]
    outputs: dict
    manifests: dict[str, dict]

    def of_type(self, typ: str) -> list[dict]:
        return [r for r in self.resources if r["type"] == typ]

    def one(self, typ: str, name: Optional[str] = None) -> dict:
        found = [r for r in self.of_type(typ) if name is None or r["name"] == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r['name'] for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> dict:
        return next(r for r in self.resources if r["urn"] == urn)

    def ancestors(self, resource: dict) -> list[dict]:
        chain = []
        while resource["parent"] and not resource["parent"].split("::")[2].endswith("pulumi:pulumi:Stack"):
            resource = self.by_urn(resource["parent"])
            chain.append(resource)
        return chain

    def depends_on(self, resource: dict, target_urn: str) -> bool:
        """True if `resource` waits for `target_urn`, directly, through inputs, its provider or its ancestors."""
        seen: set[str] = set()
        pending = [resource["urn"]]
        while pending:
            urn = pending.pop()
            if urn == target_urn:
                return True
            if urn in seen:
                continue
            seen.add(urn)
            current = self.by_urn(urn) if any(r["urn"] == urn for r in self.resources) else None
            if current is None:
                continue
            pending.extend(current["dependencies"])
            for urns in current["propertyDependencies"].values():
                pending.extend(urns)
            if current["provider"]:
                pending.append(provider_urn(current["provider"]))
            if current["parent"]:
                pending.append(current["parent"])
        return False


def provider_urn(reference: str) -> str:
    """A provider reference is '<urn>::<id>'."""
    return reference.rsplit("::", 1)[0]


def render_command(out: Path, stack: str = "dev", sets: Iterable[str] = (), unsets: Iterable[str] = (),
                   existing_clusters: Iterable[str] = (), platform_outputs: Iterable[str] = (),
                   stack_name: Optional[str] = None) -> list[str]:
    command = [sys.executable, "-m", "tools.render", stack, "--out", str(out)]
    if stack_name:
        command += ["--stack-name", stack_name]
    for item in platform_outputs:
        command += ["--platform-outputs", item]
    for item in sets:
        command += ["--set", item]
    for key in unsets:
        command += ["--unset", key]
    for name in existing_clusters:
        command += ["--existing-cluster", name]
    return command


def run_render(out: Path, stack: str = "dev", sets: Iterable[str] = (), unsets: Iterable[str] = (),
               existing_clusters: Iterable[str] = (), env: Optional[dict] = None,
               platform_outputs: Iterable[str] = (), stack_name: Optional[str] = None) -> Render:
    command = render_command(out, stack, sets, unsets, existing_clusters, platform_outputs, stack_name)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise AssertionError(f"render failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return load_render(out)


def failed_render(out: Path, stack: str = "dev", sets: Iterable[str] = (), unsets: Iterable[str] = (),
                  existing_clusters: Iterable[str] = (), env: Optional[dict] = None,
                  platform_outputs: Iterable[str] = ()) -> str:
    """The message of a render the program refuses (exit 2); fails if it succeeds or crashes."""
    command = render_command(out, stack, sets, unsets, existing_clusters, platform_outputs)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 2, f"expected a refusal, got {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def load_render(out: Path) -> Render:
    manifests = {p.name: yaml.safe_load(p.read_text()) for p in sorted((out / "manifests").glob("*.yaml"))}
    return Render(
        directory=out,
        resources=json.loads((out / "resources.json").read_text()),
        outputs=json.loads((out / "outputs.json").read_text()),
        manifests=manifests,
    )
