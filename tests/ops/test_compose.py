"""What can be checked of docker/ without a Docker engine: the stack of
docker/docker-compose.yml, and the same stack on a RabbitMQ cluster
(docker/docker-compose.rabbitmq.yml).

Each check returns the problems it finds; the tests assert there are none,
and a few tests feed a broken copy to show that a check does catch it. What
the app reads is derived from the code (and the scripts), never listed here.
The stack itself runs in tests/containers/.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from webapp.api.settings import ApiSettings
from webapp.execlog.extension import ExecLogSettings
from webapp.workflow.settings import WorkflowSettings

from ..support.processes import ROOT

COMPOSE = ROOT / "docker" / "docker-compose.yml"
RABBITMQ_COMPOSE = ROOT / "docker" / "docker-compose.rabbitmq.yml"
#: The RabbitMQ nodes of that file, and the configuration they find each other by.
RABBITMQ_NODES = ("rmq1", "rmq2", "rmq3")
CLUSTER_CONF = ROOT / "docker" / "rabbitmq" / "cluster.conf"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
#: Where the image keeps what the services run (Dockerfile WORKDIR).
IMAGE_WORKDIR = "/app"
#: Python the app runs; the shell scripts that start its processes.
PYTHON_SOURCES = [*sorted((ROOT / "webapp").rglob("*.py")), ROOT / "celery_worker.py",
                  ROOT / "wsgi.py", ROOT / "docker" / "gunicorn.conf.py"]
#: scripts/ensure_services.sh is not here: it starts the test services.
SHELL_SOURCES = [*sorted((ROOT / "scripts").glob("start_*.sh")), ROOT / "scripts" / "run.sh"]
#: Set by the shell or the container runtime, not by an operator.
RUNTIME_VARIABLES = {"HOSTNAME"}
#: Read by the servers themselves (gunicorn's extra command-line arguments).
READ_BY_SERVERS = {"GUNICORN_CMD_ARGS"}
#: The port each kind of server listens on inside its container.
LISTENS = {"postgres": 5432, "redis": 6379, **{node: 5672 for node in RABBITMQ_NODES}}
#: Ports a Docker host often serves itself (PostgreSQL, Redis, RabbitMQ):
#: the stack must not publish on them by default.
HOST_SERVICE_PORTS = {5432, 6379, 5672}
#: The env file every app service reads: the repository's .env unless
#: scripts/compose.sh (the tests, another deployment) names another.
ENV_FILE_ENTRY = "${WEBAPP_ENV_FILE:-../.env}"


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def load_rabbitmq_compose() -> dict[str, Any]:
    return load_compose(RABBITMQ_COMPOSE)


def compose_texts() -> str:
    """Both compose files: what they take from .env is documented once."""
    return COMPOSE.read_text() + RABBITMQ_COMPOSE.read_text()


# -- what the code reads --------------------------------------------------------


def python_variables(path: Path) -> set[str]:
    """Names read from os.environ: ``environ.get("X")``, ``environ["X"]``,
    ``getenv("X")``, ``setdefault("X")``, and helpers called with the
    environ mapping and a name (``_int(environ, "X", 5)``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            found.update(_names([node.slice]))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and (
                (_is_environ(func.value) and func.attr in ("get", "setdefault", "pop"))
                or func.attr == "getenv"
            ):
                found.update(_names(node.args[:1]))
            elif any(_is_environ(arg) for arg in node.args):
                found.update(_names(node.args))
    return found


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "environ") or (
        isinstance(node, ast.Attribute) and node.attr == "environ"
    )


def _names(nodes: list[ast.AST]) -> set[str]:
    return {
        node.value for node in nodes
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.value)
    }


def shell_variables(path: Path) -> set[str]:
    """``$NAME`` and ``${NAME...}`` outside comments, but for the script's
    own variables (``NAME=...``)."""
    code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    own = set(re.findall(r"^\s*([A-Z][A-Z0-9_]*)=", code, re.MULTILINE))
    return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", code)) - own - RUNTIME_VARIABLES


def compose_variables(text: str) -> set[str]:
    """Variables the compose file takes from .env (``${NAME...}``; ``$$`` is
    the container's own), but for those scripts/compose.sh sets itself."""
    exported = set(re.findall(r"^export ([A-Z][A-Z0-9_]*)", (ROOT / "scripts" / "compose.sh").read_text(),
                              re.MULTILINE))
    return set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text)) - exported


def app_variables() -> set[str]:
    """Every variable the app, its gunicorn settings and its scripts read."""
    found = set(READ_BY_SERVERS)
    for settings in (ExecLogSettings, ApiSettings, WorkflowSettings):  # passed through by prefix
        found |= set(settings.config_defaults())
    for path in PYTHON_SOURCES:
        found |= python_variables(path)
    for path in SHELL_SOURCES:
        found |= shell_variables(path)
    return found


def documented_variables(text: str) -> set[str]:
    """``NAME=`` lines of .env.example, commented out or not."""
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


# -- checks ---------------------------------------------------------------------


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from our image."""
    return {name: service for name, service in compose["services"].items() if "build" in service}


def check_commands(compose: dict[str, Any], dockerfile: str) -> list[str]:
    """Each app service's command names a script or file the repository has
    and the image copies, and modules the package has."""
    problems = []
    copied = _copied_paths(dockerfile)
    for name, service in app_services(compose).items():
        command = service.get("command")
        if not isinstance(command, list) or not command:
            problems.append(f"{name}: command must be a non-empty list")
            continue
        for path in _command_paths(command):
            if not (ROOT / path).is_file():
                problems.append(f"{name}: {path} is not in the repository")
            elif not any(path == c or path.startswith(c.rstrip("/") + "/") for c in copied):
                problems.append(f"{name}: {path} is not copied into the image")
            elif path.endswith(".sh") and not (ROOT / path).stat().st_mode & 0o111:
                problems.append(f"{name}: {path} is not executable")
        for module, attribute in _command_modules(command):
            problem = _module_problem(module, attribute)
            if problem:
                problems.append(f"{name}: {problem}")
    return problems


def _copied_paths(dockerfile: str) -> list[str]:
    """Sources of the final stage's COPY instructions (not --from)."""
    final = dockerfile.rsplit("\nFROM ", 1)[-1]
    paths = []
    for line in final.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not words[1].startswith("--"):
            paths += words[1:-1]
    return paths


def _command_paths(command: list[str]) -> list[str]:
    paths = []
    for word, following in zip(command, command[1:] + [""]):
        if word.endswith(".sh"):
            paths.append(word)
        if word in ("-c", "--config"):
            paths.append(following)
    return paths


def _command_modules(command: list[str]) -> list[tuple[str, str | None]]:
    """(module, attribute) named by ``--app X``/``-A X`` and ``module:attr``."""
    modules = []
    for word, following in zip(command, command[1:] + [""]):
        if word in ("--app", "-A"):
            modules.append((following, None))
        elif re.fullmatch(r"[a-z_][a-z0-9_.]*:[a-z_][a-z0-9_]*", word):
            module, attribute = word.split(":")
            modules.append((module, attribute))
    return modules


def _module_problem(module: str, attribute: str | None) -> str | None:
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.is_file():
        return f"module {module} is not in the package"
    if attribute:
        assigned = {target.id for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Assign) for target in node.targets
                    if isinstance(target, ast.Name)}
        if attribute not in assigned:
            return f"{module} has no {attribute}"
    return None


def check_health_and_dependencies(compose: dict[str, Any],
                                  brokers: tuple[str, ...] = ("redis",)) -> list[str]:
    services = compose["services"]
    problems = []
    one_shot = {name for name, service in services.items() if service.get("restart") == "no"}
    for name, service in services.items():
        if name not in one_shot and not service.get("healthcheck", {}).get("test"):
            problems.append(f"{name}: no health check")
        for dependency, rule in (service.get("depends_on") or {}).items():
            condition = rule.get("condition")
            if dependency not in services:
                problems.append(f"{name}: depends on {dependency}, which is not a service")
            elif condition == "service_healthy" and "healthcheck" not in services[dependency]:
                problems.append(f"{name}: waits for {dependency} to be healthy; it has no health check")
            elif condition == "service_completed_successfully" and dependency not in one_shot:
                problems.append(f"{name}: waits for {dependency} to complete; it never does")
    for name, service in app_services(compose).items():
        if name in one_shot:
            continue
        waits = service.get("depends_on") or {}
        if any(waits.get(broker, {}).get("condition") != "service_healthy" for broker in brokers):
            problems.append(f"{name}: starts before the broker")
        migrated = waits.get("migrate", {}).get("condition") == "service_completed_successfully"
        if "DATABASE_URL" in (service.get("environment") or {}) and not migrated:
            problems.append(f"{name}: may start before the migrations ran")
    return problems


def check_ports(compose: dict[str, Any]) -> list[str]:
    """Published container ports are the ones the servers listen on, and the
    health checks ask those ports."""
    problems = []
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        listens = LISTENS.get(name)
        if "GUNICORN_BIND" in environment:
            listens = int(environment["GUNICORN_BIND"].rsplit(":", 1)[1])
        elif "FLOWER_PORT" in environment:
            listens = int(environment["FLOWER_PORT"])
        published = [int(str(port).rsplit(":", 1)[1]) for port in service.get("ports", [])]
        if published and published != [listens]:
            problems.append(f"{name}: publishes {published}, listens on {listens}")
        health = " ".join(map(str, service.get("healthcheck", {}).get("test", [])))
        if published and "127.0.0.1:" in health and f"127.0.0.1:{listens}/" not in health:
            problems.append(f"{name}: the health check asks another port than {listens}")
    return problems


def check_addresses(compose: dict[str, Any]) -> list[str]:
    """The app finds PostgreSQL and Redis by their service names."""
    problems = []
    for name, service in app_services(compose).items():
        environment = service.get("environment") or {}
        if "@postgres:5432/" not in environment.get("DATABASE_URL", "@postgres:5432/"):
            problems.append(f"{name}: DATABASE_URL does not point at the postgres service")
        if not environment.get("CELERY_BROKER_URL", "").startswith("redis://redis:6379/"):
            problems.append(f"{name}: CELERY_BROKER_URL does not point at the redis service")
    return problems


def check_rabbitmq_addresses(compose: dict[str, Any]) -> list[str]:
    """The app lists every node of the cluster in its broker URL, in order,
    and finds PostgreSQL by its service name."""
    problems = []
    for name, service in app_services(compose).items():
        environment = service.get("environment") or {}
        if "@postgres:5432/" not in environment.get("DATABASE_URL", "@postgres:5432/"):
            problems.append(f"{name}: DATABASE_URL does not point at the postgres service")
        hosts = re.findall(r"amqp://[^@;]+@([a-z0-9]+):5672/", environment.get("CELERY_BROKER_URL", ""))
        if tuple(hosts) != RABBITMQ_NODES:
            problems.append(f"{name}: CELERY_BROKER_URL lists {hosts}, not the nodes {list(RABBITMQ_NODES)}")
    return problems


def check_cluster(compose: dict[str, Any], cluster_conf: str) -> list[str]:
    """Each node is rabbit@<its service name>, is in the peer list of the
    configuration every node mounts, shares the cookie, and keeps its data
    in a volume of its own."""
    problems = []
    listed = re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+ = (\S+)$", cluster_conf,
                        re.MULTILINE)
    if sorted(listed) != [f"rabbit@{node}" for node in RABBITMQ_NODES]:
        problems.append(f"cluster.conf lists {listed}")
    data = set()
    for node in RABBITMQ_NODES:
        service = compose["services"][node]
        if service.get("hostname") != node:
            problems.append(f"{node}: host name {service.get('hostname')!r}, so not rabbit@{node}")
        volumes = service.get("volumes", [])
        if "./rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro" not in volumes:
            problems.append(f"{node}: does not mount rabbitmq/cluster.conf")
        data |= {volume.split(":")[0] for volume in volumes if volume.endswith(":/var/lib/rabbitmq")}
        if "RABBITMQ_ERLANG_COOKIE" not in (service.get("environment") or {}):
            problems.append(f"{node}: no RABBITMQ_ERLANG_COOKIE")
    if len(data) != len(RABBITMQ_NODES):
        problems.append(f"the nodes' data volumes are {sorted(data)}, not one each")
    return problems


def check_same_app(compose: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """The app services of ``other`` are those of ``compose`` but for what
    makes them use another broker: CELERY_BROKER_URL, what they wait for,
    how many workers run."""

    def without_broker(service: dict[str, Any]) -> dict[str, Any]:
        service = {key: value for key, value in service.items() if key not in ("depends_on", "scale")}
        service["environment"] = {key: value for key, value in (service.get("environment") or {}).items()
                                  if key != "CELERY_BROKER_URL"}
        return service

    problems = []
    ours, theirs = app_services(compose), app_services(other)
    if set(ours) != set(theirs):
        problems.append(f"app services {sorted(theirs)}, not {sorted(ours)}")
    for name in set(ours) & set(theirs):
        if without_broker(ours[name]) != without_broker(theirs[name]):
            problems.append(f"{name}: differs from docker-compose.yml's beyond the broker")
    if compose["services"]["postgres"] != other["services"]["postgres"]:
        problems.append("postgres: differs from docker-compose.yml's")
    return problems


def check_environment(compose: dict[str, Any], compose_text: str, example: str, read: set[str]) -> list[str]:
    """Every variable read is documented in .env.example, every documented
    one is read, and the compose file sets no variable nobody reads."""
    documented = documented_variables(example)
    used_by_compose = compose_variables(compose_text)
    problems = [f"{name} is read but not in .env.example" for name in sorted(read - documented)]
    problems += [f"{name} is taken from .env but not in .env.example"
                 for name in sorted(used_by_compose - documented)]
    problems += [f"{name} is in .env.example but nothing reads it"
                 for name in sorted(documented - read - used_by_compose)]
    for name, service in app_services(compose).items():
        for variable in service.get("environment") or {}:
            if variable not in read:
                problems.append(f"{name}: sets {variable}, which nothing reads")
        env_files = service.get("env_file", [])
        if env_files != [ENV_FILE_ENTRY]:
            problems.append(f"{name}: must read {ENV_FILE_ENTRY}, reads {env_files}")
    return problems


def check_portability(compose: dict[str, Any]) -> list[str]:
    """What Compose v1 (1.29, the one Debian has) refuses and v2 accepts: a
    top-level name, env_file entries as mappings (``required:``, v2.24)."""
    problems = [f"top-level {key!r}: Compose v1 refuses it" for key in ("name",) if key in compose]
    for name, service in compose["services"].items():
        entries = service.get("env_file", [])
        if any(not isinstance(entry, str) for entry in (entries if isinstance(entries, list) else [entries])):
            problems.append(f"{name}: env_file entries must be paths (Compose v1 has no 'required:')")
    return problems


def check_published_ports(compose: dict[str, Any]) -> list[str]:
    """By default every port is published on 127.0.0.1, and on none a host
    service already uses."""
    problems = []
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            default = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(port))
            address, host_port, _ = default.rsplit(":", 2) if default.count(":") == 2 else ("", "", "")
            if address != "127.0.0.1":
                problems.append(f"{name}: {port} is not published on 127.0.0.1 by default")
            elif int(host_port) in HOST_SERVICE_PORTS:
                problems.append(f"{name}: {port} takes port {host_port} of the host by default")
    return problems


def seconds(value: str) -> float:
    """A Compose duration (``45s``, ``1m30s``)."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(number) * units[unit] for number, unit in re.findall(r"([0-9.]+)(h|m|s)", value))


def check_stop_grace(compose: dict[str, Any], example: str) -> list[str]:
    """The API gets time for gunicorn's graceful stop and then its workers'
    final flush; every app service that keeps logs stops on SIGTERM with at
    least the flush's time (defaults as .env.example documents them)."""
    defaults = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, re.MULTILINE))
    flush = float(defaults["EXECLOG_SHUTDOWN_TIMEOUT"])
    needs = {"api": float(defaults["GUNICORN_GRACEFUL_TIMEOUT"]) + flush, "worker": flush}
    problems = []
    for name, least in needs.items():
        service = compose["services"][name]
        grace = seconds(service.get("stop_grace_period", "10s"))
        if grace <= least:
            problems.append(f"{name}: stop_grace_period {grace:.0f} s, needs more than {least:.0f} s")
        if service.get("stop_signal", "SIGTERM") != "SIGTERM":
            problems.append(f"{name}: stops on {service['stop_signal']}, not SIGTERM (graceful)")
    return problems


# -- tests ----------------------------------------------------------------------


def test_every_command_points_at_something_the_image_has():
    assert check_commands(load_compose(), DOCKERFILE.read_text()) == []


def test_every_long_running_service_has_a_health_check_and_starts_in_order():
    assert check_health_and_dependencies(load_compose()) == []


def test_ports_and_addresses_are_consistent():
    compose = load_compose()
    assert check_ports(compose) + check_addresses(compose) == []


def test_every_variable_the_app_reads_is_documented_and_nothing_else_is():
    read = app_variables()
    assert {"DATABASE_URL", "GUNICORN_BIND", "EXECLOG_RETENTION_DAYS", "CELERY_QUEUES", "FLOWER_PORT"} <= read
    problems = check_environment(load_compose(), compose_texts(), ENV_EXAMPLE.read_text(), read)
    problems += check_environment(load_rabbitmq_compose(), compose_texts(), ENV_EXAMPLE.read_text(), read)
    assert problems == []


def test_the_file_is_one_compose_v1_and_v2_both_accept():
    assert check_portability(load_compose()) == []


def test_ports_are_published_on_loopback_clear_of_the_host_services():
    assert check_published_ports(load_compose()) == []


def test_the_api_and_the_worker_get_the_time_to_flush_when_stopped():
    assert check_stop_grace(load_compose(), ENV_EXAMPLE.read_text()) == []


def test_the_image_has_no_test_plugin_by_default():
    default = re.search(r'^ARG PLUGINS="([^"]*)"$', DOCKERFILE.read_text(), re.MULTILINE)
    assert default, "docker/Dockerfile names the plugins it installs in ARG PLUGINS"
    names = default.group(1).split()
    assert names and all((ROOT / "plugins" / name / "pyproject.toml").is_file() for name in names)
    assert "synthetic" not in names


def test_the_image_runs_as_a_user_of_its_own_and_installs_from_the_project_files():
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", dockerfile, re.MULTILINE)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    assert re.search(r"^USER webapp$", dockerfile, re.MULTILINE)
    assert re.search(r'^RUN if \[ -n "\$EXTRAS" \]; then pip install [^\n]*"\.\[\$EXTRAS\]"', dockerfile,
                     re.MULTILINE)
    assert f"WORKDIR {IMAGE_WORKDIR}" in dockerfile.rsplit("\nFROM ", 1)[-1]
    flower = load_compose()["services"]["flower"]
    assert flower["build"]["args"] == {"EXTRAS": "monitoring"}


def test_the_rabbitmq_file_passes_the_same_checks():
    compose = load_rabbitmq_compose()
    assert check_commands(compose, DOCKERFILE.read_text()) == []
    assert check_health_and_dependencies(compose, brokers=RABBITMQ_NODES) == []
    assert check_ports(compose) + check_rabbitmq_addresses(compose) == []
    assert check_portability(compose) == []
    assert check_published_ports(compose) == []
    assert check_stop_grace(compose, ENV_EXAMPLE.read_text()) == []


def test_the_rabbitmq_file_runs_the_same_app_on_a_three_node_cluster_with_two_workers():
    compose = load_rabbitmq_compose()
    assert check_same_app(load_compose(), compose) == []
    assert check_cluster(compose, CLUSTER_CONF.read_text()) == []
    assert "redis" not in compose["services"]
    assert compose["services"]["worker"]["scale"] == 2


def test_make_docker_up_rabbitmq_runs_that_file():
    makefile = (ROOT / "Makefile").read_text()
    assert "WEBAPP_COMPOSE_FILE=docker/docker-compose.rabbitmq.yml" in makefile
    assert re.search(r"^docker-up-rabbitmq:\n(\t.*\n)*\t\$\(RABBITMQ_STACK\) scripts/docker_up\.sh$",
                     makefile, re.MULTILINE)


# -- the checks catch what they are for -------------------------------------------


def broken(change) -> dict[str, Any]:
    compose = copy.deepcopy(load_compose())
    change(compose["services"])
    return compose


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda s: s["worker"].update(command=["scripts/start_worker.sh"]),
         "worker: scripts/start_worker.sh is not in the repository"),
        (lambda s: s["api"].update(command=["gunicorn", "-c", "docker/gunicorn.conf.py", "wsgi:application"]),
         "api: wsgi has no application"),
        (lambda s: s["beat"].update(command=["scripts/run.sh"]),
         "beat: scripts/run.sh is not copied into the image"),
        (lambda s: s["migrate"].update(command=["flask", "--app", "wsgii", "db", "upgrade"]),
         "migrate: module wsgii is not in the package"),
    ],
)
def test_a_command_that_points_nowhere_is_caught(change, problem):
    assert problem in check_commands(broken(change), DOCKERFILE.read_text())


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda s: s["flower"].pop("healthcheck"), "flower: no health check"),
        (lambda s: s["api"]["depends_on"].pop("migrate"), "api: may start before the migrations ran"),
        (lambda s: s["migrate"].update(restart="always"),
         "api: waits for migrate to complete; it never does"),
        (lambda s: s["redis"].pop("healthcheck"),
         "worker: waits for redis to be healthy; it has no health check"),
    ],
)
def test_a_missing_health_check_or_dependency_is_caught(change, problem):
    assert problem in check_health_and_dependencies(broken(change))


def test_a_wrong_port_is_caught():
    compose = broken(lambda s: s["api"]["environment"].update(GUNICORN_BIND="0.0.0.0:9000"))
    assert check_ports(compose) == ["api: publishes [8000], listens on 9000",
                                    "api: the health check asks another port than 9000"]


def test_what_compose_v1_refuses_is_caught():
    compose = broken(lambda s: s["api"].update(env_file=[{"path": "../.env", "required": False}]))
    compose["name"] = "webapp"
    assert check_portability(compose) == [
        "top-level 'name': Compose v1 refuses it",
        "api: env_file entries must be paths (Compose v1 has no 'required:')",
    ]


def test_a_port_open_beyond_the_host_or_on_a_host_service_is_caught():
    compose = broken(lambda s: (s["api"].update(ports=["8000:8000"]),
                                s["postgres"].update(ports=["${POSTGRES_PUBLISH:-127.0.0.1:5432}:5432"])))
    assert check_published_ports(compose) == [
        "postgres: ${POSTGRES_PUBLISH:-127.0.0.1:5432}:5432 takes port 5432 of the host by default",
        "api: 8000:8000 is not published on 127.0.0.1 by default",
    ]


def test_a_short_stop_grace_period_is_caught():
    compose = broken(lambda s: (s["api"].update(stop_grace_period="30s"),
                                s["worker"].update(stop_signal="SIGKILL")))
    assert check_stop_grace(compose, ENV_EXAMPLE.read_text()) == [
        "api: stop_grace_period 30 s, needs more than 40 s",
        "worker: stops on SIGKILL, not SIGTERM (graceful)",
    ]


def test_an_undocumented_or_stale_variable_is_caught(tmp_path):
    source = tmp_path / "reads.py"
    source.write_text('import os\nos.environ.get("NEW_SETTING")\n_int(os.environ, "OTHER_SETTING", 3)\n')
    read = app_variables() | python_variables(source)
    example = ENV_EXAMPLE.read_text() + "\nSTALE_SETTING=1\n"
    compose = broken(lambda s: s["worker"]["environment"].update(CELERY_QUEUE="logs"))
    assert check_environment(compose, compose_texts(), example, read) == [
        "NEW_SETTING is read but not in .env.example",
        "OTHER_SETTING is read but not in .env.example",
        "STALE_SETTING is in .env.example but nothing reads it",
        "worker: sets CELERY_QUEUE, which nothing reads",
    ]


def test_a_rabbitmq_file_drifting_from_the_main_one_is_caught():
    compose = copy.deepcopy(load_rabbitmq_compose())
    compose["services"]["api"]["stop_grace_period"] = "10s"
    worker = compose["services"]["worker"]
    worker["environment"]["CELERY_BROKER_URL"] = "amqp://webapp:pw@rmq1:5672/webapp"
    compose["services"]["rmq3"]["hostname"] = "rabbit3"
    compose["services"]["beat"]["depends_on"].pop("rmq2")
    assert check_same_app(load_compose(), compose) == [
        "api: differs from docker-compose.yml's beyond the broker"]
    assert check_rabbitmq_addresses(compose) == [
        "worker: CELERY_BROKER_URL lists ['rmq1'], not the nodes ['rmq1', 'rmq2', 'rmq3']"]
    assert check_cluster(compose, CLUSTER_CONF.read_text()) == [
        "rmq3: host name 'rabbit3', so not rabbit@rmq3"]
    assert check_health_and_dependencies(compose, brokers=RABBITMQ_NODES) == [
        "beat: starts before the broker"]
