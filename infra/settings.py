"""One Settings object for configuration: environment variables prefixed FORESHOCK_.

Every process (CLI, workers, benchmarks) reads its configuration here; each
setting has one name, ``FORESHOCK_`` followed by the field name in capitals.
"""

from __future__ import annotations

import ssl
import tomllib
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.ingest.mapping import Mapping
from infra.ingest.mapping import from_dict as mapping_from_dict
from models.config import PipelineConfig
from models.detectors import DETECTORS
from models.impact import Business
from models.maintenance import MaintenanceWindow, calendar_from_dict
from models.schema import SERIES_METRICS
from models.topology import Topology

DEFAULTS = Path(__file__).parent / "defaults"
MAX_TOML_BYTES = 1 << 20  # a configuration file is far smaller; /dev/zero never ends

T = TypeVar("T")


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
    scenarios: Path | None = None  # a folder of scenario files, added to the shipped library
    # From outside metrics (remote_write, OTLP) to Foreshock's series, and the
    # metrics it adds: read by `foreshock ingest` and by the workers.
    mapping: Path = DEFAULTS / "mapping.toml"
    # Where an OpenTelemetry Collector's kafka exporter writes metrics
    # (encoding otlp_proto), read by the workers; not prefixed. Empty: none.
    otlp_topic: str = "otlp_metrics"
    # Alert routes and sinks (a TOML file, see streams/alerts/routing.py): where
    # pages go. Runbooks per kind of root cause, linked under a base URL if set.
    alerts: Path | None = None
    runbooks: Path = DEFAULTS / "runbooks"
    runbook_url: str | None = None
    # Silences for the embedded engine's drills (a JSON list, as `foreshock
    # silence list --json` prints); workers read the foreshock.silences topic.
    silences: Path | None = None
    # Announced maintenance (a TOML calendar); workers re-read it while running.
    maintenance: Path | None = None
    # As logging names it; any case, as `worker --loglevel info` takes it.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    # The per-series detector (a name in models.detectors), and others for
    # some metrics or families, e.g. FORESHOCK_DETECTORS='{"redis": "river-sad"}'.
    detector: str = "surprise"
    detectors: dict[str, str] = {}
    # Event-time windows the series are cut into: the grain of detection.
    window_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # The surprise detectors of a window are stepped together, as arrays;
    # false runs one monitor per series instead (the same decisions, slower).
    vectorised: bool = True

    # Kafka: where, and how to authenticate. Secrets never reach logs or output.
    kafka_bootstrap: str = "localhost:9092"
    kafka_security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # A worker not heard from for this long leaves its group and its
    # partitions move to the others; it says it is alive this often.
    kafka_session_timeout_s: float = 60.0
    kafka_heartbeat_interval_s: float = 3.0

    # The Faust app: workers with the same id share the work.
    app_id: str = "foreshock"
    topic_prefix: str = ""  # namespaces every topic, e.g. "staging."
    # Of every telemetry topic: the most workers that can share them.
    partitions: Annotated[int, Field(ge=1)] = 6
    # The operator's page, its API and the metrics (streams/web): read-only;
    # loopback unless told otherwise; with a token, the API asks for it.
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_token: SecretStr | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("detectors")
    @classmethod
    def _detectors_for_what_exists(cls, chosen: dict[str, str]) -> dict[str, str]:
        """Keys are families or series metrics: one that is neither would never apply."""
        known = set(SERIES_METRICS) | {m for ms in SERIES_METRICS.values() for m in ms}
        unknown = sorted(set(chosen) - known)
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: no such family or metric; "
                f"families: {', '.join(sorted(SERIES_METRICS))}"
            )
        return chosen

    def load_topology(self) -> Topology:
        return self._load("topology", Topology.from_dict)

    def load_business(self) -> Business:
        return self._load("business", Business.from_dict)

    def load_mapping(self) -> Mapping:
        """The mapping file, its new metrics declared to the schema."""
        mapping = self._load("mapping", mapping_from_dict)
        mapping.declare()
        return mapping

    def load_maintenance(self, topology: Topology) -> tuple[MaintenanceWindow, ...]:
        """The maintenance calendar; a file that cannot be used raises
        ``ValueError`` naming the setting, the file and why."""
        if self.maintenance is None:
            return ()
        return self._load("maintenance", lambda data: calendar_from_dict(data, topology))

    def pipeline_config(self, topology: Topology) -> PipelineConfig:
        """The decision path's settings: the detectors and the maintenance
        calendar; ``ValueError`` naming the setting to fix if unusable."""
        maintenance = self.load_maintenance(topology)
        try:
            return PipelineConfig(
                window_s=self.window_s,
                detector=self.detector,
                detectors=tuple(self.detectors.items()),
                vectorised=self.vectorised,
                maintenance=maintenance,
            )
        except ValueError as exc:  # a detector name that is not registered
            name = "DETECTORS" if self.detector in DETECTORS else "DETECTOR"
            raise ValueError(f"FORESHOCK_{name}: {exc}") from exc

    def _load(self, setting: str, parse: Callable[[dict[str, Any]], T]) -> T:
        """``parse`` of the TOML file a path setting names; ``ValueError``
        naming the setting as the user sets it, the file and the fault."""
        try:
            return parse_toml(getattr(self, setting), parse)
        except ValueError as exc:
            raise ValueError(f"FORESHOCK_{setting.upper()}: {exc}") from exc

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


def read_file(path: Path, limit: int, what: str) -> bytes:
    """A regular file of at most ``limit`` bytes; ``ValueError`` naming the
    file and what is wrong with it otherwise (``what`` is what it should be).
    Not a folder or a device: /dev/zero would be read until memory runs out."""
    try:
        if not path.is_file():
            why = "not a regular file" if path.exists() else "no such file"
            raise ValueError(f"{path}: {why}; give {what}")
        with path.open("rb") as f:
            raw = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if len(raw) > limit:
        raise ValueError(f"{path}: larger than {limit >> 20} MiB, the limit of {what}")
    return raw


def read_toml(path: Path) -> dict[str, Any]:
    """A configuration file: TOML in a regular file of at most 1 MiB.
    ``ValueError`` naming the file and what is wrong with it otherwise."""
    raw = read_file(path, MAX_TOML_BYTES, "a TOML file")
    try:
        return tomllib.loads(raw.decode())
    except ValueError as exc:  # not UTF-8, or not TOML
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc


def parse_toml(path: Path, parse: Callable[[dict[str, Any]], T]) -> T:
    """``parse`` of the TOML file at ``path``: its errors, and a key it
    lacks, as ``ValueError`` naming the file."""
    data = read_toml(path)
    try:
        return parse(data)
    except KeyError as exc:
        raise ValueError(f"{path}: missing key {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
