"""Curriculum design: the topic's stages, modules and concepts from the
catalog, without what the learner already knows (concepts taught below their
level, and those they named), each concept with its estimated hours and the
concepts it requires."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from webapp.workflow import Runner, StepContext, StepLogger

from .catalog import LEVELS, Concept, Topic, load_catalog

AGENT = "curriculum-designer"


class CurriculumDesign(Runner):
    name = "curriculum"

    def run(self, context: StepContext) -> dict[str, Any]:
        started = time.perf_counter()
        intent = context.outputs["intent"]
        log = context.logger
        log.log_agent_start(AGENT, f"designing a {intent['level']} curriculum for {intent['topic_title']}",
                            details={"topic": intent["topic"], "level": intent["level"]})
        topic = self._lookup(log, intent["topic"])
        curriculum = design(topic, intent["level"], intent["constraints"]["known_concepts"], log)
        log.log_agent_complete(
            AGENT, f"{curriculum['concept_count']} concepts in {len(curriculum['stages'])} stages, "
                   f"{curriculum['total_hours']:g} h",
            duration_ms=(time.perf_counter() - started) * 1000.0,
            details={"stages": len(curriculum["stages"]), "concepts": curriculum["concept_count"],
                     "total_hours": curriculum["total_hours"],
                     "assumed_known": len(curriculum["assumed_known"])},
        )
        return curriculum

    def _lookup(self, log: StepLogger, topic_id: str) -> Topic:
        started = time.perf_counter()
        topic = load_catalog().topic(topic_id)
        log.log_tool_call(
            AGENT, "catalog.lookup_topic", f"catalog entry {topic_id}: {len(topic.concepts())} concepts",
            duration_ms=(time.perf_counter() - started) * 1000.0,
            details={"topic": topic_id, "stages": [stage.title for stage in topic.stages]},
        )
        return topic


def design(topic: Topic, level: str, known: Collection[str], log: StepLogger) -> dict[str, Any]:
    """The curriculum of ``topic`` for a learner at ``level`` who knows the
    concepts ``known``; stages and modules left empty are dropped."""
    rank = LEVELS.index(level)
    assumed: list[str] = []
    stages = []
    for stage in topic.stages:
        modules = []
        for module in stage.modules:
            concepts = []
            for concept in module.concepts:
                reason = _why_skip(concept, rank, known)
                if reason:
                    assumed.append(concept.id)
                    log.debug("agent", f"skipping {concept.title}: {reason}", agent_name=AGENT,
                              concept_id=concept.id)
                    continue
                concepts.append({"id": concept.id, "title": concept.title, "hours": concept.hours,
                                 "requires": list(concept.requires)})
                log.debug("agent", f"concept {concept.title} ({concept.hours:g} h)", agent_name=AGENT,
                          concept_id=concept.id, details={"requires": list(concept.requires)})
            if concepts:
                modules.append({"title": module.title, "concepts": concepts, "hours": _hours(concepts)})
        if modules:
            stages.append({"title": stage.title, "modules": modules,
                           "hours": round(sum(m["hours"] for m in modules), 2)})
    return {
        "topic": topic.id,
        "title": topic.title,
        "level": level,
        "stages": stages,
        "concept_count": sum(len(m["concepts"]) for s in stages for m in s["modules"]),
        "total_hours": round(sum(s["hours"] for s in stages), 2),
        "assumed_known": assumed,
    }


def _why_skip(concept: Concept, rank: int, known: Collection[str]) -> str | None:
    if concept.id in known:
        return "the learner knows it"
    if LEVELS.index(concept.level) < rank:
        return f"a {concept.level} concept, below the learner's level"
    return None


def _hours(concepts: list[dict[str, Any]]) -> float:
    return round(sum(c["hours"] for c in concepts), 2)
