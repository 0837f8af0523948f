"""tools.platform_guard: a platform stack is not destroyed while app stacks run on it."""

from __future__ import annotations

import json

import pytest

from tools import platform_guard

CONFIGS = {
    "dev": {"eks-istio-shop:owner": {"value": "team", "secret": False}},
    "pr-7": {"eks-istio-shop:stackKind": {"value": "app"}, "eks-istio-shop:platformStack": {"value": "dev"}},
    "pr-8": {"eks-istio-shop:stackKind": "app", "eks-istio-shop:platformStack": "acme/eks-istio-shop/dev"},
    "pr-9": {"eks-istio-shop:stackKind": {"value": "app"}, "eks-istio-shop:platformStack": {"value": "staging"}},
    "other": {"eks-istio-shop:stackKind": {"value": "app"}, "eks-istio-shop:platformStack": {"value": "other-project/dev"}},
    "nightly": {"eks-istio-shop:platformStack": {"value": "dev"}},  # a platform stack: not on dev
}


def test_app_stacks_on_a_platform_are_found_by_any_form_of_its_name():
    assert platform_guard.app_stacks_on("dev", CONFIGS) == ["pr-7", "pr-8"]
    assert platform_guard.app_stacks_on("staging", CONFIGS) == ["pr-9"]
    assert platform_guard.app_stacks_on("pr-7", CONFIGS) == []


def test_the_destroy_is_refused_naming_the_app_stacks(tmp_path, capsys):
    (tmp_path / "configs.json").write_text(json.dumps(CONFIGS))
    assert platform_guard.main(["dev", "--configs", str(tmp_path / "configs.json")]) == 1
    error = capsys.readouterr().err
    assert "app stacks pr-7, pr-8" in error and "make destroy STACK=pr-7" in error
    assert platform_guard.main(["nightly", "--configs", str(tmp_path / "configs.json")]) == 0


@pytest.mark.parametrize("content", ["not json", "[]", '{"dev": "x"}'])
def test_an_unreadable_listing_stops_the_destroy(tmp_path, content):
    (tmp_path / "configs.json").write_text(content)
    assert platform_guard.main(["dev", "--configs", str(tmp_path / "configs.json")]) == 2


def test_without_the_pulumi_cli_nothing_is_destroyed_unchecked(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert platform_guard.main(["dev"]) == 2
    assert "cannot tell which app stacks run on 'dev'" in capsys.readouterr().err
