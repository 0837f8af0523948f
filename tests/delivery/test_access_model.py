"""The identity model (tools/access_model.py) against the workflows: every job that runs Pulumi does so as a
role with the Kubernetes access its operation needs on that stack, checks it first, and tears down safely."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import yaml

from tools import access_model
from tools.access_model import ADMIN, JOBS, ROLES, STACKS, VIEW, covers

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CREDENTIALS = "aws-actions/configure-aws-credentials"
TEARDOWN_ARN = "arn:aws:iam::123456789012:role/eks-shop-demo-teardown"


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def all_workflows() -> dict[str, dict[str, Any]]:
    return {path.stem: load(path) for path in sorted(WORKFLOWS.glob("*.yml"))}


def uses(step: dict[str, Any]) -> str:
    return step.get("uses", "").split("@")[0]


# The CLI as a command (a line's first word, or after ; && || |), not words in an echo or a comment.
_PULUMI_COMMAND = re.compile(r"(?:^\s*|[;&|]\s*)pulumi\s+(up|destroy|preview|refresh)\b")


def step_operations(step: dict[str, Any]) -> list[str]:
    """The Pulumi operations a step runs: pulumi/actions' command, the CLI in a script, or the reaper."""
    found = []
    if uses(step) == "pulumi/actions" and "command" in step.get("with", {}):
        found.append(step["with"]["command"])
    for line in step.get("run", "").splitlines():
        found += _PULUMI_COMMAND.findall(line)
        if "tools.reap" in line and "--dry-run" not in line:
            found.append("destroy")
    return found


def reap_lines(step: dict[str, Any]) -> list[str]:
    return [line for line in step.get("run", "").splitlines() if "tools.reap" in line and "--dry-run" not in line]


_NEEDS = re.compile(r"tools\.access_check\b.*--needs\s+(view|admin)\b")


def preflight_level(step: dict[str, Any]) -> Optional[str]:
    match = _NEEDS.search(step.get("run", "").replace("\\\n", " "))
    if match:
        return match.group(1)
    lines = reap_lines(step)
    if lines and all("--check-access" in line for line in lines):
        return ADMIN  # tools.reap --check-access runs tools.access_check --needs admin before each destroy
    return None


def environment(job: dict[str, Any]) -> Optional[str]:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def step_env(document: dict[str, Any], job: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    return {**document.get("env", {}), **job.get("env", {}), **step.get("env", {})}


def access_problems(workflows: dict[str, dict[str, Any]], jobs=JOBS, stacks=STACKS, roles=ROLES) -> list[str]:
    """Everything in the workflows that contradicts the identity model; empty when they agree."""
    problems = []
    model = {(j.workflow, j.job): j for j in jobs}
    for workflow, document in workflows.items():
        for name, job in document["jobs"].items():
            where = f"{workflow}.yml:{name}"
            steps = job.get("steps", [])
            ops = [(i, op) for i, step in enumerate(steps) for op in step_operations(step)]
            if not ops:
                continue
            entry = model.get((workflow, name))
            if entry is None:
                problems.append(f"{where} runs `pulumi {ops[0][1]}` but is not in the identity model")
                continue
            needed = max((access_model.OPERATION_NEEDS[op] for _, op in ops), key=[VIEW, ADMIN].index)
            if not covers(entry.needs, needed):
                problems.append(f"{where}: the model says {entry.operation}, the workflow runs an operation "
                                f"that needs {needed}")
            if environment(job) != entry.environment:
                problems.append(f"{where} runs as environment {environment(job)!r}, the model says "
                                f"{entry.environment!r}")
            for stack in entry.stacks:
                # The role the job really gets: its environment's AWS_ROLE_ARN.
                have = stacks[stack].level_of(environment(job) or "")
                needed_there = stacks[stack].needs(entry.operation)
                if not covers(have, needed_there):
                    problems.append(f"{where} runs {ops[0][1]} on {stack} as {environment(job)}, which has "
                                    f"{have or 'no'} Kubernetes access there ({needed_there} needed)")
            first_op = ops[0][0]
            credentials = [i for i, step in enumerate(steps) if uses(step) == CREDENTIALS]
            preflights = [(i, preflight_level(step)) for i, step in enumerate(steps) if preflight_level(step)]
            if not preflights:
                problems.append(f"{where} runs Pulumi without the access preflight (tools.access_check)")
            for i, level in preflights:
                if not covers(level, needed):
                    problems.append(f"{where}: the preflight checks for {level}, the operation needs {needed}")
                if not credentials or i < credentials[0]:
                    problems.append(f"{where}: the preflight runs before the credentials step")
                if i > first_op or (i == first_op and not reap_lines(steps[i])):
                    problems.append(f"{where}: the preflight runs after Pulumi started")
                blocking = not steps[i].get("continue-on-error", False)
                if entry.teardown and blocking and not reap_lines(steps[i]):
                    problems.append(f"{where}: a teardown's preflight must report, never block the destroy "
                                    "(continue-on-error, and a later step that fails the job)")
                if not entry.teardown and not blocking:
                    problems.append(f"{where}: the preflight must stop the job before Pulumi starts")
                if entry.teardown and not blocking:
                    step_id = steps[i].get("id")
                    fails = [s for s in steps[i + 1:] if step_id and f"steps.{step_id}.outcome == 'failure'"
                             in str(s.get("if", "")) and "exit 1" in s.get("run", "")]
                    if not fails:
                        problems.append(f"{where}: nothing fails the job when the teardown's preflight failed")
            for i, op in ops:
                env = step_env(document, job, steps[i])
                unreachable = str(env.get("PULUMI_K8S_DELETE_UNREACHABLE", "")).lower() == "true"
                if entry.teardown and op == "destroy":
                    if not unreachable:
                        problems.append(f"{where}: a teardown without PULUMI_K8S_DELETE_UNREACHABLE=true can be "
                                        "blocked by an unreachable cluster")
                    refreshes = (steps[i].get("with", {}).get("refresh") is True
                                 or "--refresh" in steps[i].get("run", "") or reap_lines(steps[i]))
                    if not refreshes:
                        problems.append(f"{where}: a teardown must refresh before it destroys")
                elif unreachable:
                    problems.append(f"{where}: PULUMI_K8S_DELETE_UNREACHABLE is for teardown only (an up would "
                                    "drop objects from the state during an outage)")
            for credential in credentials:
                seconds = int(steps[credential].get("with", {}).get("role-duration-seconds",
                                                                   access_model.DEFAULT_MAX_SESSION_SECONDS))
                role = roles.get(environment(job) or "")
                if role is None:
                    problems.append(f"{where}: environment {environment(job)!r} has no role in the model")
                    continue
                if seconds > role.max_session_seconds:
                    problems.append(f"{where}: role-duration-seconds {seconds} exceeds the {role.environment} "
                                    f"role's MaxSessionDuration {role.max_session_seconds}")
                if seconds < 60 * int(job.get("timeout-minutes", 360)):
                    problems.append(f"{where}: the {seconds}-second session ends before the job's "
                                    f"{job.get('timeout-minutes')}-minute timeout")
    for (workflow, name) in model:
        if workflow in workflows and name not in workflows[workflow]["jobs"]:
            problems.append(f"the model lists {workflow}.yml:{name}, which does not exist")
    return problems


def grant_problems(workflows: dict[str, dict[str, Any]], stacks=STACKS) -> list[str]:
    """Every access entry the model grants through a setting is written by the job it names, from its
    repository variable, before that job's `pulumi up`; empty when the model and the workflows agree."""
    problems = []
    for kind in stacks.values():
        for grant in kind.grants:
            if grant.setting is None:
                continue  # the creator: EKS's bootstrap entry
            what = f"{kind.name}: {grant.environment}'s {grant.setting}"
            if grant.platform is not None:
                problems += platform_grant_problems(kind, grant, stacks)
                continue
            if grant.set_by_job is None or grant.variable is None:
                problems.append(f"{what} is written by no workflow (set_by_job and variable in the model)")
                continue
            workflow, name = grant.set_by_job
            job = workflows.get(workflow, {}).get("jobs", {}).get(name)
            if job is None:
                problems.append(f"{what}: {workflow}.yml:{name} does not exist")
                continue
            steps = job.get("steps", [])
            bare = grant.setting.split(":", 1)[1]
            write = f"pulumi config set --path '{bare}[0]' \"${grant.variable}\""
            writers = [i for i, step in enumerate(steps) if write in step.get("run", "")]
            ups = [i for i, step in enumerate(steps) if "up" in step_operations(step)]
            if not writers:
                problems.append(f"{what}: {workflow}.yml:{name} never runs `{write}`")
                continue
            if not ups or writers[0] > ups[0]:
                problems.append(f"{what}: {workflow}.yml:{name} writes it after `pulumi up` (or runs no up)")
            env = step_env(workflows[workflow], job, steps[writers[0]])
            if env.get(grant.variable) != f"${{{{ vars.{grant.variable} }}}}":
                problems.append(f"{what}: {workflow}.yml:{name} takes ${grant.variable} from "
                                f"{env.get(grant.variable)!r}, not the repository variable {grant.variable}")
    return problems


def platform_grant_problems(kind, grant, stacks) -> list[str]:
    """A grant held by a platform stack's setting: only app stacks get one, only through the platform's
    appDeployerArns (namespace-scoped), from a platform kind of stack the model knows."""
    what = f"{kind.name}: {grant.environment}'s {grant.setting} on {grant.platform}"
    problems = []
    platform = stacks.get(grant.platform)
    if platform is None or platform.kind != access_model.PLATFORM_KIND:
        problems.append(f"{what}: {grant.platform} is not a platform stack of the model")
    if kind.kind != access_model.APP_KIND:
        problems.append(f"{what}: only app stacks take their access from a platform's setting")
    if grant.setting != access_model.APP_DEPLOYER_SETTING or grant.level != access_model.NAMESPACE_ADMIN:
        problems.append(f"{what}: an app stack's access is {access_model.NAMESPACE_ADMIN} through "
                        f"{access_model.APP_DEPLOYER_SETTING}, not {grant.level} through {grant.setting}")
    return problems


def test_the_workflows_agree_with_the_identity_model():
    assert access_problems(all_workflows()) == []
    assert grant_problems(all_workflows()) == []


def test_a_grant_that_no_workflow_writes_is_caught():
    stacks = dict(STACKS)
    dev = stacks["dev"]
    stacks["dev"] = access_model.StackKind(dev.name, dev.pattern, dev.created_by, tuple(
        access_model.Grant(g.environment, g.level, g.setting, "the user") if g.environment == "preview" else g
        for g in dev.grants))
    assert grant_problems(all_workflows(), stacks) == [
        "dev: preview's eks-istio-shop:clusterViewerArns is written by no workflow (set_by_job and variable in "
        "the model)"]

    def drop(w):
        job = w["deploy"]["jobs"]["up"]
        job["steps"] = [s for s in job["steps"] if s.get("id") != "viewers"]

    workflows = copy.deepcopy(all_workflows())
    drop(workflows)
    assert any("deploy.yml:up never runs" in p for p in grant_problems(workflows))

    def late(w):
        job = w["deploy"]["jobs"]["up"]
        step = next(s for s in job["steps"] if s.get("id") == "viewers")
        job["steps"].remove(step)
        job["steps"].append(step)

    workflows = copy.deepcopy(all_workflows())
    late(workflows)
    assert any("writes it after `pulumi up`" in p for p in grant_problems(workflows))

    workflows = copy.deepcopy(all_workflows())
    next(s for s in workflows["deploy"]["jobs"]["up"]["steps"] if s.get("id") == "viewers")["env"][
        "PREVIEW_ROLE_ARN"] = "${{ vars.AWS_ROLE_ARN }}"
    assert any("not the repository variable PREVIEW_ROLE_ARN" in p for p in grant_problems(workflows))


def test_the_model_gives_every_job_the_access_it_needs():
    for j in JOBS:
        for stack in j.stacks:
            assert covers(STACKS[stack].level_of(j.environment), STACKS[stack].needs(j.operation)), (j, stack)
        assert j.environment in ROLES


def test_every_job_that_runs_pulumi_is_in_the_model():
    found = {(workflow, name) for workflow, document in all_workflows().items()
             for name, job in document["jobs"].items()
             if any(step_operations(step) for step in job.get("steps", []))}
    assert found == {(j.workflow, j.job) for j in JOBS}


# -- the checker catches what it must (each would pass unnoticed otherwise) ------------------------

def broken(change) -> list[str]:
    workflows = copy.deepcopy(all_workflows())
    change(workflows)
    return access_problems(workflows)


def find_step(job: dict[str, Any], needle: str) -> dict[str, Any]:
    return next(step for step in job["steps"] if needle in step.get("run", "") or needle in step.get("uses", ""))


def test_a_role_without_access_on_the_stack_is_caught():
    problems = broken(lambda w: w["demo"]["jobs"]["destroy"].update(environment="preview"))
    assert any("runs as environment 'preview'" in p for p in problems), problems
    assert any("which has no Kubernetes access there (admin needed)" in p for p in problems), problems


def test_a_viewer_grant_that_goes_missing_is_caught():
    stacks = dict(STACKS)
    dev = stacks["dev"]
    stacks["dev"] = access_model.StackKind(dev.name, dev.pattern, dev.created_by,
                                           tuple(g for g in dev.grants if g.environment != "preview"))
    problems = access_problems(all_workflows(), stacks=stacks)
    assert problems == ["preview.yml:preview runs preview on dev as preview, which has no Kubernetes access "
                        "there (view needed)"]


def test_a_missing_or_weak_or_late_preflight_is_caught():
    def drop(w):
        job = w["deploy"]["jobs"]["up"]
        job["steps"].remove(find_step(job, "tools.access_check"))

    assert any("without the access preflight" in p for p in broken(drop))

    def weaken(w):
        step = find_step(w["demo"]["jobs"]["up"], "tools.access_check")
        step["run"] = step["run"].replace("--needs admin", "--needs view")

    assert any("checks for view, the operation needs admin" in p for p in broken(weaken))

    def move_after_up(w):
        job = w["deploy"]["jobs"]["up"]
        step = find_step(job, "tools.access_check")
        job["steps"].remove(step)
        job["steps"].append(step)

    assert any("after Pulumi started" in p for p in broken(move_after_up))

    def reap_without(w):
        step = find_step(w["reap"]["jobs"]["reap"], "tools.reap")
        step["run"] = step["run"].replace("--check-access ", "")

    assert any("reap.yml:reap runs Pulumi without the access preflight" in p for p in broken(reap_without))


def test_a_blocking_teardown_preflight_or_a_soft_up_preflight_is_caught():
    def block(w):
        del find_step(w["demo"]["jobs"]["destroy"], "tools.access_check")["continue-on-error"]

    assert any("must report, never block" in p for p in broken(block))

    def soften(w):
        find_step(w["deploy"]["jobs"]["up"], "tools.access_check")["continue-on-error"] = True

    assert any("must stop the job" in p for p in broken(soften))


def test_teardown_without_delete_unreachable_or_refresh_is_caught():
    def no_unreachable(w):
        del w["reap"]["jobs"]["reap"]["env"]["PULUMI_K8S_DELETE_UNREACHABLE"]

    assert any("reap.yml:reap: a teardown without PULUMI_K8S_DELETE_UNREACHABLE" in p for p in broken(no_unreachable))

    def no_refresh(w):
        step = find_step(w["nightly"]["jobs"]["teardown"], "pulumi destroy")
        step["run"] = step["run"].replace("--refresh ", "")

    assert any("must refresh before it destroys" in p for p in broken(no_refresh))

    def unreachable_on_up(w):
        w["deploy"]["jobs"]["up"].setdefault("env", {})["PULUMI_K8S_DELETE_UNREACHABLE"] = "true"

    assert any("teardown only" in p for p in broken(unreachable_on_up))


def test_sessions_are_checked_against_max_session_duration_and_the_timeout():
    def too_long(w):
        step = find_step(w["preview"]["jobs"]["preview"], CREDENTIALS)
        step["with"]["role-duration-seconds"] = 7200

    assert any("exceeds the preview role's MaxSessionDuration 3600" in p for p in broken(too_long))

    def too_short(w):
        del find_step(w["deploy"]["jobs"]["up"], CREDENTIALS)["with"]["role-duration-seconds"]

    assert any("session ends before the job's 90-minute timeout" in p for p in broken(too_short))


def test_an_unknown_job_running_pulumi_is_caught():
    def add(w):
        w["deploy"]["jobs"]["extra"] = {"environment": "dev", "steps": [{"run": "pulumi refresh --yes"}]}

    assert "deploy.yml:extra runs `pulumi refresh` but is not in the identity model" in broken(add)


def test_every_role_duration_is_explicit_and_fits_its_role():
    for workflow, document in all_workflows().items():
        for name, job in document["jobs"].items():
            for step in job.get("steps", []):
                if uses(step) == CREDENTIALS:
                    seconds = step["with"].get("role-duration-seconds")
                    assert isinstance(seconds, int), f"{workflow}:{name} states its session length"
                    assert seconds <= ROLES[environment(job)].max_session_seconds


# -- the settings the workflows write into the demo and nightly stacks ----------------------------

PULUMI_STUB = """#!/usr/bin/env bash
echo "pulumi $*" >> "$STUB_LOG"
case "$*" in
  "stack select"*) exit 0;;
  "stack ls --json"*)
    if [ -n "${STUB_LS_ERROR:-}" ]; then echo "error: $STUB_LS_ERROR" >&2; exit 255; fi
    if [ -n "${STUB_STACKS:-}" ]; then cat "$STUB_STACKS"; else echo '[]'; fi
    exit 0;;
  "stack tag get expires-at"*) if [ -n "${STUB_EXPIRES_AT:-}" ]; then echo "$STUB_EXPIRES_AT"; exit 0; fi; exit 255;;
  "stack tag get demo-kind"*) if [ -n "${STUB_DEMO_KIND:-}" ]; then echo "$STUB_DEMO_KIND"; exit 0; fi; exit 255;;
  "config get clusterName"*) echo beta; exit 0;;
  "config get domain"*) echo example.com; exit 0;;
  "config get "*) echo '["arn:aws:iam::123456789012:role/someone"]'; exit 0;;
esac
exit 0
"""
GH_STUB = """#!/usr/bin/env bash
echo "gh $*" >> "$STUB_LOG"
cat "${@: -1}" >> "$STUB_LOG"
"""


def run_script(script: str, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    for name, text in (("pulumi", PULUMI_STUB), ("gh", GH_STUB)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    full_env = {"PATH": f"{stubs}:{os.environ['PATH']}", "STUB_LOG": str(log),
                "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
                "GITHUB_REPOSITORY": "owner/repo", "PULUMI_BACKEND_URL": "s3://state",
                # demo.yml's workflow-level DEMO_KIND (the harness runs a step's script only): a whole
                # environment, as the nightly stacks are, unless a test asks for an app stack.
                "DEMO_KIND": "full", **env}
    result = subprocess.run(["bash", "-e", "-c", script], env=full_env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    return result, log.read_text().splitlines()


@pytest.mark.parametrize("workflow, stack", [("demo", "pr-42"), ("nightly", "nightly-987654321")])
def test_demo_and_nightly_stacks_list_the_teardown_role_and_nobody_else(workflow: str, stack: str, tmp_path: Path):
    job = load(WORKFLOWS / f"{workflow}.yml")["jobs"]["up"]
    step = next(s for s in job["steps"] if s.get("id") == "stack")
    assert step["env"]["DEMO_TEARDOWN_ROLE_ARN"] == "${{ vars.DEMO_TEARDOWN_ROLE_ARN }}", \
        "a repository variable: environment variables are not visible across environments"
    result, log = run_script(step["run"], tmp_path, {
        "STACK": stack, "PR_NUMBER": "42", "EXPIRES_AT": "2026-11-25T20:00:00Z", "GITHUB_RUN_ID": "987654321",
        "DEMO_TEARDOWN_ROLE_ARN": TEARDOWN_ARN})
    assert result.returncode == 0, result.stderr
    config = [line for line in log if line.startswith("pulumi config ")]
    assert f"pulumi config init" not in config
    assert f"pulumi config rm clusterAdminArns --stack {stack}" in config, "dev's admins are not copied"
    assert f"pulumi config rm clusterViewerArns --stack {stack}" in config, "nobody previews this stack"
    sets = [line for line in config if "clusterAdminArns" in line and line.startswith("pulumi config set")]
    assert sets == [f"pulumi config set --path clusterAdminArns[0] {TEARDOWN_ARN} --stack {stack}"]
    assert config.index(sets[0]) > config.index(f"pulumi config rm clusterAdminArns --stack {stack}")
    assert f"pulumi stack tag set expires-at 2026-11-25T20:00:00Z --stack {stack}" in log
    assert f"cluster-name=beta-{stack}" in (tmp_path / "output").read_text()


PREVIEW_ARN = "arn:aws:iam::123456789012:role/eks-shop-preview"
DEV_ARN = "arn:aws:iam::123456789012:role/eks-shop-dev"


def viewers_step() -> dict[str, Any]:
    return next(s for s in load(WORKFLOWS / "deploy.yml")["jobs"]["up"]["steps"] if s.get("id") == "viewers")


def test_deploy_lists_exactly_the_preview_role_as_devs_viewer_before_up(tmp_path: Path):
    job = load(WORKFLOWS / "deploy.yml")["jobs"]["up"]
    step = viewers_step()
    assert step["env"]["PREVIEW_ROLE_ARN"] == "${{ vars.PREVIEW_ROLE_ARN }}", \
        "a repository variable: the preview environment's AWS_ROLE_ARN is not visible in dev"
    up = next(i for i, s in enumerate(job["steps"]) if "up" in step_operations(s))
    assert job["steps"].index(step) == up - 1, "written right before `pulumi up`"
    result, log = run_script(step["run"], tmp_path, {"PREVIEW_ROLE_ARN": PREVIEW_ARN, "AWS_ROLE_ARN": DEV_ARN})
    assert result.returncode == 0, result.stderr
    config = [line for line in log if line.startswith("pulumi config ")]
    # The stub answers that a list is there: it is replaced, not appended to.
    assert config[-2:] == ["pulumi config rm clusterViewerArns --stack dev",
                           f"pulumi config set --path clusterViewerArns[0] {PREVIEW_ARN} --stack dev"]
    assert log.index("pulumi login s3://state") < log.index(config[-1])


@pytest.mark.parametrize("preview_arn, message", [
    ("", "Set the repository variable PREVIEW_ROLE_ARN"),
    (DEV_ARN, "PREVIEW_ROLE_ARN is the dev role itself"),
    ("arn:aws:sts::123456789012:assumed-role/eks-shop-preview/session", "is not an IAM role ARN"),
])
def test_deploy_stops_without_a_usable_preview_role(preview_arn: str, message: str, tmp_path: Path):
    result, log = run_script(viewers_step()["run"], tmp_path, {"PREVIEW_ROLE_ARN": preview_arn,
                                                               "AWS_ROLE_ARN": DEV_ARN})
    assert result.returncode == 1
    assert message in result.stdout and "::error::" in result.stdout
    assert not any(line.startswith("pulumi config set") for line in log)


# -- "no such stack" is told apart from every other error ---------------------------------------------

def find_stack_step(workflow: str, job: str) -> dict[str, Any]:
    return next(s for s in load(WORKFLOWS / f"{workflow}.yml")["jobs"][job]["steps"] if s.get("id") == "stack")


STACK_STEPS = [("demo", "up", "pr-42"), ("nightly", "up", "nightly-987654321"),
               ("demo", "destroy", "pr-42"), ("nightly", "teardown", "nightly-987654321")]


def run_stack_step(workflow: str, job: str, stack: str, tmp_path: Path, **env: str):
    return run_script(find_stack_step(workflow, job)["run"], tmp_path, {
        "STACK": stack, "PR_NUMBER": "42", "EXPIRES_AT": "2026-11-25T20:00:00Z", "GITHUB_RUN_ID": "987654321",
        "DEMO_TEARDOWN_ROLE_ARN": TEARDOWN_ARN, **env})


@pytest.mark.parametrize("workflow, job, stack", STACK_STEPS)
def test_a_backend_error_is_never_taken_for_a_missing_stack(workflow: str, job: str, stack: str, tmp_path: Path):
    result, log = run_stack_step(workflow, job, stack, tmp_path,
                                 STUB_LS_ERROR="failed to list stacks: AccessDenied: s3:ListBucket")
    assert result.returncode != 0, "an S3 error must fail the step"
    assert not any(line.startswith(("pulumi stack init", "pulumi destroy", "pulumi config set")) for line in log)
    output = tmp_path / "output"
    assert "exists=false" not in (output.read_text() if output.exists() else "")


@pytest.mark.parametrize("workflow, job, stack", STACK_STEPS)
def test_only_a_stack_missing_from_the_listing_counts_as_missing(workflow: str, job: str, stack: str,
                                                                 tmp_path: Path):
    listing = tmp_path / "stacks.json"
    listing.write_text(json.dumps([{"name": "dev", "resourceCount": 140}]))
    result, log = run_stack_step(workflow, job, stack, tmp_path, STUB_STACKS=str(listing))
    assert result.returncode == 0, result.stderr
    if job in ("up",):
        assert any(line.startswith(f"pulumi stack init {stack} --copy-config-from dev") for line in log)
    else:
        assert "exists=false" in (tmp_path / "output").read_text()
        assert f"pulumi stack select {stack}" not in log

    listing.write_text(json.dumps([{"name": "dev"}, {"name": f"organization/eks-istio-shop/{stack}",
                                                     "resourceCount": 120}]))
    (tmp_path / "output").write_text("")
    result, log = run_stack_step(workflow, job, stack, tmp_path, STUB_STACKS=str(listing))
    assert result.returncode == 0, result.stderr
    assert f"pulumi stack select {stack}" in log
    assert not any(line.startswith("pulumi stack init") for line in log)
    if job != "up":
        assert "exists=true" in (tmp_path / "output").read_text()


def test_no_workflow_takes_a_failed_select_for_a_missing_stack():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for line in path.read_text().splitlines():
            assert not ("stack select" in line and ("2>/dev/null" in line or line.strip().startswith("if"))), line


# -- a lock left by a timed-out or cancelled update never blocks a teardown ---------------------------

CANCEL = 'pulumi cancel --yes --stack "$STACK"'


@pytest.mark.parametrize("workflow, job", [("nightly", "teardown"), ("demo", "destroy")])
def test_teardowns_clear_a_stale_lock_before_they_destroy(workflow: str, job: str):
    steps = load(WORKFLOWS / f"{workflow}.yml")["jobs"][job]["steps"]
    cancels = [i for i, step in enumerate(steps) if CANCEL in step.get("run", "")]
    destroys = [i for i, step in enumerate(steps) if "destroy" in step_operations(step)]
    assert cancels and destroys and cancels[0] < destroys[0]
    assert steps[cancels[0]].get("if") == steps[destroys[0]].get("if") == "steps.stack.outputs.exists == 'true'"


def lock_step() -> dict[str, Any]:
    return next(s for s in load(WORKFLOWS / "demo.yml")["jobs"]["destroy"]["steps"] if CANCEL in s.get("run", ""))


@pytest.mark.parametrize("previous, cancelled", [
    ("2099-01-01T00:00:00Z", True),  # not due: no reaper can be on it
    ("", True),  # no tag: the reaper never touches it
    ("2020-01-01T00:00:00Z", False),  # due: a reaper may be destroying it right now
])
def test_the_demo_destroy_keeps_the_reaper_off_and_cancels_only_a_stack_it_cannot_be_on(
        previous: str, cancelled: bool, tmp_path: Path):
    result, log = run_script(lock_step()["run"], tmp_path, {"STACK": "pr-42", "STUB_EXPIRES_AT": previous})
    assert result.returncode == 0, result.stderr
    tag = next(i for i, line in enumerate(log) if line.startswith("pulumi stack tag set expires-at "))
    assert log[tag].endswith("--stack pr-42")
    cancel = [i for i, line in enumerate(log) if line == "pulumi cancel --yes --stack pr-42"]
    assert bool(cancel) is cancelled
    if cancel:
        assert tag < cancel[0], "the reaper is kept off before the lock goes"
    else:
        assert "which may be destroying it" in result.stdout


# -- bounded demos ---------------------------------------------------------------------------------

def admission_step() -> dict[str, Any]:
    job = load(WORKFLOWS / "demo.yml")["jobs"]["admit"]
    return next(step for step in job["steps"] if "tools.demo_stacks admit" in step.get("run", ""))


def test_demo_admission_and_creation_run_one_pull_request_at_a_time():
    """Two pull requests labelled together must not both pass the count: the count and the stack's
    creation share one repository-wide group, and the created stack counts from then on."""
    document = load(WORKFLOWS / "demo.yml")
    admit_job, up = document["jobs"]["admit"], document["jobs"]["up"]
    assert admit_job["concurrency"] == {"group": "demo-admission", "cancel-in-progress": False}
    assert up["needs"] == "admit" or up["needs"] == ["admit"]
    assert admit_job["if"] == up["if"], "admitted exactly when an up follows"
    runs = [step.get("run", "") for step in admit_job["steps"]]
    count = next(i for i, run in enumerate(runs) if "tools.demo_stacks admit" in run)
    create = next(i for i, run in enumerate(runs) if "pulumi stack init" in run)
    assert count < create
    assert not any("tools.demo_stacks admit" in step.get("run", "") for step in up["steps"]), \
        "a count outside the group would race again"
    assert admission_step()["env"]["DEMO_MAX_STACKS"] == "${{ vars.DEMO_MAX_STACKS }}"


def test_the_admitted_stack_is_created_with_an_expiry_and_an_existing_one_left_alone(tmp_path: Path):
    job = load(WORKFLOWS / "demo.yml")["jobs"]["admit"]
    step = next(s for s in job["steps"] if "pulumi stack init" in s.get("run", ""))
    (tmp_path / "build").mkdir()
    listing = ROOT / "build" / "stacks.json"
    listing.parent.mkdir(exist_ok=True)
    for stacks, created in (([{"name": "dev", "resourceCount": 140}], True),
                            ([{"name": "dev"}, {"name": "pr-42", "resourceCount": 120}], False)):
        listing.write_text(json.dumps(stacks))
        result, log = run_script(step["run"], tmp_path, {"STACK": "pr-42", "PR_NUMBER": "42"})
        assert result.returncode == 0, result.stderr
        inits = [line for line in log if line.startswith("pulumi stack init pr-42 --copy-config-from dev")]
        assert bool(inits) is created
        tags = [line for line in log if line.startswith("pulumi stack tag set expires-at ")]
        assert bool(tags) is created, "the reaper removes a reservation whose up job never came"
    listing.unlink()


def test_a_refused_demo_comments_why_and_fails(tmp_path: Path):
    stacks = tmp_path / "stacks.json"
    stacks.write_text(json.dumps([{"name": f"pr-{n}", "resourceCount": 120, "lastUpdate": "2026-11-25T19:00:00.000Z"}
                                  for n in (3, 4)]))
    result, log = run_script(admission_step()["run"], tmp_path, {
        "STACK": "pr-42", "PR_NUMBER": "42", "STUB_STACKS": str(stacks), "DEMO_MAX_STACKS": "",
        "EVENT_NAME": "pull_request"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gh pr comment 42 --repo owner/repo --body-file build/demo-refused.md" in log
    assert "- `pr-3` (120 resources)" in log and "- `pr-4` (120 resources)" in log
    assert "::error::Demo stack pr-42 not started" in result.stdout
    assert "at most 2 may run at once" in (tmp_path / "summary").read_text()


def test_an_admitted_or_existing_demo_goes_on_and_a_bad_maximum_stops(tmp_path: Path):
    stacks = tmp_path / "stacks.json"
    stacks.write_text(json.dumps([{"name": f"pr-{n}", "resourceCount": 120, "lastUpdate": "2026-11-25T19:00:00.000Z"}
                                  for n in (3, 4)]))
    base = {"PR_NUMBER": "4", "STUB_STACKS": str(stacks), "EVENT_NAME": "pull_request"}
    result, log = run_script(admission_step()["run"], tmp_path, {**base, "STACK": "pr-4", "DEMO_MAX_STACKS": "2"})
    assert result.returncode == 0 and not any(line.startswith("gh ") for line in log)
    result, _ = run_script(admission_step()["run"], tmp_path, {**base, "STACK": "pr-5", "DEMO_MAX_STACKS": "3"})
    assert result.returncode == 0
    result, _ = run_script(admission_step()["run"], tmp_path, {**base, "STACK": "pr-5", "DEMO_MAX_STACKS": "lots"})
    assert result.returncode == 2 and "DEMO_MAX_STACKS: 'lots'" in result.stderr


# -- the docs carry the model --------------------------------------------------------------------

def test_the_docs_carry_the_identity_table():
    docs = (ROOT / "docs" / "delivery.md").read_text()
    assert access_model.identity_table() in docs, "regenerate it with `python -m tools.access_model`"


def test_the_docs_carry_every_roles_max_session_duration_from_the_model():
    docs = (ROOT / "docs" / "delivery.md").read_text()
    assert access_model.session_table() in docs, "regenerate it with `python -m tools.access_model`"
    # ... and the command that raises a role's limit to what the model asks for.
    for seconds in {r.max_session_seconds for r in ROLES.values()} - {access_model.DEFAULT_MAX_SESSION_SECONDS}:
        assert f"--max-session-duration {seconds}" in docs


def test_advice_names_the_setting_a_user_can_change():
    advice = access_model.missing_access_advice("dev", VIEW)
    assert "repository variable PREVIEW_ROLE_ARN" in advice and "clusterViewerArns of stack dev" in advice
    assert "clusterAdminArns of stack dev" in access_model.missing_access_advice("dev", ADMIN)
    for stack in ("pr-3", "org/eks-istio-shop/nightly-12"):
        assert "DEMO_TEARDOWN_ROLE_ARN" in access_model.missing_access_advice(stack, ADMIN)
    assert "clusterAdminArns of stack staging" in access_model.missing_access_advice("staging", ADMIN)


def iter_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for workflow, document in all_workflows().items():
        for name, job in document["jobs"].items():
            yield workflow, name, job


# -- app stacks: no creator, access only through the platform's appDeployerArns ---------------------

def test_app_stacks_get_namespace_access_from_their_platforms_grant_only():
    app = STACKS["pr-<n> (app)"]
    assert app.kind == "app"
    for environment in ("demo", "demo-teardown"):
        grants = [g for g in app.grants if g.environment == environment]
        assert [(g.level, g.setting, g.platform) for g in grants] == [
            (access_model.NAMESPACE_ADMIN, "eks-istio-shop:appDeployerArns", "dev")], environment
    assert all(g.setting is not None for g in app.grants), "an app stack creates no cluster: nobody is its creator"
    for operation in ("up", "destroy", "refresh", "preview"):
        assert app.needs(operation) == access_model.NAMESPACE_ADMIN
    # The setting the grant names is one the program declares, on the platform (settings.py refuses it on
    # an app stack).
    assert "appDeployerArns:" in (ROOT / "Pulumi.yaml").read_text()


def test_namespace_admin_meets_only_an_app_stacks_needs():
    assert covers(access_model.NAMESPACE_ADMIN, access_model.NAMESPACE_ADMIN)
    assert not covers(access_model.NAMESPACE_ADMIN, ADMIN) and not covers(access_model.NAMESPACE_ADMIN, VIEW)
    assert not covers(VIEW, access_model.NAMESPACE_ADMIN)
    assert covers(ADMIN, access_model.NAMESPACE_ADMIN)


def test_a_full_demo_with_only_an_app_stacks_grant_is_caught():
    stacks = dict(STACKS)
    full = stacks["pr-<n> (full)"]
    stacks["pr-<n> (full)"] = access_model.StackKind(full.name, full.pattern, full.created_by, tuple(
        access_model.Grant(g.environment, access_model.NAMESPACE_ADMIN, access_model.APP_DEPLOYER_SETTING,
                           "the user", platform="dev") if g.environment == "demo-teardown" else g
        for g in full.grants))
    problems = access_problems(all_workflows(), stacks=stacks)
    assert any("demo.yml:destroy runs destroy on pr-<n> (full) as demo-teardown, which has namespace admin" in p
               for p in problems), problems
    assert any("only app stacks take their access from a platform's setting" in p
               for p in grant_problems(all_workflows(), stacks)), grant_problems(all_workflows(), stacks)


def test_an_app_stack_grant_through_another_setting_or_platform_is_caught():
    stacks = dict(STACKS)
    app = stacks["pr-<n> (app)"]
    stacks["pr-<n> (app)"] = access_model.StackKind(app.name, app.pattern, app.created_by, tuple(
        access_model.Grant(g.environment, ADMIN, access_model.ADMIN_SETTING, "the user", platform="pr-<n> (app)")
        if g.environment == "demo" else g for g in app.grants), kind="app")
    problems = grant_problems(all_workflows(), stacks)
    assert any("pr-<n> (app) is not a platform stack of the model" in p for p in problems), problems
    assert any("namespace admin through eks-istio-shop:appDeployerArns, not admin through "
               "eks-istio-shop:clusterAdminArns" in p for p in problems), problems


@pytest.mark.parametrize("backend, platform", [("s3://state", "organization/eks-istio-shop/dev"),
                                               ("https://api.pulumi.com", "dev")])
def test_an_app_demo_stack_runs_on_dev_with_no_cluster_access_of_its_own(backend: str, platform: str,
                                                                         tmp_path: Path):
    step = next(s for s in load(WORKFLOWS / "demo.yml")["jobs"]["up"]["steps"] if s.get("id") == "stack")
    result, log = run_script(step["run"], tmp_path, {
        "STACK": "pr-42", "PR_NUMBER": "42", "EXPIRES_AT": "2026-11-25T20:00:00Z", "DEMO_KIND": "app",
        "DEMO_TEARDOWN_ROLE_ARN": TEARDOWN_ARN, "PULUMI_BACKEND_URL": backend})
    assert result.returncode == 0, result.stderr
    config = [line for line in log if line.startswith("pulumi config ")]
    for setting in ("clusterAdminArns", "clusterViewerArns", "appDeployerArns"):
        assert f"pulumi config rm {setting} --stack pr-42" in config, f"dev's {setting} are dev's own"
    sets = [line for line in config if line.startswith("pulumi config set")]
    # No access entry of its own: the platform's appDeployerArns grant is its access (the identity model).
    assert sets == ["pulumi config set stackKind app --stack pr-42",
                    f"pulumi config set platformStack {platform} --stack pr-42"]
    assert f"pulumi stack tag set platform-stack {platform} --stack pr-42" in log
    assert "pulumi stack tag set demo-kind app --stack pr-42" in log
    assert "cluster-name=" not in (tmp_path / "output").read_text(), "an app stack has no cluster of its own"


def test_a_demo_never_changes_kind_in_place(tmp_path: Path):
    step = next(s for s in load(WORKFLOWS / "demo.yml")["jobs"]["up"]["steps"] if s.get("id") == "stack")
    listing = tmp_path / "stacks.json"
    listing.write_text(json.dumps([{"name": "dev"}, {"name": "pr-42"}]))
    result, log = run_script(step["run"], tmp_path, {
        "STACK": "pr-42", "PR_NUMBER": "42", "EXPIRES_AT": "2026-11-25T20:00:00Z", "DEMO_KIND": "app",
        "DEMO_TEARDOWN_ROLE_ARN": TEARDOWN_ARN, "STUB_STACKS": str(listing), "STUB_DEMO_KIND": "full"})
    assert result.returncode == 1
    assert "pr-42 is a full demo and this run asks for app" in result.stdout
    assert not any(line.startswith(("pulumi config set", "pulumi config cp")) for line in log)
