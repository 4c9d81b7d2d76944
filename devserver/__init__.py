"""Development package beside `app/`: the embedded PostgreSQL/Redis launcher and the demo seed.

Used by `run.py`, the tests and `bench/`; nothing on the request path imports it
(tests/ops/test_import_graph.py keeps it so; the one exception is the `flask seed` command).
"""
