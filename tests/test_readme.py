"""The README's table of stack outputs is what the offline renders export, for each kind of stack."""

from __future__ import annotations

import re

from tests.support import ROOT

BOTH, PLATFORM, PLATFORM_WITH_DOMAIN = "both", "platform", "platform with a `domain`"


def readme_outputs() -> dict[str, str]:
    """Output name -> the kind of stack the README says exports it (its "Stack outputs" table)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n### Stack outputs\n", 1)[1].split("\n#", 1)[0]
    kinds: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names, kind = [cell.strip() for cell in line.strip().strip("|").split(" | ")][:2]
        for name in re.findall(r"`([^`]+)`", names):
            assert name not in kinds, f"README: output {name} listed twice"
            kinds[name] = kind
    assert set(kinds.values()) <= {BOTH, PLATFORM, PLATFORM_WITH_DOMAIN}, set(kinds.values())
    return kinds


def listed_for(*kinds: str) -> set[str]:
    return {name for name, kind in readme_outputs().items() if kind in kinds}


def test_the_readme_lists_exactly_what_a_platform_stack_exports_with_and_without_a_domain(render, render_variant):
    assert set(render.outputs) == listed_for(BOTH, PLATFORM, PLATFORM_WITH_DOMAIN)
    without_domain = render_variant(unsets=("domain",))
    assert set(without_domain.outputs) == listed_for(BOTH, PLATFORM)


def test_the_readme_lists_exactly_what_an_app_stack_exports(render_variant):
    assert set(render_variant("pr-example").outputs) == listed_for(BOTH)
