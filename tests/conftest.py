from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(settings):
    """Unit tests relay over the in-memory layer; the e2e suite overrides this with Redis."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
