"""Outpost's contracts: message types, table definitions, migrations and the storage layer.

`schemas` is the bottom layer and imports nothing of ours. Everything both `ingest` and `dispatch` need
(the shape of a fix, the tables, the one module that owns database connections) lives here, because the two
siblings never import each other.
"""
