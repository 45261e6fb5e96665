"""koyra.E003: what the worker's git is told to trust (KOYRA_GIT_KNOWN_HOSTS, KOYRA_GIT_CA_FILE)
is checked at start, so a pasted fingerprint or a wrong path is not found at the first clone."""

from __future__ import annotations

import pytest

from deployments.boundaries import git
from koyra import checks

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"git.example.com {ED}",
        f"[git.example.com]:2222,10.0.0.5 {ED} comment here",
        f"# our server\n\n@cert-authority *.example.com {ED}\n",
        git.GITHUB_KNOWN_HOSTS,
    ],
)
def test_known_hosts_lines_pass(settings, value):
    settings.KOYRA_GIT_KNOWN_HOSTS, settings.KOYRA_GIT_CA_FILE = value, ""
    assert checks.git_trust(None) == []


@pytest.mark.parametrize(
    "value",
    [
        "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",  # a fingerprint, not a key
        ED,  # no host
        "git.example.com ssh-ed25519",  # no key
        f"git.example.com {ED.replace('ssh-ed25519', 'ssh-foo')}",
        f"git.example.com {ED}!",
        f"@accept-new git.example.com {ED}",
        f"git.example.com {ED}\x00",
    ],
)
def test_anything_else_is_koyra_e003_naming_the_line(settings, value):
    settings.KOYRA_GIT_KNOWN_HOSTS, settings.KOYRA_GIT_CA_FILE = f"git.x {ED}\n{value}", ""
    [error] = checks.git_trust(None)
    assert error.id == "koyra.E003" and "line 2" in error.msg


def test_a_ca_file_that_is_not_a_file_is_koyra_e003(settings, tmp_path):
    settings.KOYRA_GIT_KNOWN_HOSTS = ""
    settings.KOYRA_GIT_CA_FILE = str(tmp_path / "missing.pem")
    [error] = checks.git_trust(None)
    assert error.id == "koyra.E003" and "missing.pem" in error.msg
    (tmp_path / "missing.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert checks.git_trust(None) == []
