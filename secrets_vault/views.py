from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps import access
from apps import services as app_services
from apps.models import App
from secrets_vault import repo_access, services
from secrets_vault.forms import RepoTokenForm, SecretForm


def _get_app_for_user(request, name: str, action: str) -> App:
    """Secrets need the `secrets` action (deployer, admin); repository credentials are the
    app's settings (admin only). Not visible: 404; visible but not allowed: 403."""
    return access.app_for(request.user, name, action)


def _back(app: App):
    return redirect(reverse("app-detail", kwargs={"name": app.name}) + "#secrets")


@require_http_methods(["GET", "POST"])
@login_required
def secret_list(request, name: str):
    """The app's secrets by name, and the form that sets one. Values are write-only: the
    page never holds one, and a refused form comes back without the value."""
    app = _get_app_for_user(request, name, "secrets")
    form = SecretForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key = form.cleaned_data["key"]
        try:
            services.secret_set(app=app, key=key, value=form.cleaned_data["value"])
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, f"{key} set. Redeploy {app.name} to apply it.")
            return _back(app)
    rows = app_services.app_secret_rows(app=app)
    context = {"app": app, "secret_rows": rows, "secret_form": form}
    return render(request, "secrets_vault/secrets.html", context)


def _confirm_delete(request, app: App, key: str):
    """The question naming the secret, and what its absence breaks; or that there is none."""
    if not app.secrets.filter(key=key).exists():
        messages.info(request, f"{app.name} has no secret named {key}.")
        return _back(app)
    if key in app_services.app_secrets_needed(app=app):
        note = (
            "The app's manifest lists it: the next deploy, redeploy or rollback fails "
            "until it is set again. Running containers keep the value until then."
        )
    else:
        note = "Running containers keep the value until the next deploy, redeploy or rollback."
    context = {
        "app": app,
        "heading": f"Delete the secret {key} of {app.name}",
        "question": f"Delete the secret {key} of {app.name}? Its value cannot be shown or "
        "restored: only set again.",
        "note": note,
        "action": request.path,
        "button": f"Delete {key}",
        "danger": True,
    }
    return render(request, "apps/confirm.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def secret_delete(request, name: str, key: str):
    """GET asks first, naming the secret; POST (with the CSRF token) deletes it."""
    app = _get_app_for_user(request, name, "secrets")
    if request.method == "GET":
        return _confirm_delete(request, app, key)
    if services.secret_delete(app=app, key=key):
        messages.success(request, f"{key} deleted. Redeploy {app.name} to apply it.")
    else:
        messages.info(request, f"{app.name} has no secret named {key}.")
    return _back(app)


def _back_to_access(app: App):
    return redirect(reverse("app-detail", kwargs={"name": app.name}) + "#repository-access")


@require_POST
@login_required
def repo_deploy_key(request, name: str):
    """Make the app's deploy key, or a new one (rotate=1); the public key shows on the page."""
    app = _get_app_for_user(request, name, "settings")
    rotate = request.POST.get("rotate") == "1"
    _, made = repo_access.deploy_key_make(app=app, rotate=rotate)
    if made:
        messages.success(
            request,
            f"New deploy key for {app.name}: add its public key to the repository's Deploy keys"
            + (" (and remove the old one)." if rotate else "."),
        )
    else:
        messages.info(request, f"{app.name} already has a deploy key.")
    return _back_to_access(app)


@require_POST
@login_required
def repo_token(request, name: str):
    """Set the app's HTTPS token (write-only), or remove it (clear=1)."""
    app = _get_app_for_user(request, name, "settings")
    if request.POST.get("clear") == "1":
        cleared = repo_access.repo_token_clear(app=app)
        messages.info(request, f"Token of {app.name} {'removed' if cleared else 'was not set'}.")
        return _back_to_access(app)
    form = RepoTokenForm(request.POST)
    if form.is_valid():
        repo_access.repo_token_set(app=app, token=form.cleaned_data["token"])
        messages.success(request, f"Repository token of {app.name} set; the next deploy uses it.")
    else:
        messages.error(request, " ".join(str(e) for e in form.errors.get("token", [])))
    return _back_to_access(app)
