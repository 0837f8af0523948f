"""Helpers for tests that look at the offline render of a stack."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent
# libyaml's loader builds the same data as yaml.safe_load, several times faster.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def render_args(out: Path, stack: str = "dev", sets: Iterable[str] = (), unsets: Iterable[str] = (),
                existing_clusters: Iterable[str] = (), platform_outputs: Iterable[str] = (),
                stack_name: Optional[str] = None) -> list[str]:
    """The arguments of `python -m tools.render` for a render of `stack` into `out`."""
    args = [stack, "--out", str(out)]
    if stack_name:
        args += ["--stack-name", stack_name]
    for item in platform_outputs:
        args += ["--platform-outputs", item]
    for item in sets:
        args += ["--set", item]
    for key in unsets:
        args += ["--unset", key]
    for name in existing_clusters:
        args += ["--existing-cluster", name]
    return args


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


# Each render is a process of its own forked from a server that has imported the Pulumi SDKs once
# (tests/render_sdk.py), as most of a render's time is those imports. It runs what `python -m tools.render`
# runs, from the repository root, with the caller's environment, and ends with its exit status; nothing of
# the project is imported before the fork, so it runs the project's current code.
RENDER_PROCESSES = multiprocessing.get_context("forkserver")
RENDER_PROCESSES.set_forkserver_preload(["tests.render_sdk"])


def render_process(args: list[str], env: Optional[dict] = None, timeout: float = 300) -> Finished:
    """`python -m tools.render ARGS` in a process forked from the render server."""
    with tempfile.TemporaryDirectory(prefix="render-process-") as scratch:
        stdout, stderr = Path(scratch, "stdout"), Path(scratch, "stderr")
        process = RENDER_PROCESSES.Process(target=_render_main,
                                           args=(args, {**os.environ, **(env or {})}, stdout, stderr))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise AssertionError(f"the render {args} did not finish in {timeout} s")
        return Finished(process.exitcode, stdout.read_text(), stderr.read_text())


def _render_main(args: list[str], environ: dict[str, str], stdout: Path, stderr: Path) -> None:
    """In the forked process: the render's command line with its environment, output files and exit status."""
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(ROOT)
    sys.argv = [str(ROOT / "tools" / "render.py"), *args]
    for fd, path in ((1, stdout), (2, stderr)):
        with open(path, "w") as file:
            os.dup2(file.fileno(), fd)
    from tools import render
    sys.exit(render.main(args))


def run_render(out: Path, stack: str = "dev", sets: Iterable[str] = (), unsets: Iterable[str] = (),
               existing_clusters: Iterable[str] = (), env: Optional[dict] = None,
               platform_outputs: Iterable[str] = (), stack_name: Optional[str] = None) -> Render:
    result = render_process(render_args(out, stack, sets, unsets, existing_clusters, platform_outputs, stack_name),
                            env)
    if result.returncode != 0:
        raise AssertionError(f"render failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return load_render(out)


def failed_render(out: Path, stack: str = "dev", sets: Iterable[str] = (), unsets: Iterable[str] = (),
                  existing_clusters: Iterable[str] = (), env: Optional[dict] = None,
                  platform_outputs: Iterable[str] = ()) -> str:
    """The message of a render the program refuses (exit 2); fails if it succeeds or crashes."""
    result = render_process(render_args(out, stack, sets, unsets, existing_clusters, platform_outputs), env)
    assert result.returncode == 2, f"expected a refusal, got {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def load_render(out: Path) -> Render:
    manifests = {p.name: yaml.load(p.read_text(), Loader=YAML_LOADER) for p in sorted((out / "manifests").glob("*.yaml"))}
    return Render(
        directory=out,
        resources=json.loads((out / "resources.json").read_text()),
        outputs=json.loads((out / "outputs.json").read_text()),
        manifests=manifests,
    )
