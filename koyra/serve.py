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
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
