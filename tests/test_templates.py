"""Templates name their links with {% url %} / {% static %}, and their styles live in
static/koyra/koyra.css: no hard-coded internal path, no inline <style>."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone

from deployments.models import Deploy
from secrets_vault.services import secret_set
from tests import base
from tests.factories import DeployFactory

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
KOYRA_JS = ROOT / "static" / "koyra" / "koyra.js"

# What a template spells, reduced to what matters here: {% url %} and {% static %} become URL,
# {{ variables }} become VAR, every other tag becomes SEP (an attribute value split at SEP is
# checked piece by piece, so a path behind {% if %} is still found). Newlines are kept so that
# line numbers stay right.
URL, VAR, SEP = "\x02", "\x01", " \x00 "
_BLOCK_COMMENT = re.compile(r"{%\s*comment\b.*?%}.*?{%\s*endcomment\s*%}", re.S)
_COMMENT = re.compile(r"{#.*?#}", re.S)
_URL_TAG = re.compile(r"{%\s*(?:url|static)\s.*?%}", re.S)
_TAG = re.compile(r"{%.*?%}", re.S)
_VARIABLE = re.compile(r"{{.*?}}", re.S)

# Attributes that hold prose, not URLs.
TEXT_ATTRIBUTES = {"title", "alt", "placeholder"}

# The only hard-coded paths a template may hold, with the reason. Keys: (template, attribute,
# value with every {{ variable }} shown as {{ }}).
ALLOWED_PATHS = {
    # The site root: koyra/urls.py's root redirect has no URL name to reverse.
    ("base.html", "href", "/"): "root redirect has no name",
    # The websocket path: routed by deployments/routing.py, outside the URLconf, so {% url %}
    # cannot build it. This ws-connect is the one place it is spelled (see
    # test_the_websocket_path_is_spelled_in_one_place).
    ("deployments/detail.html", "ws-connect", "/ws/deploys/{{ }}/"): "no Django URL name",
}


def reduce(source: str) -> str:
    def keep_lines(marker: str):
        return lambda m: marker + "\n" * m.group(0).count("\n")

    source = _BLOCK_COMMENT.sub(keep_lines(""), source)
    source = _COMMENT.sub(keep_lines(""), source)
    source = _URL_TAG.sub(keep_lines(URL), source)
    source = _TAG.sub(keep_lines(SEP), source)
    return _VARIABLE.sub(keep_lines(VAR), source)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[int, str]] = []  # line, tag
        self.attributes: list[tuple[int, str, str, str]] = []  # line, tag, attribute, value

    def handle_starttag(self, tag, attrs):
        line = self.getpos()[0]
        self.tags.append((line, tag))
        for name, value in attrs:
            if value is not None and name.isprintable():
                self.attributes.append((line, tag, name, value))

    handle_startendtag = handle_starttag


def parse(source: str) -> _Elements:
    parser = _Elements()
    parser.feed(reduce(source))
    parser.close()
    return parser


def show(value: str) -> str:
    """A reduced attribute value as a reader would recognise it."""
    value = value.replace(SEP, "").replace(SEP.strip(), "").strip()
    return value.replace(VAR, "{{ }}").replace(URL, "{% url %}")


def hard_coded_paths(source: str) -> list[tuple[int, str, str]]:
    """(line, attribute, value) of every attribute value that is, or has a piece that is, a
    path on this site ("/..."), not built by {% url %} or {% static %}."""
    found = []
    for line, _tag, name, value in parse(source).attributes:
        if name in TEXT_ATTRIBUTES or name.startswith("aria-"):
            continue
        for piece in value.split(SEP.strip()):
            piece = piece.strip()
            if piece.startswith("/") and not piece.startswith("//"):  # "//host" is elsewhere
                found.append((line, name, show(value)))
                break
    return found


def _templates() -> list[Path]:
    paths = sorted(TEMPLATES.rglob("*.html"))
    assert paths, f"no templates under {TEMPLATES}"
    return paths


def _name(path: Path) -> str:
    return path.relative_to(TEMPLATES).as_posix()


# --- the checks themselves, on made-up templates ---------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        '<a href="/apps/">',
        '<form method="post" action="/apps/{{ app.name }}/deploy/">',
        '<div hx-get="/system/disk/" hx-trigger="load">',
        "<button hx-post='/apps/{{ a }}/cancel/'>",
        '<img src="/static/x.png">',
        '<div id="d"{% if x %} ws-connect="/ws/x/"{% endif %}>',
        "<a href=\"{% if a %}{% url 'app-list' %}{% else %}/apps/new/{% endif %}\">",
        '<a href=" /apps/">',
        '<input type="hidden" name="next" value="/apps/">',
        '<div data-url="/deploys/{{ d.pk }}/">',
        '<a\nclass="x"\nhref="/apps/">',
    ],
)
def test_the_check_finds_a_hard_coded_path(source):
    assert hard_coded_paths(source)


@pytest.mark.parametrize(
    "source",
    [
        "<a href=\"{% url 'app-detail' app.name %}\">",
        "<script src=\"{% static 'koyra/koyra.js' %}\" defer></script>",
        '<a href="{{ next }}">',
        '<a href="https://example.com/x/">',
        '<a href="//cdn.example.com/x.js">',
        '<link rel="icon" href="data:,">',
        '<span title="/etc/hosts" placeholder="/srv">',
        '{# <a href="/apps/"> #}',
        '{% comment %}<a href="/apps/">{% endcomment %}',
        "<p>text with /apps/ in it</p>",
        '<div hx-trigger="every {% if p %}2s{% else %}15s{% endif %}" hx-get="{% url \'x\' %}">',
    ],
)
def test_the_check_lets_built_urls_and_non_paths_through(source):
    assert hard_coded_paths(source) == []


def test_the_check_reports_the_line():
    assert hard_coded_paths('{% comment %}\n\n{% endcomment %}\n<a\nhref="/x/">') == [
        (4, "href", "/x/")
    ]


# --- the project's templates -----------------------------------------------------------------


def test_templates_build_internal_urls_with_url_or_static():
    found = []
    for path in _templates():
        for line, name, value in hard_coded_paths(path.read_text()):
            if (_name(path), name, value) not in ALLOWED_PATHS:
                found.append(f"templates/{_name(path)}:{line}: {name}={value!r}")
    assert not found, (
        "hard-coded internal paths (use {% url 'name' args %} or {% static %}):\n"
        + "\n".join(found)
    )


def test_every_allowed_path_is_still_used():
    used = {
        (_name(path), name, value)
        for path in _templates()
        for _line, name, value in hard_coded_paths(path.read_text())
    }
    assert set(ALLOWED_PATHS) <= used, set(ALLOWED_PATHS) - used


def test_the_websocket_path_is_spelled_in_one_place():
    places = [
        f"templates/{_name(p)}" for p in _templates() for _ in re.findall("/ws/", p.read_text())
    ]
    places += ["static/koyra/koyra.js" for _ in re.findall("/ws/", KOYRA_JS.read_text())]
    assert places == ["templates/deployments/detail.html"]


def test_the_javascript_spells_no_internal_path():
    # koyra.js takes every URL from the page (ws-connect, hx-*), never from a string literal.
    assert re.findall(r"""["'`]/(?!/)[^"'`]*""", KOYRA_JS.read_text()) == []


def test_no_template_has_an_inline_style_element():
    found = [
        f"templates/{_name(path)}:{line}"
        for path in _templates()
        for line, tag in parse(path.read_text()).tags
        if tag == "style"
    ]
    assert not found, "inline <style> (move the rules to static/koyra/koyra.css): " + ", ".join(
        found
    )


def test_style_attributes_only_carry_values_computed_per_element():
    # A fixed style="" is a stylesheet rule in disguise; only data (stage bar widths) stays inline.
    found = [
        f"templates/{_name(path)}:{line}: style={show(value)!r}"
        for path in _templates()
        for line, _tag, name, value in parse(path.read_text()).attributes
        if name == "style" and VAR not in value
    ]
    assert not found, "fixed style attributes (move them to static/koyra/koyra.css):\n" + "\n".join(
        found
    )


def test_the_style_check_finds_an_inline_style_element():
    assert [tag for _line, tag in parse("<head>\n<style>a{}</style>").tags] == ["head", "style"]


# --- rendered pages --------------------------------------------------------------------------

cast = base.cast  # the fixed cast (tests/base.py) as this module's fixture
STYLESHEET = f'<link rel="stylesheet" href="{static("koyra/koyra.css")}">'


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def running(cast) -> Deploy:
    return DeployFactory.create(
        app=cast.app,
        status=Deploy.Status.BUILDING,
        stages={"clone": {"started": timezone.now().isoformat()}},
    )


def test_the_stylesheet_is_a_static_file():
    assert STYLESHEET == '<link rel="stylesheet" href="/static/koyra/koyra.css">'
    found = finders.find("koyra/koyra.css")
    assert found and Path(found).read_text().lstrip().startswith("/*")


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["app-list", "app-detail", "deploy-detail"])
def test_pages_link_the_stylesheet(client, cast, running, page):
    args = {"app-list": [], "app-detail": [cast.app.name], "deploy-detail": [running.pk]}[page]
    client.force_login(cast.owner)
    resp = client.get(reverse(page, args=args))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert html.count(STYLESHEET) == 1
    assert "<style" not in html


@pytest.mark.django_db
def test_urls_render_as_they_always_did(client, cast, running):
    """{% url %} builds exactly the paths the templates used to spell out."""
    secret_set(app=cast.app, key="API_KEY", value="x")
    client.force_login(cast.superuser)  # every button and link shows (is_staff: the Admin)
    pages = {
        "/apps/": [
            'href="/"',
            'href="/apps/"',
            'href="/apps/new/"',
            'href="/admin/"',
            'action="/accounts/logout/"',
            'hx-get="/apps/"',
            'href="/apps/shop/"',
            f'href="/deploys/{running.pk}/"',
            'hx-get="/system/disk/"',
        ],
        "/apps/shop/": [
            'hx-get="/apps/shop/"',
            'action="/apps/shop/deploy/"',
            'action="/apps/shop/cancel/"',
            f'href="/deploys/{running.pk}/"',
            'action="/apps/shop/secrets/"',
            'action="/apps/shop/secrets/API_KEY/delete/"',
        ],
        f"/deploys/{running.pk}/": [
            'href="/apps/shop/"',
            f'action="/apps/shop/deploys/{running.pk}/cancel/"',
            f'ws-connect="/ws/deploys/{running.pk}/"',
        ],
        "/apps/shop/secrets/": ['href="/apps/shop/"', 'action="/apps/shop/secrets/"'],
    }
    for url, attributes in pages.items():
        html = client.get(url).content.decode()
        missing = [a for a in attributes if a not in html]
        assert not missing, (url, missing)
