"""Both engines of the history store: a SQLite file per test, and a database per test on a real PostgreSQL server
that the session starts once. In CI (``CI`` set) a server that cannot start fails the tests instead of skipping."""

from __future__ import annotations

import itertools
import os

import pytest

from tests.store import postgres

_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    try:
        server = postgres.start()
    except (postgres.PostgresUnavailable, ImportError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed by these tests and could not start: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"eb_test_{os.getpid()}_{next(_counter)}")
