"""What an error report (Django's DEBUG page, the admins' error mail) may show.

Django's own filter hides settings named like a secret, but only while DEBUG is off does it
hide anything posted, and it never hides a URL's password. This one is always active: posted
secret values, any variable holding one, and the passwords of DATABASE_URL, REDIS_URL and every
setting built from them are never shown, DEBUG or not."""

from __future__ import annotations

import re
from typing import Any

from django.utils.datastructures import MultiValueDict
from django.views.debug import SafeExceptionReporterFilter

# POST fields and local variables that carry a value a user typed in secret.
SENSITIVE_NAME = re.compile(r"value|token|secret|passw|plaintext|cleaned_data", re.I)
# user:password@ in any URL-like string (postgres://u:p@db/x, redis://:p@host:6379/0).
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@", re.I)


def hide_url_password(text: str) -> str:
    return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:********@", text)


class KoyraExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|DATABASE|REDIS|CHANNEL|"
        r"RQ_QUEUES|CACHES|FERNET",
        re.I,
    )

    def is_active(self, request) -> bool:
        return True  # DEBUG on is exactly when these pages are shown to a browser

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        return hide_url_password(cleansed) if isinstance(cleansed, str) else cleansed

    def get_post_parameters(self, request):
        if request is None:
            return {}
        return self._cleanse_fields(super().get_post_parameters(request))

    def get_cleansed_multivaluedict(self, request, multivaluedict):
        return self._cleanse_fields(super().get_cleansed_multivaluedict(request, multivaluedict))

    def get_traceback_frame_variables(self, request, tb_frame):
        posted = self._posted_secrets(request)
        out = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            if SENSITIVE_NAME.search(str(name)) or _holds(value, posted):
                value = self.cleansed_substitute
            out.append((name, value))
        return out

    def _cleanse_fields(self, data: Any) -> Any:
        if not isinstance(data, MultiValueDict):
            return data
        names = [k for k in data if SENSITIVE_NAME.search(str(k))]
        if not names:
            return data
        data = data.copy()
        for k in names:
            data.setlist(k, [self.cleansed_substitute])
        return data

    def _posted_secrets(self, request) -> list[str]:
        try:
            post = getattr(request, "POST", None)
        except Exception:  # a body that does not parse: nothing posted to hide
            return []
        if not isinstance(post, MultiValueDict):
            return []
        return [
            v
            for k in post
            if SENSITIVE_NAME.search(str(k))
            for v in post.getlist(k)
            if isinstance(v, str) and len(v) >= 4
        ]


def _holds(value: object, secrets: list[str]) -> bool:
    if not secrets:
        return False
    try:
        text = repr(value)
    except Exception:
        return False
    return any(s in text for s in secrets)
