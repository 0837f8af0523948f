import pytest

from tests.policy.samples import with_samples
from tools.render import engine_config, load_stack_config


@pytest.fixture(scope="session")
def dev_config() -> dict[str, str]:
    """The dev stack's settings as the engine passes them to a policy pack."""
    return engine_config(load_stack_config("dev"))[0]


@pytest.fixture(scope="session")
def graph(render) -> list[dict]:
    """The dev render plus compliant samples of what later components add (read-only: copy to break)."""
    return with_samples(render.resources)
