"""Bounded demos: counting live demo stacks in `pulumi stack ls --json` and admitting or refusing one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import demo_stacks


def entry(name: str, resources=12, in_progress=False, **extra):
    item = {"name": name, "current": False, "updateInProgress": in_progress, **extra}
    if not in_progress:
        item.setdefault("lastUpdate", "2026-11-25T19:00:00.000Z")
    if resources is not None:
        item["resourceCount"] = resources
    return item


LISTING = [
    entry("dev", 140),
    entry("pr-7", 130),
    entry("org/eks-istio-shop/pr-12", 128),  # Pulumi Cloud names
    entry("pr-15", 0),  # destroyed or never deployed: holds nothing
    entry("nightly-99887766", 131),  # counted by nobody here: not a demo stack
    entry("pr-3-old", 10),  # not pr-<number>
]


def test_only_pr_number_stacks_are_demo_stacks_and_names_are_bare():
    names = [s.name for s in demo_stacks.demo_stacks(LISTING)]
    assert names == ["pr-7", "pr-12", "pr-15"]


@pytest.mark.parametrize("resources, in_progress, live", [
    (0, False, False), (3, False, True), (0, True, True), (None, False, True)])
def test_a_demo_stack_is_live_while_it_holds_resources_or_an_update_runs(resources, in_progress, live):
    (stack,) = demo_stacks.demo_stacks([entry("pr-1", resources, in_progress)])
    assert stack.live is live


def test_a_new_stack_is_refused_at_the_maximum_and_told_which_are_live():
    admission = demo_stacks.admit("pr-20", LISTING, 2)
    assert not admission.admitted
    assert [s.name for s in admission.live] == ["pr-7", "pr-12"]
    comment = demo_stacks.refusal_comment("pr-20", admission)
    assert "2 live demo stack(s), and at most 2 may run at once (DEMO_MAX_STACKS)" in comment
    assert "- `pr-7` (130 resources)" in comment and "- `pr-12` (128 resources)" in comment


def test_a_new_stack_is_admitted_below_the_maximum():
    assert demo_stacks.admit("pr-20", LISTING, 3).admitted


def test_an_existing_stack_with_resources_always_updates():
    admission = demo_stacks.admit("pr-12", LISTING, 1)
    assert admission.admitted and "updating" in admission.reason


def test_an_empty_existing_stack_counts_as_new():
    """pr-15 holds nothing: standing it up takes a VPC like a new stack would."""
    assert not demo_stacks.admit("pr-15", LISTING, 2).admitted
    assert demo_stacks.admit("pr-15", LISTING, 3).admitted


def test_zero_stops_every_new_demo():
    assert not demo_stacks.admit("pr-1", [], 0).admitted
    assert demo_stacks.admit("pr-7", LISTING, 0).admitted, "a live stack still updates"


@pytest.mark.parametrize("raw, expected", [(None, 2), ("", 2), (" 3 ", 3), ("0", 0), ("20", 20)])
def test_the_maximum_of_live_demo_stacks_is_validated(raw, expected):
    assert demo_stacks.parse_max(raw) == expected


@pytest.mark.parametrize("raw", ["-1", "two", "2.5", "21", "1e3"])
def test_a_bad_maximum_names_the_variable(raw):
    with pytest.raises(ValueError, match="DEMO_MAX_STACKS: .* is not a whole number from 0 to 20"):
        demo_stacks.parse_max(raw)


@pytest.mark.parametrize("listing", [{"name": "pr-1"}, [{"resourceCount": 1}], [entry("pr-1", -2)],
                                     [entry("pr-1", "many")]])
def test_a_malformed_listing_is_refused(listing):
    with pytest.raises(demo_stacks.ListingError):
        demo_stacks.demo_stacks(listing)


def test_cli_refusal_writes_comment_and_output(tmp_path: Path, capsys):
    stacks = tmp_path / "stacks.json"
    stacks.write_text(json.dumps(LISTING))
    comment, output = tmp_path / "build" / "refused.md", tmp_path / "output"
    code = demo_stacks.main(["admit", "pr-30", "--stacks", str(stacks), "--max", "2",
                             "--comment", str(comment), "--github-output", str(output)])
    assert code == 1
    assert output.read_text() == "admitted=false\n"
    assert "Demo stack `pr-30` not started" in comment.read_text()
    code = demo_stacks.main(["admit", "pr-7", "--stacks", str(stacks), "--max", "", "--github-output", str(output)])
    assert code == 0 and output.read_text().endswith("admitted=true\n")


def test_cli_bad_input_exits_2(tmp_path: Path, capsys):
    stacks = tmp_path / "stacks.json"
    stacks.write_text("warning: something\n[]")
    assert demo_stacks.main(["admit", "pr-1", "--stacks", str(stacks)]) == 2
    assert "not JSON" in capsys.readouterr().err
    stacks.write_text("[]")
    assert demo_stacks.main(["admit", "pr-1", "--stacks", str(stacks), "--max", "many"]) == 2
    with pytest.raises(SystemExit):
        demo_stacks.main(["admit", "dev", "--stacks", str(stacks)])


def test_exists_prints_true_or_false_and_fails_only_on_a_bad_listing(tmp_path: Path, capsys):
    listing = tmp_path / "stacks.json"
    listing.write_text(json.dumps(LISTING))
    for stack, answer in (("pr-12", "true"), ("pr-7", "true"), ("nightly-99887766", "true"), ("pr-8", "false"),
                          ("pr-3", "false")):
        assert demo_stacks.main(["exists", stack, "--stacks", str(listing)]) == 0
        assert capsys.readouterr().out == answer + "\n", stack
    listing.write_text("error: failed to list stacks")
    assert demo_stacks.main(["exists", "pr-7", "--stacks", str(listing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "not JSON" in captured.err


def test_a_stack_created_but_never_updated_holds_its_place():
    """demo.yml's admission creates the stack: the next admission must count it, or two could pass."""
    fresh = {"name": "pr-20", "current": False, "resourceCount": 0}  # no lastUpdate: never updated
    (stack,) = demo_stacks.demo_stacks([fresh])
    assert stack.live and "admitted, not deployed yet" in stack.describe()
    admission = demo_stacks.admit("pr-21", [entry("pr-7", 130), fresh], 2)
    assert not admission.admitted
