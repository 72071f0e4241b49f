"""The roadmap runners on their own: goal parsing, curriculum design,
validation and scheduling, and the catalog they ship."""

from __future__ import annotations

import copy

import pytest
from webapp_roadmap.catalog import LEVELS, load_catalog
from webapp_roadmap.curriculum import CurriculumDesign, design
from webapp_roadmap.intent import (
    IntentAnalysis,
    parse_deadline_weeks,
    parse_known,
    parse_level,
    parse_weekly_hours,
)
from webapp_roadmap.schedule import Schedule, lay_out
from webapp_roadmap.validation import RoadmapValidation, budget_problems, curriculum_problems

from webapp.workflow import InvalidInput, StepContext, StepLogger


@pytest.fixture
def run(app):
    """Run a runner as the brain would, logging through the app's logger."""

    def run_(runner, workflow_input=None, outputs=None):
        context = StepContext(
            execution_id="unit-roadmap", workflow="roadmap", step=runner.name, attempt=1,
            workflow_input=runner.load_input(workflow_input or {}), outputs=outputs or {},
            logger=StepLogger("unit-roadmap", runner.name, app.extensions["execlog"]),
        )
        return runner.check_output(runner().run(context))

    return run_


@pytest.mark.parametrize(
    "text, hours",
    [
        ("5 hours a week", 5), ("10h/week", 10), ("3 hrs per week", 3), ("1 hour a day", 7),
        ("an hour a day", 7), ("30 minutes every day", 3.5), ("two hours per week", 2),
        ("half an hour a day", 3.5), ("1.5 hours each day", 10.5), ("learn python", None),
    ],
)
def test_weekly_hours_from_the_goal(text, hours):
    assert parse_weekly_hours(text) == hours


@pytest.mark.parametrize(
    "text, weeks",
    [("in 8 weeks", 8), ("within 3 months", 13), ("over a year", 52), ("in two months", 9),
     ("for the next 6 weeks", 6), ("learn python", None)],
)
def test_the_deadline_from_the_goal(text, weeks):
    assert parse_deadline_weeks(text) == weeks


@pytest.mark.parametrize(
    "text, level",
    [("I'm new to Python", "beginner"), ("I know the basics of SQL", "intermediate"),
     ("an experienced developer going in depth", "advanced"),
     ("a beginner who wants to master Python", "beginner"), ("learn sql", None)],
)
def test_the_level_from_the_goal(text, level):
    assert parse_level(text) == level


@pytest.mark.parametrize(
    "goal, topic, related",
    [
        ("learn machine learning with Python", "machine-learning", ["python"]),
        ("Python for data science", "python", ["machine-learning"]),
        ("become a web developer: HTML, CSS", "web", []),
        ("write better HTML", "web", []),
        ("understand ML", "machine-learning", []),
        ("query Postgres databases", "sql", []),
    ],
)
def test_the_topic_is_the_first_named(goal, topic, related):
    matches = load_catalog().match(goal)
    assert [m.topic.id for m in matches] == [topic, *related]


def test_what_the_learner_knows_is_left_out():
    python = load_catalog().topic("python")
    known = parse_known("I already know loops and functions, not classes.", python)
    assert known == ["py-control", "py-functions"]
    assert parse_known("I want to learn loops", python) == []


def test_intent_reads_the_goal_and_preferences_win(run):
    intent = run(IntentAnalysis, {"goal": "New to SQL, 2 hours a week, in 10 weeks", "weekly_hours": 4})
    assert {k: intent[k] for k in ("topic", "level", "weekly_hours", "deadline_weeks")} == {
        "topic": "sql", "level": "beginner", "weekly_hours": 4, "deadline_weeks": 10}
    assert intent["sources"] == {"level": "goal", "weekly_hours": "preference", "deadline_weeks": "goal"}
    assert intent["notes"] == ["weekly_hours: the preference (4.0) overrides the goal text (2.0)"]
    assert intent["constraints"] == {"known_concepts": [], "budget_hours": 40}


@pytest.mark.parametrize(
    "goal, message",
    [
        ("learn to juggle", "no known topic in the goal; the catalog covers Machine learning, "
                            "Web development, SQL and relational databases, Python programming"),
        ("learn python, 100 hours a week", "100 hours a week is not a study plan; give 0.5 to 80"),
        ("learn python over 10 years", "a deadline of 520 weeks is out of range; give 1 to 260"),
    ],
)
def test_intent_refuses_a_goal_it_cannot_plan_for(run, goal, message):
    with pytest.raises(InvalidInput) as refused:
        run(IntentAnalysis, {"goal": goal})
    assert refused.value.message == message
    assert refused.value.fields == {"goal": [message]}


@pytest.mark.parametrize("topic", ["python", "sql", "machine-learning", "web"])
@pytest.mark.parametrize("level", LEVELS)
def test_every_curriculum_of_the_catalog_is_valid(app, topic, level):
    log = StepLogger("unit-roadmap", "curriculum", app.extensions["execlog"])
    curriculum = design(load_catalog().topic(topic), level, [], log)
    assert curriculum_problems(curriculum) == []
    assert curriculum["stages"] and curriculum["total_hours"] > 0


def test_a_curriculum_leaves_out_what_is_below_the_level_or_known(run):
    intent = run(IntentAnalysis, {"goal": "intermediate Python; I already know classes"})
    curriculum = run(CurriculumDesign, outputs={"intent": intent})
    ids = [c["id"] for s in curriculum["stages"] for m in s["modules"] for c in m["concepts"]]
    assert ids[:2] == ["py-modules", "py-errors"] and "py-classes" not in ids
    assert set(curriculum["assumed_known"]) == {
        "py-setup", "py-syntax", "py-control", "py-functions", "py-collections", "py-strings", "py-classes"}
    assert [s["title"] for s in curriculum["stages"]] == ["Core", "Advanced"]  # Foundations left empty
    assert curriculum["total_hours"] == sum(c["hours"] for s in curriculum["stages"]
                                            for m in s["modules"] for c in m["concepts"])


CURRICULUM = {
    "title": "T", "level": "beginner", "assumed_known": ["known"], "total_hours": 6,
    "stages": [{"title": "One", "modules": [{"title": "M", "concepts": [
        {"id": "a", "title": "A", "hours": 2, "requires": ["known"]},
        {"id": "b", "title": "B", "hours": 4, "requires": ["a"]},
    ]}]}],
}


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda c: c["stages"][0]["modules"][0]["concepts"].reverse(),
         "concept 'b' requires 'a', which does not come before it"),
        (lambda c: c["stages"].append({"title": "Two", "modules": []}), "stage 'Two' is empty"),
        (lambda c: c["stages"][0]["modules"].append({"title": "N", "concepts": []}),
         "module 'N' of stage 'One' is empty"),
        (lambda c: c["stages"][0]["modules"][0]["concepts"][1].update(id="a", requires=[]),
         "concept 'a' appears twice"),
        (lambda c: c["stages"][0]["modules"][0]["concepts"][0].update(hours=0),
         "concept 'a' has no estimated hours"),
        (lambda c: c.update(stages=[]),
         "the curriculum is empty: the learner already knows all of T at level beginner"),
    ],
)
def test_validation_finds_what_makes_a_curriculum_unlearnable(change, problem):
    assert curriculum_problems(CURRICULUM) == []
    broken = copy.deepcopy(CURRICULUM)
    change(broken)
    assert curriculum_problems(broken) == [problem]


def test_validation_says_what_budget_would_do():
    intent = {"weekly_hours": 2.5, "deadline_weeks": 2, "constraints": {"budget_hours": 5}}
    assert budget_problems(CURRICULUM, intent) == [
        "it needs 6 h of study, but 2.5 h a week for 2 weeks gives 5 h; "
        "allow at least 3 weeks at 2.5 h a week, or 3 h a week for 2 weeks"]
    assert budget_problems(CURRICULUM, {**intent, "constraints": {"budget_hours": None}}) == []


def test_the_validation_runner_fails_as_invalid_input_with_every_problem(run):
    intent = {"weekly_hours": 1, "deadline_weeks": 1, "constraints": {"budget_hours": 1}}
    broken = copy.deepcopy(CURRICULUM)
    broken["stages"].append({"title": "Two", "modules": []})
    with pytest.raises(InvalidInput) as refused:
        run(RoadmapValidation, outputs={"intent": intent, "curriculum": broken})
    assert refused.value.details["problems"] == [
        "stage 'Two' is empty",
        "it needs 6 h of study, but 1 h a week for 1 weeks gives 1 h; allow at least 6 weeks at 1 h a week, "
        "or 6 h a week for 1 weeks",
    ]


def test_the_schedule_fills_weeks_in_order_and_splits_what_does_not_fit():
    stages = [
        {"title": "One", "modules": [{"title": "M", "concepts": [
            {"id": "a", "title": "A", "hours": 2.5}, {"id": "b", "title": "B", "hours": 4}]}]},
        {"title": "Two", "modules": [{"title": "N", "concepts": [{"id": "c", "title": "C", "hours": 1}]}]},
    ]
    weeks, milestones = lay_out(stages, 3)
    laid_out = [(w["week"], w["hours"], [(s["concept_id"], s["hours"]) for s in w["sessions"]])
                for w in weeks]
    assert laid_out == [
        (1, 3.0, [("a", 2.5), ("b", 0.5)]),
        (2, 3.0, [("b", 3.0)]),
        (3, 1.5, [("b", 0.5), ("c", 1.0)]),
    ]
    assert milestones == [{"week": 3, "title": "One complete", "concepts": ["a", "b"]},
                          {"week": 3, "title": "Two complete", "concepts": ["c"]}]


def test_the_schedule_runner_returns_a_roadmap_that_matches_its_schema(run):
    intent = run(IntentAnalysis, {"goal": "Web development from scratch, 6 hours a week"})
    curriculum = run(CurriculumDesign, outputs={"intent": intent})
    roadmap = run(Schedule, outputs={"intent": intent, "curriculum": curriculum})
    assert roadmap["weeks_needed"] == 9 and roadmap["total_hours"] == 51
    assert roadmap["title"] == "Web development roadmap (beginner)"
