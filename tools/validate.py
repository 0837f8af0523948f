"""Strict offline validation of everything the program emits, for every stack in the repository.

    python -m tools.validate [--stack NAME ...] [--checkov PATH] [--out DIR]

Renders each stack (default: every Pulumi.<stack>.yaml) with `tools.render` and checks
- every Kubernetes object against the OpenAPI schema of the stack's `kubernetesVersion`, with unknown
  fields rejected (kubernetes-validate);
- every Istio object against the CRD schema of the stack's `istioVersion`, unknown fields rejected, and
  every Helm release's values against the keys its chart defines (tools.istio_schema);
- the rendered manifests with checkov's Kubernetes checks: no check may fail unless
  policy/checkov-skips.yaml lists it with its reason.
Prints one line per problem, `<stack>: <object>: <field>: <message>`. Exit status: 0 when there is no
problem, 1 when there is any, 2 when a stack cannot be rendered or checkov cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable, Optional

import kubernetes_validate
import yaml

from settings import DEFAULT_ISTIO_VERSION, DEFAULT_KUBERNETES_VERSION
from tools import istio_schema
from tools.render import PROJECT, RenderError, available_stacks, load_stack_config

ROOT = Path(__file__).resolve().parent.parent
SKIPS_FILE = ROOT / "policy" / "checkov-skips.yaml"
CHECKOV_VENV = ROOT / ".venv-checkov"
RELEASE_SUFFIX = ".release.yaml"
_CHECK_ID = re.compile(r"^CKV2?_K8S_\d+$")


class ValidateError(Exception):
    """A problem that stops validation itself: a stack that does not render, checkov missing."""


@dataclass
class StackRender:
    stack: str
    kubernetes_version: str
    istio_version: str
    manifests: dict[str, dict] = field(default_factory=dict)  # file name -> document
    # The Istio releases of the stack's istiod revisions (istioRevisions), whose charts may differ from istioVersion.
    revision_versions: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Rendering


def stack_versions(stack: str) -> tuple[str, str]:
    """(kubernetesVersion as major.minor.patch, istioVersion) as the stack configures them."""
    config = load_stack_config(stack)
    kubernetes = str(config.get(f"{PROJECT}:kubernetesVersion", DEFAULT_KUBERNETES_VERSION))
    istio = str(config.get(f"{PROJECT}:istioVersion", DEFAULT_ISTIO_VERSION))
    return (kubernetes if kubernetes.count(".") == 2 else f"{kubernetes}.0"), istio


def stack_revision_versions(stack: str) -> tuple[str, ...]:
    """The Istio releases the stack's istioRevisions name (a map in the stack file, or its JSON text)."""
    config = load_stack_config(stack)
    revisions = config.get(f"{PROJECT}:istioRevisions") or {}
    if isinstance(revisions, str):
        revisions = json.loads(revisions or "{}")
    return tuple(sorted({str(v) for v in revisions.values()}))


def platform_of(stack: str) -> Optional[str]:
    """The platform stack an app stack (stackKind app) names; None for a platform stack."""
    config = load_stack_config(stack)
    if config.get(f"{PROJECT}:stackKind") != "app":
        return None
    return str(config.get(f"{PROJECT}:platformStack") or "") or None


def render_order(stacks: list[str]) -> list[str]:
    """Platform stacks first: an app stack's render reads its platform's outputs."""
    return sorted(stacks, key=lambda stack: platform_of(stack) is not None)


def render_stack(stack: str, out: Path, platform_outputs: Optional[dict[str, Path]] = None) -> StackRender:
    """Render in a child process: each stack gets a fresh Pulumi runtime, as under `pulumi preview`.
    An app stack's stack reference reads the outputs of its platform stack's render (`platform_outputs`)."""
    command = [sys.executable, "-m", "tools.render", stack, "--out", str(out)]
    for platform, outputs in (platform_outputs or {}).items():
        command += ["--platform-outputs", f"{platform}={outputs}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise ValidateError(f"{stack}: the offline render failed:\n{result.stderr.strip() or result.stdout.strip()}")
    kubernetes_version, istio_version = stack_versions(stack)
    manifests = {p.name: yaml.safe_load(p.read_text()) for p in sorted((out / "manifests").glob("*.yaml"))}
    return StackRender(stack, kubernetes_version, istio_version, manifests, stack_revision_versions(stack))


# ---------------------------------------------------------------------------------------------
# Kubernetes and Istio objects, Helm values


def describe(obj: dict) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "?")
    return f"{obj.get('kind', '?')} {namespace + '/' if namespace else ''}{name}"


def is_istio(obj: dict) -> bool:
    return str(obj.get("apiVersion", "")).split("/")[0].endswith(".istio.io")


def kubernetes_problems(obj: dict, kubernetes_version: str) -> list[str]:
    """Problems of one built-in Kubernetes object, strictly (unknown fields are errors)."""
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{describe(obj)}: apiVersion {obj.get('apiVersion')!r} kind {obj.get('kind')!r} has no schema in "
                f"Kubernetes {kubernetes_version} and is not an Istio kind"]
    except kubernetes_validate.ValidationError as error:
        inner = getattr(error, "caused_by", None) or error
        path = ".".join(str(p) for p in getattr(inner, "absolute_path", ())) or "<root>"
        message = getattr(inner, "message", None) or str(error).splitlines()[0]
        return [f"{describe(obj)}: {path}: {message}"]
    return []


def object_problems(obj: Any, kubernetes_version: str, istio_version: str) -> list[str]:
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        return ["not a Kubernetes object: it needs apiVersion and kind"]
    if is_istio(obj):
        try:
            return istio_schema.validate_istio_object(obj, istio_version)
        except ValueError as error:  # no vendored CRDs for this Istio version
            return [f"{describe(obj)}: {error}"]
    return kubernetes_problems(obj, kubernetes_version)


def release_problems(release: dict, kubernetes_version: str, istio_version: str,
                     revision_versions: Collection[str] = ()) -> list[str]:
    """Problems of one Helm release's values: only keys the chart of its release defines."""
    chart = str(release.get("chart") or "").rstrip("/").split("/")[-1]
    name = release.get("release") or chart
    if chart not in istio_schema.CHARTS:
        return [f"release {name}: chart {chart!r} has no vendored values reference, so its values cannot be "
                f"checked; vendor its values.yaml next to Istio's (schemas/) and extend tools/istio_schema.py"]
    version = str(release.get("version") or "")
    if version != istio_version and version not in revision_versions:
        return [f"release {name}: chart version {version or 'unset'} differs from istioVersion {istio_version}"
                f"{' and istioRevisions ' + ', '.join(revision_versions) if revision_versions else ''}, "
                f"whose chart values are the ones vendored; pin the chart to the stack's istioVersion"]
    try:
        problems = istio_schema.check_helm_values(chart, release.get("values") or {}, version,
                                                  kubernetes_version)
    except ValueError as error:
        return [f"release {name}: {error}"]
    return [f"release {name}: {p}" for p in problems]


def manifest_problems(render: StackRender) -> list[str]:
    problems = []
    for file_name, document in render.manifests.items():
        if file_name.endswith(RELEASE_SUFFIX):
            found = release_problems(document, render.kubernetes_version, render.istio_version,
                                     render.revision_versions)
        else:
            found = object_problems(document, render.kubernetes_version, render.istio_version)
        problems += [f"{render.stack}: {file_name}: {p}" for p in found]
    return problems


# ---------------------------------------------------------------------------------------------
# checkov


@dataclass(frozen=True)
class Skip:
    check_id: str
    reason: str
    resources: tuple[str, ...] = ()  # checkov resource names ("Deployment.e-commerce.orders"); empty: all

    def covers(self, check_id: str, resource: str) -> bool:
        return check_id == self.check_id and (not self.resources or resource in self.resources)


def load_skips(path: Path = SKIPS_FILE) -> tuple[list[Skip], list[str]]:
    """(skips, problems of the file itself): every skip needs a check id and a reason."""
    if not path.is_file():
        return [], []
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("skips") or [] if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return [], [f"{path.name}: expected `skips:` with a list of {{id, reason, resources}}"]
    skips, problems = [], []
    for index, entry in enumerate(entries):
        where = f"{path.name}: skips[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with id and reason")
            continue
        unknown = sorted(set(entry) - {"id", "reason", "resources"})
        check_id, reason, resources = entry.get("id"), entry.get("reason"), entry.get("resources") or []
        if unknown:
            problems.append(f"{where}: unknown key(s) {unknown}; accepted: id, reason, resources")
        if not isinstance(check_id, str) or not _CHECK_ID.match(check_id):
            problems.append(f"{where}: id {check_id!r} is not a checkov Kubernetes check id such as CKV_K8S_43")
            continue
        if not isinstance(reason, str) or len(reason.strip()) < 10:
            problems.append(f"{where} ({check_id}): give the reason this check cannot pass")
            continue
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            problems.append(f"{where} ({check_id}): resources must be a list of names such as Deployment.ns.name")
            continue
        skips.append(Skip(check_id, reason.strip(), tuple(resources)))
    return skips, problems


def find_checkov(explicit: Optional[str] = None) -> Optional[str]:
    """checkov lives in its own virtualenv (.venv-checkov): its pins clash with the test environment's."""
    for candidate in (explicit, os.environ.get("CHECKOV"), str(CHECKOV_VENV / "bin" / "checkov")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("checkov")


def run_checkov(checkov: str, directory: Path) -> list[dict]:
    """checkov's JSON reports for the Kubernetes manifests under `directory` (one per framework)."""
    result = subprocess.run(
        [checkov, "-d", str(directory), "--framework", "kubernetes", "--skip-download", "--compact", "--quiet",
         "-o", "json"],
        capture_output=True, text=True, timeout=900, cwd=directory)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise ValidateError(f"checkov exited {result.returncode} without a JSON report:\n"
                            f"{(result.stderr or result.stdout).strip()[-2000:]}") from None
    return report if isinstance(report, list) else [report]


def checkov_problems(reports: list[dict], skips: list[Skip],
                     stack_of_file: dict[str, str]) -> tuple[list[str], int, int]:
    """(problems, number of checks that passed, number of failed checks a listed skip covers)."""
    problems, passed, skipped = [], 0, 0
    for report in reports:
        results = report.get("results") or {}
        summary = report.get("summary") or report
        passed += int(summary.get("passed") or 0)
        for error in results.get("parsing_errors") or []:
            problems.append(f"checkov could not parse {error}")
        for check in results.get("failed_checks") or []:
            check_id, resource = check.get("check_id", "?"), check.get("resource", "?")
            if any(skip.covers(check_id, resource) for skip in skips):
                skipped += 1
                continue
            file_path = str(check.get("file_path", "")).lstrip("/")
            stack, _, file_name = file_path.partition("/")
            label = f"{stack_of_file.get(file_path, stack)}: {file_name or file_path}"
            problems.append(f"{label}: {resource}: {check_id} {check.get('check_name', '')} "
                            f"(fix it, or list it in policy/{SKIPS_FILE.name} with the reason)")
    return problems, passed, skipped


def write_kubernetes_manifests(renders: Iterable[StackRender], directory: Path) -> dict[str, str]:
    """Copy each stack's Kubernetes objects (not the Helm release summaries) to <directory>/<stack>/."""
    stack_of_file = {}
    for render in renders:
        target = directory / render.stack
        target.mkdir(parents=True, exist_ok=True)
        for file_name, document in render.manifests.items():
            if not file_name.endswith(RELEASE_SUFFIX):
                (target / file_name).write_text(yaml.safe_dump(document, sort_keys=False))
                stack_of_file[f"{render.stack}/{file_name}"] = render.stack
    return stack_of_file


# ---------------------------------------------------------------------------------------------


def validate(stacks: list[str], out: Path, checkov: Optional[str]) -> tuple[list[str], list[str]]:
    """(problems, summary lines) for the given stacks, rendered under `out`."""
    renders = []
    platform_outputs: dict[str, Path] = {}
    for stack in render_order(stacks):
        platform = platform_of(stack)
        if platform is not None and platform not in platform_outputs and platform in available_stacks(ROOT):
            renders.append(render_stack(platform, out / "render" / platform))
            platform_outputs[platform] = out / "render" / platform / "outputs.json"
        if stack in platform_outputs:
            continue
        renders.append(render_stack(stack, out / "render" / stack, platform_outputs))
        if platform is None:
            platform_outputs[stack] = out / "render" / stack / "outputs.json"
    problems = [p for render in renders for p in manifest_problems(render)]
    summary = []

    def reference_note(version: str) -> str:
        try:
            return istio_schema.reference_note(version)
        except ValueError as error:  # reported as a problem of every Istio object already
            return str(error)

    for render in renders:
        objects = [d for f, d in render.manifests.items() if not f.endswith(RELEASE_SUFFIX)]
        istio = sum(1 for d in objects if isinstance(d, dict) and is_istio(d))
        summary.append(f"{render.stack}: {len(objects) - istio} Kubernetes objects (Kubernetes "
                       f"{render.kubernetes_version}), {istio} Istio objects and "
                       f"{len(render.manifests) - len(objects)} Helm releases checked; "
                       f"{reference_note(render.istio_version)}")

    skips, skip_problems = load_skips()
    problems += skip_problems
    manifest_dir = out / "checkov"
    stack_of_file = write_kubernetes_manifests(renders, manifest_dir)
    if not stack_of_file:
        summary.append("checkov: no Kubernetes objects to scan")
        return problems, summary
    executable = find_checkov(checkov)
    if executable is None:
        raise ValidateError("checkov is not installed: run `make checkov-venv` (its own virtualenv from "
                            "requirements-checkov.txt), or point CHECKOV or --checkov at a checkov executable")
    found, passed, skipped = checkov_problems(run_checkov(executable, manifest_dir), skips, stack_of_file)
    problems += found
    summary.append(f"checkov: {passed} Kubernetes checks passed, {len(found)} failed, {skipped} failed but "
                   f"skipped as policy/{SKIPS_FILE.name} lists them ({', '.join(s.check_id for s in skips) or 'none'})")
    return problems, summary


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", action="append", default=[], metavar="NAME",
                        help="a stack to validate (repeatable); default: every Pulumi.<stack>.yaml")
    parser.add_argument("--checkov", help="the checkov executable (default: $CHECKOV, .venv-checkov, PATH)")
    parser.add_argument("--out", type=Path, help="keep the renders and scanned manifests here")
    args = parser.parse_args(argv)

    stacks = args.stack or available_stacks(ROOT)
    if not stacks:
        print("validate: no Pulumi.<stack>.yaml in the repository", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="validate-") as scratch:
            out = args.out or Path(scratch)
            problems, summary = validate(stacks, out, args.checkov)
    except (ValidateError, RenderError) as error:
        print(f"validate: {error}", file=sys.stderr)
        return 2
    for line in summary:
        print(f"validate: {line}")
    for problem in problems:
        print(problem)
    if problems:
        print(f"validate: {len(problems)} problem(s) in stack(s) {', '.join(stacks)}", file=sys.stderr)
        return 1
    print(f"validate: no problems in stack(s) {', '.join(stacks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
