"""Validation: the curriculum must be learnable as planned. Its total hours
fit the budget (weekly hours x deadline weeks), every prerequisite comes
before the concepts that need it (or is already known), and no stage or
module is empty. Otherwise the step fails as invalid input, with every
problem and what would fix the budget."""

from __future__ import annotations

import math
import time
from typing import Any

from webapp.workflow import InvalidInput, Runner, StepContext

AGENT = "roadmap-validator"


class RoadmapValidation(Runner):
    name = "validate"

    def run(self, context: StepContext) -> dict[str, Any]:
        started = time.perf_counter()
        intent, curriculum = context.outputs["intent"], context.outputs["curriculum"]
        log = context.logger
        log.log_agent_start(AGENT, "checking the curriculum against the learner's budget")
        problems = curriculum_problems(curriculum) + budget_problems(curriculum, intent)
        summary = {
            "total_hours": curriculum["total_hours"],
            "budget_hours": intent["constraints"]["budget_hours"],
            "weekly_hours": intent["weekly_hours"],
            "weeks_needed": math.ceil(curriculum["total_hours"] / intent["weekly_hours"]),
        }
        if problems:
            message = "the roadmap cannot be built: " + "; ".join(problems)
            log.log_agent_error(AGENT, "the curriculum does not fit", error=message,
                                details={"problems": problems, **summary})
            raise InvalidInput(message, details={"problems": problems, **summary})
        log.log_agent_complete(AGENT, "the curriculum fits",
                               duration_ms=(time.perf_counter() - started) * 1000.0, details=summary)
        return {"valid": True, **summary}


def curriculum_problems(curriculum: dict[str, Any]) -> list[str]:
    """Empty parts, concepts without hours, and prerequisites out of order."""
    if not curriculum["stages"]:
        return [f"the curriculum is empty: the learner already knows all of {curriculum['title']} "
                f"at level {curriculum['level']}"]
    problems = []
    seen = set(curriculum["assumed_known"])
    for stage in curriculum["stages"]:
        if not stage["modules"]:
            problems.append(f"stage {stage['title']!r} is empty")
        for module in stage["modules"]:
            if not module["concepts"]:
                problems.append(f"module {module['title']!r} of stage {stage['title']!r} is empty")
            for concept in module["concepts"]:
                problems.extend(_concept_problems(concept, seen))
                seen.add(concept["id"])
    return problems


def _concept_problems(concept: dict[str, Any], seen: set[str]) -> list[str]:
    problems = []
    if concept["id"] in seen:
        problems.append(f"concept {concept['id']!r} appears twice")
    if not concept["hours"] > 0:
        problems.append(f"concept {concept['id']!r} has no estimated hours")
    for required in concept["requires"]:
        if required not in seen:
            problems.append(f"concept {concept['id']!r} requires {required!r}, which does not come before it")
    return problems


def budget_problems(curriculum: dict[str, Any], intent: dict[str, Any]) -> list[str]:
    budget = intent["constraints"]["budget_hours"]
    total, weekly, weeks = curriculum["total_hours"], intent["weekly_hours"], intent["deadline_weeks"]
    if budget is None or total <= budget:
        return []
    return [
        f"it needs {total:g} h of study, but {weekly:g} h a week for {weeks} weeks gives {budget:g} h; "
        f"allow at least {math.ceil(total / weekly)} weeks at {weekly:g} h a week, "
        f"or {math.ceil(total / weeks * 10) / 10:g} h a week for {weeks} weeks"
    ]
