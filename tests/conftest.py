from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(settings):
    """Unit tests relay over the in-memory layer; the e2e suite overrides this with Redis."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def _engine_not_asked_for_replicas(request, monkeypatch):
    """The dashboard asks the engine for replica counts (app_state.replica_counts): a unit
    test never reaches a real engine, so by default it answers like an unreachable one (the
    pages show `?`). Tests that care patch it themselves; the e2e suite patches nothing."""
    if request.node.get_closest_marker("e2e"):
        return
    from deployments.boundaries import engine

    def unreachable(label: str) -> dict[str, tuple[int, int]]:
        raise engine.EngineError("not asked in unit tests")

    monkeypatch.setattr(engine, "services_replicas", unreachable)


@pytest.fixture(autouse=True)
def _redis_not_remembered_down():
    """deploy_enqueue remembers for a few seconds that Redis could not be reached (per
    configuration): one test's unreachable Redis must not decide for the next."""
    from deployments import services

    services._redis_down_until.clear()
