"""Reaper: destroy and remove the project's stacks whose expiry has passed.

    python -m tools.reap [--dry-run] [--check-leftovers] [--work-dir DIR] [--now RFC3339]

A stack is a candidate only if it carries the stack tag `expires-at` (see EXPIRY_TAG) holding an
RFC 3339 timestamp with a timezone, e.g. `2026-11-25T20:00:00Z`; the demo workflow sets it. Stacks
without the tag (dev, anyone's own stacks) are never touched. Each decision is printed on its own
line. A failed destroy does not stop the run; the exit code is non-zero at the end if any destroy
failed or any tag could not be read as a time (such a stack would otherwise live forever unseen).

Exit codes: 0 all decisions carried out; 1 a destroy failed or an expiry tag is malformed;
2 the stacks could not be listed (no Pulumi CLI, not logged in, bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Optional, Protocol, Sequence

EXPIRY_TAG = "expires-at"
# Long-lived stacks the reaper refuses to destroy even if someone tags them by mistake.
PROTECTED_STACKS = frozenset({"dev"})
ROOT = Path(__file__).resolve().parent.parent

# The decisions the reaper can take, as printed.
DESTROY = "destroy"
WOULD_DESTROY = "would destroy"
KEEP = "keep"
SKIP_NO_TAG = "skip"
MALFORMED = "malformed"
FAILED = "failed"


class ReapError(Exception):
    """An expected failure that ends the run with a message, never a traceback."""


class StackWorkspace(Protocol):
    """What the reaper needs from Pulumi; the Automation API adapter and the tests' fake provide it."""

    def stack_names(self) -> list[str]: ...

    def tags(self, stack_name: str) -> Mapping[str, str]: ...

    def destroy_and_remove(self, stack_name: str) -> None: ...


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
    if stack.rsplit("/", 1)[-1] in PROTECTED_STACKS:
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
         after_destroy: Optional[Callable[[str], int]] = None) -> int:
    """Decide for every stack, carry out the destroys, print each decision; return the exit code.

    after_destroy(stack) runs after each successful destroy (the leftovers check); a non-zero
    result counts as a problem.
    """
    try:
        names = workspace.stack_names()
    except Exception as exc:  # the workspace wraps the CLI; any failure here means nothing can be judged
        raise ReapError(f"could not list the project's stacks: {_first_line(exc)}") from None

    problems = 0
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
        elif decision.action == DESTROY:
            if dry_run:
                decision = Decision(name, WOULD_DESTROY, decision.reason + "; dry run")
            else:
                out(Decision(name, DESTROY, decision.reason + "; destroying").line())
                try:
                    workspace.destroy_and_remove(name)
                except Exception as exc:
                    decision = Decision(name, FAILED, f"destroy failed: {_first_line(exc)}")
                    problems += 1
                else:
                    decision = Decision(name, "destroyed", "stack and its resources removed")
                    if after_destroy is not None and after_destroy(name) != 0:
                        decision = Decision(name, FAILED, "destroyed, but the leftovers check found "
                                                          "resources still in AWS (listed above)")
                        problems += 1
        out(decision.line())
    summary = f"{len(names)} stack(s) checked, {problems} problem(s)"
    out(summary + (" (dry run: nothing destroyed)" if dry_run else ""))
    return 1 if problems else 0


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
            self._workspace = auto.LocalWorkspace(work_dir=str(work_dir))
        except Exception as exc:
            raise ReapError(f"could not start the Pulumi CLI (is `pulumi` on PATH?): {_first_line(exc)}") from None

    def stack_names(self) -> list[str]:
        return [summary.name for summary in self._workspace.list_stacks()]

    def tags(self, stack_name: str) -> Mapping[str, str]:
        return dict(self._workspace.list_tags(stack_name))

    def destroy_and_remove(self, stack_name: str) -> None:
        stack = self._auto.Stack.select(stack_name, self._workspace)
        # remove=True drops the stack only when the destroy left nothing behind in its state.
        stack.destroy(remove=True, on_output=lambda line: self._out(f"  | {line.rstrip()}"))


def _leftovers_check(stack_name: str) -> int:
    from tools import leftovers

    return leftovers.main([stack_name])


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
                        help="after each destroy, run `python -m tools.leftovers <stack>` (needs AWS credentials)")
    parser.add_argument("--now", type=_parse_now, default=None,
                        help="judge expiry as of this RFC 3339 time instead of the clock (for rehearsals)")
    args = parser.parse_args(argv)

    if not (args.work_dir / "Pulumi.yaml").is_file():
        parser.error(f"--work-dir {args.work_dir}: no Pulumi.yaml there")
    now = args.now or datetime.now(timezone.utc)
    try:
        workspace = workspace_factory(args.work_dir)
        return reap(workspace, now, args.dry_run, after_destroy=_leftovers_check if args.check_leftovers else None)
    except ReapError as exc:
        print(f"reap: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
