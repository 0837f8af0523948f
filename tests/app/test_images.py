"""Image builds as plain data: the platform, the source tag, the emulator check, the lifecycle policy."""

import json

import pytest

from components import images


@pytest.mark.parametrize("architecture, platform", [("amd64", "linux/amd64"), ("arm64", "linux/arm64")])
def test_platform_follows_the_node_architecture(architecture, platform):
    assert images.image_platform(architecture) == platform


def test_unknown_architecture_is_refused_clearly():
    with pytest.raises(ValueError, match="known: \\['amd64', 'arm64'\\]"):
        images.image_platform("s390x")


def make_context(root, files, ignore=None):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if ignore is not None:
        (root / "orders" / "Dockerfile.dockerignore").write_text(ignore)
    return images.service_source(root, "orders")


SOURCES = {"orders/Dockerfile": "FROM x\n", "orders/app/main.py": "print(1)\n", "common/kit.py": "A = 1\n",
           "products/app/main.py": "print(3)\n"}
# As services/<service>/Dockerfile.dockerignore writes it: only what the Dockerfile copies.
IGNORE = "# comment\n*\n!common\n!orders/app\n**/__pycache__\n**/*.pyc\n"


def tag(source, platform="linux/amd64"):
    return images.image_tag(source.context, source.dockerfile, platform)


def test_tag_is_stable_for_the_same_source(tmp_path):
    first = tag(make_context(tmp_path / "a", SOURCES, IGNORE))
    assert tag(make_context(tmp_path / "b", SOURCES, IGNORE)) == first
    assert first.startswith("amd64-") and ":" not in first and first != "latest"


@pytest.mark.parametrize("change", ["edit", "add", "rename", "shared code", "dockerfile", "ignore file", "platform"])
def test_tag_changes_with_what_goes_into_the_image(tmp_path, change):
    source = make_context(tmp_path, SOURCES, IGNORE)
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
    elif change == "dockerfile":
        (tmp_path / "orders" / "Dockerfile").write_text("FROM y\n")
    elif change == "ignore file":
        (tmp_path / "orders" / "Dockerfile.dockerignore").write_text(IGNORE + "!products/app\n")
    else:
        platform = "linux/arm64"
    assert tag(source, platform) != before


@pytest.mark.parametrize("change", ["other service", "test cache", "mode bits", "stray file"])
def test_tag_ignores_what_stays_out_of_the_image(tmp_path, change):
    """A laptop and CI alternating on a stack, or a revert, must name the same source the same way."""
    source = make_context(tmp_path, SOURCES, IGNORE)
    before = tag(source)
    if change == "other service":
        (tmp_path / "products" / "app" / "main.py").write_text("print(4)\n")
    elif change == "test cache":
        (tmp_path / "orders" / "app" / "__pycache__").mkdir()
        (tmp_path / "orders" / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    elif change == "mode bits":
        (tmp_path / "orders" / "app" / "main.py").chmod(0o600)
    else:
        (tmp_path / "notes.txt").write_text("scratch\n")
    assert tag(source) == before


def test_without_an_ignore_file_the_whole_context_counts(tmp_path):
    source = make_context(tmp_path, SOURCES)
    before = tag(source)
    (tmp_path / "products" / "app" / "main.py").write_text("print(4)\n")
    assert tag(source) != before


@pytest.mark.parametrize("service", ["orders", "products", "graphql"])
def test_each_service_image_reads_only_its_own_code_and_the_shared_kit(service):
    from pathlib import Path
    services = Path(__file__).resolve().parents[2] / "services"
    files = images.build_inputs(services, services / service / "Dockerfile")
    top = {p.relative_to(services).parts[0] for p in files}
    assert top == {"common", service}
    assert not [p for p in files if "__pycache__" in p.parts or p.suffix == ".pyc"]
    assert services / service / "app" / "__main__.py" in files


def test_cache_reference_is_per_platform():
    assert images.cache_reference("1.dkr.ecr.us-east-1.amazonaws.com/alpha-dev/orders", "linux/arm64") == \
        "1.dkr.ecr.us-east-1.amazonaws.com/alpha-dev/orders:buildcache-arm64"


@pytest.mark.parametrize("arch, machine, system, emulators, remote, refused", [
    ("amd64", "x86_64", "Linux", [], False, False),
    ("arm64", "aarch64", "Linux", [], False, False),
    ("arm64", "x86_64", "Linux", [], False, True),
    ("arm64", "x86_64", "Linux", ["qemu-aarch64"], False, False),
    ("amd64", "aarch64", "Linux", ["qemu-aarch64"], False, True),
    ("arm64", "x86_64", "Darwin", [], False, False),
    ("arm64", "x86_64", "Linux", [], True, False),
])
def test_cross_builds_need_an_emulator(tmp_path, arch, machine, system, emulators, remote, refused):
    for emulator in emulators:
        (tmp_path / emulator).write_text("enabled\n")
    problem = images.cross_build_problem(arch, machine, system, tmp_path, remote)
    assert bool(problem) is refused
    if refused:
        assert "eks-istio-shop:nodeInstanceType" in problem and "eks-istio-shop:images" in problem


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
