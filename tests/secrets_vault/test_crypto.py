from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from secrets_vault import crypto
from tests.secrets_vault.conftest import new_key

PLAIN = "postgres://u:hunter2-pw@db/shop"


def test_the_first_key_encrypts_and_every_key_decrypts(settings):
    first, second = new_key(), new_key()
    settings.KOYRA_FERNET_KEYS = [second]
    made_under_second = crypto.encrypt(PLAIN)
    settings.KOYRA_FERNET_KEYS = [first, second]
    token = crypto.encrypt(PLAIN)
    assert Fernet(first.encode()).decrypt(token.encode()).decode() == PLAIN
    assert crypto.decrypt(token) == PLAIN
    assert crypto.decrypt(made_under_second) == PLAIN
    assert PLAIN not in token


def test_rotate_moves_a_token_to_the_first_key(settings):
    old, new = new_key(), new_key()
    settings.KOYRA_FERNET_KEYS = [old]
    token = crypto.encrypt(PLAIN)
    settings.KOYRA_FERNET_KEYS = [new, old]
    rotated = crypto.rotate(token)
    assert rotated != token
    settings.KOYRA_FERNET_KEYS = [new]
    assert crypto.decrypt(rotated) == PLAIN
    with pytest.raises(crypto.VaultError):
        crypto.decrypt(token)


def test_a_token_under_another_key_fails_closed(keys):
    foreign = Fernet(Fernet.generate_key()).encrypt(PLAIN.encode()).decode()
    with pytest.raises(crypto.VaultError) as exc:
        crypto.decrypt(foreign)
    assert "KOYRA_FERNET_KEYS" in str(exc.value)
    assert PLAIN not in str(exc.value) and foreign not in str(exc.value)
    with pytest.raises(crypto.VaultError):
        crypto.rotate(foreign)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-6] + ("A" if t[-6] != "A" else "B") + t[-5:],  # one byte of the MAC
        lambda t: t[:20] + ("x" if t[20] != "x" else "y") + t[21:],  # one byte of the body
        lambda t: t[:-1],
        lambda t: "",
        lambda t: "not a token at all",
    ],
)
def test_a_tampered_token_raises_and_never_returns_ciphertext_or_empty(keys, tamper):
    token = crypto.encrypt(PLAIN)
    bad = tamper(token)
    with pytest.raises(crypto.VaultError) as exc:
        crypto.decrypt(bad)
    # The message carries neither the plaintext nor the token, and nothing is chained to it.
    assert PLAIN not in str(exc.value)
    assert not bad or bad not in str(exc.value)
    assert exc.value.__cause__ is None


def test_a_non_string_token_fails_closed(keys):
    with pytest.raises(crypto.VaultError):
        crypto.decrypt(None)


@pytest.mark.parametrize("configured", [[], None])
def test_no_key_means_no_vault_and_no_fallback(settings, configured):
    settings.KOYRA_FERNET_KEYS = configured
    settings.SECRET_KEY = "a-secret-key-that-must-never-become-a-fernet-key"
    for call in (lambda: crypto.encrypt(PLAIN), crypto.ensure_keys):
        with pytest.raises(crypto.VaultError, match="KOYRA_FERNET_KEYS"):
            call()
    with pytest.raises(crypto.VaultError, match="KOYRA_FERNET_KEYS"):
        crypto.decrypt("gAAAAABh-anything")


def test_an_invalid_key_is_refused_without_echoing_it(settings):
    settings.KOYRA_FERNET_KEYS = [new_key(), "short-not-a-key"]
    with pytest.raises(crypto.VaultError, match="not a valid Fernet key") as exc:
        crypto.encrypt(PLAIN)
    assert "short-not-a-key" not in str(exc.value)
    assert crypto.key_is_valid(new_key())
    assert not crypto.key_is_valid("short-not-a-key")


def test_a_plaintext_that_is_not_utf8_fails_closed_without_carrying_it(keys, old_key):
    raw = b"\xff\xfe" + PLAIN.encode()
    token = Fernet(old_key.encode()).encrypt(raw).decode()
    with pytest.raises(crypto.VaultError) as exc:
        crypto.decrypt(token)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_generate_key_makes_a_valid_distinct_key():
    a, b = crypto.generate_key(), crypto.generate_key()
    assert a != b and crypto.key_is_valid(a)


def test_opening_key_names_the_key_a_token_needs_by_fingerprint_only(settings):
    old, new = new_key(), new_key()
    settings.KOYRA_FERNET_KEYS = [old]
    token = crypto.encrypt(PLAIN)
    settings.KOYRA_FERNET_KEYS = [new, old]
    assert crypto.opening_key(token) == crypto.key_fingerprint(old)
    assert crypto.key_fingerprints() == [crypto.key_fingerprint(new), crypto.key_fingerprint(old)]
    assert old not in crypto.key_fingerprint(old) and len(crypto.key_fingerprint(old)) == 16
    settings.KOYRA_FERNET_KEYS = [new]
    assert crypto.opening_key(token) is None
    assert crypto.opening_key("not a token") is None
