import pytest

from tests.support import Render, run_render


@pytest.fixture(scope="session")
def render(tmp_path_factory) -> Render:
    """The dev stack, rendered offline once per test session."""
    return run_render(tmp_path_factory.mktemp("render-dev"))


@pytest.fixture(scope="session")
def render_variant(tmp_path_factory):
    """Render the dev stack with settings changed: render_variant(sets=[...], unsets=[...], existing_clusters=[...])."""
    cache: dict = {}

    def variant(stack: str = "dev", sets: tuple = (), unsets: tuple = (), existing_clusters: tuple = (),
                env: tuple = ()) -> Render:
        key = (stack, tuple(sets), tuple(unsets), tuple(existing_clusters), tuple(env))
        if key not in cache:
            cache[key] = run_render(tmp_path_factory.mktemp("render-variant"), stack, sets, unsets,
                                    existing_clusters, dict(env))
        return cache[key]

    return variant
