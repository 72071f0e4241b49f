"""The compose stack of docker/docker-compose.yml, run for real by the tests,
and the same app on a three-node RabbitMQ cluster
(docker/docker-compose.rabbitmq.yml, :class:`ClusterStack`).

A stack is started the way a user starts it (``scripts/docker_up.sh``, what
``make docker-up`` and ``make docker-up-rabbitmq`` run) under a project name
of its own, with an env file made from ``.env.example``. The tests reach it
only through the ports it publishes on 127.0.0.1 (the API, on 8000 for the
first stack; Flower, PostgreSQL, the RabbitMQ nodes), and change it only
through Compose and ``docker`` (kill, restart, stop, scale, pause;
``rabbitmqctl`` in a node's container).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from webapp.names import INSERT_BATCH_TASK

from ..support.processes import ROOT, free_port
from ..support.waiting import wait_for

COMPOSE = ROOT / "scripts" / "compose.sh"
#: The project's name: its containers, network and volumes are the suite's own.
PROJECT = os.environ.get("TEST_COMPOSE_PROJECT", "webapp-ctest")
#: The issue asks for the API on 127.0.0.1:8000; another port when 8000 is taken.
API_PORT = int(os.environ.get("TEST_STACK_API_PORT", "8000"))
#: The app settings the suite runs the stack with, besides .env.example's:
#: a dead worker's messages come back after 10 s (not 300), a down broker is
#: probed twice a second, a dead worker's execution is found within seconds
#: (beat still sweeps once a minute).
FAST_RECOVERY = {
    "CELERY_VISIBILITY_TIMEOUT": "10",
    "EXECLOG_PROBE_INTERVAL": "0.5",
    "EXECLOG_RETRY_BACKOFF": "0.2",
    "EXECLOG_RETRY_BACKOFF_MAX": "2",
    "WORKFLOW_HEARTBEAT_SECONDS": "1",
    "WORKFLOW_STALE_SECONDS": "3",
}


@dataclass
class Answer:
    status: int
    body: Any


class Stack:
    """One compose project: its settings, and the ways in that tests use."""

    #: The compose project, its file (None: scripts/compose.sh's default,
    #: docker/docker-compose.yml) and the services whose ports it publishes
    #: through *_PUBLISH settings besides the API's.
    project = PROJECT
    compose_file: str | None = None
    published = {"flower": "FLOWER_PUBLISH", "postgres": "POSTGRES_PUBLISH", "redis": "REDIS_PUBLISH"}

    def __init__(self, workdir: Path, api_port: int = API_PORT) -> None:
        self.workdir = workdir
        self.token = secrets.token_urlsafe(24)
        self.flower_auth = f"ops:{secrets.token_urlsafe(12)}"
        self.password = secrets.token_urlsafe(16)
        self.ports = {"api": api_port, **{service: free_port() for service in self.published}}
        self.env_file = workdir / "stack.env"
        self.api_url = f"http://127.0.0.1:{self.ports['api']}"
        self.flower_url = f"http://127.0.0.1:{self.ports['flower']}"
        self.database_url = (f"postgresql+psycopg2://webapp:{self.password}"
                             f"@127.0.0.1:{self.ports['postgres']}/webapp")

    # -- bringing it up and down ------------------------------------------------

    def settings(self) -> dict[str, str]:
        """The values a user sets in the copy of .env.example."""
        return {
            "POSTGRES_PASSWORD": self.password,
            "FLOWER_BASIC_AUTH": self.flower_auth,
            "API_TOKENS": self.token,
            "API_PUBLISH": f"127.0.0.1:{self.ports['api']}",
            **{variable: f"127.0.0.1:{self.ports[service]}" for service, variable in self.published.items()},
            **FAST_RECOVERY,
        }

    def write_env_file(self) -> None:
        """.env.example as a user copies it, with the values a user sets."""
        lines = [(ROOT / ".env.example").read_text(), "# -- the container tests' own"]
        lines += [f"{name}={value}" for name, value in self.settings().items()]
        self.env_file.write_text("\n".join(lines) + "\n")

    def environment(self) -> dict[str, str]:
        environment = {**os.environ, "COMPOSE_PROJECT_NAME": self.project,
                       "WEBAPP_ENV_FILE": str(self.env_file)}
        environment.pop("WEBAPP_COMPOSE_FILE", None)
        if self.compose_file:
            environment["WEBAPP_COMPOSE_FILE"] = str(ROOT / self.compose_file)
        return environment

    def up(self, log: Path) -> None:
        """scripts/docker_up.sh: images, then every service healthy."""
        self._script(["scripts/docker_up.sh"], log, timeout=900)

    def down(self) -> None:
        """Containers, network and volumes of the project (images stay)."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "60", timeout=300)

    def _script(self, argv: list[str], log: Path, timeout: float) -> None:
        with open(log, "ab") as output:
            result = subprocess.run(argv, cwd=ROOT, env=self.environment(), stdout=output,
                                    stderr=subprocess.STDOUT, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                                 + log.read_text(errors="replace")[-6000:])

    # -- Compose and docker -------------------------------------------------------

    def compose(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run([str(COMPOSE), *args], cwd=ROOT, env=self.environment(),
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)}: {result.returncode}\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def containers(self, service: str) -> list[str]:
        """Ids of the service's running containers."""
        return self.compose("ps", "-q", service).split()

    def docker(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {result.returncode}\n{result.stderr[-3000:]}")
        return result.stdout

    def state(self, container: str) -> dict[str, Any]:
        return json.loads(self.docker("inspect", "--format", "{{json .State}}", container))

    def healthy(self, service: str, count: int = 1) -> bool:
        ids = self.containers(service)
        states = [self.state(container) for container in ids]
        return len(ids) == count and all(
            state["Running"] and state.get("Health", {}).get("Status") == "healthy" for state in states)

    def wait_healthy(self, service: str, count: int = 1, timeout: float = 180) -> None:
        wait_for(lambda: self.healthy(service, count), timeout=timeout, interval=1.0,
                 message=f"{count} healthy {service} container(s)")

    # -- the API, Flower, the database ---------------------------------------------

    def api(self, method: str, path: str, body: Any = None, *, token: str | None = "",
            timeout: float = 10) -> Answer:
        """A request to the API; raises OSError when no answer came."""
        headers = {"Content-Type": "application/json"}
        token = self.token if token == "" else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        return _request(urllib.request.Request(self.api_url + path, data, headers, method=method), timeout)

    def flower(self, path: str, auth: str | None = None) -> Answer:
        credentials = base64.b64encode((auth or self.flower_auth).encode()).decode()
        headers = {"Authorization": f"Basic {credentials}"}
        return _request(urllib.request.Request(self.flower_url + path, headers=headers), timeout=30)

    def ready(self) -> bool:
        try:
            answer = self.api("GET", "/readyz", token=None, timeout=5)
        except OSError:
            return False
        return answer.status == 200

    def wait_ready(self, timeout: float = 180) -> None:
        wait_for(self.ready, timeout=timeout, interval=0.5, message="GET /readyz to answer 200")

    def engine(self) -> sa.engine.Engine:
        return sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)

    def batches_taken(self, nodes: set[str]) -> dict[str, int]:
        """execlog.insert_batch tasks each worker took since it started
        (Celery's worker stats, through Flower's API)."""

        def listed() -> dict | None:
            workers = self.flower("/api/workers?refresh=1").body
            return workers if isinstance(workers, dict) and nodes <= set(workers) else None

        workers = wait_for(listed, timeout=90, interval=1.0, message=f"Flower to list {sorted(nodes)}")
        return {node: workers[node]["stats"]["total"].get(INSERT_BATCH_TASK, 0) for node in nodes}

    def metric(self, sample: str) -> float:
        """A sample of the API's GET /metrics, summed over its processes (0
        before the first record counted)."""
        text = self.api("GET", "/metrics").body
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(sample + " "))


class ClusterStack(Stack):
    """docker/docker-compose.rabbitmq.yml: the same app on a three-node
    RabbitMQ cluster (rmq1, rmq2, rmq3), with two worker containers, as a
    project of its own (its API on a free port: it may not have 8000)."""

    project = f"{PROJECT}-rabbitmq"
    compose_file = "docker/docker-compose.rabbitmq.yml"
    published = {"flower": "FLOWER_PUBLISH", "postgres": "POSTGRES_PUBLISH",
                 "rmq1": "RMQ1_PUBLISH", "rmq2": "RMQ2_PUBLISH", "rmq3": "RMQ3_PUBLISH"}
    nodes = ("rmq1", "rmq2", "rmq3")
    vhost = "webapp"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, api_port=free_port())
        self.rabbitmq_password = secrets.token_urlsafe(16)
        self.cookie = secrets.token_hex(20)

    def settings(self) -> dict[str, str]:
        return {**super().settings(), "RABBITMQ_PASSWORD": self.rabbitmq_password,
                "RABBITMQ_ERLANG_COOKIE": self.cookie}

    def node_of(self, name: str) -> str:
        """The service of a node name (rabbit@rmq2 -> rmq2)."""
        return name.split("@", 1)[1]

    def rabbitmqctl(self, node: str, *args: str, timeout: float = 60) -> str:
        """rabbitmqctl inside the node's container (stdout; the CLI's
        deprecation note on RABBITMQ_ERLANG_COOKIE goes to stderr)."""
        [container] = self.containers(node)
        return self.docker("exec", container, "rabbitmqctl", "--quiet", *args, timeout=timeout)

    def queue(self, name: str, ask: str) -> dict[str, Any]:
        """A queue's type, leader, members, online members, messages and
        consumers, as node ``ask`` sees them."""
        listing = json.loads(self.rabbitmqctl(ask, "list_queues", "-p", self.vhost, "--formatter", "json",
                                              "name", "type", "leader", "members", "online", "messages",
                                              "consumers"))
        [queue] = [queue for queue in listing if queue["name"] == name]
        return queue

    def connections(self, ask: str) -> list[str]:
        """The node each AMQP connection of the cluster is on (from the
        address it reached, "172.23.0.9:46764 -> 172.23.0.4:5672")."""
        addresses = {self.address(node): node for node in self.nodes}
        listing = json.loads(self.rabbitmqctl(ask, "list_connections", "--formatter", "json", "name"))
        return [addresses.get(connection["name"].rsplit(" -> ", 1)[-1].rsplit(":", 1)[0], "?")
                for connection in listing]

    def address(self, service: str) -> str:
        """The container's address on the project's network."""
        [container] = self.containers(service)
        return self.docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                           container).strip()

    def ready_messages(self, queue: str, ask: str) -> int:
        """Messages ready in ``queue`` now, through node ``ask``'s published
        port (a passive declare: rabbitmqctl's figures lag)."""
        import kombu

        url = f"amqp://webapp:{self.rabbitmq_password}@127.0.0.1:{self.ports[ask]}/{self.vhost}"
        with kombu.Connection(url, connect_timeout=5) as connection:
            return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)

    def batches_stored(self, container: str, since: str) -> int:
        """execlog.insert_batch tasks the worker container finished since
        ``since`` (RFC 3339), from its own log: Flower's figures can be stale
        for a while after the broker node it reached went away."""
        result = subprocess.run(["docker", "logs", "--since", since, container], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-3000:]
        return sum(1 for line in (result.stdout + result.stderr).splitlines()
                   if "Task execlog.insert_batch[" in line and "] succeeded in " in line)

    def running_nodes(self, ask: str) -> list[str]:
        status = json.loads(self.rabbitmqctl(ask, "cluster_status", "--formatter", "json"))
        return sorted(status["running_nodes"])


def _request(request: urllib.request.Request, timeout: float) -> Answer:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, _body(response.read()))
    except urllib.error.HTTPError as error:
        return Answer(error.code, _body(error.read()))


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def engine_answers() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return None if result.returncode == 0 else (result.stderr.strip() or "docker info failed")
