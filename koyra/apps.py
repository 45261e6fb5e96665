from __future__ import annotations

from django.apps import AppConfig


class KoyraConfig(AppConfig):
    name = "koyra"

    def ready(self) -> None:
        from koyra import checks  # noqa: F401  (registers the system checks)
