from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.models import App
from secrets_vault import services
from secrets_vault.forms import SecretForm


def _get_app_for_user(request, name: str) -> App:
    return get_object_or_404(App.visible_qs(request.user), name=name)


def _back(app: App):
    return redirect(reverse("app-detail", kwargs={"name": app.name}) + "#secrets")


@require_http_methods(["GET", "POST"])
@login_required
def secret_list(request, name: str):
    """The app's secrets by name, and the form that sets one. Values are write-only: the
    page never holds one, and a refused form comes back without the value."""
    app = _get_app_for_user(request, name)
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
    context = {"app": app, "secrets": app.secrets.only("key", "updated"), "secret_form": form}
    return render(request, "secrets_vault/secrets.html", context)


@require_POST
@login_required
def secret_delete(request, name: str, key: str):
    app = _get_app_for_user(request, name)
    if services.secret_delete(app=app, key=key):
        messages.success(request, f"{key} deleted. Redeploy {app.name} to apply it.")
    else:
        messages.info(request, f"{app.name} has no secret named {key}.")
    return _back(app)
