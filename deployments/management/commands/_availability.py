"""What drain_node and activate_node share."""

from __future__ import annotations

from typing import Literal

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from deployments import nodes
from deployments.boundaries import engine


class AvailabilityCommand(BaseCommand):
    availability: Literal["active", "drain"]

    def add_arguments(self, parser):
        parser.add_argument("node", help="the node's id (or its start) or hostname")

    def handle(self, *args, **opts):
        try:
            node, changed = nodes.set_availability(opts["node"], self.availability)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        except (nodes.NodeError, engine.EngineError) as exc:
            raise CommandError(str(exc)) from exc
        what = self.availability if changed else f"already {self.availability}"
        self.stdout.write(f"{node['hostname']} ({node['id']}): {what}")
