from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from apps import services
from apps.forms import AppForm
from apps.models import App
from deployments.models import Deploy


def _get_app_for_user(request, name: str) -> App:
    app = App.objects.filter(name=name).first()
    if app is None or not app.visible_to(request.user):
        raise Http404("No such app")
    return app


@require_GET
@login_required
def app_list(request):
    apps = list(App.visible_qs(request.user).order_by("name"))
    live = {d.app_id: d for d in Deploy.objects.filter(app__in=apps, status=Deploy.LIVE)}
    last = {}
    for d in Deploy.objects.filter(app__in=apps).order_by("app_id", "-created"):
        last.setdefault(d.app_id, d)
    rows = [{"app": a, "live": live.get(a.pk), "last": last.get(a.pk)} for a in apps]
    return render(request, "apps/list.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@login_required
def app_new(request):
    form = AppForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            app, secret = services.app_create(owner=request.user, **form.cleaned_data)
        except ValidationError as exc:
            for field, msgs in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
                form.add_error(field if field in form.fields else None, msgs)
        else:
            return render(
                request,
                "apps/created.html",
                {"app": app, "secret": secret, "url": services.app_webhook_url(app=app)},
            )
    return render(request, "apps/new.html", {"form": form})


@require_GET
@login_required
def app_detail(request, name: str):
    app = _get_app_for_user(request, name)
    deploys = app.deploys.select_related("image")[:50]
    return render(
        request,
        "apps/detail.html",
        {
            "app": app,
            "deploys": deploys,
            "live": app.deploys.filter(status=Deploy.LIVE).select_related("image").first(),
            "secrets": app.secrets.all(),
            "deliveries": app.deliveries.all()[:20],
            "webhook_url": services.app_webhook_url(app=app),
        },
    )
