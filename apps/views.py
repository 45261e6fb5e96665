from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps import access, rows, services
from apps.forms import AppForm
from apps.models import App
from deployments import app_state, selectors
from deployments import services as deploys
from deployments.webhooks import services as webhook_services
from secrets_vault.forms import SecretForm


def _get_app_for_user(request, name: str, action: str = "see") -> App:
    """The app, if this user's role allows `action` (apps.access): 404 when they may not
    see it (an outsider does not learn which app names exist), 403 when they see it only."""
    return access.app_for(request.user, name, action)


def _htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _render(request, template: str, context: dict, partial: str):
    """The page, or only its `partial` for an htmx refresh of that region."""
    resp = render(request, f"{template}#{partial}" if _htmx(request) else template, context)
    patch_vary_headers(resp, ["HX-Request"])
    return resp


@require_GET
@login_required
def app_list(request):
    apps = selectors.app_rows(access.visible_qs(request.user))
    replicas = app_state.replica_counts()  # one engine call for every app
    context = {
        "rows": rows.list_rows(apps, replicas),
        "pending": selectors.any_pending(apps),
        "can_create": access.may_create_apps(request.user),
    }
    return _render(request, "apps/list.html", context, "rows")


@require_http_methods(["GET", "POST"])
@login_required
def app_new(request):
    if not access.may_create_apps(request.user):
        raise PermissionDenied("Creating apps needs the permission apps.add_app.")
    form = AppForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            app, secret = services.app_create(owner=request.user, **form.cleaned_data)
        except ValidationError as exc:
            errors = getattr(exc, "message_dict", {"__all__": exc.messages})
            for field, msgs in errors.items():
                form.add_error(field if field in form.fields else None, msgs)
        else:
            url = services.app_webhook_url(app=app)
            warning = services.app_webhook_url_warning(url=url)
            context = {"app": app, "secret": secret, "url": url, "webhook_warning": warning}
            resp = render(request, "apps/created.html", context)
            add_never_cache_headers(resp)  # the webhook secret is shown this once
            return resp
    return render(request, "apps/new.html", {"form": form})


@require_GET
@login_required
def app_detail(request, name: str):
    app = _get_app_for_user(request, name)
    overview = selectors.app_overview(app, app_state.replica_counts())
    url = services.app_webhook_url(app=app)
    context = {
        "app": app,
        "can": access.abilities(request.user, app),
        **overview,
        "history": rows.history_rows(app, overview["deploys"], overview["promotable"]),
        "secret_rows": services.app_secret_rows(app=app),  # never the tokens
        "secret_form": SecretForm(),
        "deliveries": rows.delivery_rows(app.deliveries.all()[:20]),
        "webhook_url": url,
        "webhook_warning": services.app_webhook_url_warning(url=url),
        "refused": webhook_services.webhook_refusals(app=app),
    }
    return _render(request, "apps/detail.html", context, "overview")


def _queued(request, app: App, what: str, service, **kwargs):
    """Call one deploy service; a refusal (ValidationError) is a message on the app page."""
    try:
        deploy = service(app=app, **kwargs)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("app-detail", name=app.name)
    messages.success(request, f"{what} #{deploy.pk} queued.", extra_tags="progress")
    return redirect("deploy-detail", pk=deploy.pk)


@require_POST
@login_required
def app_deploy(request, name: str):
    app = _get_app_for_user(request, name, "deploy")
    return _queued(request, app, "Deploy", deploys.deploy_create, trigger="manual")


@require_POST
@login_required
def app_redeploy(request, name: str):
    app = _get_app_for_user(request, name, "deploy")
    return _queued(request, app, "Redeploy", deploys.redeploy_create)
