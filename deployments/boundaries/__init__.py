"""The outside systems a deploy talks to, one module each: the Docker engine and Swarm
(`engine`), git (`git`), the image registry's HTTP API (`registry`) and Traefik (`ingress`).

They take and return plain values and raise their own readable errors; none of them imports
a model or a service, so every other part of Koyra can depend on them and they on nothing.
"""
