"""One stack per proxy for the whole run: coatcheck, two applications, the docs' proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import Stack, stack


@pytest.fixture(scope="session")
def nginx_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack("nginx", tmp_path_factory.mktemp("nginx-stack")) as found:
        yield found


@pytest.fixture(scope="session")
def caddy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack("caddy", tmp_path_factory.mktemp("caddy-stack")) as found:
        yield found
