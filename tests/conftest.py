import pytest

from tests.support import Render, run_render
from tools.validate import platform_of


@pytest.fixture(scope="session")
def render(render_variant) -> Render:
    """The dev stack, rendered offline once per test session (the same render as render_variant("dev"))."""
    return render_variant()


@pytest.fixture(scope="session")
def render_variant(tmp_path_factory):
    """Render the dev stack with settings changed: render_variant(sets=[...], unsets=[...], existing_clusters=[...])."""
    cache: dict = {}

    def variant(stack: str = "dev", sets: tuple = (), unsets: tuple = (), existing_clusters: tuple = (),
                env: tuple = (), platform_outputs: tuple = ()) -> Render:
        """An app stack's stack reference reads its platform stack's render unless `platform_outputs`
        (STACK=FILE items) says otherwise."""
        platform = platform_of(stack)
        if platform is not None and not platform_outputs:
            platform_outputs = (f"{platform}={variant(platform).directory / 'outputs.json'}",)
        key = (stack, tuple(sets), tuple(unsets), tuple(existing_clusters), tuple(env), tuple(platform_outputs))
        if key not in cache:
            cache[key] = run_render(tmp_path_factory.mktemp("render-variant"), stack, sets, unsets,
                                    existing_clusters, dict(env), platform_outputs)
        return cache[key]

    return variant
