from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from apps.models import App
from deployments import app_state, selectors


class Command(BaseCommand):
    help = (
        "Every app: its state, what serves it (deploy, commit, since), its latest deploy's "
        "status, replicas healthy/total (`?` when the Docker engine cannot be asked) and "
        "domains."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        counts = app_state.replica_counts()
        rows = [_row(app, counts) for app in selectors.app_rows(App.objects.all())]
        if opts["json"]:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("No apps yet: create one with create_app.")
            return
        table = [_cells(r) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            self.stdout.write(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )


def _row(app: App, counts: dict[str, tuple[int, int]] | None) -> dict[str, Any]:
    """One app as the dashboard's list reads it (selectors.row_state: the same rules)."""
    st = selectors.row_state(app, counts)
    serving = None
    domains = list(app.domains) if isinstance(app.domains, list) else []
    if st.serving is not None:
        since = st.serving.since
        serving = {
            "deploy": st.serving.deploy_id,
            "commit": st.serving.commit,
            "since": since.isoformat() if since else None,
        }
        # What Traefik routes: the domains the live release was applied with (the app's and
        # its manifest's), not settings changed since and not applied yet.
        domains = st.serving.domains
    latest = {"id": st.latest_id, "status": st.latest_status} if st.latest_id else None
    replicas = None
    if st.replicas is not None:
        replicas = {"healthy": st.replicas[0], "total": st.replicas[1]}
    return {
        "name": app.name,
        "state": st.state,
        "serving": serving,
        "latest_deploy": latest,
        "domains": domains,
        "replicas": replicas,
    }


def _cells(r: dict[str, Any]) -> list[str]:
    s, latest, rep = r["serving"], r["latest_deploy"], r["replicas"]
    return [
        r["name"],
        r["state"],
        f"#{s['deploy']} {s['commit'][:12]} since {(s['since'] or '-')[:19]}" if s else "-",
        f"latest #{latest['id']} {latest['status']}" if latest else "no deploys",
        f"{rep['healthy']}/{rep['total']}" if rep is not None else "?",
        ",".join(r["domains"]) or "-",
    ]
