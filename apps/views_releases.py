"""Changing what an app runs, each behind a confirmation page that names the release: roll
back, promote any kept release (older or newer), cancel. GET is the confirmation (it works
without JavaScript), POST with the CSRF token does it, so scripts may keep posting directly."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.models import App
from apps.views import _get_app_for_user, _queued
from deployments import selectors
from deployments import services as deploys
from deployments.models import Deploy


def _release(d: Deploy) -> str:
    """`#N (commit abc1234, "subject", deployed at ...)`: a release as the question names it."""
    parts = [f"commit {d.short_commit[:7]}" if d.commit else "no commit recorded"]
    if d.commit_subject:
        parts.append(f"\u201c{d.commit_subject[:100]}\u201d")
    when = d.finished or d.created
    parts.append(f"deployed at {when:%Y-%m-%d %H:%M} UTC")
    return f"#{d.pk} ({', '.join(parts)})"


def _confirm_release(request, app: App, target: Deploy, verb: str, action: str):
    """The confirmation of re-applying `target` (a kept release), or the reason it cannot."""
    if not selectors.is_kept_release(target):
        messages.error(
            request,
            f"Deploy #{target.pk} is not a kept release (it never went live, or its image was "
            f"pruned): deploy commit {target.short_commit or 'it'} again instead.",
        )
        return redirect("app-detail", name=app.name)
    live = selectors.live_deploy(app)
    replaces = f"It replaces #{live.pk}." if live else "Nothing is live now."
    context = {
        "app": app,
        "heading": f"{verb} {app.name}",
        "question": f"{verb} {_release(target)} to live? {replaces}",
        "note": "No build: the image and configuration of that release, with today's secrets.",
        "action": action,
        "button": f"{verb} #{target.pk}",
        "danger": False,
    }
    return render(request, "apps/confirm.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def app_rollback(request, name: str):
    app = _get_app_for_user(request, name, "deploy")
    if request.method == "POST":
        return _queued(request, app, "Rollback", deploys.rollback_create)
    target = selectors.rollback_target(app) if selectors.live_deploy(app) else None
    if target is None:
        messages.error(request, f"{app.name} has no earlier live release to roll back to.")
        return redirect("app-detail", name=app.name)
    return _confirm_release(request, app, target, "Roll back to", request.path)


@require_http_methods(["GET", "POST"])
@login_required
def app_promote(request, name: str, pk: int):
    app = _get_app_for_user(request, name, "deploy")
    to = get_object_or_404(app.deploys.select_related("image", "source"), pk=pk)
    if request.method == "POST":
        what = f"Promotion of #{to.pk}: deploy"
        return _queued(request, app, what, deploys.rollback_create, to=to)
    return _confirm_release(request, app, selectors.release_root(to), "Promote", request.path)


def _confirm_cancel(request, app: App):
    """The confirmation naming the deploys a cancel stops, or the message that there are none."""
    pending = list(app.deploys.filter(status__in=Deploy.PENDING).order_by("created"))
    if not pending:
        messages.info(request, f"{app.name} has no queued or running deploy to cancel.")
        return redirect("app-detail", name=app.name)
    return _cancel_question(request, app, pending, heading=f"Cancel deploys of {app.name}")


def _cancel_question(request, app: App, pending: list[Deploy], **context):
    """The confirmation naming each deploy of `pending` that a Cancel would stop."""
    live = selectors.live_deploy(app)
    names = ", ".join(f"#{d.pk} ({d.status}, commit {d.short_commit[:7] or '?'})" for d in pending)
    context = {
        "app": app,
        "question": f"Cancel {names}? "
        + (f"#{live.pk} stays live." if live else "Nothing is live now."),
        "note": "A running build stops at its next step; queued deploys never start.",
        "action": request.path,
        "button": "Cancel " + ("them" if len(pending) > 1 else f"#{pending[0].pk}"),
        "danger": True,
        **context,
    }
    return render(request, "apps/confirm.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def app_cancel(request, name: str):
    app = _get_app_for_user(request, name, "deploy")
    if request.method == "GET":
        return _confirm_cancel(request, app)
    deploy = deploys.deploy_cancel(app=app)
    if deploy is None:
        messages.info(request, f"{app.name} has no queued or running deploy to cancel.")
        return redirect("app-detail", name=app.name)
    messages.success(request, f"Cancelling deploy #{deploy.pk}.", extra_tags="progress")
    return redirect("deploy-detail", pk=deploy.pk)


@require_http_methods(["GET", "POST"])
@login_required
def deploy_cancel(request, name: str, pk: int):
    """Cancel on a deploy's page: that deploy alone, as a user of any deploy history expects
    (the app page's Cancel stops every queued and running one). Back leads to its page."""
    app = _get_app_for_user(request, name, "deploy")
    deploy = get_object_or_404(app.deploys, pk=pk)
    if deploy.is_finished:
        return _nothing_to_cancel(request, deploy)
    if request.method == "GET":
        back = reverse("deploy-detail", kwargs={"pk": deploy.pk})
        return _cancel_question(
            request,
            app,
            [deploy],
            heading=f"Cancel deploy #{deploy.pk} of {app.name}",
            note="It never starts."
            if deploy.status == Deploy.Status.QUEUED
            else "It stops at its next step; a rollout under way is undone.",
            back=back,
            back_label=f"Back to deploy #{deploy.pk}",
        )
    if not deploys.deploy_cancel_one(deploy=deploy):  # it finished since the question
        return _nothing_to_cancel(request, deploy)
    messages.success(request, f"Cancelling deploy #{deploy.pk}.", extra_tags="progress")
    return redirect("deploy-detail", pk=deploy.pk)


def _nothing_to_cancel(request, deploy: Deploy):
    messages.info(
        request,
        f"Deploy #{deploy.pk} has already finished ({deploy.status}): there is nothing to cancel.",
    )
    return redirect("deploy-detail", pk=deploy.pk)
