"""RabbitMQ for tests: a virtual host of the test's own on the machine's
broker (127.0.0.1:5672, guest/guest, never stopped), and a private node
(its own node name, ports and data) for tests that stop the broker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .processes import ManagedProcess, free_port
from .waiting import wait_for

RABBITMQCTL = "rabbitmqctl"
#: The server's own start script: it runs as whoever starts it (the one in
#: /usr/sbin switches to the rabbitmq user, whose files we cannot write).
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
MACHINE_BROKER = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")


def rabbitmqctl(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    done = subprocess.run([RABBITMQCTL, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


class VirtualHost:
    """A virtual host on the machine's RabbitMQ, made for a test session and
    deleted after it (with every queue in it)."""

    def __init__(self) -> None:
        self.name = f"webapp-test-{uuid.uuid4().hex[:8]}"
        self.url = f"{MACHINE_BROKER}/{self.name}"

    def create(self) -> VirtualHost:
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)

    def ready(self, queue: str) -> int:
        """Messages ready in ``queue`` now (rabbitmqctl's figures lag)."""
        import kombu

        with kombu.Connection(self.url) as connection:
            return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)

    def queues(self) -> dict[str, dict[str, Any]]:
        """Each queue's type, messages (ready and unacknowledged) and
        arguments, by name."""
        out = rabbitmqctl("list_queues", "-q", "-p", self.name, "--formatter", "json",
                          "name", "type", "messages", "messages_unacknowledged", "arguments")
        return {queue["name"]: queue for queue in json.loads(out)}

    def bindings(self) -> set[tuple[str, str]]:
        """Each binding as (source exchange, destination)."""
        out = rabbitmqctl("list_bindings", "-q", "-p", self.name, "--formatter", "json",
                          "source_name", "destination_name")
        return {(binding["source_name"], binding["destination_name"]) for binding in json.loads(out)}


class PrivateRabbitMQ:
    """A RabbitMQ node of the test's own, which the test may stop and start
    again: a durable queue keeps its messages across that (the node's data
    directory stays)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"webapp-test-{self.port}@localhost"
        self.workdir = Path(tempfile.mkdtemp(prefix="webapp-rabbitmq-"))
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.process: ManagedProcess | None = None
        (self.workdir / "enabled_plugins").write_text("[].\n")
        (self.workdir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.workdir / "rabbitmq-env.conf").write_text("")

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.workdir),  # the node's Erlang cookie, and rabbitmqctl's
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq"),
            "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.workdir / "pid"),
        }

    def start(self) -> PrivateRabbitMQ:
        self.process = ManagedProcess(f"rabbitmq:{self.port}", [RABBITMQ_SERVER], self.env,
                                      self.workdir / "server.log").start()
        wait_for(self.answers, timeout=90, interval=0.25, message=f"RabbitMQ node {self.node} to start")
        return self

    def answers(self) -> bool:
        import kombu

        try:
            with kombu.Connection(self.url, connect_timeout=1) as connection:
                connection.ensure_connection(max_retries=1)
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def stop(self) -> None:
        """Graceful (rabbitmqctl stop): the node writes its queues down."""
        if self.process is None:
            return
        try:
            rabbitmqctl("-n", self.node, "stop", env=self.env)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        self.process.stop(timeout=30)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
