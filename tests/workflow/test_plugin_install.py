"""Plugins arrive by ``pip install``: throwaway distributions, built and
installed into this test environment for the module and uninstalled after,
show up in the registry of a new app with no change to the app; broken ones
are reported with the reason and the app starts all the same."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest

from webapp.config import celery_config

from webapp.workflow import start_execution
from webapp.workflow.brain import WorkflowBrain

from ..support.processes import ROOT, free_port
from .wheels import build_wheel, build_wheel_from_project, install, uninstall

THROWAWAY = "webapp-throwaway"
HELLO = "webapp-hello"

THROWAWAY_MODULE = '''
from webapp.workflow import Runner, Workflow


class Shout(Runner):
    name = "shout"

    def run(self, context):
        return {"text": context.workflow_input.get("text", "").upper()}


def helper():
    return "not a runner"


SHOUT = Workflow("shout", ["shout"])
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """webapp-throwaway 1.2.3 (a good runner and workflow, an import error,
    a function where a runner should be, and a runner named like the one of
    the other distribution) and the README's example,
    docs/examples/hello-plugin. They collide with each other only, so that
    a run killed before the uninstall cannot break the built-in workflows
    for the next session's worker."""
    dest = tmp_path_factory.mktemp("wheels")
    throwaway = build_wheel(
        dest, THROWAWAY, "1.2.3",
        {
            "webapp_throwaway/__init__.py": textwrap.dedent(THROWAWAY_MODULE),
            "webapp_throwaway/broken.py": "import webapp_missing_dependency\n",
        },
        {
            "webapp.runners": {
                "shout": "webapp_throwaway:Shout",
                "broken": "webapp_throwaway.broken:Thing",
                "helper": "webapp_throwaway:helper",
                "hello": "webapp_throwaway:Shout",
            },
            "webapp.workflows": {"shout": "webapp_throwaway:SHOUT"},
        },
    )
    hello = build_wheel_from_project(ROOT / "docs" / "examples" / "hello-plugin", dest)
    install(throwaway, hello)
    yield
    uninstall(THROWAWAY, HELLO)
    for module in ("webapp_throwaway", "webapp_throwaway.broken", "webapp_hello"):
        sys.modules.pop(module, None)


pytestmark = pytest.mark.usefixtures("installed")


def listing(app) -> dict[tuple[str, str, str], dict]:
    return {(item["kind"], item["name"], item["source"]): item
            for item in app.extensions["workflow_registry"].describe()}


def test_an_installed_plugin_appears_with_its_distribution_and_version(app_factory):
    found = listing(app_factory())
    assert found[("runner", "shout", "webapp_throwaway:Shout")] == {
        "kind": "runner", "name": "shout", "source": "webapp_throwaway:Shout",
        "distribution": THROWAWAY, "version": "1.2.3", "status": "ok", "reason": None,
    }
    shout = found[("workflow", "shout", "webapp_throwaway:SHOUT")]
    assert (shout["status"], [s["runner"] for s in shout["steps"]]) == ("ok", ["shout"])
    assert found[("workflow", "roadmap", "webapp_roadmap.workflow:ROADMAP")]["status"] == "ok"


def test_broken_plugins_are_reported_with_the_reason_and_the_app_starts(app_factory):
    app = app_factory()
    found = listing(app)
    broken = found[("runner", "broken", "webapp_throwaway.broken:Thing")]
    assert (broken["status"], broken["reason"]) == (
        "broken", "ModuleNotFoundError: No module named 'webapp_missing_dependency'")
    helper = found[("runner", "helper", "webapp_throwaway:helper")]
    assert re.fullmatch(r"<function helper at .*> is not a subclass of webapp.workflow.Runner",
                        helper["reason"])
    assert app.test_client().get("/healthz").json == {"status": "ok"}


def test_a_name_two_distributions_claim_is_broken_in_both_with_the_workflows_using_it(app_factory):
    found = listing(app_factory())
    ours = found[("runner", "hello", "webapp_throwaway:Shout")]
    theirs = found[("runner", "hello", "webapp_hello:Hello")]
    duplicate = "duplicate runner name 'hello', also declared by"
    assert (ours["status"], ours["reason"]) == (
        "broken", f"{duplicate} webapp_hello:Hello (webapp-hello 1.0.0)")
    assert theirs["reason"] == f"{duplicate} webapp_throwaway:Shout (webapp-throwaway 1.2.3)"
    assert found[("workflow", "hello", "webapp_hello:HELLO")]["reason"] == (
        "step 'hello': runner 'hello' is broken")


def test_the_deny_list_keeps_plugins_from_being_imported(app_factory):
    for module in ("webapp_throwaway", "webapp_throwaway.broken"):
        sys.modules.pop(module, None)
    found = listing(app_factory(WEBAPP_DISABLED_PLUGINS="Webapp_Throwaway, synthetic-emit"))
    assert "webapp_throwaway" not in sys.modules
    for key in [("runner", "shout", "webapp_throwaway:Shout"),
                ("workflow", "shout", "webapp_throwaway:SHOUT"),
                ("runner", "broken", "webapp_throwaway.broken:Thing"),
                ("runner", "hello", "webapp_throwaway:Shout"),
                ("workflow", "synthetic-emit", "webapp_synthetic:SYNTHETIC_EMIT")]:
        assert (found[key]["status"], found[key]["reason"]) == (
            "disabled", "disabled by WEBAPP_DISABLED_PLUGINS")
    # With its rival denied, webapp-hello's runner is no longer a duplicate.
    assert found[("runner", "hello", "webapp_hello:Hello")]["status"] == "ok"
    assert found[("workflow", "hello", "webapp_hello:HELLO")]["status"] == "ok"


def test_flask_runners_list_prints_every_plugin_with_its_status(app_factory):
    result = app_factory().test_cli_runner().invoke(args=["runners", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["KIND", "NAME", "DISTRIBUTION", "VERSION", "STATUS"]
    rows = [re.split(r"\s{2,}", line, maxsplit=4) for line in lines[1:]]
    assert ["runner", "shout", THROWAWAY, "1.2.3", "ok"] in rows
    assert ["runner", "broken", THROWAWAY, "1.2.3",
            "broken: ModuleNotFoundError: No module named 'webapp_missing_dependency'"] in rows
    assert ["workflow", "roadmap", "webapp-roadmap", "0.1.0", "ok"] in rows
    assert ["workflow", "hello", HELLO, "1.0.0", "broken: step 'hello': runner 'hello' is broken"] in rows
    # Columns line up: every STATUS starts where the header's does.
    column = lines[0].index("STATUS")
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in lines[1:])


def test_the_registry_is_built_without_a_database(app_factory):
    """Discovery never queries the database: the app builds and lists its
    plugins with the database unreachable."""
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere"
    app = app_factory(SQLALCHEMY_DATABASE_URI=url)
    result = app.test_cli_runner().invoke(args=["runners", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert '"name": "roadmap"' in result.output


def test_the_readme_example_plugin_runs(app_factory, spare_broker, tmp_path):
    app = app_factory(CELERY=celery_config(spare_broker, tmp_path),
                      WEBAPP_DISABLED_PLUGINS="webapp-throwaway")
    with app.app_context():
        execution = start_execution("hello", {"who": "plugins"})
        assert WorkflowBrain.for_current_app().run(execution.id) == "succeeded"
        assert execution.result == {"greeting": "Hello, plugins!"}
    app.extensions["execlog"].close(timeout=10)
