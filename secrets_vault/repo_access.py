"""The app's own credentials for its repository (SPEC §6 `deploy_key`, `set_repo_token`): an
ed25519 deploy key made here and an HTTPS token, kept encrypted and write-only like secrets,
given to git only for the deploy that clones (deployments.boundaries.git.GitAuth)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.models import App
from apps.validators import validate_repo_token
from deployments.boundaries import git
from secrets_vault import crypto
from secrets_vault.models import RepoAccess


def deploy_key_make(*, app: App, rotate: bool = False) -> tuple[RepoAccess, bool]:
    """The app's ed25519 deploy key, made once (or anew with `rotate`: the old one then stops
    working wherever it was added). Returns the row and whether a key was made now."""
    with transaction.atomic():
        access, _ = RepoAccess.objects.select_for_update().get_or_create(app=app)
        if access.deploy_key_token and not rotate:
            return access, False
        private, public = crypto.ssh_keypair(f"koyra-{app.name}")
        access.deploy_key_public = public
        access.deploy_key_token = crypto.encrypt(private)
        access.deploy_key_updated = timezone.now()
        access.save(update_fields=["deploy_key_public", "deploy_key_token", "deploy_key_updated"])
    return access, True


def repo_token_set(*, app: App, token: str) -> None:
    """Store the app's HTTPS token for its repository, encrypted; it is never shown again."""
    validate_repo_token(token)
    RepoAccess.objects.update_or_create(
        app=app,
        defaults={"https_token": crypto.encrypt(token), "https_token_updated": timezone.now()},
    )


def repo_token_clear(*, app: App) -> bool:
    """Forget the app's HTTPS token; False when it had none."""
    cleared = (
        RepoAccess.objects.filter(app=app)
        .exclude(https_token="")
        .update(https_token="", https_token_updated=None)
    )
    return cleared > 0


def repo_access_get(*, app: App) -> RepoAccess | None:
    """What the app page shows: the public key and dates (the template never reads a token)."""
    return RepoAccess.objects.filter(app=app).first()


def repo_auth(*, app: App) -> git.GitAuth:
    """The app's credentials in clear, for one deploy run (and what its log redacts). Raises
    VaultError naming the credential that does not decrypt and how to replace it."""
    access = RepoAccess.objects.filter(app=app).first()
    if access is None:
        return git.GitAuth(app=app.name)
    key = _open(app, access.deploy_key_token, "deploy key", f"deploy_key {app.name} --rotate")
    token = _open(app, access.https_token, "repository token", f"set_repo_token {app.name}")
    return git.GitAuth(ssh_key=key, token=token, app=app.name)


def _open(app: App, token: str, what: str, fix: str) -> str:
    if not token:
        return ""
    try:
        return crypto.decrypt(token)
    except crypto.VaultError:
        raise crypto.VaultError(
            f"The {what} of {app.name} {crypto.NOT_DECRYPTABLE}. Put the key it was made with "
            f"back in KOYRA_FERNET_KEYS, or replace it: python manage.py {fix}"
        ) from None
