"""The app's settings page (/apps/<app>/settings/, admins only): branch, trigger, workflows and
domains (apps.services.app_update, as update_app), plain env vars (app_env_set and
app_env_unset, as set_env and unset_env) and deleting the app behind a typed confirmation
(deployments.teardown, as delete_app). Refusals come back inline on the page, nothing half
applied; an app the user may not see is a 404, one they may not change a 403 (apps.access)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from apps import access, services
from apps.forms import AppSettingsForm, DeleteAppForm, EnvForm
from apps.models import App
from deployments import manifest, teardown


def _page(request, app: App, *, form=None, env_form=None, status: int = 200):
    initial = {
        "branch": app.branch,
        "trigger": app.trigger,
        "workflows": "\n".join(app.workflows),
        "domains": " ".join(app.domains),
    }
    stored, needed = services.app_secrets_stored(app=app), services.app_secrets_needed(app=app)
    env = [
        (k, v, k.startswith(manifest.PUBLIC_PREFIXES), k in stored or k in needed)
        for k, v in sorted(app.env.items())
    ]
    context = {
        "app": app,
        "form": form or AppSettingsForm(initial=initial),
        "env_form": env_form or EnvForm(),
        "env": env,
        "secrets_needed": [(k, k in stored) for k in needed],
        "can": access.abilities(request.user, app),
        **_webhook(app),
    }
    return render(request, "apps/settings.html", context, status=status)


def _webhook(app: App) -> dict[str, str]:
    url = services.app_webhook_url(app=app)
    return {"url": url, "webhook_warning": services.app_webhook_url_warning(url=url)}


def _refused(form, exc: ValidationError) -> None:
    """A service's refusal onto the form: per field where it names one, else above it."""
    for field, msgs in getattr(exc, "message_dict", {None: exc.messages}).items():
        form.add_error(field if field in form.fields else None, msgs)


def _back(app: App, anchor: str = ""):
    return redirect(reverse("app-settings", kwargs={"name": app.name}) + anchor)


@require_http_methods(["GET", "POST"])
@login_required
def app_settings(request, name: str):
    """Branch, trigger, workflows and domains: one app_update, all of it or nothing."""
    app = access.app_for(request.user, name, "settings")
    if request.method == "GET":
        return _page(request, app)
    form = AppSettingsForm(request.POST)
    if form.is_valid():
        try:
            services.app_update(app=app, **form.cleaned_data)
        except ValidationError as exc:
            _refused(form, exc)
        else:
            messages.success(request, f"Settings of {app.name} saved: the next delivery uses them.")
            return _back(app)
    return _page(request, app, form=form, status=400)


@require_POST
@login_required
def app_env_set(request, name: str):
    app = access.app_for(request.user, name, "settings")
    form = EnvForm(request.POST)
    if form.is_valid():
        key, value = form.cleaned_data["key"], form.cleaned_data["value"]
        try:
            services.app_env_set(app=app, values={key: value})
        except ValidationError as exc:
            _refused(form, exc)
        else:
            messages.success(request, f"{key} set. Redeploy {app.name} to apply it.")
            return _back(app, "#env")
    return _page(request, app, env_form=form, status=400)


@require_POST
@login_required
def app_env_unset(request, name: str, key: str):
    app = access.app_for(request.user, name, "settings")
    try:
        services.app_env_unset(app=app, keys=[key])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{key} removed. Redeploy {app.name} to apply it.")
    return _back(app, "#env")


@require_http_methods(["GET", "POST"])
@login_required
def app_delete(request, name: str):
    """A confirmation page that says what goes (the teardown plan); the POST must carry the
    app's name, typed. Then the same teardown as delete_app, or its error on the page."""
    app = access.app_for(request.user, name, "delete")
    form = DeleteAppForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["confirm"] != app.name:
            form.add_error("confirm", f"Type {app.name} exactly to delete it; nothing was deleted.")
        else:
            try:
                teardown.app_delete(app=app, wait=10)
            except teardown.TeardownError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"{app.name} was deleted, with everything it ran.")
                return redirect("app-list")
    return _delete_page(request, app, form)


def _delete_page(request, app: App, form: DeleteAppForm):
    try:
        plan, error = teardown.app_teardown_plan(app=app).lines(), ""
    except teardown.TeardownError as exc:
        plan, error = [], str(exc)
    status = 400 if form.is_bound else 200
    context = {"app": app, "form": form, "plan": plan, "plan_error": error}
    return render(request, "apps/delete.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def app_webhook_secret(request, name: str):
    """A new webhook secret: GET asks (the current one stops working at once), POST makes it
    and shows it this once with its copy button, never cached (as on create)."""
    app = access.app_for(request.user, name, "settings")
    if request.method == "GET":
        context = {
            "app": app,
            "heading": f"New webhook secret of {app.name}",
            "question": f"Replace the webhook secret of {app.name}? The current one stops "
            "working at once: GitHub's deliveries are refused until its webhook holds the new one.",
            "note": "The new secret is shown once, on the next page, to paste into GitHub.",
            "action": request.path,
            "button": "Make a new secret",
            "danger": True,
        }
        return render(request, "apps/confirm.html", context)
    secret = services.app_regenerate_webhook_secret(app=app)
    context = {"app": app, "secret": secret, **_webhook(app)}
    resp = render(request, "apps/webhook_secret.html", context)
    add_never_cache_headers(resp)  # the secret is shown this once
    return resp
