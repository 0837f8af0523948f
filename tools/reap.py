"""Reaper: destroy and remove the project's stacks whose expiry has passed.

    python -m tools.reap [--dry-run] [--check-access] [--check-leftovers] [--max-stacks N] [--work-dir DIR]
                         [--now RFC3339]

A stack is a candidate only if it carries the stack tag `expires-at` (see EXPIRY_TAG) holding an
RFC 3339 timestamp with a timezone, e.g. `2026-11-25T20:00:00Z`; the demo workflow sets it. Stacks
without the tag (dev, anyone's own stacks) are never touched. Each decision is printed on its own
line. A failed destroy does not stop the run; the exit code is non-zero at the end if any destroy
failed or any tag could not be read as a time (such a stack would otherwise live forever unseen).
Right before each destroy the stack's tags are read again: a push to the pull request may just have
moved `expires-at` forward, and then the stack is kept ("extended"). At most --max-stacks destroys
run per invocation (each EKS stack takes about 15 minutes, and the scheduled job has a timeout); the
other expired stacks are left for the next run ("deferred").

Each destroy refreshes first and runs with PULUMI_K8S_DELETE_UNREACHABLE=true, so that a cluster this
identity cannot reach (no access entry, or the cluster already gone) never blocks it: the refresh
drops the unreachable Kubernetes objects from the state, then the AWS resources are deleted, the
cluster with everything in it. That is safe here because nothing inside the cluster owns an AWS
object: the ingress gateway is a NodePort Service behind the Pulumi-owned NLB, there is no Service of
type LoadBalancer and no PersistentVolumeClaim; --check-leftovers proves it after each destroy.
With --check-access, tools.access_check first says whether this identity is the cluster's admin (a
demo stack lists the teardown role in clusterAdminArns); a missing access is reported and counts as
a problem, but the destroy still runs. An app stack (stack tag `platform-stack`, which demo.yml sets)
gets no access check: its access is its platform's namespace-scoped appDeployerArns grant. With
--platform-guard, a platform stack (any other) is destroyed only when tools.platform_guard finds no
app stack naming it; otherwise it is refused, the app stacks named.

A destroy that finds the stack locked (an update that timed out or was cancelled leaves its lock
behind: a lock file on the S3 backend, an update that never ended on Pulumi Cloud) cancels that
update and tries once more only when the stack's expiry is more than STALE_LOCK_AFTER past: every job
that can hold a demo or nightly stack's lock has ended by then (demo.yml's up job writes expires-at
at least an hour ahead when it starts and runs 90 minutes at most; its destroy job moves expires-at
to its own 90-minute deadline before it starts; nightly.yml's jobs end within 3 hours of the 4-hour
expiry it sets; this workflow runs one at a time with a 120-minute timeout). A younger lock may
belong to a running job and is left alone: the stack is reported and retried next run.

Exit codes: 0 all decisions carried out; 1 a destroy failed or an expiry tag is malformed;
2 the stacks could not be listed (no Pulumi CLI, not logged in, bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Mapping, Optional, Protocol, Sequence

from settings import DEFAULT_CLUSTER_NAME, PROJECT
# The stack tag demo.yml sets on an app stack: the platform stack it runs on.
from tools.platform_guard import PLATFORM_TAG

EXPIRY_TAG = "expires-at"
# Teardown only (see the module docstring for why it is safe here): the provider falls back to this
# variable because the program never sets the Kubernetes provider's deleteUnreachable.
DELETE_UNREACHABLE_ENV = {"PULUMI_K8S_DELETE_UNREACHABLE": "true"}
# Long-lived stacks the reaper refuses to destroy even if someone tags them by mistake.
PROTECTED_STACKS = frozenset({"dev"})
# Destroys per run: about 15 minutes each, sequential, in half of reap.yml's 120-minute timeout (a
# slow destroy, a cancelled lock's retry and the leftovers checks take the rest).
DEFAULT_MAX_STACKS = 4
# How long after a stack's expiry its lock is taken for stale: the longest timeout of any job that can
# hold it (reap.yml's 120 minutes; demo.yml's and nightly.yml's jobs have 90). See the module docstring.
STALE_LOCK_AFTER = timedelta(minutes=120)
# How the CLI says a stack is locked: the DIY (S3) backend, and Pulumi Cloud (HTTP 409).
_LOCKED_MARKERS = ("the stack is currently locked by", "Another update is currently in progress")
ROOT = Path(__file__).resolve().parent.parent

# The decisions the reaper can take, as printed.
DESTROY = "destroy"
WOULD_DESTROY = "would destroy"
KEEP = "keep"
SKIP_NO_TAG = "skip"
MALFORMED = "malformed"
FAILED = "failed"
EXTENDED = "extended"
DEFERRED = "deferred"


class ReapError(Exception):
    """An expected failure that ends the run with a message, never a traceback."""


class StackWorkspace(Protocol):
    """What the reaper needs from Pulumi; the Automation API adapter and the tests' fake provide it."""

    def stack_names(self) -> list[str]: ...

    def tags(self, stack_name: str) -> Mapping[str, str]: ...

    def cluster_name(self, stack_name: str) -> str:
        """The stack's EKS cluster name (its `clusterName` output, else <clusterName config>-<stack>)."""
        ...

    def destroy_and_remove(self, stack_name: str) -> None: ...

    def cancel(self, stack_name: str) -> None:
        """`pulumi cancel`: ends the stack's running update (Pulumi Cloud) or deletes its lock files (DIY)."""
        ...


def bare_stack_name(stack_name: str) -> str:
    """pr-5 from org/project/pr-5 or org/pr-5 (Pulumi Cloud): what the `stack` tag on resources holds."""
    return stack_name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Decision:
    stack: str
    action: str
    reason: str

    def line(self) -> str:
        return f"{self.stack}: {self.action} ({self.reason})"


def parse_expiry(value: str) -> datetime:
    """An RFC 3339 time with an explicit offset, as an aware datetime.

    A time without an offset is refused: reading it as local time would make the reaper's verdict
    depend on the machine it runs on.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time such as 2026-11-25T20:00:00Z") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{value!r} has no timezone; write it in UTC with a Z, e.g. 2026-11-25T20:00:00Z")
    return parsed


def decide(stack: str, tags: Mapping[str, str], now: datetime) -> Decision:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if EXPIRY_TAG not in tags:
        return Decision(stack, SKIP_NO_TAG, f"no {EXPIRY_TAG} tag; never reaped")
    if bare_stack_name(stack) in PROTECTED_STACKS:
        return Decision(stack, SKIP_NO_TAG, f"protected stack; remove its {EXPIRY_TAG} tag")
    raw = tags[EXPIRY_TAG]
    try:
        expires = parse_expiry(raw)
    except ValueError as exc:
        return Decision(stack, MALFORMED, f"{EXPIRY_TAG}: {exc}; left alone, fix or remove the tag")
    expires_utc = expires.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if expires <= now:
        return Decision(stack, DESTROY, f"expired at {expires_utc}")
    return Decision(stack, KEEP, f"expires at {expires_utc}")


def reap(workspace: StackWorkspace, now: datetime, dry_run: bool,
         out: Callable[[str], None] = print,
         after_destroy: Optional[Callable[[str, Optional[str]], int]] = None,
         max_stacks: int = DEFAULT_MAX_STACKS,
         before_destroy: Optional[Callable[[str, Optional[str]], int]] = None,
         platform_guard: Optional[Callable[[str], int]] = None) -> int:
    """Decide for every stack, carry out the destroys, print each decision; return the exit code.

    platform_guard(bare stack name) runs right before each destroy of a platform stack (one without the
    `platform-stack` tag); a non-zero result (app stacks still run on it, named by the guard) refuses the
    destroy. An app stack gets no access check (its access is its platform's namespace-scoped
    appDeployerArns grant, not cluster admin) and its leftovers check no cluster name (the cluster is
    its platform's).

    before_destroy(bare stack name, EKS cluster name or None) runs right before each destroy (the
    access check): a non-zero result counts as a problem but the destroy still runs. after_destroy
    (same arguments) runs after each successful destroy (the leftovers check); a non-zero result
    counts as a problem. At most max_stacks destroys are started (or, in a dry run, announced);
    later expired stacks are deferred to the next run.
    """
    if max_stacks < 1:
        raise ValueError("max_stacks must be at least 1")
    try:
        names = workspace.stack_names()
    except Exception as exc:  # the workspace wraps the CLI; any failure here means nothing can be judged
        raise ReapError(f"could not list the project's stacks: {_first_line(exc)}") from None

    problems = 0
    started = 0
    deferred = 0
    for name in names:
        try:
            tags = workspace.tags(name)
        except Exception as exc:
            out(Decision(name, FAILED, f"could not read its tags: {_first_line(exc)}").line())
            problems += 1
            continue
        decision = decide(name, tags, now)
        if decision.action == MALFORMED:
            problems += 1
        elif decision.action == DESTROY and started >= max_stacks:
            decision = Decision(name, DEFERRED, decision.reason + f"; --max-stacks {max_stacks} reached, "
                                                                  "left for the next run")
            deferred += 1
        elif decision.action == DESTROY and dry_run:
            started += 1
            decision = Decision(name, WOULD_DESTROY, decision.reason + "; dry run")
        elif decision.action == DESTROY:
            started += 1
            decision, failed = _destroy(workspace, name, now, decision, out, after_destroy, before_destroy,
                                        platform_guard)
            problems += failed
        out(decision.line())
    summary = f"{len(names)} stack(s) checked, {problems} problem(s)"
    if deferred:
        summary += f", {deferred} expired stack(s) deferred to the next run (--max-stacks {max_stacks})"
    out(summary + (" (dry run: nothing destroyed)" if dry_run else ""))
    return 1 if problems else 0


def _destroy(workspace: StackWorkspace, name: str, now: datetime, decision: Decision,
             out: Callable[[str], None],
             after_destroy: Optional[Callable[[str, Optional[str]], int]],
             before_destroy: Optional[Callable[[str, Optional[str]], int]] = None,
             platform_guard: Optional[Callable[[str], int]] = None) -> tuple[Decision, int]:
    """Destroy one expired stack; the final decision and 1 if it counts as a problem, else 0."""
    cluster: Optional[str] = None
    try:
        tags = workspace.tags(name)
    except Exception as exc:
        return Decision(name, FAILED, f"could not read its tags again before destroying: {_first_line(exc)}"), 1
    app_stack = bool(tags.get(PLATFORM_TAG))
    if not app_stack and (after_destroy is not None or before_destroy is not None):
        # Read now: once the stack is removed, its outputs and settings are gone with it.
        try:
            cluster = workspace.cluster_name(name)
        except Exception as exc:
            out(f"{name}: note (could not read its cluster name: {_first_line(exc)}; the leftovers "
                "check will not look for kubernetes.io/cluster/<name> tags or the control plane log group)")
    # A push to the pull request may have moved the expiry forward since the first look.
    fresh = decide(name, tags, now)
    if fresh.action != DESTROY:
        return Decision(name, EXTENDED, f"not destroyed: {fresh.action} ({fresh.reason})"), 0
    if not app_stack and platform_guard is not None and platform_guard(bare_stack_name(name)) != 0:
        return Decision(name, FAILED, "not destroyed: a platform stack that app stacks still name as their "
                                      "platformStack (named above), or they could not be listed; destroy "
                                      "them first"), 1
    no_access = (not app_stack and before_destroy is not None
                 and before_destroy(bare_stack_name(name), cluster) != 0)
    if no_access:
        out(f"{name}: note (this identity lacks admin access on its cluster, see above; destroying anyway: "
            "the refresh drops what it cannot reach)")
    out(Decision(name, DESTROY, decision.reason + "; destroying").line())
    try:
        workspace.destroy_and_remove(name)
    except Exception as exc:
        if not is_locked(exc):
            return Decision(name, FAILED, f"destroy failed: {_first_line(exc)}"), 1
        expires = parse_expiry(workspace.tags(name)[EXPIRY_TAG])  # decide() has just read it as valid
        if now - expires < STALE_LOCK_AFTER:
            return Decision(name, FAILED, f"locked by another update ({_first_line(exc)}); left for a later run: "
                                          "its lock is cancelled only once expires-at is "
                                          f"{_minutes(STALE_LOCK_AFTER)} minutes past, when no job can still "
                                          "hold it"), 1
        out(f"{name}: note (locked, and expired more than {_minutes(STALE_LOCK_AFTER)} minutes ago: the update "
            "holding it has ended; cancelling it and destroying again)")
        try:
            workspace.cancel(name)
            workspace.destroy_and_remove(name)
        except Exception as retry_exc:
            return Decision(name, FAILED, f"destroy failed after cancelling its stale lock: "
                                          f"{_first_line(retry_exc)}"), 1
    if after_destroy is not None and after_destroy(bare_stack_name(name), cluster) != 0:
        return Decision(name, FAILED, "destroyed, but the leftovers check found "
                                      "resources still in AWS (listed above)"), 1
    if no_access:
        return Decision(name, FAILED, "destroyed, but this identity had no admin access on its cluster: "
                                      "fix the setting named above for the next stacks"), 1
    return Decision(name, "destroyed", "stack and its resources removed"), 0


def is_locked(exc: BaseException) -> bool:
    """Whether a failed destroy met another update's lock (the CLI's text on either backend)."""
    return type(exc).__name__ == "ConcurrentUpdateError" or any(marker in str(exc) for marker in _LOCKED_MARKERS)


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # CommandError carries the whole CLI transcript; its last non-empty line is usually the error.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors[-1] if errors else lines[-1])[:400]


class AutomationWorkspace:
    """The real StackWorkspace: the project's stacks through Pulumi's Automation API (local CLI)."""

    def __init__(self, work_dir: Path, out: Callable[[str], None] = print):
        try:
            from pulumi import automation as auto
        except ImportError as exc:  # pragma: no cover - pulumi is a pinned dependency
            raise ReapError(f"the pulumi package is not installed: {exc}") from None
        self._auto = auto
        self._out = out
        try:
            self._workspace = auto.LocalWorkspace(work_dir=str(work_dir), env_vars=dict(DELETE_UNREACHABLE_ENV))
        except Exception as exc:
            raise ReapError(f"could not start the Pulumi CLI (is `pulumi` on PATH?): {_first_line(exc)}") from None

    def stack_names(self) -> list[str]:
        return [summary.name for summary in self._workspace.list_stacks()]

    def tags(self, stack_name: str) -> Mapping[str, str]:
        return dict(self._workspace.list_tags(stack_name))

    def cluster_name(self, stack_name: str) -> str:
        stack = self._auto.Stack.select(stack_name, self._workspace)
        output = stack.outputs().get("clusterName")
        if output is not None and output.value:
            return str(output.value)  # the program exports the full EKS name
        # No output (the first update never finished): the program's own rule, from the settings of
        # the stack's last update (this checkout may have no Pulumi.<stack>.yaml).
        try:
            stack.refresh_config()
        except Exception:
            pass  # a stack that was never deployed has none: the defaults apply
        config = stack.get_all_config().get(f"{PROJECT}:clusterName")
        prefix = config.value if config is not None and config.value else DEFAULT_CLUSTER_NAME
        return f"{prefix}-{bare_stack_name(stack_name)}"

    def cancel(self, stack_name: str) -> None:
        self._auto.Stack.select(stack_name, self._workspace).cancel()

    def destroy_and_remove(self, stack_name: str) -> None:
        stack = self._auto.Stack.select(stack_name, self._workspace)
        # remove=True drops the stack only when the destroy left nothing behind in its state. The
        # refresh comes first: a Helm release on an unreachable cluster cannot be deleted, only
        # dropped from the state by a refresh with PULUMI_K8S_DELETE_UNREACHABLE (set on the workspace).
        stack.destroy(remove=True, refresh=True, on_output=lambda line: self._out(f"  | {line.rstrip()}"))


def _access_check(stack_name: str, cluster_name: Optional[str]) -> int:
    if cluster_name is None:
        print(f"{stack_name}: note (cluster name unknown: its Kubernetes access cannot be checked)")
        return 0
    from tools import access_check

    return access_check.main([stack_name, "--needs", "admin", "--cluster-name", cluster_name])


def _leftovers_check(stack_name: str, cluster_name: Optional[str]) -> int:
    from tools import leftovers

    return leftovers.main([stack_name, *(["--cluster-name", cluster_name] if cluster_name else [])])


def _platform_guard(stack_name: str) -> int:
    from tools import platform_guard
    return platform_guard.main([stack_name])


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of stacks, 1 or more")
    return number


def _parse_now(value: str) -> datetime:
    try:
        return parse_expiry(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Optional[Sequence[str]] = None,
         workspace_factory: Callable[[Path], StackWorkspace] = AutomationWorkspace) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.reap",
        description=f"Destroy and remove this project's stacks whose `{EXPIRY_TAG}` stack tag has passed. "
                    "Stacks without the tag are never touched.")
    parser.add_argument("--dry-run", action="store_true", help="print the decisions, destroy nothing")
    parser.add_argument("--work-dir", type=Path, default=ROOT,
                        help="the directory holding Pulumi.yaml (default: the repository root)")
    parser.add_argument("--check-leftovers", action="store_true",
                        help="after each destroy, run `python -m tools.leftovers <stack> --cluster-name <name>` "
                             "(needs AWS credentials)")
    parser.add_argument("--check-access", action="store_true",
                        help="before each destroy, run `python -m tools.access_check <stack> --needs admin` and "
                             "report a missing access (the destroy still runs; needs AWS credentials)")
    parser.add_argument("--platform-guard", action="store_true",
                        help="before each destroy of a platform stack, run `python -m tools.platform_guard "
                             "<stack>` and refuse the destroy while app stacks name it (needs the Pulumi CLI)")
    parser.add_argument("--max-stacks", type=_positive_int, default=DEFAULT_MAX_STACKS,
                        help="destroy at most this many stacks in this run; the other expired ones wait for "
                             f"the next run (default {DEFAULT_MAX_STACKS}: about 15 minutes each)")
    parser.add_argument("--now", type=_parse_now, default=None,
                        help="judge expiry as of this RFC 3339 time instead of the clock (for rehearsals)")
    args = parser.parse_args(argv)

    if not (args.work_dir / "Pulumi.yaml").is_file():
        parser.error(f"--work-dir {args.work_dir}: no Pulumi.yaml there")
    now = args.now or datetime.now(timezone.utc)
    try:
        workspace = workspace_factory(args.work_dir)
        return reap(workspace, now, args.dry_run, after_destroy=_leftovers_check if args.check_leftovers else None,
                    max_stacks=args.max_stacks, before_destroy=_access_check if args.check_access else None,
                    platform_guard=_platform_guard if args.platform_guard else None)
    except ReapError as exc:
        print(f"reap: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
