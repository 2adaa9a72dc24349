"""One Settings object for configuration: environment variables prefixed FORESHOCK_.

Every process (CLI, workers, benchmarks) reads its configuration here; each
setting has one name, ``FORESHOCK_`` followed by the field name in capitals.
"""

from __future__ import annotations

import ssl
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.config import PipelineConfig
from models.impact import Business
from models.maintenance import MaintenanceWindow, calendar_from_dict
from models.topology import Topology

DEFAULTS = Path(__file__).parent / "defaults"


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORESHOCK_")

    topology: Path = DEFAULTS / "topology.toml"
    business: Path = DEFAULTS / "business.toml"
    scenarios: Path | None = None  # a folder of scenario files; None: the shipped library
    # Announced maintenance (a TOML calendar); workers re-read it while running.
    maintenance: Path | None = None
    log_level: str = "WARNING"
    # The per-series detector (a name in models.detectors), and others for
    # some metrics or families, e.g. FORESHOCK_DETECTORS='{"redis": "river-sad"}'.
    detector: str = "surprise"
    detectors: dict[str, str] = {}

    # Kafka: where, and how to authenticate. Secrets never reach logs or output.
    kafka_bootstrap: str = "localhost:9092"
    kafka_security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    # The Faust app: workers with the same id share the work.
    app_id: str = "foreshock"
    topic_prefix: str = ""  # namespaces every topic, e.g. "staging."
    partitions: int = 6  # of every telemetry topic: the most workers that can share them
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = 6066

    def load_topology(self) -> Topology:
        return Topology.from_dict(read_toml(self.topology))

    def load_business(self) -> Business:
        return Business.from_dict(read_toml(self.business))

    def load_maintenance(self, topology: Topology) -> tuple[MaintenanceWindow, ...]:
        """The maintenance calendar; a file that cannot be used raises
        ``ValueError`` (or ``OSError``) saying why."""
        if self.maintenance is None:
            return ()
        try:
            return calendar_from_dict(read_toml(self.maintenance), topology)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{self.maintenance}: {exc}") from exc

    def pipeline_config(self, topology: Topology) -> PipelineConfig:
        """The decision path's settings: the detectors and the maintenance
        calendar; ``ValueError`` (or ``OSError``) saying why if unusable."""
        return PipelineConfig(
            detector=self.detector,
            detectors=tuple(self.detectors.items()),
            maintenance=self.load_maintenance(topology),
        )

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.kafka_security_protocol not in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
            return None
        context = ssl.create_default_context(
            cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
        )
        if self.kafka_ssl_certfile:
            keyfile = str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None
            context.load_cert_chain(str(self.kafka_ssl_certfile), keyfile)
        return context

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options for any aiokafka client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol.value,
            "ssl_context": self.ssl_context(),
        }
        if self.kafka_security_protocol.value.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism.value
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return options


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)
