"""The apps list and the app page's history print values made once per row (apps/rows.py) and
the AppState's text (selectors): each must write exactly what the template filter, tag or
expression it replaces wrote, for every kind of input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from django.template import Context, Template, defaultfilters
from django.template.defaultfilters import slugify
from django.urls import reverse
from django.utils import timezone

from apps import rows
from apps.models import App
from deployments import selectors
from deployments.models import Deploy
from deployments.templatetags import deploys as timeline
from deployments.webhooks.models import WebhookDelivery
from tests import base
from tests.factories import AppFactory, DeployFactory, live_deploy

cast = base.cast
Status = Deploy.Status
SERVICES = "deployments.boundaries.engine.services_replicas"
NOW = datetime(2026, 11, 27, 0, 30, 5, tzinfo=UTC)

TEXTS = [
    "",
    "short",
    "x" * 60,
    "x" * 61,
    "y" * 300,
    "Checkout: show the delivery date and the price in the cart, then the total with tax",
    "café " * 20,  # non-ASCII, long
    "cafe\u0301",  # decomposed: normalized even when short
    "e\u0301" * 70,  # combining characters do not count
    "<b>&amp;</b> 'quoted'",
    "Ünïcödé",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("length", [1, 7, 40, 60, 72, 300])
def test_short_writes_what_truncatechars_writes(text, length):
    assert rows.short(text, length) == defaultfilters.truncatechars(text, length)


WHEN = [
    NOW,
    NOW - timedelta(seconds=59),
    NOW - timedelta(minutes=1),
    NOW - timedelta(hours=20, minutes=34, seconds=10),
    NOW - timedelta(days=1),
    NOW - timedelta(days=45, hours=3),
    NOW - timedelta(days=800),
    NOW + timedelta(minutes=5),  # a clock ahead: "0 minutes"
    datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 0, tzinfo=ZoneInfo("Europe/Berlin")),
]


@pytest.mark.parametrize("when", WHEN)
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
def test_stamp_and_ago_write_what_the_date_and_timesince_filters_write(when, zone):
    template = Template("{{ when|date:'Y-m-d H:i:s' }}|{{ when|timesince:now }}")
    with timezone.override(ZoneInfo(zone)):
        expected = template.render(Context({"when": when, "now": NOW}))
        assert f"{rows.stamp(when, timezone.get_current_timezone())}|{rows.ago(when, NOW)}" == (
            expected
        )
    assert rows.stamp(None, UTC) == "" and rows.ago(None, NOW) == ""


@pytest.mark.parametrize("pk", [1, 9, 42, 4242, 123456789])
def test_a_deploy_url_is_what_reverse_writes(pk):
    url = rows.url_maker("deploy-detail", 4242)
    assert url(pk) == reverse("deploy-detail", args=[pk])


@pytest.mark.parametrize("name", ["a", "shop", "stand-in", "scale-042", "a" + "-9" * 19])
def test_an_app_url_is_what_reverse_writes(name):
    assert rows.url_maker("app-detail", "stand-in")(name) == reverse("app-detail", args=[name])


@pytest.mark.parametrize("latest", ["", Status.QUEUED, Status.FAILED, Status.LIVE])
@pytest.mark.parametrize("live", [True, False])
@pytest.mark.parametrize("replicas", [None, (0, 0), (0, 2), (1, 2), (2, 2), (3, 3)])
def test_the_state_text_is_what_the_template_wrote(latest, live, replicas):
    serving = selectors.Serving(7, "1" * 40, "", None, []) if live else None
    st = selectors.AppState(serving, 9 if latest else None, latest, "", replicas)
    assert st.state_class == slugify(st.state)
    if replicas is None:
        assert st.replicas_label == "" and not st.replicas_short and st.desired == 0
    else:
        healthy, desired = replicas
        assert st.replicas_label == f"{healthy}/{desired}" and st.desired == desired
        assert st.replicas_short is (healthy < desired or not desired)


# --- The app page's state is the list's ------------------------------------------------------


SCENARIOS = {
    "never deployed": [],
    "live": [("live", "")],
    "live then failed": [("live", ""), (Status.FAILED, "unhealthy")],
    "live then building": [("live", ""), (Status.BUILDING, "")],
    "failed only": [(Status.FAILED, "clone failed")],
    "retired and cancelled": [(Status.RETIRED, ""), (Status.CANCELLED, "")],
}


@pytest.mark.django_db
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("counts", [None, {}, {"shop_web": (1, 2)}])
def test_the_app_page_reads_the_state_the_list_reads(scenario, counts):
    app = AppFactory(name="shop", domains=["shop.example.com"])
    AppFactory(name="other")  # its deploys are not the shop's
    for i, (status, error) in enumerate(SCENARIOS[scenario]):
        if status == "live":
            live_deploy(
                app, f"{i}" * 40, domains=["a.example.com", "b.example.com"], message="v\nb"
            )
        else:
            DeployFactory(app=app, commit=f"{i}" * 40, status=status, error=error)
    listed = selectors.row_state(selectors.app_rows(App.objects.filter(name="shop"))[0], counts)
    assert selectors.app_overview(app, counts)["st"] == listed


# --- The history on the app page -------------------------------------------------------------


@pytest.mark.django_db
def test_the_history_prints_each_deploy_escaped_shortened_and_with_its_timeline(client, cast):
    started = timezone.now() - timedelta(minutes=5)

    def stages(seconds):
        end = started + timedelta(seconds=seconds)
        return {"build": {"started": started.isoformat(), "finished": end.isoformat()}}

    long = DeployFactory(app=cast.app, status=Status.FAILED, stages=stages(80), error="e" * 400)
    subject = "Ünïcödé <b>bold</b> " + "z" * 80
    short = DeployFactory(
        app=cast.app,
        status=Status.SUPERSEDED,
        stages=stages(20),
        error="superseded by a newer push",
        commit_message=f"{subject}\nbody",
        commit_author="A <i>very</i> long author name, longer than forty characters",
    )
    client.force_login(cast.owner)
    with patch(SERVICES, autospec=True, return_value={}):
        page = client.get("/apps/shop/").content.decode()
    item = page.split(f'data-deploy="{short.pk}"')[1].split("</li>")[0]
    shown = defaultfilters.truncatechars(subject, 72).replace("<", "&lt;").replace(">", "&gt;")
    assert f">{shown}</span>" in item and "<b>" not in item and "body" not in item
    assert "A &lt;i&gt;very&lt;/i&gt; long author name, longer …</span>" in item  # 40
    assert 'class="error small"' not in item  # a superseded deploy's error only says so
    # Timelines compare at a glance: the longest fills the bar, the others in proportion.
    assert 'style="width:25.0%"' in item and "build 20s" in item and "total 20s" in item
    other = page.split(f'data-deploy="{long.pk}"')[1].split("</li>")[0]
    assert 'style="width:100.0%"' in other and "build 1m 20s" in other
    assert f'<div class="error small">{"e" * 299}…</div>' in other
    # The deploy page draws the same timeline (full width: nothing to compare it with).
    bar = timeline.stage_bar(short)
    assert bar["took"] == "20s" and [s.took for s in bar["segments"]] == ["20s"]
    deploy_page = client.get(f"/deploys/{short.pk}/").content.decode()
    assert "build 20s" in deploy_page and 'style="width:100.0%"' in deploy_page


# --- The filters that replaced partials write what the partials wrote -----------------------

# The partials of templates/apps/state.html and deployments/detail.html#stage-bar as they were
# (a row cost ~50 µs in them), kept here as the reference.
BADGE = (
    '<span class="badge a-{{ st.state|slugify }}" data-state="{{ st.state }}">{{ st.state }}'
    "</span>{% for w in st.warnings %}\n"
    '<div class="warn small" role="status">&#9888; {% if st.latest_failed and forloop.first %}'
    "<a href=\"{% url 'deploy-detail' st.latest_id %}\">{{ w }}</a>{% else %}{{ w }}{% endif %}"
    "</div>{% endfor %}"
)
REPLICAS = (
    '{% if st.replicas is None %}<span class="replicas muted" title="the Docker engine did not '
    'answer: replica counts unknown">?</span>{% elif st.serving or st.replicas.1 %}<span '
    'class="replicas{% if st.replicas.0 < st.replicas.1 or not st.replicas.1 %} warn{% endif %}" '
    'title="healthy / desired tasks in the Swarm">{{ st.replicas.0 }}/{{ st.replicas.1 }}</span>'
    '{% else %}<span class="replicas muted">-</span>{% endif %}'
)
TIMELINE = (
    "{% load deploys %}{% stage_bar deploy longest as bar %}{% if bar.segments %}\n"
    '<div class="bar" role="img" aria-label="stage timeline" style="width:{{ bar.width }}%">'
    '{% for s in bar.segments %}<span class="st-{{ s.name }} {{ s.state }}" '
    'style="flex-grow:{{ s.grow }}" title="{{ s.name }} {{ s.seconds|duration }}'
    "{% if s.state != 'done' %} ({{ s.state }}){% endif %}\"></span>{% endfor %}</div>\n"
    '<div class="legend">{% for s in bar.segments %}<span class="stage" data-stage="{{ s.name }}">'
    '<i class="st-{{ s.name }} {{ s.state }}"></i>{{ s.name }} {{ s.seconds|duration }}'
    '{% if s.state == "running" %}…{% endif %}</span>{% endfor %}<span>total '
    "{{ bar.total|duration }}</span></div>\n{% endif %}"
)


@pytest.mark.parametrize("latest", ["", Status.QUEUED, Status.FAILED, Status.LIVE])
@pytest.mark.parametrize("live", [True, False])
@pytest.mark.parametrize("replicas", [None, (0, 0), (0, 2), (1, 2), (2, 2), (3, 3)])
def test_the_state_filters_write_what_the_partials_wrote(latest, live, replicas):
    serving = selectors.Serving(7, "1" * 40, "", None, ["a.example.com"]) if live else None
    st = selectors.AppState(serving, 9 if latest else None, latest, "", replicas)
    shown = Template("{% load states %}{{ st|state_badge }}|{{ st|replicas }}")
    expected = Template(f"{BADGE}|{REPLICAS}").render(Context({"st": st}))
    assert shown.render(Context({"st": st})) == expected


def _stages(now, *spans):
    out = {}
    for name, start, end in spans:
        out[name] = {"started": (now - timedelta(seconds=start)).isoformat()}
        if end is not None:
            out[name]["finished"] = (now - timedelta(seconds=end)).isoformat()
    return out


@pytest.mark.parametrize("longest", ["", 0, 5, 1000])
@pytest.mark.parametrize(
    "status,spans",
    [
        (Status.LIVE, [("clone", 20, 19.5), ("build", 19.5, 4), ("push", 4, 3), ("rollout", 3, 0)]),
        (Status.FAILED, [("clone", 90, 80), ("build <img src=x>", 80, None)]),  # stopped in it
        (Status.CANCELLED, [("clone", 5, None)]),
        (Status.QUEUED, []),
        (Status.SUPERSEDED, [("clone", 4000, 0)]),
    ],
)
def test_the_timeline_filter_writes_what_the_partial_wrote(status, spans, longest):
    now = timezone.now()
    deploy = Deploy(status=status, stages=_stages(now, *spans), finished=now)
    context = {"deploy": deploy, "longest": longest}
    shown = Template("{% load deploys %}{% stage_bar deploy longest as bar %}{{ bar|timeline }}")
    assert shown.render(Context(context)) == Template(TIMELINE).render(Context(context))
    if spans and "<img" in spans[-1][0]:
        assert "<img" not in shown.render(Context(context))


DELIVERY = (
    '<tr>\n<td data-label="Received"><span title="{{ w.received|date:\'Y-m-d H:i:s\' }} UTC">'
    '{{ w.received|timesince }} ago</span></td>\n<td data-label="Event">{{ w.event|default:"-" }}'
    '</td>\n<td data-label="Outcome">{% if w.deploy_id %}<a href="{% url \'deploy-detail\' '
    'w.deploy_id %}">{{ w.outcome }} #{{ w.deploy_id }}</a>{% else %}{{ w.outcome }}{% endif %}'
    '</td>\n<td data-label="Reason">{{ w.reason|default:"-" }}</td>\n<td data-label="Commit">'
    '{% if w.commit %}<code>{{ w.commit|slice:":7" }}</code>{% else %}-{% endif %}</td>\n</tr>'
)


@pytest.mark.django_db
def test_the_deliveries_table_writes_what_the_template_wrote(client, cast):
    deploy = DeployFactory(app=cast.app)
    kinds = [
        {
            "event": "push",
            "commit": "c" * 40,
            "outcome": WebhookDelivery.ACCEPTED,
            "deploy": deploy,
        },
        {"event": "", "commit": "", "outcome": WebhookDelivery.IGNORED, "reason": ""},
        {"event": "ping", "outcome": WebhookDelivery.IGNORED, "reason": "<b>tag</b> & 'x'"},
    ]
    for i, kind in enumerate(kinds):
        received = timezone.now() - timedelta(minutes=5 * (i + 1), seconds=7)
        WebhookDelivery.objects.create(
            app=cast.app, delivery_id=f"d-{i}", received=received, **kind
        )
    client.force_login(cast.owner)
    with patch(SERVICES, autospec=True, return_value={}):
        page = client.get("/apps/shop/").content.decode()
    table = page.split('<table class="rt" id="deliveries">')[1].split("</table>")[0]
    for w in cast.app.deliveries.all():
        assert Template(DELIVERY).render(Context({"w": w})) in table
    assert "<b>tag</b>" not in table
