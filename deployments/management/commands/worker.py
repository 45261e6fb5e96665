"""`manage.py worker`: Koyra's one RQ worker, on the `deploys` queue (deployments/worker.py).

What `manage.py rqworker deploys` does, minus Django's full system checks: those import the
URLconf and every view into a process that serves no page (about 2 MiB it keeps for nothing).
Koyra's own checks (koyra/checks.py: no Fernet key, no SECRET_KEY, git trust) still run
first and refuse to start the worker, with the same message and exit status."""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand

from koyra import checks

QUEUE = "deploys"


class Command(BaseCommand):
    help = "Run Koyra's RQ worker on the deploys queue (exactly one per installation)."
    requires_system_checks: list[str] = []  # Koyra's own, below

    def handle(self, *args, **options):
        self.check(tags=[checks.TAG])  # SystemCheckError: the error on stderr, exit status 1
        # django_rq's command with the worker class of settings.RQ; call_command skips checks.
        call_command("rqworker", QUEUE, verbosity=options["verbosity"])
