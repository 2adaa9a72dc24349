"""Structure of the Docker deployment: Dockerfile and docker-compose.yml.

Nothing here needs Docker; the files are parsed and checked against the code
they drive (Settings fields, CLI subcommands, scenarios, broker/pom.xml).
"""

from __future__ import annotations

import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"
BROKER_POM = ROOT / "broker" / "pom.xml"

FORESHOCK_SERVICES = ("worker", "producer")
# a tag that names at least major.minor (3.11.15-slim-bookworm, 4.1.2), not "3" or "latest"
VERSION_TAG = re.compile(r"^v?\d+\.\d+")


@cache
def compose() -> dict[str, Any]:
    with COMPOSE.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def service(name: str) -> dict[str, Any]:
    assert name in services(), f"docker-compose.yml has no service {name!r}"
    return services()[name]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment, written as a mapping or as a list of KEY=VALUE."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def image_is_pinned(ref: str) -> bool:
    """An explicit version tag (at least major.minor, never latest) or a digest."""
    if "@sha256:" in ref:
        return True
    _, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:  # no tag at all (the colon belonged to a registry port)
        return False
    return bool(VERSION_TAG.match(tag))


def kafka_version_in_pom(pom: Path) -> str:
    """The version of org.apache.kafka:kafka_2.13, with ${property} references resolved."""
    root = ET.parse(pom).getroot()
    ns = {"m": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {}
    p = "m:" if ns else ""
    props = {
        el.tag.split("}")[-1]: (el.text or "").strip()
        for el in root.findall(f"{p}properties/*", ns)
    }
    for dep in root.iter(f"{{{ns['m']}}}dependency" if ns else "dependency"):
        group = dep.findtext(f"{p}groupId", "", ns).strip()
        artifact = dep.findtext(f"{p}artifactId", "", ns).strip()
        if (group, artifact) == ("org.apache.kafka", "kafka_2.13"):
            version = dep.findtext(f"{p}version", "", ns).strip()
            return re.sub(r"\$\{([^}]+)\}", lambda m: props.get(m[1], m[0]), version)
    raise AssertionError(f"{pom} has no org.apache.kafka:kafka_2.13 dependency")


def test_services_exist() -> None:
    missing = {"kafka", "worker", "producer"} - services().keys()
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"


def test_no_version_key() -> None:
    assert "version" not in compose(), "the Compose spec has no top-level version: key"


def test_every_image_is_pinned() -> None:
    loose = {
        name: svc["image"]
        for name, svc in services().items()
        if "image" in svc and not image_is_pinned(svc["image"])
    }
    assert not loose, f"images without an explicit version tag (or with latest): {loose}"


def test_dockerfile_base_is_pinned() -> None:
    instructions = dockerfile_instructions()
    froms = [args for instr, args in instructions if instr == "FROM"]
    assert froms, "Dockerfile has no FROM"
    stages: set[str] = set()
    for args in froms:
        words = [w for w in args.split() if not w.startswith("--")]
        ref = words[0]
        if len(words) >= 3 and words[1].lower() == "as":
            stages.add(words[2])
        if ref in stages:
            continue
        assert image_is_pinned(ref), f"Dockerfile FROM {ref} is not pinned to a version tag"


def test_foreshock_services_use_the_dockerfile() -> None:
    for name in FORESHOCK_SERVICES:
        build = service(name).get("build")
        context = build.get("context") if isinstance(build, dict) else build
        assert context in (".", "./"), f"service {name} is not built from the project Dockerfile"


def test_worker_is_scalable() -> None:
    worker = service("worker")
    assert "container_name" not in worker, (
        "worker has a fixed container_name; `docker compose up --scale worker=N` needs none"
    )
    assert not worker.get("ports"), (
        f"worker publishes host ports {worker.get('ports')}; a second replica could not bind them"
    )


def test_foreshock_services_wait_for_a_healthy_kafka() -> None:
    assert service("kafka").get("healthcheck", {}).get("test"), "kafka has no healthcheck"
    for name in FORESHOCK_SERVICES:
        depends = service(name).get("depends_on") or {}
        condition = depends.get("kafka", {}).get("condition") if isinstance(depends, dict) else None
        assert condition == "service_healthy", (
            f"service {name} must depend on kafka with condition: service_healthy"
        )


def test_kafka_published_on_loopback_only() -> None:
    for port in service("kafka").get("ports") or []:
        spec = port if isinstance(port, str) else str(port.get("host_ip", "")) + ":"
        assert spec.startswith("127.0.0.1:"), f"kafka port {port!r} is published beyond 127.0.0.1"


def test_foreshock_env_names_are_settings_fields() -> None:
    from infra.settings import Settings

    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    known = {(prefix + name).upper() for name in Settings.model_fields}
    known |= {
        f.validation_alias.upper()
        for f in Settings.model_fields.values()
        if isinstance(f.validation_alias, str)
    }
    used = {
        (name, key)
        for name, svc in services().items()
        for key in environment(svc)
        if key.upper().startswith("FORESHOCK_")
    }
    unknown = sorted(f"{name}: {key}" for name, key in used if key.upper() not in known)
    assert not unknown, (
        f"compose sets FORESHOCK_* variables that infra.settings.Settings does not read: "
        f"{unknown} (known: {sorted(known)})"
    )


@pytest.mark.parametrize("name", FORESHOCK_SERVICES)
def test_command_is_a_cli_subcommand(name: str) -> None:
    from foreshock.cli import app

    group = typer.main.get_command(app)
    commands = getattr(group, "commands", None)  # typer may vendor click: no isinstance
    assert commands, "foreshock.cli.app has no subcommands"
    args = command(service(name))
    assert args, f"service {name} has no command"
    sub, *rest = args
    assert sub in commands, (
        f"service {name} runs `foreshock {sub}`, not a subcommand of foreshock.cli.app "
        f"(has: {sorted(commands)})"
    )
    try:  # parse the arguments (options, choices, types) without running the command
        commands[sub].make_context(sub, list(rest))
    except Exception as e:  # click's (or typer's vendored) UsageError
        pytest.fail(f"service {name}: `foreshock {' '.join(args)}` does not parse: {e}")


def test_producer_scenario_exists() -> None:
    from producers.scenario import SCENARIO_DIR, load_scenarios

    args = command(service("producer"))
    assert len(args) >= 2 and args[0] == "produce", (
        f"producer should run `foreshock produce SCENARIO ...`, runs {args}"
    )
    scenario = args[1]
    scenarios = load_scenarios(SCENARIO_DIR)
    assert scenario in scenarios, (
        f"producer replays scenario {scenario!r}, not one of {sorted(scenarios)}"
    )


def test_kafka_image_matches_broker_pom() -> None:
    if not BROKER_POM.exists():
        pytest.skip("no broker/pom.xml")
    image = service("kafka")["image"]
    name, _, tag = image.rpartition(":")
    assert name.endswith("apache/kafka"), f"kafka runs {image}, not the official apache/kafka"
    expected = kafka_version_in_pom(BROKER_POM)
    assert tag == expected, (
        f"compose runs {image} but broker/pom.xml tests against kafka_2.13 {expected}"
    )


def test_kafka_runs_single_node_kraft() -> None:
    env = environment(service("kafka"))
    roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    assert roles == {"broker", "controller"}, (
        f"KAFKA_PROCESS_ROLES should be broker,controller, is {env.get('KAFKA_PROCESS_ROLES')!r}"
    )
    node_id = env.get("KAFKA_NODE_ID")
    assert node_id, "KAFKA_NODE_ID is not set"
    voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")
    assert voters.startswith(f"{node_id}@"), (
        f"KAFKA_CONTROLLER_QUORUM_VOTERS {voters!r} does not name node {node_id}"
    )
    controller = env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "")
    assert controller and f"{controller}://" in env.get("KAFKA_LISTENERS", ""), (
        f"the controller listener {controller!r} is not among KAFKA_LISTENERS"
    )
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ):
        assert env.get(key) == "1", f"{key} must be 1 on a single node, is {env.get(key)!r}"


def test_dockerfile_copies_every_package() -> None:
    with PYPROJECT.open("rb") as f:
        pyproject = tomllib.load(f)
    packages = pyproject["tool"]["setuptools"]["packages"]
    if isinstance(packages, dict):  # found by pattern: the top-level folders of the patterns
        packages = [p.split(".")[0].rstrip("*") for p in packages["find"]["include"]]
    needed = set(packages)
    needed |= {"pyproject.toml", pyproject["project"].get("readme", "README.md")}
    copied: set[str] = set()
    for instr, args in dockerfile_instructions():
        if instr in ("COPY", "ADD"):
            *sources, _dest = [w for w in args.split() if not w.startswith("--")]
            copied |= {s.removeprefix("./").rstrip("/") or "." for s in sources}
    missing = sorted(n for n in needed if n not in copied and "." not in copied)
    assert not missing, f"the Dockerfile does not COPY {missing} (pyproject packages/readme)"
