"""Intent analysis: a learning goal in free text -> topic, level, weekly
hours, deadline and what the learner already knows.

Deterministic keyword and pattern matching: "I'm new to Python, 1 hour a
day, ready in 3 months" is python, beginner, 7 h a week, 13 weeks.
Preferences given beside the goal (``weekly_hours``, ``level``,
``deadline_weeks``) win over what the text says, and the output notes it.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from marshmallow import Schema, fields, validate

from webapp.workflow import InvalidInput, Runner, StepContext

from .catalog import LEVELS, Topic, load_catalog

AGENT = "intent-analyst"
DEFAULT_WEEKLY_HOURS = 5.0
MAX_WEEKLY_HOURS = 80.0
MAX_DEADLINE_WEEKS = 260

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "half an": 0.5, "half a": 0.5,
}
_NUMBER = r"(\d+(?:\.\d+)?|half an?|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_EVERY = r"\s*(?:a|an|per|each|every|/)\s*"
_HOURS = re.compile(rf"\b{_NUMBER}\s*(hours?|hrs?|h|minutes?|mins?){_EVERY}(day|week)\b", re.IGNORECASE)
_DEADLINE = re.compile(
    rf"\b(?:in|within|over|for|next|by)\s+(?:the\s+next\s+)?{_NUMBER}\s+(weeks?|months?|years?)\b",
    re.IGNORECASE,
)
_LEVEL_PATTERNS = (  # checked in this order: what the learner is beats what they want to become
    ("beginner", r"beginner|novice|from scratch|new to|never (?:programmed|coded|used|written|learned)|"
                 r"no (?:prior )?experience|zero experience|first steps"),
    ("intermediate", r"intermediate|some experience|know the basics|familiar with the basics|"
                     r"comfortable with|a bit of experience"),
    ("advanced", r"advanced|expert|experienced|deepen|master|mastery|in[- ]depth"),
)
# "I already know X and Y" up to the end of the sentence or a "but", "not"...
_KNOWN = re.compile(
    r"\b(?:already know|already use|already understand|already familiar with|i know|i'm familiar with|"
    r"i am familiar with|i'm comfortable with|i am comfortable with)\b"
    r"((?:(?!\b(?:but|not|except|however|though)\b)[^.;!?])*)",
    re.IGNORECASE,
)


class RoadmapInput(Schema):
    """The roadmap workflow's input: the goal, and optional preferences."""

    goal = fields.String(required=True, validate=validate.Length(min=3, max=2000))
    weekly_hours = fields.Float(validate=validate.Range(min=0.5, max=MAX_WEEKLY_HOURS))
    level = fields.String(validate=validate.OneOf(LEVELS))
    deadline_weeks = fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_DEADLINE_WEEKS))


class IntentAnalysis(Runner):
    name = "intent"
    input_schema = RoadmapInput

    def run(self, context: StepContext) -> dict[str, Any]:
        started = time.perf_counter()
        goal = context.workflow_input["goal"]
        log = context.logger
        log.log_agent_start(AGENT, "analysing the learning goal", details={"goal_chars": len(goal)})
        topic, related = self._topic(context, goal)
        preferences = context.workflow_input
        intent: dict[str, Any] = {"goal": goal, "topic": topic.id, "topic_title": topic.title,
                                  "related_topics": related, "sources": {}, "notes": []}
        for key, parsed, default in (
            ("level", parse_level(goal), "beginner"),
            ("weekly_hours", parse_weekly_hours(goal), DEFAULT_WEEKLY_HOURS),
            ("deadline_weeks", parse_deadline_weeks(goal), None),
        ):
            _settle(intent, key, preferences.get(key), parsed, default)
        _check_parsed_hours(intent)
        known = parse_known(goal, topic)
        budget = None
        if intent["deadline_weeks"] is not None:
            budget = intent["weekly_hours"] * intent["deadline_weeks"]
        intent["constraints"] = {"known_concepts": known, "budget_hours": budget}
        log.log_agent_complete(
            AGENT, f"goal understood: {topic.title}, {intent['level']}, {intent['weekly_hours']:g} h a week",
            duration_ms=(time.perf_counter() - started) * 1000.0,
            details={key: intent[key]
                     for key in ("topic", "level", "weekly_hours", "deadline_weeks", "sources")},
        )
        return intent

    def _topic(self, context: StepContext, goal: str) -> tuple[Topic, list[str]]:
        started = time.perf_counter()
        catalog = load_catalog()
        matches = catalog.match(goal)
        context.logger.log_tool_call(
            AGENT, "catalog.match_topic",
            f"{len(matches)} topic(s) named in the goal",
            duration_ms=(time.perf_counter() - started) * 1000.0,
            details={"matches": [{"topic": m.topic.id, "alias": m.alias, "position": m.position}
                                 for m in matches]},
        )
        if not matches:
            message = "no known topic in the goal; the catalog covers " + ", ".join(
                topic.title for topic in catalog.topics.values())
            context.logger.log_agent_error(AGENT, "could not tell what to learn", error=message)
            raise InvalidInput(message, fields={"goal": [message]})
        return matches[0].topic, [m.topic.id for m in matches[1:]]


def _settle(intent: dict[str, Any], key: str, preferred: Any, parsed: Any, default: Any) -> None:
    """Take the preference, else what the goal says, else the default; note
    which, and when a preference overrides the text."""
    if preferred is not None:
        intent[key], intent["sources"][key] = preferred, "preference"
        if parsed is not None and parsed != preferred:
            intent["notes"].append(f"{key}: the preference ({preferred}) overrides the goal text ({parsed})")
    elif parsed is not None:
        intent[key], intent["sources"][key] = parsed, "goal"
    else:
        intent[key], intent["sources"][key] = default, "default"


def _check_parsed_hours(intent: dict[str, Any]) -> None:
    hours, weeks = intent["weekly_hours"], intent["deadline_weeks"]
    if not 0.5 <= hours <= MAX_WEEKLY_HOURS:
        message = f"{hours:g} hours a week is not a study plan; give 0.5 to {MAX_WEEKLY_HOURS:g}"
        raise InvalidInput(message, fields={"goal": [message]})
    if weeks is not None and not 1 <= weeks <= MAX_DEADLINE_WEEKS:
        message = f"a deadline of {weeks} weeks is out of range; give 1 to {MAX_DEADLINE_WEEKS}"
        raise InvalidInput(message, fields={"goal": [message]})


def _number(word: str) -> float:
    word = " ".join(word.lower().split())
    return float(_NUMBER_WORDS[word]) if word in _NUMBER_WORDS else float(word)


def parse_weekly_hours(text: str) -> float | None:
    """Study time per week: "5 hours a week", "1h per day", "30 minutes every day"."""
    match = _HOURS.search(text)
    if match is None:
        return None
    amount, unit, period = _number(match[1]), match[2].lower(), match[3].lower()
    if unit.startswith("m"):
        amount /= 60.0
    if period == "day":
        amount *= 7
    return round(amount, 2)


def parse_deadline_weeks(text: str) -> int | None:
    """The time frame in weeks: "in 8 weeks", "within 3 months", "over a year"."""
    match = _DEADLINE.search(text)
    if match is None:
        return None
    amount, unit = _number(match[1]), match[2].lower()
    if unit.startswith("month"):
        amount *= 52 / 12
    elif unit.startswith("year"):
        amount *= 52
    return max(1, math.ceil(amount - 1e-9))


def parse_level(text: str) -> str | None:
    for level, pattern in _LEVEL_PATTERNS:
        if re.search(rf"\b(?:{pattern})\b", text, re.IGNORECASE):
            return level
    return None


def parse_known(text: str, topic: Topic) -> list[str]:
    """Concepts of ``topic`` the learner says they already know ("I already
    know loops and functions")."""
    clauses = " ".join(match[1] for match in _KNOWN.finditer(text))
    if not clauses:
        return []
    return [
        concept.id
        for concept in topic.concepts()
        if any(re.search(rf"\b{re.escape(k)}\b", clauses, re.IGNORECASE) for k in concept.keywords)
    ]
