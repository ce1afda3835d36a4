"""Outpost's contracts: the fix and dead-letter types, topic names, vocabularies, table definitions.

`schemas` is the bottom layer: no I/O, and nothing of ours. What `ingest`, `dispatch`, `store` and the
`sim` clients must agree on (the shape of a fix, the topics devices speak on, the tables, the settings'
common declarations, the retry policy) lives here once. Opening connections and running migrations is
`store`'s job.
"""
