"""Roles per app (SPEC §6) against the real daphne: each role logs in through the login form,
then the app page, a refused action, the deploy's websocket and its SSE stream answer as the
role allows; access revoked while connected closes the socket and ends the stream.

The deploy is a row with log lines (what the worker stores); no worker is needed to read it."""

from __future__ import annotations

import base64
import http.cookiejar
import os
import re
import socket
import struct
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.contrib.auth import get_user_model

from apps import access
from apps.models import Membership
from deployments import logstream
from deployments.heartbeat import Heartbeat
from deployments.models import Deploy
from tests.e2e import servers
from tests.factories import AppFactory, DeployFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
daphne = servers.daphne
PASSWORD = "pw-for-e2e-roles-123"


class Session:
    """A browser-like HTTP session: cookies, the login form with its CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.jar if c.name == name), "") or ""

    def request(self, method: str, path: str, data: dict | None = None) -> tuple[int, str]:
        body = None
        headers = {"Referer": self.base + path}
        if data is not None:
            data = {"csrfmiddlewaretoken": self.cookie("csrftoken"), **data}
            body = urllib.parse.urlencode(data).encode()
        req = urllib.request.Request(self.base + path, body, headers, method=method)
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def login(self, username: str) -> None:
        self.request("GET", "/accounts/login/")
        status, _ = self.request(
            "POST", "/accounts/login/", {"username": username, "password": PASSWORD}
        )
        assert status == 302 and self.cookie("sessionid"), f"{username} could not log in"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _ws_open(base: str, path: str, session: str) -> tuple[int, socket.socket]:
    """A websocket handshake by hand (no client library in the image): the HTTP status and
    the socket, whose server frames _ws_frame reads."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {base}\r\nCookie: sessionid={session}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, sock


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def _ws_frame(sock: socket.socket) -> tuple[int, bytes]:
    """(opcode, payload) of the next server frame (servers do not mask)."""
    b1, b2 = _recv_exact(sock, 2)
    length = b2 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _recv_exact(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _recv_exact(sock, 8))
    return b1 & 0x0F, _recv_exact(sock, length)


def _ws_until_close(sock: socket.socket, timeout: float) -> int:
    """Read frames until a close frame; its code."""
    sock.settimeout(timeout)
    while True:
        opcode, payload = _ws_frame(sock)
        if opcode == 8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


@pytest.fixture
def world(daphne, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    User = get_user_model()

    def user(name, **kw):
        u = User.objects.create(username=name, **kw)
        u.set_password(PASSWORD)
        u.save()
        return u

    owner = user("e2e-owner")
    app = AppFactory(name=f"roles{os.getpid() % 100000}", owner=owner)
    users = {
        "admin": user("e2e-admin"),
        "deployer": user("e2e-deployer"),
        "viewer": user("e2e-viewer"),
        "outsider": user("e2e-outsider"),
        "staff": user("e2e-staff", is_staff=True),
        "superuser": user("e2e-super", is_staff=True, is_superuser=True),
    }
    for role in ("admin", "deployer", "viewer"):
        Membership.objects.create(app=app, user=users[role], role=role)
    deploy = DeployFactory(app=app, status=Deploy.Status.BUILDING)
    logstream.DeployLog(deploy)("step one")
    # This test process "runs" the deploy: without a heartbeat the e2e worker's sweep takes it
    # for an interrupted one, fails it, and the socket closes as finished (1000), not revoked.
    with Heartbeat(deploy.pk):
        yield daphne, app, users, deploy


# who: (app page, settings POST, websocket handshake, SSE)
EXPECTED = {
    "admin": (200, 302, 101, 200),
    "superuser": (200, 302, 101, 200),
    "deployer": (200, 403, 101, 200),
    "viewer": (200, 403, 101, 200),
    "staff": (404, 404, 403, 404),
    "outsider": (404, 404, 403, 404),
}


@pytest.mark.parametrize("who", list(EXPECTED))
def test_each_role_through_http_websocket_and_sse(world, who):
    base, app, users, deploy = world
    s = Session(base)
    s.login(users[who].username)
    page, settings_post, ws, sse = EXPECTED[who]
    status, html = s.request("GET", f"/apps/{app.name}/")
    assert status == page
    if page == 200:
        assert (f'action="/apps/{app.name}/deploy/"' in html) == (who != "viewer")
        assert (f'href="/apps/{app.name}/settings/"' in html) == (who in ("admin", "superuser"))
    form = {"branch": "main", "trigger": "push", "workflows": "", "domains": ""}
    status, _ = s.request("POST", f"/apps/{app.name}/settings/", form)
    assert status == settings_post
    status, _ = s.request("POST", f"/apps/{app.name}/deploy/", {}) if who == "viewer" else (0, "")
    assert status in (0, 403)
    status, sock = _ws_open(base, f"/ws/deploys/{deploy.pk}/", s.cookie("sessionid"))
    try:
        assert status == ws
        if ws == 101:
            opcode, payload = _ws_frame(sock)
            assert opcode == 1 and b"step one" in payload
    finally:
        sock.close()
    req = urllib.request.Request(f"{base}/deploys/{deploy.pk}/logs/stream")
    req.add_header("Cookie", f"sessionid={s.cookie('sessionid')}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == sse
            first = b""
            while b"step one" not in first:
                first += resp.read1(4096)
    except urllib.error.HTTPError as exc:
        assert exc.code == sse
    assert Deploy.objects.count() == 1  # nothing was queued by anyone


def test_revoked_while_connected_closes_the_socket_and_ends_the_stream(world):
    base, app, users, deploy = world
    s = Session(base)
    s.login(users["deployer"].username)
    status, sock = _ws_open(base, f"/ws/deploys/{deploy.pk}/", s.cookie("sessionid"))
    assert status == 101
    req = urllib.request.Request(f"{base}/deploys/{deploy.pk}/logs/stream")
    req.add_header("Cookie", f"sessionid={s.cookie('sessionid')}")
    resp = urllib.request.urlopen(req, timeout=20)
    try:
        got = b""
        while b"step one" not in got:
            got += resp.read1(4096)
        _ws_frame(sock)  # the backlog
        started = time.monotonic()
        access.revoke(app=app, user=users["deployer"])
        assert _ws_until_close(sock, timeout=15) == 4403
        while chunk := resp.read1(4096):  # returns b"" once the stream ended
            assert b"event: line" not in chunk
        assert time.monotonic() - started < 15
    finally:
        sock.close()
        resp.close()
    assert s.request("GET", f"/apps/{app.name}/")[0] == 404


def test_lines_and_the_final_status_reach_daphne_through_redis_pub_sub_at_once(world):
    """The relay as in production: this process writes as the worker does (stored, then one
    PUBLISH a batch), the daphne process pushes each batch to its socket. Everything must
    arrive well before the socket's five-second re-check could have read it instead."""
    base, _app, users, deploy = world
    s = Session(base)
    s.login(users["viewer"].username)
    status, sock = _ws_open(base, f"/ws/deploys/{deploy.pk}/", s.cookie("sessionid"))
    assert status == 101
    connected = time.monotonic()
    try:
        sock.settimeout(3)
        assert b'data-seq="1"' in _ws_frame(sock)[1]  # the backlog
        assert b'id="summary"' in _ws_frame(sock)[1]
        log = logstream.DeployLog(deploy)
        log("one line, on its own")
        assert re.findall(rb'data-seq="(\d+)"', _ws_frame(sock)[1]) == [b"2"]
        texts = [f"n {i} <&>" for i in range(2000)]
        with log.batched():  # a chatty build's burst: one relayed batch of 2,000 lines
            log("\n".join(texts))
        got: list[bytes] = []
        while len(got) < len(texts):
            got += re.findall(rb'<div class="ln" data-seq="\d+">(.*?)</div>', _ws_frame(sock)[1])
        assert got == [f"n {i} &lt;&amp;&gt;".encode() for i in range(2000)]
        deploy.status = Deploy.Status.FAILED
        deploy.save(update_fields=["status"])
        logstream.status_changed(deploy)
        assert b'data-status="failed" data-finished' in _ws_frame(sock)[1]
        assert _ws_until_close(sock, timeout=3) == 1000
        assert time.monotonic() - connected < 4.5  # the re-check comes at 5 s
    finally:
        sock.close()
