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


def make_service(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return images.ImageSource(context=root, dockerfile=root / "Dockerfile")


def tag(source, platform="linux/amd64"):
    return images.image_tag(source.context, source.dockerfile, platform)


def test_tag_is_stable_for_the_same_source_and_ignores_caches(tmp_path):
    source = make_service(tmp_path / "svc", {"Dockerfile": "FROM x\n", "app/main.py": "print(1)\n"})
    first = tag(source)
    (tmp_path / "svc" / "app" / "__pycache__").mkdir()
    (tmp_path / "svc" / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    assert tag(source) == first
    assert first.startswith("amd64-") and ":" not in first and first != "latest"


@pytest.mark.parametrize("change", ["edit", "add", "rename", "dockerfile", "platform"])
def test_tag_changes_with_anything_the_build_reads(tmp_path, change):
    source = make_service(tmp_path / "svc", {"Dockerfile": "FROM x\n", "app/main.py": "print(1)\n"})
    before = tag(source)
    platform = "linux/amd64"
    if change == "edit":
        (tmp_path / "svc" / "app" / "main.py").write_text("print(2)\n")
    elif change == "add":
        (tmp_path / "svc" / "app" / "extra.py").write_text("")
    elif change == "rename":
        (tmp_path / "svc" / "app" / "main.py").rename(tmp_path / "svc" / "app" / "other.py")
    elif change == "dockerfile":
        (tmp_path / "svc" / "Dockerfile").write_text("FROM y\n")
    else:
        platform = "linux/arm64"
    assert tag(source, platform) != before


def test_service_source_is_the_service_directory(tmp_path):
    source = images.service_source(tmp_path, "orders")
    assert source.context == tmp_path / "orders"
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
