"""The storage layer: the one place that owns database connections (PostgreSQL or SQLite).

`open_engine` turns OUTPOST_DATABASE_URL into a SQLAlchemy engine; `migrate` applies the schema; the
modules beside it hold the queries of one concern each. Everything else receives the engine as an argument.
"""
