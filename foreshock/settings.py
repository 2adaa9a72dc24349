"""One Settings object for configuration: environment variables prefixed FORESHOCK_."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from models.impact import Business
from models.topology import Topology
from producers.scenario import SCENARIO_DIR

DEFAULTS = Path(__file__).parent / "defaults"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORESHOCK_")

    topology: Path = DEFAULTS / "topology.toml"
    business: Path = DEFAULTS / "business.toml"
    scenarios: Path = SCENARIO_DIR
    log_level: str = "WARNING"

    def load_topology(self) -> Topology:
        return Topology.from_dict(read_toml(self.topology))

    def load_business(self) -> Business:
        return Business.from_dict(read_toml(self.business))


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)
