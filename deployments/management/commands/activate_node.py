from __future__ import annotations

from deployments.management.commands._availability import AvailabilityCommand


class Command(AvailabilityCommand):
    help = "Make a drained node active again: Swarm may schedule tasks there."
    availability = "active"
