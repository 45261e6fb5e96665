"""The /nodes/ page: the swarm's nodes with Koyra's tasks on each, and drain/activate. For
operators only (staff and superusers, access.may_see_system): a tenant sees their apps, not
the machines."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps import access
from deployments import nodes
from deployments.boundaries import engine


def _operator(user) -> None:
    if not access.may_see_system(user):
        raise PermissionDenied("The nodes page is for operators (staff or superusers).")


@require_GET
@login_required
def node_list(request):
    _operator(request.user)
    try:
        rows, error = nodes.rows(), ""
    except engine.EngineError as exc:
        rows, error = [], str(exc)
    return render(request, "deployments/nodes.html", {"rows": rows, "error": error})


@require_POST
@login_required
def node_availability(request, node: str):
    """Drain or activate one node; back to the list with what happened."""
    _operator(request.user)
    wanted = request.POST.get("availability")
    if wanted not in ("active", "drain"):
        messages.error(request, "Availability must be 'active' or 'drain'.")
        return redirect("node-list")
    try:
        found, changed = nodes.set_availability(node, wanted)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except (nodes.NodeError, engine.EngineError) as exc:
        messages.error(request, str(exc))
    else:
        state = wanted if changed else f"already {wanted}"
        messages.success(request, f"{found['hostname']} ({found['id'][:12]}): {state}.")
    return redirect("node-list")
