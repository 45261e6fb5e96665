from __future__ import annotations

import pytest
from cryptography.fernet import Fernet


def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def old_key() -> str:
    return new_key()


@pytest.fixture
def keys(settings, old_key):
    """One known key configured (the first and only one) for the test."""
    settings.KOYRA_FERNET_KEYS = [old_key]
    return settings.KOYRA_FERNET_KEYS
