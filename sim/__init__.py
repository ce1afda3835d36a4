"""Simulated devices and dispatchers: the demo's fleet and command room, the load test.

Clients of Outpost, like real devices and consoles: they speak MQTT and HTTP to it and import no part of the
product but its contracts (`schemas`) and its pure geometry (`geo`).
"""
