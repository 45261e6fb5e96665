"""Who may do what to an app: the one place that decides (SPEC §6, roles per app).

A role is per app: `viewer` sees it (its page, deploys, logs), `deployer` also deploys,
redeploys, rolls back, cancels and sets secrets, `admin` also changes its settings and
repository credentials, its access and deletes it. The owner is the app's admin; a superuser
may everything. `is_staff` alone gives nothing here: it opens /admin/ (where Django's model
permissions apply) and /django-rq/, not the apps.

Views ask `app_for(user, name, action)`: an app the user may not see is a 404 (an outsider
does not learn which names exist), one they see but may not act on is a 403."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404

from apps.models import App, Membership

VIEWER, DEPLOYER, ADMIN = Membership.VIEWER, Membership.DEPLOYER, Membership.ADMIN
ROLES = (VIEWER, DEPLOYER, ADMIN)  # ascending: each may what the ones before it may
ACTIONS = {
    "see": VIEWER,
    "deploy": DEPLOYER,
    "secrets": DEPLOYER,
    "settings": ADMIN,
    "access": ADMIN,
    "delete": ADMIN,
}


def role_of(user, app: App) -> str | None:
    """The user's role on the app, None when they have none."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser or (app.owner_id is not None and app.owner_id == user.pk):
        return ADMIN
    return (
        Membership.objects.filter(app=app, user_id=user.pk).values_list("role", flat=True).first()
    )


def may(user, app: App, action: str) -> bool:
    needed = ACTIONS[action]  # an unknown action is a programming error, not a "no"
    role = role_of(user, app)
    return role is not None and ROLES.index(role) >= ROLES.index(needed)


def abilities(user, app: App) -> dict[str, bool]:
    """{action: allowed} for templates: a button shows only when its action is allowed."""
    role = role_of(user, app)
    rank = ROLES.index(role) if role else -1
    return {action: rank >= ROLES.index(needed) for action, needed in ACTIONS.items()}


def visible_qs(user) -> QuerySet[App]:
    """The apps the user may see (any role)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return App.objects.none()
    if user.is_superuser:
        return App.objects.all()
    return App.objects.filter(Q(owner=user) | Q(memberships__user=user)).distinct()


def app_for(user, name: str, action: str = "see") -> App:
    """The app named `name` if the user may `action` it: 404 when they may not even see it,
    403 when they see it but their role does not allow the action."""
    app = visible_qs(user).filter(name=name).first()
    if app is None:
        raise Http404("No such app")
    if not may(user, app, action):
        raise PermissionDenied(f"Your role on {app.name} does not allow this ({action}).")
    return app


def may_see_system(user) -> bool:
    """The machine's own state (disk use, prune runs, nodes) is the operator's: staff and
    superusers. Tenants see their apps, not the size of everyone's images."""
    return bool(user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


def may_create_apps(user) -> bool:
    return bool(user.is_authenticated and user.has_perm("apps.add_app"))


def grant(*, app: App, user, role: str) -> str:
    """Give `user` the `role` on `app` (replacing the one they had); a sentence saying what
    changed. The owner is the app's admin: granting them a lesser role makes them a plain
    member with that role (the app keeps no owner)."""
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    with transaction.atomic():
        app = App.objects.select_for_update().get(pk=app.pk)
        if app.owner_id == user.pk:
            if role == ADMIN:
                return f"{user.username} owns {app.name}: already its admin."
            app.owner = None
            app.save(update_fields=["owner"])
        before = role_of(user, app) if not user.is_superuser else None
        Membership.objects.update_or_create(app=app, user=user, defaults={"role": role})
    if user.is_superuser:
        return f"{user.username} is now {role} of {app.name} (as a superuser, may everything)."
    return f"{user.username} is now {role} of {app.name} (was {before or 'nothing'})."


def revoke(*, app: App, user) -> bool:
    """Take every role on `app` from `user` (their membership, and the ownership if they own
    it); False when they had none. Open websockets and SSE streams notice within seconds."""
    with transaction.atomic():
        app = App.objects.select_for_update().get(pk=app.pk)
        owned = app.owner_id == user.pk
        if owned:
            app.owner = None
            app.save(update_fields=["owner"])
        deleted, _ = Membership.objects.filter(app=app, user=user).delete()
    return owned or deleted > 0
