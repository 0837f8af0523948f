"""The GitHub workflows: linted (actionlint, zizmor offline), pinned, least-privileged, wired as documented."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
NAMES = {path.stem for path in WORKFLOW_FILES}

SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@\s]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+#\s*v\d+(\.\d+){0,2}\s*$")

BAD_WORKFLOW = """\
name: bad
on: pull_request_target
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
        unknown-key: true
"""


def tool(name: str) -> str:
    """A linter installed beside the interpreter running the tests (the project's .venv)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed; `make test` installs it from requirements-dev.txt")
    return found


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    env["ZIZMOR_OFFLINE"] = "true"
    env["NO_COLOR"] = "1"
    return env


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def uses_of(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for job_name, job in document["jobs"].items():
        if "uses" in job:
            yield job_name, job["uses"]
        for step in steps(job):
            if "uses" in step:
                yield job_name, step["uses"]


def step_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in steps(job) if step.get("uses", "").split("@")[0] == action]


def job_text(job: dict[str, Any]) -> str:
    return json.dumps(job)


def test_the_preview_deploy_demo_reap_and_nightly_workflows_exist():
    assert {"preview", "deploy", "demo", "reap", "nightly"} <= NAMES


# -- linters ------------------------------------------------------------------------------------

def run_actionlint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("actionlint"), "-no-color", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def run_zizmor(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("zizmor"), "--offline", "--format", "json", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=offline_env())


def test_actionlint_finds_no_problem_in_any_workflow():
    result = run_actionlint(*WORKFLOW_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_offline_finds_nothing():
    # The directory, so that anything else zizmor audits there is included.
    result = run_zizmor(ROOT / ".github")
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)[:4000]
    assert result.returncode == 0, result.stderr


def test_the_linters_do_catch_a_bad_workflow(tmp_path: Path):
    """Guards against a linter that silently checks nothing (wrong path, empty config)."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD_WORKFLOW)
    assert run_actionlint(bad).returncode != 0
    idents = {finding["ident"] for finding in json.loads(run_zizmor(bad).stdout or "[]")}
    assert {"template-injection", "unpinned-uses"} <= idents, idents


# -- pinning ------------------------------------------------------------------------------------

def pin_problems(document: dict[str, Any], text: str) -> list[str]:
    problems = []
    for job_name, uses in uses_of(document):
        if uses.startswith("./"):
            continue
        if uses.startswith("docker://"):
            if "@sha256:" not in uses:
                problems.append(f"{job_name}: {uses} is not pinned to a digest")
            continue
        if not SHA_PIN.match(uses):
            problems.append(f"{job_name}: {uses} is not pinned to a full commit SHA")
    for line in text.splitlines():
        if re.search(r"uses:\s*[^.\s][^@\s]*@[0-9a-f]{40}", line) and not VERSION_COMMENT.search(line):
            problems.append(f"no `# vX.Y.Z` comment naming the pinned release: {line.strip()}")
    return problems


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_third_party_actions_are_pinned_to_a_commit_sha(path: Path):
    assert pin_problems(load(path), path.read_text()) == []


def test_pin_check_rejects_tags_and_short_shas():
    text = ("jobs:\n  a:\n    steps:\n"
            "      - uses: actions/checkout@v7\n"
            "      - uses: pulumi/actions@8e5e406\n"
            "      - uses: actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97\n")
    problems = pin_problems(yaml.safe_load(text), text)
    assert len(problems) == 3, problems


def test_every_action_is_pinned_to_the_same_commit_everywhere():
    pins: dict[str, set[str]] = {}
    for path in WORKFLOW_FILES:
        for _, uses in uses_of(load(path)):
            name, _, ref = uses.partition("@")
            pins.setdefault(name, set()).add(ref)
    assert {name: refs for name, refs in pins.items() if len(refs) > 1} == {}


# -- permissions --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_permissions_are_granted_per_job_and_only_where_needed(path: Path):
    document = load(path)
    assert document.get("permissions") == {}, "the workflow's default token must have no permissions"
    for job_name, job in document["jobs"].items():
        granted = job.get("permissions")
        assert isinstance(granted, dict), f"{job_name}: states its permissions"
        assumes_role = bool(step_using(job, "aws-actions/configure-aws-credentials"))
        assert (granted.get("id-token") == "write") == assumes_role, \
            f"{job_name}: id-token: write exactly when it assumes an AWS role"
        comments = any(str(step.get("with", {}).get("comment-on-pr", "false")).lower() != "false"
                       for step in step_using(job, "pulumi/actions")) \
            or any("gh pr comment" in step.get("run", "") for step in steps(job))
        assert (granted.get("pull-requests") == "write") == comments, \
            f"{job_name}: pull-requests: write exactly when it comments on the pull request"
        assert set(granted) <= {"contents", "id-token", "pull-requests"}, f"{job_name}: {granted}"
        assert granted.get("contents") in (None, "read")


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_aws_credentials_come_from_oidc_never_from_stored_keys(path: Path):
    text = path.read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    for job in load(path)["jobs"].values():
        for step in step_using(job, "aws-actions/configure-aws-credentials"):
            assert step["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_jobs_with_secrets_never_run_for_fork_pull_requests(path: Path):
    document = load(path)
    if "pull_request" not in document["on"] and "pull_request_target" not in document["on"]:
        return
    assert "pull_request_target" not in document["on"], "pull_request_target hands secrets to fork code"
    for job_name, job in document["jobs"].items():
        text = job_text(job)
        if "secrets." in text or job.get("permissions", {}).get("id-token") == "write":
            condition = job.get("if", "")
            assert "github.event.pull_request.head.repo.full_name == github.repository" in condition, \
                f"{job_name} uses secrets or OIDC and must not run for forks"


def test_checkouts_do_not_keep_the_token():
    for path in WORKFLOW_FILES:
        for job_name, job in load(path)["jobs"].items():
            for step in step_using(job, "actions/checkout"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}:{job_name}"


# -- what each workflow does --------------------------------------------------------------------

def test_preview_runs_offline_checks_then_previews_dev():
    document = load(WORKFLOWS / "preview.yml")
    assert "pull_request" in document["on"]
    offline = document["jobs"]["offline"]
    commands = [step.get("run", "") for step in steps(offline)]
    assert any("make test" in command for command in commands)
    assert any("python -m tools.render dev --out build/render" in command for command in commands)
    fork_note = [step for step in steps(offline) if "GITHUB_STEP_SUMMARY" in step.get("run", "")]
    assert fork_note and "!=" in fork_note[0]["if"], "forks are told in the job summary why there is no preview"

    preview = document["jobs"]["preview"]
    assert preview["needs"] == "offline"
    (action,) = step_using(preview, "pulumi/actions")
    settings = action["with"]
    assert settings["command"] == "preview" and settings["stack-name"] == "dev"
    assert settings["comment-on-pr"] is True and settings["diff"] is True and settings["refresh"] is True
    assert "policyPacks" in settings, "the policy pack input of pulumi/actions v7 is camelCase"
    installs = [step.get("run", "") for step in steps(preview)]
    assert any("-m venv .venv" in run and "-r requirements-dev.txt" in run for run in installs), \
        "the program's virtualenv (Pulumi.yaml: virtualenv .venv) is built from the pinned requirements " \
        "(requirements-dev.txt includes requirements.txt, and boto3 for the access check)"


def test_deploy_updates_dev_from_main_one_at_a_time():
    document = load(WORKFLOWS / "deploy.yml")
    assert document["on"] == {"push": {"branches": ["main"]}}
    concurrency = document["concurrency"]
    assert concurrency["cancel-in-progress"] is False
    assert "${{" not in concurrency["group"], "one group for every run, so updates queue"
    (action,) = [step for step in step_using(document["jobs"]["up"], "pulumi/actions") if "command" in step["with"]]
    assert action["with"]["command"] == "up" and action["with"]["stack-name"] == "dev"


def test_a_demo_stack_is_stood_up_updated_and_destroyed_with_its_pull_request():
    document = load(WORKFLOWS / "demo.yml")
    on = document["on"]
    assert {"labeled", "synchronize", "closed"} <= set(on["pull_request"]["types"])
    assert "workflow_dispatch" in on
    assert document["env"]["STACK"].startswith("pr-${{ github.event.pull_request.number")

    up = document["jobs"]["up"]
    assert "'demo'" in up["if"]
    script = "\n".join(step.get("run", "") for step in steps(up))
    assert "--copy-config-from dev" in script
    assert "pulumi config rm hostname" in script, "dev's hostname must not follow the demo stack"
    assert 'pulumi stack tag set expires-at "$EXPIRES_AT"' in script
    ttl_step = next(step for step in steps(up) if step.get("id") == "expiry")
    assert ttl_step["env"]["TTL_VARIABLE"] == "${{ vars.DEMO_TTL_HOURS }}"
    assert "date -u" in ttl_step["run"] and "${TTL_VARIABLE:-8}" in ttl_step["run"]
    (action,) = step_using(up, "pulumi/actions")[-1:]
    assert action["with"]["command"] == "up" and action["with"]["stack-name"] == "${{ env.STACK }}"

    destroy = document["jobs"]["destroy"]
    assert "closed" in destroy["if"]
    (action,) = [step for step in step_using(destroy, "pulumi/actions") if "command" in step.get("with", {})]
    assert action["with"]["command"] == "destroy" and action["with"]["remove"] is True
    (check,) = [step for step in steps(destroy) if "python -m tools.leftovers" in step.get("run", "")]
    assert steps(destroy).index(check) > steps(destroy).index(action)
    assert "!cancelled()" in check["if"], "the leftovers check runs after every destroy, failed ones included"


def test_reaper_is_scheduled_and_checks_leftovers():
    document = load(WORKFLOWS / "reap.yml")
    assert document["on"]["schedule"]
    script = "\n".join(step.get("run", "") for step in steps(document["jobs"]["reap"]))
    assert "python -m tools.reap --check-access --check-leftovers" in script
    assert "python -m tools.reap --dry-run" in script


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_pulumi_cli_is_the_pinned_sdk_version(path: Path):
    requirements = (ROOT / "requirements.txt").read_text()
    sdk = re.search(r"^pulumi==(\S+)$", requirements, re.MULTILINE).group(1)
    for job in load(path)["jobs"].values():
        for step in step_using(job, "pulumi/actions"):
            assert step["with"]["pulumi-version"] == sdk


# -- review fixes: concurrency, environments, secrets fallback, backend refusal --------------------

def pulumi_jobs() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(workflow, job name, job, workflow document) for every job that runs the Pulumi CLI."""
    for path in WORKFLOW_FILES:
        document = load(path)
        for job_name, job in document["jobs"].items():
            if step_using(job, "pulumi/actions"):
                yield path.stem, job_name, job, document


def test_demo_concurrency_is_per_job_so_skipped_runs_cannot_replace_a_pending_one():
    document = load(WORKFLOWS / "demo.yml")
    assert "concurrency" not in document, \
        "a workflow-level group lets a run whose jobs are all skipped replace a pending destroy or update"
    groups = set()
    for job_name in ("up", "destroy"):
        concurrency = document["jobs"][job_name].get("concurrency")
        assert isinstance(concurrency, dict), f"{job_name}: needs a job-level concurrency group"
        assert concurrency["cancel-in-progress"] is False, f"{job_name}: never cancel a running update or destroy"
        assert "github.event.pull_request.number" in concurrency["group"]
        assert "inputs.pr-number" in concurrency["group"]
        groups.add(concurrency["group"])
    assert len(groups) == 1, "up and destroy of one stack share one group"


EXPECTED_ENVIRONMENTS = {
    ("preview", "preview"): "preview",
    ("deploy", "up"): "dev",
    ("demo", "up"): "demo",
    ("demo", "admit"): "demo",
    ("demo", "destroy"): "demo-teardown",
    ("reap", "reap"): "demo-teardown",
    ("nightly", "up"): "nightly",
    ("nightly", "teardown"): "nightly",
}


def test_teardown_jobs_have_an_environment_of_their_own():
    """Required reviewers on `demo` (documented) must never hold up the hourly reaper or a destroy."""
    found = {(workflow, job_name): job.get("environment")
             for workflow, job_name, job, _ in pulumi_jobs()}
    reaper = load(WORKFLOWS / "reap.yml")["jobs"]["reap"]
    found[("reap", "reap")] = reaper.get("environment")
    assert found == EXPECTED_ENVIRONMENTS


def test_the_destroy_job_runs_the_base_branch_code():
    destroy = load(WORKFLOWS / "demo.yml")["jobs"]["destroy"]
    (checkout,) = step_using(destroy, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ github.base_ref || github.ref }}"


def test_every_pulumi_job_falls_back_to_the_state_secrets_manager():
    for workflow, job_name, job, document in pulumi_jobs():
        env = {**document.get("env", {}), **job.get("env", {})}
        assert env.get("PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER") == "true", f"{workflow}:{job_name}"
    reaper = load(WORKFLOWS / "reap.yml")["jobs"]["reap"]
    assert reaper["env"].get("PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER") == "true"


def settings_check(job: dict[str, Any]) -> dict[str, Any]:
    """The first step that checks PULUMI_BACKEND_URL; it must come before any step that uses Pulumi."""
    for step in steps(job):
        if "PULUMI_BACKEND_URL" in step.get("run", "") and "missing" in step.get("run", "") \
                or '-z "$PULUMI_BACKEND_URL"' in step.get("run", ""):
            return step
        assert "pulumi" not in step.get("uses", "") and "pulumi " not in step.get("run", ""), \
            f"a step uses Pulumi before the settings are checked: {step}"
    raise AssertionError("no step checks the settings")


def run_check(step: dict[str, Any], backend: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "PULUMI_BACKEND_URL": backend, "AWS_ROLE_ARN": "arn:aws:iam::1:role/x",
           "DEMO_TEARDOWN_ROLE_ARN": "arn:aws:iam::123456789012:role/eks-shop-demo-teardown",
           "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    # The runner runs `run:` with bash -e.
    return subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=30)


CHECKED_JOBS = [(workflow, job_name) for workflow, job_name in EXPECTED_ENVIRONMENTS]


@pytest.mark.parametrize("workflow, job_name", CHECKED_JOBS, ids=lambda v: v)
def test_settings_checks_refuse_the_local_file_backend(workflow: str, job_name: str, tmp_path: Path):
    step = settings_check(load(WORKFLOWS / f"{workflow}.yml")["jobs"][job_name])
    for backend in ("file://~", "file:///home/runner/state"):
        refused = run_check(step, backend, tmp_path)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "::error::" in refused.stdout and "local file backend" in refused.stdout
    for backend in ("s3://state-bucket?region=us-east-1", "https://api.pulumi.com"):
        accepted = run_check(step, backend, tmp_path)
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_demo_up_never_runs_for_a_closed_pull_request():
    condition = load(WORKFLOWS / "demo.yml")["jobs"]["up"]["if"]
    manual, _, pull_request = condition.partition("|| (github.event_name == 'pull_request'")
    assert "workflow_dispatch" in manual and "inputs.action == 'up'" in manual, "manual runs keep working"
    assert "github.event.pull_request.state == 'open'" in pull_request, \
        "labelling a closed pull request `demo` must not start a stack"


# -- issue 17: smoke checks, arm64 builds, the nightly run, pins ------------------------------------

def run_text(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def index_of(job: dict[str, Any], predicate) -> int:
    return next(i for i, step in enumerate(steps(job)) if predicate(step))


def is_up(step: dict[str, Any]) -> bool:
    return step.get("with", {}).get("command") == "up" or "pulumi up " in step.get("run", "")


@pytest.mark.parametrize("workflow, stack", [("deploy", "dev"), ("demo", '"$STACK"'), ("nightly", '"$STACK"')])
def test_every_up_is_followed_by_the_smoke_check(workflow: str, stack: str):
    job = load(WORKFLOWS / f"{workflow}.yml")["jobs"]["up"]
    up = index_of(job, is_up)
    smoke = index_of(job, lambda step: "python -m tools.smoke" in step.get("run", ""))
    assert smoke > up
    command = steps(job)[smoke]["run"]
    assert f"python -m tools.smoke {stack} --timeout 900 --markdown " in command
    assert "GITHUB_STEP_SUMMARY" in command or workflow == "nightly", "the result goes to the job summary"


def test_deploy_writes_the_smoke_report_straight_to_the_summary():
    job = load(WORKFLOWS / "deploy.yml")["jobs"]["up"]
    assert '--markdown "$GITHUB_STEP_SUMMARY"' in run_text(job)


def test_the_demo_comment_carries_the_url_and_the_smoke_result():
    job = load(WORKFLOWS / "demo.yml")["jobs"]["up"]
    smoke = next(step for step in steps(job) if "tools.smoke" in step.get("run", ""))
    assert "--markdown build/smoke.md" in smoke["run"]
    (comment,) = [step for step in steps(job) if "gh pr comment" in step.get("run", "") and "smoke" in step["run"]]
    assert "cat build/smoke.md" in comment["run"] and "https://$STACK.$DOMAIN" in comment["run"]
    assert "!cancelled()" in comment["if"] and "steps.up.outcome == 'success'" in comment["if"], \
        "a failed smoke check is commented too"
    assert comment["env"]["GH_TOKEN"] == "${{ github.token }}"


@pytest.mark.parametrize("workflow", ["deploy", "demo", "nightly"])
def test_jobs_that_build_images_can_build_arm64(workflow: str):
    job = load(WORKFLOWS / f"{workflow}.yml")["jobs"]["up"]
    up = index_of(job, is_up)
    (qemu,) = step_using(job, "docker/setup-qemu-action")
    (buildx,) = step_using(job, "docker/setup-buildx-action")
    assert "arm64" in qemu["with"]["platforms"]
    assert steps(job).index(qemu) < steps(job).index(buildx) < up


def test_only_jobs_that_run_up_set_up_emulation():
    for path in WORKFLOW_FILES:
        for job_name, job in load(path)["jobs"].items():
            if step_using(job, "docker/setup-qemu-action"):
                assert any(is_up(step) for step in steps(job)), f"{path.name}:{job_name}"


def test_nightly_runs_alone_on_a_schedule_with_a_fresh_expiring_stack():
    document = load(WORKFLOWS / "nightly.yml")
    assert document["on"]["schedule"] and "workflow_dispatch" in document["on"]
    assert document["concurrency"] == {"group": "nightly", "cancel-in-progress": False}
    assert document["env"]["STACK"] == "nightly-${{ github.run_id }}"
    up = document["jobs"]["up"]
    script = run_text(up)
    assert "--copy-config-from dev" in script and 'pulumi stack tag set expires-at "$EXPIRES_AT"' in script
    assert 'date -u -d "+4 hours"' in script
    timeouts = sum(job["timeout-minutes"] for job in document["jobs"].values())
    assert timeouts < 4 * 60, "the reaper must not race a teardown that is still within its timeout"


def test_nightly_always_destroys_and_reports_every_phase():
    document = load(WORKFLOWS / "nightly.yml")
    up, teardown = document["jobs"]["up"], document["jobs"]["teardown"]
    assert teardown["needs"] == "up" and teardown["if"] == "always()"
    for phase, job in (("up", up), ("smoke", up), ("destroy", teardown), ("leftovers", teardown)):
        assert f"tools.phases run {phase} --record" in run_text(job), phase
    assert "pulumi destroy --yes --refresh --remove" in run_text(teardown)
    report = next(step for step in steps(teardown) if "tools.phases report" in step.get("run", ""))
    assert report["if"] == "always()"
    assert "--phases up,smoke,destroy,leftovers" in report["run"] and "--check" in report["run"]
    assert '--markdown "$GITHUB_STEP_SUMMARY"' in report["run"] and "--json build/nightly/phases.json" in report["run"]
    assert report["env"]["UP_PHASES"] == "${{ needs.up.outputs.phases }}"
    assert up["outputs"]["phases"] == "${{ steps.report.outputs.phases }}"
    for job in (up, teardown):
        (upload,) = step_using(job, "actions/upload-artifact")
        assert upload["if"] == "always()" and upload["with"]["path"] == "build/nightly/"
        assert steps(job).index(upload) > index_of(job, lambda step: "tools.phases report" in step.get("run", ""))


def test_a_new_demo_stacks_file_reaches_the_job_that_deploys_it():
    """A stack never updated keeps its secrets provider only in Pulumi.<stack>.yaml, on the runner that
    created it: the admission job hands the file to the up job, before the up job selects the stack."""
    jobs = load(WORKFLOWS / "demo.yml")["jobs"]
    (upload,) = step_using(jobs["admit"], "actions/upload-artifact")
    assert upload["if"] == "steps.create.outputs.created == 'true'"
    assert upload["with"]["path"] == "Pulumi.${{ env.STACK }}.yaml"
    assert jobs["admit"]["outputs"]["created"] == "${{ steps.create.outputs.created }}"
    (download,) = step_using(jobs["up"], "actions/download-artifact")
    assert download["with"]["name"] == upload["with"]["name"]
    assert download["if"] == "needs.admit.outputs.created == 'true'"
    steps = jobs["up"]["steps"]
    select = next(i for i, step in enumerate(steps) if "pulumi stack select" in step.get("run", ""))
    assert steps.index(download) < select
