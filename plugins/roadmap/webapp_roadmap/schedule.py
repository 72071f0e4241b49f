"""Schedule: lays the validated curriculum over weeks of the learner's weekly
hours, in order, splitting a concept over weeks when it does not fit, with a
milestone at the end of each stage. Its output is the roadmap."""

from __future__ import annotations

import time
from typing import Any

from marshmallow import Schema, fields

from webapp.execlog import LogCategory
from webapp.workflow import Runner, StepContext

AGENT = "scheduler"


class SessionSchema(Schema):
    concept_id = fields.String(required=True)
    title = fields.String(required=True)
    hours = fields.Float(required=True)


class WeekSchema(Schema):
    week = fields.Integer(required=True)
    hours = fields.Float(required=True)
    sessions = fields.List(fields.Nested(SessionSchema), required=True)


class MilestoneSchema(Schema):
    week = fields.Integer(required=True)
    title = fields.String(required=True)
    concepts = fields.List(fields.String(), required=True)


class RoadmapSchema(Schema):
    """The roadmap, the result of the ``roadmap`` workflow."""

    roadmap_id = fields.String(required=True)
    title = fields.String(required=True)
    goal = fields.String(required=True)
    topic = fields.String(required=True)
    level = fields.String(required=True)
    weekly_hours = fields.Float(required=True)
    deadline_weeks = fields.Integer(required=True, allow_none=True)
    total_hours = fields.Float(required=True)
    weeks_needed = fields.Integer(required=True)
    stages = fields.List(fields.Dict(), required=True)
    weeks = fields.List(fields.Nested(WeekSchema), required=True)
    milestones = fields.List(fields.Nested(MilestoneSchema), required=True)
    assumed_known = fields.List(fields.String(), required=True)
    notes = fields.List(fields.String(), required=True)


class Schedule(Runner):
    name = "schedule"
    output_schema = RoadmapSchema

    def run(self, context: StepContext) -> dict[str, Any]:
        started = time.perf_counter()
        intent, curriculum = context.outputs["intent"], context.outputs["curriculum"]
        log = context.logger
        log.log_agent_start(AGENT, f"laying {curriculum['total_hours']:g} h over weeks of "
                                   f"{intent['weekly_hours']:g} h")
        with log.timed_operation(LogCategory.AGENT, "schedule layout", agent_name=AGENT,
                                 roadmap_id=context.execution_id) as timer:
            weeks, milestones = lay_out(curriculum["stages"], intent["weekly_hours"])
            timer.set_details({"weeks": len(weeks), "milestones": len(milestones)})
        roadmap = {
            "roadmap_id": context.execution_id,
            "title": f"{curriculum['title']} roadmap ({intent['level']})",
            "goal": intent["goal"],
            "topic": intent["topic"],
            "level": intent["level"],
            "weekly_hours": intent["weekly_hours"],
            "deadline_weeks": intent["deadline_weeks"],
            "total_hours": curriculum["total_hours"],
            "weeks_needed": len(weeks),
            "stages": curriculum["stages"],
            "weeks": weeks,
            "milestones": milestones,
            "assumed_known": curriculum["assumed_known"],
            "notes": intent["notes"],
        }
        log.log_agent_complete(AGENT, f"roadmap of {len(weeks)} weeks",
                               duration_ms=(time.perf_counter() - started) * 1000.0,
                               details={"weeks": len(weeks), "milestones": len(milestones)})
        return roadmap


Weeks = list[dict[str, Any]]
Milestones = list[dict[str, Any]]


def lay_out(stages: list[dict[str, Any]], weekly_hours: float) -> tuple[Weeks, Milestones]:
    """Weeks of at most ``weekly_hours``, filled in curriculum order, and a
    milestone at the week each stage ends. Counted in minutes, so that
    fractions of hours add up exactly."""
    capacity = round(weekly_hours * 60)
    weeks: list[dict[str, Any]] = [{"week": 1, "minutes": 0, "sessions": []}]
    milestones = []
    for stage in stages:
        concepts = [c for module in stage["modules"] for c in module["concepts"]]
        for concept in concepts:
            remaining = round(concept["hours"] * 60)
            while remaining > 0:
                if weeks[-1]["minutes"] >= capacity:
                    weeks.append({"week": len(weeks) + 1, "minutes": 0, "sessions": []})
                taken = min(capacity - weeks[-1]["minutes"], remaining)
                weeks[-1]["sessions"].append({"concept_id": concept["id"], "title": concept["title"],
                                              "hours": round(taken / 60, 2)})
                weeks[-1]["minutes"] += taken
                remaining -= taken
        milestones.append({"week": len(weeks), "title": f"{stage['title']} complete",
                           "concepts": [c["id"] for c in concepts]})
    return [{"week": w["week"], "hours": round(w["minutes"] / 60, 2), "sessions": w["sessions"]}
            for w in weeks], milestones
