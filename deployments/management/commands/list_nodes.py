from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from deployments import nodes
from deployments.boundaries import engine


class Command(BaseCommand):
    help = "The swarm's nodes: hostname, role, state, availability, engine version, Koyra tasks."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            rows = nodes.rows()
        except engine.EngineError as exc:
            raise CommandError(str(exc)) from exc
        if opts["json"]:
            self.stdout.write(json.dumps(rows))
            return
        for r in rows:
            tasks = ", ".join(f"{app}:{n}" for app, n in r["tasks"].items()) or "-"
            role = f"{r['role']}{' (leader)' if r['leader'] else ''}"
            self.stdout.write(
                f"{r['hostname']:<24}  {r['id'][:12]}  {role:<16}  {r['state']:<8}  "
                f"{r['availability']:<7}  {r['engine']:<16}  {tasks}"
            )
