"""Bounded demos: may this pull request's demo stack be stood up, given the live ones?

    pulumi stack ls --json > stacks.json
    python -m tools.demo_stacks admit pr-12 --stacks stacks.json --max "$DEMO_MAX_STACKS" \
        [--comment refused.md] [--github-output "$GITHUB_OUTPUT"]
    python -m tools.demo_stacks exists pr-12 --stacks stacks.json     # prints true or false

Each full demo stack takes one VPC and one Elastic IP (a single NAT gateway), and AWS's default
quotas are 5 of each per region, shared with dev and the nightly run. A stack that already holds
resources always updates; a new one (or one whose resources are all gone) is refused when
--max live demo stacks (pr-<n>) exist. A stack counts as live while it holds resources, has an update
in progress, its resource count is unknown, or it was never updated: demo.yml creates the stack in the
same serialized job that counts (concurrency group demo-admission), and that empty stack holds the
place until its up job deploys it.

`exists` answers whether a stack is in the listing, so that a workflow tells "no such stack" apart
from every other failure: `pulumi stack select NAME 2>/dev/null` fails alike for a missing stack, a
failed login, an S3 or KMS error and a missing permission, and a teardown would then report "nothing
to destroy" while the stack keeps billing. The listing itself must come from a `pulumi stack ls
--json` that succeeded (any error there fails the step).

Exit codes of `admit`: 0 admitted; 1 refused (the reason, and the live stacks, on stdout and in --comment);
2 bad input (a malformed listing, or a --max that is not a whole number from 0 to 20). `exists`
prints true or false and exits 0, or exits 2 on a malformed listing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

DEFAULT_MAX_STACKS = 2
# A ceiling on the setting: each demo needs its own VPC and Elastic IP, and more than this would
# need quota raises the docs would have to mention.
MAX_MAX_STACKS = 20
MAX_VARIABLE = "DEMO_MAX_STACKS"
DEMO_STACK = re.compile(r"^pr-\d+$")


class ListingError(ValueError):
    pass


@dataclass(frozen=True)
class DemoStack:
    name: str
    resource_count: Optional[int]
    update_in_progress: bool
    never_updated: bool = False

    @property
    def live(self) -> bool:
        return (self.update_in_progress or self.never_updated or self.resource_count is None
                or self.resource_count > 0)

    def describe(self) -> str:
        if self.update_in_progress:
            return f"`{self.name}` (update in progress)"
        if self.never_updated:
            return f"`{self.name}` (admitted, not deployed yet)"
        if self.resource_count is None:
            return f"`{self.name}` (resource count unknown)"
        return f"`{self.name}` ({self.resource_count} resources)"


@dataclass(frozen=True)
class Admission:
    admitted: bool
    reason: str
    live: tuple[DemoStack, ...]


def parse_max(raw: Optional[str]) -> int:
    """The DEMO_MAX_STACKS repository variable: empty means the default."""
    text = (raw or "").strip()
    if not text:
        return DEFAULT_MAX_STACKS
    if not re.fullmatch(r"\d{1,3}", text) or int(text) > MAX_MAX_STACKS:
        raise ValueError(f"{MAX_VARIABLE}: {raw!r} is not a whole number from 0 to {MAX_MAX_STACKS} "
                         f"(unset: {DEFAULT_MAX_STACKS}; 0 stops new demo stacks)")
    return int(text)


def stack_names(listing: Any) -> list[str]:
    """The bare names in `pulumi stack ls --json` output (Pulumi Cloud prefixes org/project/)."""
    if not isinstance(listing, list):
        raise ListingError("expected the JSON list `pulumi stack ls --json` prints")
    names = []
    for entry in listing:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ListingError(f"a stack entry without a name: {entry!r}")
        names.append(entry["name"].rsplit("/", 1)[-1])
    return names


def demo_stacks(listing: Any) -> list[DemoStack]:
    """The pr-<n> stacks in `pulumi stack ls --json` output (bare names: Pulumi Cloud prefixes org/project/)."""
    stacks = []
    for entry, name in zip(listing, stack_names(listing)):
        if not DEMO_STACK.match(name):
            continue
        count = entry.get("resourceCount")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise ListingError(f"{name}: resourceCount {count!r} is not a count")
        in_progress = bool(entry.get("updateInProgress", False))
        # `pulumi stack ls --json` leaves lastUpdate out for a stack never updated (and during an update).
        stacks.append(DemoStack(name, count, in_progress, not in_progress and not entry.get("lastUpdate")))
    return sorted(stacks, key=lambda s: int(s.name.split("-", 1)[1]))


def admit(stack: str, listing: Any, maximum: int) -> Admission:
    stacks = demo_stacks(listing)
    live = tuple(s for s in stacks if s.live)
    this = next((s for s in live if s.name == stack), None)
    if this is not None:
        return Admission(True, f"{stack} already exists with resources: updating it", live)
    others = tuple(s for s in live if s.name != stack)
    if len(others) >= maximum:
        return Admission(False, f"{len(others)} live demo stack(s), and at most {maximum} may run at once "
                                f"({MAX_VARIABLE})", others)
    return Admission(True, f"{len(others)} of at most {maximum} demo stack(s) live: {stack} may start", others)


def refusal_comment(stack: str, admission: Admission) -> str:
    lines = [
        f"### Demo stack `{stack}` not started",
        "",
        f"{admission.reason}. Each demo stack takes a VPC and an Elastic IP of the region's quota "
        "(5 of each by default, shared with `dev` and the nightly run) and costs about $0.35 an hour.",
        "",
        "Live demo stacks:",
        *[f"- {s.describe()}" for s in admission.live],
        "",
        "Remove the `demo` label from a pull request that no longer needs its stack (or close it), then push "
        "again or re-add the label here. A maintainer can raise the repository variable "
        f"`{MAX_VARIABLE}` if the account's quotas allow.",
    ]
    return "\n".join(lines) + "\n"


def _read_listing(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ListingError(f"not JSON: {exc}") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo_stacks",
                                     description="Admit or refuse a demo stack against the live ones.")
    sub = parser.add_subparsers(dest="command", required=True)
    admit_parser = sub.add_parser("admit", help="decide for one pr-<n> stack")
    admit_parser.add_argument("stack", help="pr-<number>")
    admit_parser.add_argument("--stacks", type=Path, required=True,
                              help="a file holding `pulumi stack ls --json` output ('-': standard input)")
    admit_parser.add_argument("--max", dest="maximum", default="",
                              help=f"the {MAX_VARIABLE} variable (empty: {DEFAULT_MAX_STACKS})")
    admit_parser.add_argument("--comment", type=Path, help="on refusal, write the pull request comment here")
    admit_parser.add_argument("--github-output", type=Path, help="append admitted=true|false here")
    exists_parser = sub.add_parser("exists", help="print true if the stack is in the listing, else false")
    exists_parser.add_argument("stack", help="a bare stack name (dev, pr-<number>, nightly-<run>)")
    exists_parser.add_argument("--stacks", type=Path, required=True,
                               help="a file holding `pulumi stack ls --json` output ('-': standard input)")
    args = parser.parse_args(argv)

    if args.command == "exists":
        try:
            names = stack_names(_read_listing(args.stacks))
        except (ValueError, OSError) as exc:
            print(f"demo_stacks: error: {exc}", file=sys.stderr)
            return 2
        print("true" if args.stack.rsplit("/", 1)[-1] in names else "false")
        return 0
    if not DEMO_STACK.match(args.stack):
        parser.error(f"stack: {args.stack!r} is not a demo stack name (pr-<number>)")
    try:
        maximum = parse_max(args.maximum)
        admission = admit(args.stack, _read_listing(args.stacks), maximum)
    except (ValueError, OSError) as exc:
        print(f"demo_stacks: error: {exc}", file=sys.stderr)
        return 2
    if args.github_output:
        with args.github_output.open("a") as out:
            out.write(f"admitted={'true' if admission.admitted else 'false'}\n")
    if admission.admitted:
        print(f"{args.stack}: admitted ({admission.reason})")
        return 0
    comment = refusal_comment(args.stack, admission)
    if args.comment:
        args.comment.parent.mkdir(parents=True, exist_ok=True)
        args.comment.write_text(comment)
    print(comment, end="")
    return 1


if __name__ == "__main__":
    sys.exit(main())
