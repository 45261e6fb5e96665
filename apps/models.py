from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apps import validators


class App(models.Model):
    TRIGGER_PUSH = "push"
    TRIGGER_WORKFLOW_RUN = "workflow_run"
    TRIGGER_CHOICES = [(TRIGGER_PUSH, "push"), (TRIGGER_WORKFLOW_RUN, "workflow_run")]

    name = models.CharField(max_length=39, unique=True, validators=[validators.validate_app_name])
    repo_url = models.CharField(
        "repository URL", max_length=500, validators=[validators.validate_repo_url]
    )
    branch = models.CharField(
        max_length=200, default="main", validators=[validators.validate_branch]
    )
    trigger = models.CharField(max_length=20, choices=TRIGGER_CHOICES, default=TRIGGER_PUSH)
    domains = models.JSONField(default=list, blank=True)
    # Workflow names (trigger workflow_run): a commit deploys once every one of them has
    # succeeded for it. Empty: the first successful run deploys.
    workflows = models.JSONField(
        default=list, blank=True, validators=[validators.validate_workflows]
    )
    # Plain runtime env vars (set_env, the settings page): not secret, merged over the
    # manifest's `env` at every deploy, redeploy and rollback (ReleaseSpec.with_env).
    env = models.JSONField(default=dict, blank=True, validators=[validators.validate_env])
    # A Fernet token (secrets_vault.crypto); the clear value is shown once, at creation.
    webhook_secret_token = models.TextField(editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_apps",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # The one check of domains for every writer (forms, admin, commands): a backtick in
        # one would make the Traefik rule match every host; a non-list breaks every page.
        try:
            validators.validate_domain_list(self.domains)
            for host in self.domains:
                validators.validate_domain_not_reserved(host)
            taken = App.domain_owners(exclude=self.name)
            for host in self.domains:
                if host in taken:
                    raise ValidationError(
                        f"Domain {host} already routes to the app {taken[host]!r}; one host "
                        "name can serve one app."
                    )
        except ValidationError as exc:
            raise ValidationError({"domains": exc.messages}) from None
        try:
            validators.validate_workflows_trigger(self.workflows, self.trigger)
        except ValidationError as exc:
            raise ValidationError({"workflows": exc.messages}) from None

    @classmethod
    def domain_owners(cls, *, exclude: str = "") -> dict[str, str]:
        """Host name -> the app it is configured for, except app `exclude`. A row saved before
        domains were validated (not a list) claims nothing rather than break pages."""
        return {
            d: a.name
            for a in cls.objects.exclude(name=exclude).only("name", "domains")
            if isinstance(a.domains, list)
            for d in a.domains
            if isinstance(d, str)
        }

    @property
    def webhook_events(self) -> str:
        """What to select under "Which events would you like to trigger this webhook?" on
        GitHub's webhook form, for this app's trigger."""
        if self.trigger == self.TRIGGER_WORKFLOW_RUN:
            return "Workflow runs (workflow_run)"
        return "Just the push event (push)"

    @property
    def service_name(self) -> str:
        return f"{self.name}_web"

    @property
    def repo_full_name(self) -> str:
        """owner/repo of a GitHub-style URL, what a delivery's `repository.full_name` names:
        git@github.com:o/r.git, ssh://git@github.com/o/r, https://github.com/o/r(.git)(/).
        Any other URL gives its last two path segments (a file:// repository in tests), or ""
        when it has fewer."""
        m = re.search(r"[:/]([^/:]+/[^/]+?)(?:\.git)?/?$", self.repo_url)
        return m.group(1) if m else ""


class Membership(models.Model):
    """A user's role on one app (apps.access decides what each role may). The owner is the
    app's admin without a row."""

    VIEWER, DEPLOYER, ADMIN = "viewer", "deployer", "admin"
    ROLE_CHOICES = [(VIEWER, "viewer"), (DEPLOYER, "deployer"), (ADMIN, "admin")]

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=ROLE_CHOICES)

    class Meta:
        ordering = ["app__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["app", "user"], name="one_role_per_user_and_app"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.app}"
