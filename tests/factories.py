from __future__ import annotations

import functools
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import get_hashers, make_password
from django.utils import timezone

from apps.models import App
from deployments.models import Deploy, Image
from deployments.release_spec import ReleaseSpec
from secrets_vault import crypto

PASSWORD = "pw-for-tests-123"


@functools.cache
def _password_hash(hasher: str) -> str:
    """Hashed once per run and hasher: Django's PBKDF2 takes about half a second a user, and
    the cast of every view test has seven. A real hash of the hasher in use (some modules make
    MD5 the first), so a login through daphne works."""
    return make_password(PASSWORD, hasher=hasher)


def _first_hasher() -> str:
    return str(get_hashers()[0].algorithm)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.LazyFunction(lambda: _password_hash(_first_hasher()))


class AppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = App

    name = factory.Sequence(lambda n: f"app{n}")
    repo_url = "https://github.com/acme/shop.git"
    branch = "main"
    webhook_secret_token = factory.LazyFunction(lambda: crypto.encrypt("webhook-secret"))


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    app = factory.SubFactory(AppFactory)
    commit = "a" * 40
    ref = factory.LazyAttribute(lambda o: f"127.0.0.1:5000/{o.app.name}:{o.commit}")
    digest = "sha256:" + "b" * 64


class DeployFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deploy

    app = factory.SubFactory(AppFactory)
    commit = "a" * 40
    trigger = "manual"


def live_deploy(app, commit="1" * 40, *, domains=(), message="", ago=30) -> Deploy:
    """A deploy of `app` that went live `ago` minutes ago, with its image and recorded spec."""
    return DeployFactory.create(
        app=app,
        commit=commit,
        image=ImageFactory(app=app, commit=commit),
        status=Deploy.Status.LIVE,
        spec=ReleaseSpec(domains=list(domains)).to_json(),
        commit_message=message,
        finished=timezone.now() - timedelta(minutes=ago),
    )
