"""Load testing as a feature: drive a running Outpost from outside and report what it held.

A device fleet publishes fixes (Outpost's format, OwnTracks, or HTTP) at a paced rate, with a share of bad
messages and redeliveries; a dispatcher load asks for the nearest unit and creates incidents; probes time how
long a published fix takes to become visible in the nearest query. At the end an oracle reads the store:
every valid fix carries a per-device `seq`, so lost and duplicated fixes are counted exactly, and the dead
letters are compared with what was injected. `cli.run_loadtest` is the entry point behind `outpost loadtest`.
"""
