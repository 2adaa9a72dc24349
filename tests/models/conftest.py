"""Fixtures for the model tests: the shipped topology and business files as raw
data, for tests that build variants of them."""

from __future__ import annotations

import pytest

from infra.settings import Settings, read_toml


@pytest.fixture(scope="session")
def topology_data():
    return read_toml(Settings().topology)


@pytest.fixture(scope="session")
def business_data():
    return read_toml(Settings().business)
