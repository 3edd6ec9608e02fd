"""Fixtures of the account tests: one server process per test module (SQLite store),
a tenant and a confidential OAuth client registered through the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from accounts_server import AccountsServer
from oauth_steps import OTHER_REDIRECT, REDIRECT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccountsServer]:
    srv = AccountsServer(tmp_path_factory.mktemp("accounts"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tenant(server: AccountsServer) -> tuple[str, str]:
    return server.tenant("Acme")


@pytest.fixture(scope="module")
def client(server: AccountsServer) -> tuple[str, str]:
    return server.client("Bookly", REDIRECT, OTHER_REDIRECT)
