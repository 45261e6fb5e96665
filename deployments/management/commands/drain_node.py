from __future__ import annotations

from deployments.management.commands._availability import AvailabilityCommand


class Command(AvailabilityCommand):
    help = "Drain a node: Swarm moves its tasks to the other nodes and schedules none there."
    availability = "drain"
