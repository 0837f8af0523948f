"""Refuse to destroy a platform stack that app stacks still run on.

    python -m tools.platform_guard dev               # asks the Pulumi CLI for every stack's config
    python -m tools.platform_guard dev --configs configs.json

`pulumi destroy` does not run the program, so nothing in it can notice app stacks on the platform; this
runs first in the project's own destroy path (`make destroy`, scripts/destroy.sh). Without --configs it
lists the backend's stacks (`pulumi stack ls --json`) and reads each one's config (`pulumi config --stack
<stack> --json`); configs.json holds the same, stack -> config. A failure to list or read stops it (exit 2),
so a destroy never goes on unchecked.
An app stack (stackKind app) whose platformStack names the stack, as <stack>, <project>/<stack> or
<organization>/<project>/<stack>, blocks the destroy; it is named, with how to remove it first.
A runner holds no Pulumi.<stack>.yaml of other stacks, so `pulumi config` shows it nothing of them: a stack
tagged `platform-stack` (demo.yml tags its app stacks so) counts as an app stack on the platform the tag
names, whatever its local config says.

Exit codes: 0 no app stack on it; 1 refused (the app stacks on stderr); 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from settings import APP_KIND, PROJECT


def setting(config: Mapping[str, Any], name: str) -> Optional[str]:
    """A setting's value as `pulumi config --json` shows it ({"value": ...}) or as plain text."""
    entry = config.get(f"{PROJECT}:{name}")
    if isinstance(entry, Mapping):
        entry = entry.get("value")
    return entry if isinstance(entry, str) else None


def names_platform(reference: str, platform: str) -> bool:
    """Whether a platformStack value refers to `platform` of this project."""
    parts = reference.split("/")
    if parts[-1] != platform:
        return False
    return len(parts) == 1 or parts[-2] == PROJECT


def app_stacks_on(platform: str, configs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return sorted(stack for stack, config in configs.items()
                  if stack != platform and setting(config, "stackKind") == APP_KIND
                  and names_platform(setting(config, "platformStack") or "", platform))


PLATFORM_TAG = "platform-stack"


def with_platform_tag(config: Mapping[str, Any], tags: Mapping[str, Any]) -> dict[str, Any]:
    """A stack's config as the guard reads it: its `platform-stack` tag makes it an app stack on that platform."""
    merged = dict(config)
    platform = tags.get(PLATFORM_TAG)
    if isinstance(platform, str) and platform:
        merged[f"{PROJECT}:stackKind"] = APP_KIND
        merged[f"{PROJECT}:platformStack"] = platform
    return merged


def configs_from_pulumi() -> dict[str, Any]:
    def pulumi(*args: str) -> Any:
        result = subprocess.run(["pulumi", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise ValueError(f"`pulumi {' '.join(args)}` failed: {result.stderr.strip()}")
        return json.loads(result.stdout)
    return {entry["name"]: with_platform_tag(pulumi("config", "--stack", entry["name"], "--json"),
                                             pulumi("stack", "tag", "ls", "--stack", entry["name"], "--json"))
            for entry in pulumi("stack", "ls", "--json")}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.platform_guard", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="the stack about to be destroyed")
    parser.add_argument("--configs", type=Path, help="JSON: stack -> `pulumi config --json` of it "
                                                     "(default: ask the Pulumi CLI)")
    args = parser.parse_args(argv)
    try:
        configs = json.loads(args.configs.read_text()) if args.configs else configs_from_pulumi()
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"platform_guard: cannot tell which app stacks run on '{args.stack}': {error}", file=sys.stderr)
        return 2
    if not isinstance(configs, dict) or not all(isinstance(v, dict) for v in configs.values()):
        print(f"platform_guard: {args.configs}: expected a map of stack names to their config", file=sys.stderr)
        return 2
    blocking = app_stacks_on(args.stack, configs)
    if blocking:
        print(f"platform_guard: stack '{args.stack}' is the platform of app stacks {', '.join(blocking)}; "
              f"destroying it would strand them (their namespaces, records and images stay behind). Destroy "
              f"them first: " + "; ".join(f"make destroy STACK={s}" for s in blocking), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
