"""Image builds as plain data: the platform, the immutable tag, the lifecycle policy."""

import json

import pytest

from components import images


@pytest.mark.parametrize("architecture, platform", [("amd64", "linux/amd64"), ("arm64", "linux/arm64")])
def test_platform_follows_the_node_architecture(architecture, platform):
    assert images.image_platform(architecture) == platform


def test_unknown_architecture_is_refused_clearly():
    with pytest.raises(ValueError, match="known: \\['amd64', 'arm64'\\]"):
        images.image_platform("s390x")


def make_context(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return images.service_source(root, "orders")


SOURCES = {"orders/Dockerfile": "FROM x\n", "orders/app/main.py": "print(1)\n", "common/kit.py": "A = 1\n",
           "products/app/main.py": "print(3)\n"}


def tag(source, platform="linux/amd64"):
    return images.image_tag(source.context, source.dockerfile, platform)


def test_tag_is_stable_for_the_same_source(tmp_path):
    first = tag(make_context(tmp_path / "a", SOURCES))
    assert tag(make_context(tmp_path / "b", SOURCES)) == first
    assert first.startswith("amd64-") and ":" not in first and first != "latest"


@pytest.mark.parametrize("change", ["edit", "add", "rename", "shared code", "other service", "cache",
                                    "dockerfile", "platform"])
def test_tag_changes_with_anything_in_the_build_context(tmp_path, change):
    source = make_context(tmp_path, SOURCES)
    before = tag(source)
    platform = "linux/amd64"
    if change == "edit":
        (tmp_path / "orders" / "app" / "main.py").write_text("print(2)\n")
    elif change == "add":
        (tmp_path / "orders" / "app" / "extra.py").write_text("")
    elif change == "rename":
        (tmp_path / "orders" / "app" / "main.py").rename(tmp_path / "orders" / "app" / "other.py")
    elif change == "shared code":
        (tmp_path / "common" / "kit.py").write_text("A = 2\n")
    elif change == "other service":
        # Also in the build context: docker-build's own context hash changes, so the tag must too.
        (tmp_path / "products" / "app" / "main.py").write_text("print(4)\n")
    elif change == "cache":
        (tmp_path / "orders" / "app" / "__pycache__").mkdir()
        (tmp_path / "orders" / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    elif change == "dockerfile":
        (tmp_path / "orders" / "Dockerfile").write_text("FROM y\n")
    else:
        platform = "linux/arm64"
    assert tag(source, platform) != before


def test_service_builds_from_the_services_directory_with_its_own_dockerfile(tmp_path):
    source = images.service_source(tmp_path, "orders")
    assert source.context == tmp_path
    assert source.dockerfile == tmp_path / "orders" / "Dockerfile"


def test_lifecycle_keeps_recent_images_and_drops_untagged():
    rules = json.loads(images.lifecycle_policy(keep=7, untagged_days=2))["rules"]
    by_status = {r["selection"]["tagStatus"]: r for r in rules}
    assert by_status["any"]["selection"]["countType"] == "imageCountMoreThan"
    assert by_status["any"]["selection"]["countNumber"] == 7
    assert by_status["untagged"]["selection"]["countNumber"] == 2
    assert all(r["action"] == {"type": "expire"} for r in rules)
    # ECR requires the tagStatus "any" rule to have the highest priority number.
    assert by_status["any"]["rulePriority"] == max(r["rulePriority"] for r in rules)
    assert len({r["rulePriority"] for r in rules}) == len(rules)
