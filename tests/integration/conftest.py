"""Fixtures that start the real server process on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.server import ServerProcess, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per test module, with the API rate limit raised for the suite."""
    data_dir = tmp_path_factory.mktemp("carillon") / "data"
    with running_server(data_dir, ["--api-rate", "10000", "--api-burst", "10000"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def chime(server: ServerProcess) -> Any:
    """An unmodified boto3 chime-sdk-meetings client pointed at the server."""
    return server.client()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.integration)
