"""How much the layer cache saves: a cold build (no cache) of a sample app whose dependency
step takes a few seconds, then a rebuild after a source-only change, through engine.build as
the pipeline calls it. Target: the rebuild reuses the dependency layer (near-zero step time).

Run: .venv/bin/python benchmarks/rebuild_cache.py (needs a Docker engine)."""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

from _common import setup_django, write_section

setup_django()

from deployments import local_images  # noqa: E402
from deployments.boundaries import engine  # noqa: E402

DEPS_SECONDS = 4


def main() -> None:
    base = local_images.base_image()
    tag = f"koyra-bench/rebuild:{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        salt = secrets.token_hex(4)  # a fresh dependency layer: a truly cold first build
        (ctx / "Dockerfile").write_text(
            f"FROM {base}\nRUN echo installing-{salt} && sleep {DEPS_SECONDS} && "
            "mkdir -p /deps\nCOPY app.txt /app.txt\n"
        )
        timings = {}
        lines: list[str] = []
        for label, content in (("cold build", "v1"), ("rebuild after a source change", "v2")):
            (ctx / "app.txt").write_text(content)
            t = time.perf_counter()
            engine.build(
                context=tmp,
                dockerfile="Dockerfile",
                tag=tag,
                buildargs={},
                on_line=lines.append,
            )
            timings[label] = time.perf_counter() - t
        cached = sum("Using cache" in line for line in lines)
    engine.image_remove(tag)
    cold, warm = timings.values()
    write_section(
        "Rebuild with the layer cache (benchmarks/rebuild_cache.py)",
        f"""
| build | seconds |
|---|---|
| cold (dependency step sleeps {DEPS_SECONDS} s) | {cold:.2f} |
| rebuild after a source-only change | {warm:.2f} |

Steps served from the cache on the rebuild: {cached}. Speed-up: {cold / warm:.1f}x.
Koyra passes nothing per-deploy into the build (no labels; build args only as the manifest says), so
the dependency layer is reused on every push that leaves it unchanged.
""",
    )


if __name__ == "__main__":
    main()
