"""Renovate (.github/renovate.json) covers every pin: its custom managers really match the add-on pins in
settings.py and the version defaults in Pulumi.yaml as written, and its file patterns reach every
requirements file and Dockerfile."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".github" / "renovate.json").read_text())
MANAGERS = CONFIG["customManagers"]

# The form the program keeps its pins in (settings.py), with every add-on for both Kubernetes versions.
ADDONS = ("vpc-cni", "kube-proxy", "coredns", "metrics-server")
SAMPLE_VERSIONS = {"vpc-cni": "v1.20.4-eksbuild.1", "kube-proxy": "v{k}.0-eksbuild.3",
                   "coredns": "v1.13.1-eksbuild.1", "metrics-server": "v0.8.0-eksbuild.2"}
SAMPLE = '\n'.join([
    'ADDON_VERSIONS = {',
    *[line for k in ("1.35", "1.36") for line in (
        f'    "{k}": {{',
        *[row for addon in ADDONS for row in (
            f'        # renovate: datasource=aws-eks-addon depName={addon} kubernetesVersion={k}',
            f'        "{addon}": "{SAMPLE_VERSIONS[addon].format(k=k)}",')],
        '    },')],
    '}',
    '',
])
# The version defaults every stack gets, as Pulumi.yaml declares them.
PROJECT_SAMPLE = '\n'.join([
    'config:',
    '  kubernetesVersion:',
    '    type: string',
    '    default: "1.35"  # renovate: datasource=endoflife-date depName=amazon-eks',
    '  istioVersion:',
    '    type: string',
    '    default: "1.30.3"  # renovate: datasource=github-releases depName=istio/istio',
    '',
])


def file_matches(patterns: list[str], path: str) -> bool:
    return any(re.search(pattern.strip("/"), path) for pattern in patterns)


def python_pattern(js: str) -> re.Pattern:
    """Renovate's matchStrings are JavaScript regexes run by RE2: named groups (?<x>...) are (?P<x>...) here."""
    assert not re.search(r"\(\?<?[=!]|\\[1-9]", js), f"RE2 has no lookaround or backreferences: {js}"
    return re.compile(re.sub(r"\(\?<([A-Za-z]\w*)>", r"(?P<\1>", js))


def render(template: str, groups: dict[str, str]) -> str:
    return re.sub(r"\{\{\{(\w+)\}\}\}", lambda m: groups[m.group(1)], template)


def extract(text: str, path: str = "settings.py") -> list[dict[str, str]]:
    """What Renovate would extract from the file at `path`: each match's groups, with the manager's templates."""
    deps = []
    for manager in MANAGERS:
        if not file_matches(manager["managerFilePatterns"], path):
            continue
        for match_string in manager["matchStrings"]:
            for match in python_pattern(match_string).finditer(text):
                groups = {k: v for k, v in match.groupdict().items() if v is not None}
                dep = dict(groups)
                for field in ("depName", "packageName", "datasource", "versioning"):
                    if f"{field}Template" in manager:
                        dep[field] = render(manager[f"{field}Template"], groups)
                dep.setdefault("packageName", dep["depName"])
                dep["line"] = text[:match.end()].count("\n")
                deps.append(dep)
    return deps


def test_every_pin_in_the_documented_form_is_found_with_the_right_lookup():
    deps = extract(SAMPLE) + extract(PROJECT_SAMPLE, "Pulumi.yaml")
    found = {(d["datasource"], d["packageName"], d["currentValue"]) for d in deps}
    expected = {("endoflife-date", "amazon-eks", "1.35"), ("github-releases", "istio/istio", "1.30.3")}
    expected |= {("aws-eks-addon", json.dumps({"kubernetesVersion": k, "addonName": addon}, separators=(",", ":")),
                  SAMPLE_VERSIONS[addon].format(k=k)) for k in ("1.35", "1.36") for addon in ADDONS}
    assert found == expected
    assert len(deps) == len(expected), "each pin once"


def test_the_add_on_lookups_are_what_the_aws_eks_addon_datasource_accepts():
    for dep in extract(SAMPLE):
        if dep["datasource"] != "aws-eks-addon":
            continue
        filter_ = json.loads(dep["packageName"])
        assert set(filter_) == {"kubernetesVersion", "addonName"}
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", filter_["addonName"])
        assert re.fullmatch(r"\d+\.\d+", filter_["kubernetesVersion"])
        assert dep["versioning"] == "aws-eks-addon"
        assert dep["depName"] == f"{filter_['addonName']}-k8s-{filter_['kubernetesVersion']}", \
            "one name per add-on and Kubernetes version, so both versions' pins stay apart"


def test_an_add_on_comment_only_reaches_the_line_below_it():
    text = ('# renovate: datasource=aws-eks-addon depName=vpc-cni kubernetesVersion=1.35\n\n'
            '"vpc-cni": "v1.20.4-eksbuild.1",\n')
    assert extract(text) == []


def test_the_real_settings_py_pins_are_all_matched():
    """Every `# renovate:` comment the program carries reaches a manager."""
    text = (ROOT / "settings.py").read_text()
    deps = extract(text)
    comment_lines = [i for i, line in enumerate(text.splitlines()) if "# renovate:" in line]
    matched_lines = {d["line"] for d in deps} | {d["line"] - 1 for d in deps if d["datasource"] == "aws-eks-addon"}
    assert set(comment_lines) <= matched_lines, [text.splitlines()[i] for i in comment_lines if i not in matched_lines]


def test_file_patterns_reach_every_requirements_file_dockerfile_and_settings():
    requirements = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("requirements*.txt")
                          if not any(part.startswith(".") or part == "venv" for part in p.relative_to(ROOT).parts))
    assert {"requirements.txt", "requirements-dev.txt", "policy/requirements.txt"} <= set(requirements)
    assert any(r.startswith("services/") for r in requirements)
    for path in requirements:
        assert file_matches(CONFIG["pip_requirements"]["managerFilePatterns"], path), path
    dockerfiles = [str(p.relative_to(ROOT)) for p in (ROOT / "services").glob("*/Dockerfile")]
    assert len(dockerfiles) == 3
    for path in dockerfiles:
        assert file_matches(CONFIG["dockerfile"]["managerFilePatterns"], path), path
    for manager in MANAGERS:
        assert file_matches(manager["managerFilePatterns"], "settings.py") or \
            file_matches(manager["managerFilePatterns"], "Pulumi.yaml")
    assert {"pip_requirements", "github-actions", "dockerfile", "custom.regex"} <= set(CONFIG["enabledManagers"])


def rule_for(**match: Any) -> dict[str, Any]:
    return next(rule for rule in CONFIG["packageRules"] if all(rule.get(k) == v for k, v in match.items()))


def test_an_istio_update_says_it_needs_its_reference_data():
    rule = rule_for(matchPackageNames=["istio/istio"])
    assert any("schemas/istio-{{{newVersion}}}/" in note for note in rule["prBodyNotes"])
    assert (ROOT / "schemas" / "istio-1.30.3").is_dir(), "the data for the current version, as the note describes"


def test_kubernetes_updates_come_one_minor_at_a_time_with_what_else_to_change():
    rule = rule_for(matchPackageNames=["amazon-eks"])
    assert rule["separateMultipleMinor"] is True
    assert "SUPPORTED_KUBERNETES_VERSIONS" in " ".join(rule["prBodyNotes"])


def test_add_on_updates_are_not_held_back_for_a_release_date_that_never_comes():
    assert CONFIG.get("minimumReleaseAge"), "a cooldown for everything that has release dates"
    assert rule_for(matchDatasources=["aws-eks-addon"])["minimumReleaseAge"] is None


def test_actions_stay_pinned_by_sha_and_only_renovate_proposes_updates():
    assert rule_for(matchManagers=["github-actions"])["pinDigests"] is True
    assert not (ROOT / ".github" / "dependabot.yml").exists(), "two bots would open the same pull requests"


@pytest.mark.parametrize("bad", ['  default: "1.35.2"  # renovate: datasource=endoflife-date depName=amazon-eks',
                                 '  default: "1.30.3"', 'DEFAULT_ISTIO_VERSION = "1.30.3"'])
def test_pins_not_in_the_documented_form_are_not_guessed(bad: str):
    assert extract(bad, "Pulumi.yaml") == [] and extract(bad) == []


def test_the_real_pulumi_yaml_version_defaults_are_matched():
    """The Kubernetes and Istio versions stacks get are Pulumi.yaml's defaults; Renovate must find both there."""
    from settings import DEFAULT_ISTIO_VERSION, DEFAULT_KUBERNETES_VERSION
    found = {(d["datasource"], d["packageName"], d["currentValue"])
             for d in extract((ROOT / "Pulumi.yaml").read_text(), "Pulumi.yaml")}
    assert found == {("endoflife-date", "amazon-eks", DEFAULT_KUBERNETES_VERSION),
                     ("github-releases", "istio/istio", DEFAULT_ISTIO_VERSION)}
