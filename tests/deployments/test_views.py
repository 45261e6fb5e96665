from __future__ import annotations

import re

import pytest
from django.template import Context, Template
from django.utils import timezone
from django.utils.html import escape

from deployments import fragments, logstream
from deployments.models import Deploy
from tests import base
from tests.factories import DeployFactory, ImageFactory

pytestmark = pytest.mark.django_db
cast = base.cast  # the fixed cast (tests/base.py) as this module's fixture

STAGES = {
    "clone": {
        "started": "2025-01-01T00:00:00+00:00",
        "finished": "2025-01-01T00:00:01.500000+00:00",
    },
    "build": {
        "started": "2025-01-01T00:00:01.500000+00:00",
        "finished": "2025-01-01T00:01:16.500000+00:00",
    },
    "push": {
        "started": "2025-01-01T00:01:16.500000+00:00",
        "finished": "2025-01-01T00:01:20+00:00",
    },
    "rollout": {"started": "2025-01-01T00:01:20+00:00", "finished": "2025-01-01T00:01:30+00:00"},
}


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def deploy(cast):
    image = ImageFactory(app=cast.app, commit="c" * 40)
    d = DeployFactory(
        app=cast.app,
        commit="c" * 40,
        image=image,
        status=Deploy.Status.LIVE,
        stages=STAGES,
        finished=timezone.now(),
    )
    log = logstream.DeployLog(d)
    for text in ("==> clone", "Step 1/4 : FROM busybox", "", "live: every task runs sha256:b"):
        log(text)
    return d


@pytest.mark.parametrize(
    "who,status",
    [
        ("owner", 200),
        ("member", 200),
        ("viewer", 200),
        ("superuser", 200),
        ("staff", 404),  # is_staff alone gives nothing on apps (issue 11)
        ("outsider", 404),
    ],
)
def test_deploy_page_access(client, cast, deploy, who, status):
    client.force_login(getattr(cast, who))
    assert client.get(f"/deploys/{deploy.pk}/").status_code == status


def test_deploy_page_needs_a_login(client, cast, deploy):
    resp = client.get(f"/deploys/{deploy.pk}/")
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/?next=")


def test_deploy_page_of_an_unknown_deploy_is_404(client, cast):
    client.force_login(cast.superuser)
    assert client.get("/deploys/999999/").status_code == 404


def test_deploy_page_shows_status_commit_image_stages_and_the_full_log(client, cast, deploy):
    client.force_login(cast.owner)
    html = client.get(f"/deploys/{deploy.pk}/").content.decode()
    assert '<span id="status" class="badge s-live">live</span>' in html
    assert "c" * 40 in html
    assert deploy.image.pinned in html
    assert re.findall(r'data-stage="(\w+)"', html) == ["clone", "build", "push", "rollout"]
    for text in ("clone 1.5s", "build 1m 15s", "push 3.5s", "rollout 10s", "total 1m 30s"):
        assert text in html
    assert re.findall(r'<div class="ln" data-seq="(\d+)">', html) == ["1", "2", "3", "4"]
    assert '<div class="ln" data-seq="2">Step 1/4 : FROM busybox</div>' in html
    # Finished: no live connection to open.
    assert "ws-connect" not in html


def test_a_running_deploy_page_follows_the_websocket(client, cast):
    d = DeployFactory(
        app=cast.app,
        commit="",
        status=Deploy.Status.BUILDING,
        stages={"clone": {"started": timezone.now().isoformat()}},
    )
    client.force_login(cast.member)
    html = client.get(f"/deploys/{d.pk}/").content.decode()
    assert f'hx-ext="ws" ws-connect="/ws/deploys/{d.pk}/"' in html
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert "/static/vendor/htmx-ext-ws-2.0.4.min.js" in html
    assert "st-clone running" in html
    assert "branch head, resolved at clone" in html
    # Cancel asks first (issue 15): a GET of the confirmation that names this deploy alone.
    assert f'<form class="right" method="get" action="/apps/shop/deploys/{d.pk}/cancel/">' in html
    assert "hx-post" not in html


def test_log_lines_and_errors_are_escaped(client, cast):
    d = DeployFactory(app=cast.app, status=Deploy.Status.FAILED, error="<b>bold</b> failure")
    logstream.DeployLog(d)("<script>alert('x')</script> & more")
    client.force_login(cast.owner)
    html = client.get(f"/deploys/{d.pk}/").content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; failure" in html


def test_the_same_partial_renders_a_line_for_page_websocket_and_sse(client, cast, deploy):
    client.force_login(cast.owner)
    html = client.get(f"/deploys/{deploy.pk}/").content.decode()
    line = fragments.log_line(2, "Step 1/4 : FROM busybox")
    assert line in html
    assert line in fragments.log_append([{"seq": 2, "text": "Step 1/4 : FROM busybox"}])
    assert fragments.log_line(1, "<i>") == '<div class="ln" data-seq="1">&lt;i&gt;</div>'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "<script>alert('x')</script> & \"quoted\"",
        "{{ not.a.variable }} {% tag %} %s {} {0}",
        "ünïcödé → ✓ \u200b tab\there",
        "&amp; already escaped &lt;",
        "\x1b[31mred\x1b[0m \x00 nul </div> \u2028",
        "x" * 9000,
    ],
)
def test_a_line_is_its_text_escaped_as_the_template_engine_escapes(text):
    lines = [{"seq": 7, "text": text}, {"seq": 8, "text": text[::-1]}]
    one = '<div class="ln" data-seq="{}">{}</div>'
    assert fragments.log_line(7, text) == one.format(7, escape(text))
    assert fragments.log_append(lines) == (
        '<div id="log" hx-swap-oob="beforeend">'
        + one.format(7, escape(text))
        + one.format(8, escape(text[::-1]))
        + "</div>"
    )
    page = Template("{% load deploys %}{{ lines|log_lines }}").render(Context({"lines": lines}))
    assert page == fragments.log_lines(lines)
    # A relayed batch (consecutive lines from a first seq) renders as the same lines.
    assert fragments.log_append_texts(7, [text, text[::-1]]) == fragments.log_append(lines)
    assert page == Template("{{ a }}{{ b }}").render(
        Context({"a": fragments.log_line(7, text), "b": fragments.log_line(8, text[::-1])})
    )


def test_the_status_fragment_is_an_out_of_band_swap_of_the_summary(cast, deploy):
    html = fragments.summary(deploy)
    assert html.lstrip().startswith('<section id="summary"')
    assert 'hx-swap-oob="true"' in html
    assert '<span id="status" class="badge s-live">live</span>' in html


def test_the_static_files_are_vendored_not_from_a_cdn(client, cast, deploy):
    from django.contrib.staticfiles import finders

    for path in ("vendor/htmx-2.0.11.min.js", "vendor/htmx-ext-ws-2.0.4.min.js", "koyra/koyra.js"):
        assert finders.find(path), path
    client.force_login(cast.owner)
    html = client.get(f"/deploys/{deploy.pk}/").content.decode()
    assert not re.search(r'src="(https?:)?//', html)


def test_the_stage_a_failed_deploy_stopped_in_is_marked_failed(client, cast):
    d = DeployFactory(
        app=cast.app,
        status=Deploy.Status.FAILED,
        error="build failed",
        stages={
            "clone": STAGES["clone"],
            "build": {"started": "2025-01-01T00:00:01.500000+00:00"},
        },
    )
    Deploy.objects.filter(pk=d.pk).update(finished="2025-01-01T00:00:21.500000+00:00")
    client.force_login(cast.owner)
    html = client.get(f"/deploys/{d.pk}/").content.decode()
    assert 'class="st-build failed" style="flex-grow:2000"' in html
    assert "build 20s" in html and "total 22s" in html
