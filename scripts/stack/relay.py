"""TCP relays inside Koyra's containers: `LISTEN=TARGET ...`, e.g.
`127.0.0.1:5000=tasks.koyra-registry:5000`.

Koyra names its registry by the address the engine pushes to and Swarm nodes pull from
(KOYRA_REGISTRY, 127.0.0.1:5000 on a single node); inside a container that address is the
container itself. This relays it to the registry's task over the overlay network, so the web
and the worker reach the registry (and Traefik, for the rollout's routing check) at the same
addresses as the engine does. Task addresses (`tasks.NAME`), not the service's virtual IP:
the VIP needs IPVS, which some hosts lack."""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction still carries the answer
    except (ConnectionError, OSError):
        writer.close()


async def _serve(listen: str, target: str) -> None:
    lhost, _, lport = listen.rpartition(":")
    thost, _, tport = target.rpartition(":")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            treader, twriter = await asyncio.open_connection(thost, int(tport))
        except OSError:
            writer.close()  # the target is down (restarting): the caller sees a refusal
            return
        await asyncio.gather(_pipe(reader, twriter), _pipe(treader, writer))
        twriter.close()
        writer.close()

    server = await asyncio.start_server(handle, lhost, int(lport), reuse_address=True)
    async with server:
        await server.serve_forever()


async def main(pairs: list[str]) -> None:
    await asyncio.gather(*(_serve(*pair.split("=", 1)) for pair in pairs))


if __name__ == "__main__":
    if not sys.argv[1:] or any(p.count("=") != 1 for p in sys.argv[1:]):
        sys.exit("usage: relay.py LISTEN_HOST:PORT=TARGET_HOST:PORT ...")
    asyncio.run(main(sys.argv[1:]))
