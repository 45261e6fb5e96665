"""URL parts that name an app or a secret match the validators' patterns, or the URL does not
resolve: an invalid name (a NUL, 5000 characters) answers the same 404 as an unknown one and
never reaches a query (PostgreSQL refuses NUL in text with an error, not an empty result)."""

from __future__ import annotations

from django.urls import register_converter

from apps import validators


class AppName:
    regex = validators.APP_NAME_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class SecretKey(AppName):
    regex = validators.SECRET_KEY_PATTERN


register_converter(AppName, "app")
register_converter(SecretKey, "secretkey")
