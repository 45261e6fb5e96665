from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from deployments import local_images
from deployments.boundaries import engine


class Command(BaseCommand):
    help = (
        "Build the registry, Traefik and busybox images from packages on this machine, "
        "for hosts that cannot pull from Docker Hub. Prints KEY=image lines."
    )

    def handle(self, *args, **opts):
        try:
            self.stdout.write(f"KOYRA_REGISTRY_IMAGE={local_images.registry_image()}")
            self.stdout.write(f"KOYRA_TRAEFIK_IMAGE={local_images.traefik_image()}")
            self.stdout.write(f"KOYRA_BASE_IMAGE={local_images.base_image()}")
        except (local_images.Missing, engine.EngineError) as exc:
            raise CommandError(str(exc)) from None
