from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "On first run, create the user 'admin' and print its one-time password."

    def handle(self, *args, **opts):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(15)
        User.objects.create_superuser("admin", "", password)
        self.stdout.write(
            f"Created the user 'admin' with password: {password}\n"
            "It is shown only now: log in and change it (/admin/password_change/)."
        )
