"""The reaper's decisions, against a fake workspace (no Pulumi CLI, no backend)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional

import pytest
import yaml

from tools import reap

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 25, 20, 0, tzinfo=timezone.utc)


class FakeWorkspace:
    def __init__(self, stacks: dict[str, dict[str, str]], failing: frozenset[str] = frozenset(),
                 broken_tags: frozenset[str] = frozenset(), cluster_names: Optional[dict[str, str]] = None,
                 on_tags: Optional[Callable[["FakeWorkspace", str, int], None]] = None):
        self.stacks = {name: dict(tags) for name, tags in stacks.items()}
        self.failing = failing
        self.broken_tags = broken_tags
        self.cluster_names = cluster_names or {}
        # on_tags(workspace, stack, how many reads before this one): lets a test change a stack's
        # tags between the reaper's first look and its look right before the destroy.
        self.on_tags = on_tags
        self.tag_reads: dict[str, int] = {}
        self.destroy_calls: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.locked: dict[str, str] = {}  # stack -> the CLI's lock message, until cancel() clears it

    def stack_names(self) -> list[str]:
        return list(self.stacks)

    def tags(self, stack_name: str) -> dict[str, str]:
        if stack_name in self.broken_tags:
            raise RuntimeError("error: could not read tags: backend unreachable")
        reads = self.tag_reads.get(stack_name, 0)
        self.tag_reads[stack_name] = reads + 1
        if self.on_tags is not None:
            self.on_tags(self, stack_name, reads)
        self.calls.append(("tags", stack_name))
        return dict(self.stacks[stack_name])

    def cluster_name(self, stack_name: str) -> str:
        self.calls.append(("cluster_name", stack_name))
        if stack_name not in self.cluster_names:
            raise RuntimeError("error: no outputs")
        return self.cluster_names[stack_name]

    def cancel(self, stack_name: str) -> None:
        self.calls.append(("cancel", stack_name))
        self.locked.pop(stack_name, None)

    def destroy_and_remove(self, stack_name: str) -> None:
        self.calls.append(("destroy", stack_name))
        self.destroy_calls.append(stack_name)
        if stack_name in self.locked:
            raise RuntimeError(f"code: 255\nstderr: error: {self.locked[stack_name]}")
        if stack_name in self.failing:
            raise RuntimeError("code: 255\nstderr: error: DependencyViolation: vpc has dependencies")
        del self.stacks[stack_name]


def run(workspace: FakeWorkspace, dry_run: bool = False, now: datetime = NOW) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = reap.reap(workspace, now, dry_run, out=lines.append)
    return code, lines


def line_for(lines: list[str], stack: str) -> str:
    """The final decision printed for a stack."""
    matching = [line for line in lines if line.startswith(f"{stack}: ")]
    assert matching, f"no decision printed for {stack}: {lines}"
    return matching[-1]


def expiry(delta: timedelta) -> str:
    return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_expired_stack_is_destroyed_and_removed():
    workspace = FakeWorkspace({"pr-7": {reap.EXPIRY_TAG: expiry(-timedelta(minutes=1))}})
    code, lines = run(workspace)
    assert code == 0
    assert workspace.destroy_calls == ["pr-7"]
    assert "pr-7" not in workspace.stacks
    assert "destroyed" in line_for(lines, "pr-7")


def test_stack_not_yet_expired_is_kept():
    workspace = FakeWorkspace({"pr-8": {reap.EXPIRY_TAG: expiry(timedelta(minutes=1))}})
    code, lines = run(workspace)
    assert code == 0
    assert workspace.destroy_calls == []
    assert line_for(lines, "pr-8").startswith("pr-8: keep")


def test_expiry_exactly_now_counts_as_expired():
    workspace = FakeWorkspace({"pr-9": {reap.EXPIRY_TAG: expiry(timedelta(0))}})
    run(workspace)
    assert workspace.destroy_calls == ["pr-9"]


def test_stack_without_the_tag_is_never_touched():
    workspace = FakeWorkspace({"dev": {"owner": "platform-team"}, "scratch": {}})
    code, lines = run(workspace)
    assert code == 0
    assert workspace.destroy_calls == []
    assert line_for(lines, "dev").startswith("dev: skip")
    assert line_for(lines, "scratch").startswith("scratch: skip")


@pytest.mark.parametrize("value", ["tomorrow", "", "2026-11-25T19:00:00", "2026-11-25", "2026-13-01T00:00:00Z"])
def test_malformed_tag_is_left_alone_and_reported(value):
    workspace = FakeWorkspace({"pr-10": {reap.EXPIRY_TAG: value},
                               "pr-11": {reap.EXPIRY_TAG: expiry(-timedelta(hours=1))}})
    code, lines = run(workspace)
    assert workspace.destroy_calls == ["pr-11"], "a malformed tag must not stop the others"
    assert "pr-10" in workspace.stacks
    assert line_for(lines, "pr-10").startswith("pr-10: malformed")
    assert code == 1


def test_failing_destroy_does_not_stop_the_others_and_ends_non_zero():
    workspace = FakeWorkspace(
        {"pr-1": {reap.EXPIRY_TAG: expiry(-timedelta(hours=2))},
         "pr-2": {reap.EXPIRY_TAG: expiry(-timedelta(hours=1))},
         "pr-3": {reap.EXPIRY_TAG: expiry(timedelta(hours=1))}},
        failing=frozenset({"pr-1"}))
    code, lines = run(workspace)
    assert workspace.destroy_calls == ["pr-1", "pr-2"]
    assert "pr-1" in workspace.stacks and "pr-2" not in workspace.stacks
    failed = line_for(lines, "pr-1")
    assert failed.startswith("pr-1: failed") and "DependencyViolation" in failed
    assert code == 1


def test_unreadable_tags_count_as_a_failure_and_the_run_goes_on():
    workspace = FakeWorkspace({"pr-4": {}, "pr-5": {reap.EXPIRY_TAG: expiry(-timedelta(hours=1))}},
                              broken_tags=frozenset({"pr-4"}))
    code, lines = run(workspace)
    assert workspace.destroy_calls == ["pr-5"]
    assert line_for(lines, "pr-4").startswith("pr-4: failed")
    assert code == 1


def test_dry_run_destroys_nothing_but_says_what_it_would_do():
    workspace = FakeWorkspace({"pr-6": {reap.EXPIRY_TAG: expiry(-timedelta(days=1))},
                               "pr-12": {reap.EXPIRY_TAG: expiry(timedelta(days=1))}})
    code, lines = run(workspace, dry_run=True)
    assert code == 0
    assert workspace.destroy_calls == []
    assert line_for(lines, "pr-6").startswith("pr-6: would destroy")
    assert line_for(lines, "pr-12").startswith("pr-12: keep")


@pytest.mark.parametrize("value, expired", [
    # 21:30 at +02:00 is 19:30 UTC: already past at 20:00 UTC, although "21:30" reads as later.
    ("2026-11-25T21:30:00+02:00", True),
    # 15:30 at -05:00 is 20:30 UTC: still in the future, although "15:30" reads as earlier.
    ("2026-11-25T15:30:00-05:00", False),
    ("2026-11-25T19:59:59Z", True),
    ("2026-11-25T20:00:01+00:00", False),
    ("2026-11-25T20:00:00.500Z", False),
])
def test_an_expiry_with_a_utc_offset_is_compared_in_utc(value, expired):
    decision = reap.decide("pr-1", {reap.EXPIRY_TAG: value}, NOW)
    assert decision.action == (reap.DESTROY if expired else reap.KEEP)


def test_parse_expiry_refuses_naive_times_and_returns_aware_ones():
    with pytest.raises(ValueError, match="timezone"):
        reap.parse_expiry("2026-11-25T20:00:00")
    parsed = reap.parse_expiry("2026-11-25T22:00:00+02:00")
    assert parsed.utcoffset() == timedelta(hours=2)
    assert parsed == NOW


def test_decide_refuses_a_naive_clock():
    with pytest.raises(ValueError):
        reap.decide("pr-1", {}, datetime(2026, 11, 25, 20, 0))


def test_main_exit_codes_and_messages(tmp_path: Path, capsys):
    (tmp_path / "Pulumi.yaml").write_text("name: eks-istio-shop\n")
    workspace = FakeWorkspace({"pr-1": {reap.EXPIRY_TAG: "2026-11-25T19:00:00Z"}}, failing=frozenset({"pr-1"}))
    code = reap.main(["--work-dir", str(tmp_path), "--now", "2026-11-25T20:00:00Z"],
                     workspace_factory=lambda _: workspace)
    assert code == 1
    assert "pr-1: failed" in capsys.readouterr().out

    def no_cli(_: Path):
        raise reap.ReapError("could not start the Pulumi CLI (is `pulumi` on PATH?): not found")

    assert reap.main(["--work-dir", str(tmp_path)], workspace_factory=no_cli) == 2
    err = capsys.readouterr().err
    assert "pulumi" in err and "Traceback" not in err


def test_main_lists_failure_is_a_clear_error(tmp_path: Path, capsys):
    (tmp_path / "Pulumi.yaml").write_text("name: eks-istio-shop\n")

    class Unlisted(FakeWorkspace):
        def stack_names(self):
            raise RuntimeError("stderr: error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions")

    code = reap.main(["--work-dir", str(tmp_path)], workspace_factory=lambda _: Unlisted({}))
    assert code == 2
    assert "PULUMI_ACCESS_TOKEN" in capsys.readouterr().err


def test_main_rejects_bad_arguments(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        reap.main(["--work-dir", str(tmp_path)], workspace_factory=lambda _: FakeWorkspace({}))
    assert exit_info.value.code == 2
    assert "no Pulumi.yaml" in capsys.readouterr().err
    (tmp_path / "Pulumi.yaml").write_text("name: eks-istio-shop\n")
    with pytest.raises(SystemExit):
        reap.main(["--work-dir", str(tmp_path), "--now", "2026-11-25 20:00"],
                  workspace_factory=lambda _: FakeWorkspace({}))
    assert "timezone" in capsys.readouterr().err


def test_leftovers_check_runs_after_each_destroy_and_counts_when_it_fails():
    workspace = FakeWorkspace({"pr-1": {reap.EXPIRY_TAG: expiry(-timedelta(hours=1))},
                               "pr-2": {reap.EXPIRY_TAG: expiry(-timedelta(hours=1))},
                               "pr-3": {reap.EXPIRY_TAG: expiry(-timedelta(hours=1))}},
                              failing=frozenset({"pr-3"}))
    checked: list[str] = []

    def leftovers_check(stack: str, _cluster: Optional[str]) -> int:
        checked.append(stack)
        return 1 if stack == "pr-2" else 0

    lines: list[str] = []
    code = reap.reap(workspace, NOW, False, out=lines.append, after_destroy=leftovers_check)
    assert checked == ["pr-1", "pr-2"], "only stacks whose destroy succeeded are checked"
    assert "destroyed" in line_for(lines, "pr-1")
    assert line_for(lines, "pr-2").startswith("pr-2: failed") and "leftovers" in line_for(lines, "pr-2")
    assert code == 1


def test_dry_run_runs_no_leftovers_check():
    workspace = FakeWorkspace({"pr-1": {reap.EXPIRY_TAG: expiry(-timedelta(hours=1))}})
    checked: list[str] = []
    reap.reap(workspace, NOW, True, out=lambda _: None, after_destroy=lambda s, _: checked.append(s) or 0)
    assert checked == []


@pytest.mark.parametrize("name", ["dev", "organization/eks-istio-shop/dev"])
def test_dev_is_never_reaped_even_if_tagged_by_mistake(name):
    workspace = FakeWorkspace({name: {reap.EXPIRY_TAG: expiry(-timedelta(days=3))}})
    code, lines = run(workspace)
    assert workspace.destroy_calls == []
    assert "protected" in line_for(lines, name)


def test_leftovers_check_gets_the_bare_stack_name_and_the_cluster_name():
    """With Pulumi Cloud the listed names are qualified; the resources' `stack` tag is the bare name."""
    names = {"org/eks-istio-shop/pr-5": "alpha-pr-5", "org/pr-6": "beta-pr-6", "pr-7": "alpha-pr-7"}
    workspace = FakeWorkspace({name: {reap.EXPIRY_TAG: expiry(-timedelta(hours=1))} for name in names},
                              cluster_names=names)
    checked: list[tuple[str, Optional[str]]] = []
    code = reap.reap(workspace, NOW, False, out=lambda _: None,
                     after_destroy=lambda stack, cluster: checked.append((stack, cluster)) or 0)
    assert code == 0
    assert checked == [("pr-5", "alpha-pr-5"), ("pr-6", "beta-pr-6"), ("pr-7", "alpha-pr-7")]
    for name in names:
        assert workspace.calls.index(("cluster_name", name)) < workspace.calls.index(("destroy", name)), \
            "the cluster name must be read while the stack still exists"


def test_unknown_cluster_name_still_destroys_and_checks_without_it():
    workspace = FakeWorkspace({"pr-8": {reap.EXPIRY_TAG: expiry(-timedelta(hours=1))}})
    checked: list[tuple[str, Optional[str]]] = []
    lines: list[str] = []
    code = reap.reap(workspace, NOW, False, out=lines.append,
                     after_destroy=lambda stack, cluster: checked.append((stack, cluster)) or 0)
    assert code == 0 and workspace.destroy_calls == ["pr-8"]
    assert checked == [("pr-8", None)]
    assert any("could not read its cluster name" in line for line in lines)


def test_leftovers_check_is_called_with_the_cluster_name(monkeypatch):
    from tools import leftovers

    calls: list[list[str]] = []
    monkeypatch.setattr(leftovers, "main", lambda argv: calls.append(list(argv)) or 0)
    assert reap._leftovers_check("pr-5", "alpha-pr-5") == 0
    assert reap._leftovers_check("pr-6", None) == 0
    assert calls == [["pr-5", "--cluster-name", "alpha-pr-5"], ["pr-6"]]


class FakeStack:
    def __init__(self, outputs: dict, config: dict):
        self._outputs = outputs
        self._config = config
        self.refreshed = False
        self.destroys: list[dict] = []

    def destroy(self, **options):
        self.destroys.append(options)

    def outputs(self):
        return {key: SimpleNamespace(value=value) for key, value in self._outputs.items()}

    def refresh_config(self):
        self.refreshed = True

    def get_all_config(self):
        return {key: SimpleNamespace(value=value) for key, value in self._config.items()} if self.refreshed else {}


def automation_workspace(stack: FakeStack) -> reap.AutomationWorkspace:
    workspace = object.__new__(reap.AutomationWorkspace)
    workspace._auto = SimpleNamespace(Stack=SimpleNamespace(select=lambda name, _ws: stack))
    workspace._workspace = None
    return workspace


@pytest.mark.parametrize("outputs, config, name, expected", [
    ({"clusterName": "alpha-pr-5"}, {}, "pr-5", "alpha-pr-5"),  # the output already is the full name
    ({}, {"eks-istio-shop:clusterName": "beta"}, "org/eks-istio-shop/pr-5", "beta-pr-5"),
    ({}, {}, "org/pr-5", "alpha-pr-5"),
])
def test_the_reaper_finds_a_stacks_cluster_name_from_its_output_or_its_settings(outputs, config, name, expected):
    assert automation_workspace(FakeStack(outputs, config)).cluster_name(name) == expected


def test_a_stack_extended_since_the_first_look_is_not_destroyed():
    """A push moved expires-at forward between the reaper's listing and its destroy."""
    def push_arrives(workspace: FakeWorkspace, stack: str, reads: int) -> None:
        if stack == "pr-3" and reads == 1:
            workspace.stacks[stack][reap.EXPIRY_TAG] = expiry(timedelta(hours=8))

    workspace = FakeWorkspace({"pr-3": {reap.EXPIRY_TAG: expiry(-timedelta(minutes=5))},
                               "pr-4": {reap.EXPIRY_TAG: expiry(-timedelta(minutes=5))}}, on_tags=push_arrives)
    code, lines = run(workspace)
    assert code == 0
    assert workspace.destroy_calls == ["pr-4"]
    assert line_for(lines, "pr-3").startswith("pr-3: extended")
    assert "destroyed" in line_for(lines, "pr-4")
    assert workspace.calls.index(("tags", "pr-4"), workspace.calls.index(("tags", "pr-4")) + 1) \
        == workspace.calls.index(("destroy", "pr-4")) - 1, "the tags are re-read right before the destroy"


def test_tags_unreadable_right_before_destroy_is_a_failure_not_a_destroy():
    def backend_goes_away(workspace: FakeWorkspace, stack: str, reads: int) -> None:
        if reads == 1:
            raise RuntimeError("error: backend unreachable")

    workspace = FakeWorkspace({"pr-3": {reap.EXPIRY_TAG: expiry(-timedelta(minutes=5))}}, on_tags=backend_goes_away)
    code, lines = run(workspace)
    assert code == 1 and workspace.destroy_calls == []
    assert line_for(lines, "pr-3").startswith("pr-3: failed")


@pytest.mark.parametrize("dry_run", [False, True])
def test_max_stacks_bounds_one_run_and_defers_the_rest(dry_run):
    stacks = {f"pr-{n}": {reap.EXPIRY_TAG: expiry(-timedelta(hours=n))} for n in range(1, 6)}
    stacks["pr-9"] = {reap.EXPIRY_TAG: expiry(timedelta(hours=1))}
    workspace = FakeWorkspace(stacks)
    lines: list[str] = []
    code = reap.reap(workspace, NOW, dry_run, out=lines.append, max_stacks=2)
    assert code == 0
    acted = [f"pr-{n}" for n in range(1, 6)
             if line_for(lines, f"pr-{n}").split(": ")[1].startswith(("destroyed", "would destroy"))]
    assert acted == ["pr-1", "pr-2"]
    assert workspace.destroy_calls == ([] if dry_run else ["pr-1", "pr-2"])
    for n in (3, 4, 5):
        assert line_for(lines, f"pr-{n}").startswith(f"pr-{n}: deferred")
        assert f"pr-{n}" in workspace.stacks
    assert line_for(lines, "pr-9").startswith("pr-9: keep")
    assert "3 expired stack(s) deferred to the next run" in lines[-1]


def test_max_stacks_default_fits_the_workflow_timeout_with_margin():
    timeout = yaml.safe_load((ROOT / ".github" / "workflows" / "reap.yml").read_text())["jobs"]["reap"]["timeout-minutes"]
    minutes_per_eks_destroy = 15
    # Half the job's time is left for slow destroys, a stale lock's retry and the leftovers checks.
    assert reap.DEFAULT_MAX_STACKS * minutes_per_eks_destroy <= timeout / 2


def job_timeouts() -> dict[str, int]:
    workflows = ROOT / ".github" / "workflows"
    return {f"{name}:{job_name}": job["timeout-minutes"]
            for name in ("demo", "nightly", "reap")
            for job_name, job in yaml.safe_load((workflows / f"{name}.yml").read_text())["jobs"].items()}


def test_a_lock_counts_as_stale_only_after_every_job_that_could_hold_it_timed_out():
    assert reap.STALE_LOCK_AFTER >= timedelta(minutes=max(job_timeouts().values())), job_timeouts()


DIY_LOCK = ("the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete "
            "the lock file with `pulumi cancel`.")
CLOUD_LOCK = "[409] Conflict: Another update is currently in progress."


@pytest.mark.parametrize("message", [DIY_LOCK, CLOUD_LOCK])
def test_a_young_lock_is_left_alone_and_reported(message: str):
    expired = NOW - reap.STALE_LOCK_AFTER + timedelta(minutes=1)
    workspace = FakeWorkspace({"pr-3": {reap.EXPIRY_TAG: expired.strftime("%Y-%m-%dT%H:%M:%SZ")}})
    workspace.locked = {"pr-3": message}
    code, lines = run(workspace)
    assert code == 1
    assert ("cancel", "pr-3") not in workspace.calls and workspace.destroy_calls == ["pr-3"]
    assert "pr-3" in workspace.stacks
    line = line_for(lines, "pr-3")
    assert line.startswith("pr-3: failed (locked by another update") and "120 minutes past" in line


@pytest.mark.parametrize("message", [DIY_LOCK, CLOUD_LOCK])
def test_a_stale_lock_is_cancelled_and_the_destroy_retried(message: str):
    expired = NOW - reap.STALE_LOCK_AFTER - timedelta(minutes=1)
    workspace = FakeWorkspace({"pr-3": {reap.EXPIRY_TAG: expired.strftime("%Y-%m-%dT%H:%M:%SZ")}})
    workspace.locked = {"pr-3": message}
    code, lines = run(workspace)
    assert code == 0, lines
    calls = [call for call in workspace.calls if call[0] in ("destroy", "cancel")]
    assert calls == [("destroy", "pr-3"), ("cancel", "pr-3"), ("destroy", "pr-3")]
    assert "pr-3" not in workspace.stacks and line_for(lines, "pr-3").startswith("pr-3: destroyed")
    assert any(line.startswith("pr-3: note (locked, and expired more than 120 minutes ago") for line in lines)


def test_a_failure_that_is_no_lock_is_never_cancelled():
    workspace = FakeWorkspace({"pr-1": {reap.EXPIRY_TAG: expiry(-timedelta(days=2))}}, failing=frozenset({"pr-1"}))
    code, _ = run(workspace)
    assert code == 1 and ("cancel", "pr-1") not in workspace.calls


def test_the_workspace_cancels_through_the_automation_api():
    cancelled: list[str] = []
    stack = SimpleNamespace(cancel=lambda: cancelled.append("cancel"))
    workspace = object.__new__(reap.AutomationWorkspace)
    workspace._auto = SimpleNamespace(Stack=SimpleNamespace(select=lambda name, _ws: stack))
    workspace._workspace = None
    workspace.cancel("pr-5")
    assert cancelled == ["cancel"]


def test_main_passes_max_stacks_and_refuses_bad_values(tmp_path: Path, capsys):
    (tmp_path / "Pulumi.yaml").write_text("name: eks-istio-shop\n")
    stacks = {f"pr-{n}": {reap.EXPIRY_TAG: "2026-11-25T19:00:00Z"} for n in range(1, 4)}
    workspace = FakeWorkspace(stacks)
    code = reap.main(["--work-dir", str(tmp_path), "--now", "2026-11-25T20:00:00Z", "--max-stacks", "1"],
                     workspace_factory=lambda _: workspace)
    assert code == 0 and workspace.destroy_calls == ["pr-1"]
    assert "deferred" in capsys.readouterr().out
    for bad in ("0", "-1", "many"):
        with pytest.raises(SystemExit):
            reap.main(["--work-dir", str(tmp_path), "--max-stacks", bad], workspace_factory=lambda _: FakeWorkspace({}))
        assert "--max-stacks" in capsys.readouterr().err


def test_the_destroy_refreshes_first_and_removes_the_stack():
    """A Helm release on an unreachable cluster can only be dropped by a refresh, never deleted."""
    stack = FakeStack({}, {})
    workspace = automation_workspace(stack)
    workspace._out = lambda line: None
    workspace.destroy_and_remove("pr-5")
    (options,) = stack.destroys
    assert options["refresh"] is True and options["remove"] is True


def test_the_workspace_runs_pulumi_with_delete_unreachable(monkeypatch, tmp_path: Path):
    import pulumi.automation as auto

    seen: dict = {}
    monkeypatch.setattr(auto, "LocalWorkspace", lambda **kwargs: seen.update(kwargs) or object())
    reap.AutomationWorkspace(tmp_path)
    assert seen["env_vars"] == {"PULUMI_K8S_DELETE_UNREACHABLE": "true"}


def test_missing_access_is_reported_but_the_stack_is_still_destroyed():
    workspace = FakeWorkspace({"pr-5": {reap.EXPIRY_TAG: expiry(-timedelta(minutes=1))},
                               "pr-6": {reap.EXPIRY_TAG: expiry(-timedelta(minutes=1))}},
                              cluster_names={"pr-5": "alpha-pr-5", "pr-6": "alpha-pr-6"})
    checked: list[tuple[str, Optional[str]]] = []

    def access(stack: str, cluster: Optional[str]) -> int:
        checked.append((stack, cluster))
        return 1 if stack == "pr-5" else 0

    lines: list[str] = []
    code = reap.reap(workspace, NOW, False, out=lines.append, before_destroy=access)
    assert code == 1
    assert workspace.destroy_calls == ["pr-5", "pr-6"]
    assert checked == [("pr-5", "alpha-pr-5"), ("pr-6", "alpha-pr-6")]
    assert line_for(lines, "pr-5").startswith("pr-5: failed (destroyed, but this identity had no admin access")
    assert line_for(lines, "pr-6").startswith("pr-6: destroyed")
    note = next(line for line in lines if line.startswith("pr-5: note"))
    assert lines.index(note) < lines.index(next(line for line in lines if line.startswith("pr-5: destroy (")))


def test_access_check_is_called_for_admin_with_the_cluster_name(monkeypatch, capsys):
    from tools import access_check

    calls: list[list[str]] = []
    monkeypatch.setattr(access_check, "main", lambda argv: calls.append(list(argv)) or 1)
    assert reap._access_check("pr-5", "alpha-pr-5") == 1
    assert reap._access_check("pr-6", None) == 0, "an unknown cluster cannot be checked; the destroy goes on"
    assert calls == [["pr-5", "--needs", "admin", "--cluster-name", "alpha-pr-5"]]
    assert "cannot be checked" in capsys.readouterr().out


def test_main_check_access_wires_the_access_check(tmp_path: Path, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text("name: eks-istio-shop\n")
    monkeypatch.setattr(reap, "_access_check", lambda stack, cluster: 1)
    workspace = FakeWorkspace({"pr-1": {reap.EXPIRY_TAG: "2026-11-25T19:00:00Z"}}, cluster_names={"pr-1": "alpha-pr-1"})
    code = reap.main(["--work-dir", str(tmp_path), "--now", "2026-11-25T20:00:00Z", "--check-access"],
                     workspace_factory=lambda _: workspace)
    assert code == 1 and workspace.destroy_calls == ["pr-1"]


# -- both kinds of stack: app stacks (tag platform-stack) and the platforms they run on ---------------

def test_a_platform_that_app_stacks_name_is_refused_and_app_stacks_get_no_cluster_admin_check():
    past = expiry(-timedelta(minutes=1))
    workspace = FakeWorkspace({"pr-5": {reap.EXPIRY_TAG: past},  # a full demo with an app stack on it
                               "pr-6": {reap.EXPIRY_TAG: past, reap.PLATFORM_TAG: "organization/eks-istio-shop/dev"},
                               "pr-7": {reap.EXPIRY_TAG: past}},
                              cluster_names={"pr-5": "alpha-pr-5", "pr-6": "alpha-dev", "pr-7": "alpha-pr-7"})
    guarded: list[str] = []
    checked: list[tuple[str, Optional[str]]] = []
    after: list[tuple[str, Optional[str]]] = []

    def guard(stack: str) -> int:
        guarded.append(stack)
        return 1 if stack == "pr-5" else 0

    lines: list[str] = []
    code = reap.reap(workspace, NOW, False, out=lines.append, platform_guard=guard,
                     before_destroy=lambda s, c: checked.append((s, c)) or 0,
                     after_destroy=lambda s, c: after.append((s, c)) or 0)
    assert code == 1
    assert workspace.destroy_calls == ["pr-6", "pr-7"], "the refused platform is left standing"
    assert guarded == ["pr-5", "pr-7"], "the guard runs for platform stacks only"
    assert line_for(lines, "pr-5").startswith("pr-5: failed (not destroyed: a platform stack that app stacks")
    assert checked == [("pr-7", "alpha-pr-7")], "an app stack needs no cluster admin"
    # An app stack's cluster is its platform's: the leftovers check looks for its own resources only.
    assert after == [("pr-6", None), ("pr-7", "alpha-pr-7")]
    assert ("cluster_name", "pr-6") not in workspace.calls


def test_main_platform_guard_wires_the_guard(tmp_path: Path, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text("name: eks-istio-shop\n")
    seen: list[str] = []
    monkeypatch.setattr(reap, "_platform_guard", lambda stack: seen.append(stack) or 1)
    workspace = FakeWorkspace({"pr-1": {reap.EXPIRY_TAG: "2026-11-25T19:00:00Z"}})
    code = reap.main(["--work-dir", str(tmp_path), "--now", "2026-11-25T20:00:00Z", "--platform-guard"],
                     workspace_factory=lambda _: workspace)
    assert code == 1 and seen == ["pr-1"] and workspace.destroy_calls == []


def test_the_reap_workflow_guards_platforms():
    workflow = yaml.safe_load((Path(__file__).resolve().parents[2] / ".github/workflows/reap.yml").read_text())
    runs = "\n".join(step.get("run", "") for step in workflow["jobs"]["reap"]["steps"])
    assert "tools.reap --check-access --check-leftovers --platform-guard" in runs
