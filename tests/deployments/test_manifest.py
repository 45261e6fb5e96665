from __future__ import annotations

import pytest

from deployments.manifest import Manifest, ManifestError, load, parse

SPEC_EXAMPLE = """\
version: 1
build:
  context: .
  dockerfile: Dockerfile
  args:
    NODE_ENV: production
env:
  LOG_LEVEL: info
  NEXT_PUBLIC_API_URL: https://api.example.com
secrets:
  - DATABASE_URL
  - STRIPE_KEY
release:
  - python manage.py migrate --noinput
predeploy:
  - python manage.py collectstatic --noinput
run:
  port: 8000
  replicas: 1
  healthcheck:
    path: /healthz
  domains: [shop.example.com]
  resources: {memory: 512M, cpus: "0.5"}
  constraints: ["node.labels.tier==web"]
"""


def test_it_reads_the_spec_example():
    m = parse(SPEC_EXAMPLE)
    assert m.secrets == ["DATABASE_URL", "STRIPE_KEY"]
    assert m.release == ["python manage.py migrate --noinput"]
    assert m.predeploy == ["python manage.py collectstatic --noinput"]
    assert m.healthcheck["path"] == "/healthz"
    assert m.domains == ["shop.example.com"]
    assert m.memory == 512 * 1024**2
    assert m.nano_cpus == 500_000_000
    assert m.constraints == ["node.labels.tier==web"]


def test_public_env_is_a_build_arg_and_nothing_else_is():
    m = parse(SPEC_EXAMPLE)
    assert m.build_args() == {
        "NODE_ENV": "production",
        "NEXT_PUBLIC_API_URL": "https://api.example.com",
    }


def test_no_manifest_gives_the_defaults(tmp_path):
    m = load(tmp_path)
    assert m == Manifest()
    assert (m.dockerfile, m.port, m.replicas, m.release, m.predeploy) == (
        "Dockerfile",
        8000,
        1,
        [],
        [],
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("secrets: [NEXT_PUBLIC_TOKEN]\n", "line 1: secrets[0]: NEXT_PUBLIC_TOKEN has a public"),
        ("run:\n  port: 0\n", "line 2: run.port: must be a whole number from 1 to 65535"),
        ("run:\n  prot: 80\n", "line 2: run.prot: unknown field"),
        ("secret: [A]\n", "line 1: secret: unknown field"),
        ("version: 2\n", "line 1: version: must be 1"),
        ("build:\n  context: ../other\n", "line 2: build.context: must be a path inside"),
        ("build:\n  dockerfile: /etc/passwd\n", "build.dockerfile: must be a path inside"),
        ("env:\n  LOG: [a, b]\n", "line 2: env.LOG: must be a string, number or boolean"),
        ("release: echo hi\n", "line 1: release: must be a list of shell commands"),
        ("run:\n  healthcheck: {path: /a, cmd: b}\n", "run.healthcheck: give exactly one"),
        ("run:\n  domains: ['bad host']\n", "line 2: run.domains[0]: 'bad host' is not"),
        ("run:\n  resources: {memory: lots}\n", "run.resources.memory: must be a size"),
        ("env: {A: 1}\nsecrets: [A]\n", "line 2: secrets[0]: A is also in env"),
        ("run: [1\n", "line 2: not valid YAML"),
        ("- just a list\n", "(top level): must be a mapping"),
    ],
)
def test_errors_name_the_file_line_and_field(text, message):
    with pytest.raises(ManifestError) as exc:
        parse(text)
    assert str(exc.value).startswith(".paas/app.yaml")
    assert message in str(exc.value)


def test_a_symlinked_manifest_is_refused(tmp_path):
    (tmp_path / ".paas").mkdir()
    (tmp_path / ".paas" / "app.yaml").symlink_to("/etc/passwd")
    with pytest.raises(ManifestError, match="not a symlink"):
        load(tmp_path)
