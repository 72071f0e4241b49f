"""Fixtures of the container suite: the compose stack, up once per session,
and the stack on a three-node RabbitMQ cluster, up for its own module first.

The suite is marked ``containers`` and left out of ``make test`` (setup.cfg);
``make test-containers`` (and so ``.ci/run``) runs it. It needs a Docker
engine: ``scripts/ensure_docker.sh`` installs and starts one where it can,
and ``.ci/run`` runs it first. Without an engine the suite fails, saying so.

Each scenario's figures (acknowledged, stored) are printed at the end of the
run, in the "container stack" section.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ..support.processes import ROOT
from ..support.waiting import wait_for
from .stack import ClusterStack, Stack, engine_answers
from .traffic import ROADMAP_INPUT, Tally, execution_messages

#: Lines for the end of the run: image sizes, scenario figures, timings.
REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT:
        terminalreporter.section("container stack")
        for line in REPORT:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The RabbitMQ cluster's tests first: their stack is up and removed
    before the Redis stack (up for the rest of the session) starts, so that
    the two never share the machine."""
    items.sort(key=lambda item: item.path.name != "test_rabbitmq_cluster.py")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The stack, built and started as ``make docker-up`` does, every
    service healthy and /readyz answering 200; removed with its volumes at
    the end (the images are kept, for the next run)."""
    yield from running(Stack, ROOT / "var" / "tests-containers", "scripts/docker_up.sh")


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterStack]:
    """The stack on a three-node RabbitMQ cluster, started as ``make
    docker-up-rabbitmq`` does, under a project of its own; removed with its
    volumes when its module's tests are done."""
    yield from running(ClusterStack, ROOT / "var" / "tests-containers-rabbitmq",
                       "WEBAPP_COMPOSE_FILE=docker/docker-compose.rabbitmq.yml scripts/docker_up.sh")


def running(kind: type[Stack], workdir: Path, command: str) -> Iterator[Stack]:
    problem = engine_answers()
    if problem:
        pytest.fail(f"no Docker engine answers ({problem}): run scripts/ensure_docker.sh "
                    "(as root on Debian it installs and starts one)", pytrace=False)
    # Not under pytest's temporary directories, which other suites' runs on
    # the machine prune: the services' output stays for a post-mortem.
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    stack = kind(workdir)
    stack.write_env_file()
    log = workdir / "docker_up.log"
    stack.down()  # what an interrupted earlier run of this project left
    started = time.monotonic()
    try:
        stack.up(log)
        REPORT.append(f"{command} (images and stack, project {stack.project}): "
                      f"{time.monotonic() - started:.0f} s")
        stack.wait_ready()
        yield stack
    finally:
        _keep_logs(stack, workdir)
        REPORT.append(f"the services' output: {(workdir / 'services.log').relative_to(ROOT)}")
        stopped = time.monotonic()
        stack.down()
        REPORT.append(f"project {stack.project} removed in {time.monotonic() - stopped:.0f} s")


def _keep_logs(stack: Stack, workdir: Path) -> None:
    """The services' output, for a failure's post-mortem."""
    try:
        (workdir / "services.log").write_text(stack.compose("logs", "--no-color", "--timestamps"))
    except AssertionError as error:
        (workdir / "services.log").write_text(str(error))


@pytest.fixture(scope="session")
def engine(stack: Stack) -> Iterator[sa.engine.Engine]:
    """The stack's PostgreSQL, through the port it publishes on 127.0.0.1."""
    engine = stack.engine()
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def roadmap_reference(stack: Stack, engine: sa.engine.Engine) -> list[str]:
    return reference_run(stack, engine)


def reference_run(stack: Stack, engine: sa.engine.Engine) -> list[str]:
    """The log messages of a roadmap run on the quiet stack: every run of the
    same input logs the same ones (the steps are deterministic). Two runs,
    read until both logs are whole and equal: a batch still on its way makes
    them differ. (A reference short of a record could only fail the tests
    that compare with it, never pass them.)"""
    runs = []
    for _ in range(2):
        answer = stack.api("POST", "/api/v1/executions", {"workflow": "roadmap", "input": ROADMAP_INPUT})
        assert answer.status == 202, answer
        runs.append(answer.body["id"])

    def whole_and_equal() -> list[str] | None:
        logs = [execution_messages(engine, run) for run in runs]
        ended = all("workflow roadmap succeeded" in messages for messages in logs)
        return logs[0] if ended and Counter(logs[0]) == Counter(logs[1]) else None

    return wait_for(whole_and_equal, timeout=60, interval=0.5, message="two whole, equal roadmap logs")


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """A scenario's figures, reported whether it passed or not."""
    tally = Tally(request.node.name.removeprefix("test_"))
    started = time.monotonic()
    yield tally
    REPORT.append(f"{tally.line()} [{time.monotonic() - started:.0f} s]")
