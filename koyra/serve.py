"""`python -m koyra.serve -b HOST -p PORT koyra.asgi:application`: daphne without pyOpenSSL.

Koyra's web process speaks plain HTTP and websockets: TLS ends at Traefik in front of it and
daphne is never given a certificate. Twisted's TCP transport still imports pyOpenSSL and
service_identity at start-up (4.8 MiB of resident memory measured, BENCHMARKS.md footprint)
for a TLS it never starts. Marking `OpenSSL` as not installed before Twisted loads
(`sys.modules[name] = None`, the import system's documented way to make an import fail)
sends Twisted, and Autobahn, down the path they have for machines without pyOpenSSL.
Everything else is daphne's own command line, with daphne's own arguments; a TLS endpoint
(`-e ssl:...`) fails at start with "import of OpenSSL halted". tests/test_serve.py checks
both sides: Koyra served, and none of those modules loaded.

And daphne's requests are made with Twisted's `parsePOSTFormSubmission` off
(`_raw_bodies`): Twisted would otherwise parse the Content-Type of every POST through the
`email` package, and a form-encoded or multipart body into `request.args`, on the event
loop, before daphne hands the raw body to Django, which parses it again. Daphne never reads
`args`. It was 7 % of the web process's CPU at 200 webhook deliveries a second
(BENCHMARKS.md, webhook intake), and a 25 MB multipart POST to any URL was parsed in memory
before Django's upload limits could refuse it.
"""

from __future__ import annotations

import sys

# Imported only when TLS is used, which this process never does.
BLOCKED = ("OpenSSL",)


def main(argv: list[str] | None = None) -> None:
    for name in BLOCKED:
        if name in sys.modules and sys.modules[name] is not None:
            raise RuntimeError(f"{name} was imported before koyra.serve could block it")
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    from daphne.cli import CommandLineInterface  # first: daphne installs Twisted's reactor

    _raw_bodies()

    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)


def _raw_bodies() -> None:
    """Daphne's HTTP requests, as daphne makes them, with Twisted's own switch for parsing
    POST bodies into `args` off (twisted.web.http.Request's `parsePOSTFormSubmission`).
    Daphne's factory looks its request class up in its module when a connection opens."""
    from daphne import http_protocol

    if getattr(http_protocol.WebRequest, "koyra_raw_bodies", False):
        return

    class WebRequest(http_protocol.WebRequest):
        koyra_raw_bodies = True

        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["parsePOSTFormSubmission"] = False
            super().__init__(*args, **kwargs)

    http_protocol.WebRequest = WebRequest


if __name__ == "__main__":
    main()
