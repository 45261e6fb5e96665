from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from deployments import cluster
from deployments.boundaries import engine


class Command(BaseCommand):
    help = "Make the swarm, the overlay network, the registry and Traefik (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--no-ingress", action="store_true", help="do not run Traefik")

    def handle(self, *args, **opts):
        try:
            ok = cluster.cluster_bootstrap(ingress=not opts["no_ingress"], say=self.stdout.write)
        except engine.EngineError as exc:
            raise CommandError(str(exc)) from exc
        for line in cluster.join_instructions():  # what a new node runs to join
            self.stdout.write(line)
        if not ok:
            self.stderr.write("bootstrap_cluster: some parts were skipped (see above).")
