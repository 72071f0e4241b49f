"""The catalog of topics the roadmap runners plan from, shipped as
``catalog.json``: topics -> stages -> modules -> concepts, each concept with
its estimated hours, the level it is taught at, the concepts it requires and
the keywords by which a learner may say they already know it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

LEVELS = ("beginner", "intermediate", "advanced")


@dataclass(frozen=True)
class Concept:
    id: str
    title: str
    hours: float
    level: str
    requires: tuple[str, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Module:
    title: str
    concepts: tuple[Concept, ...]


@dataclass(frozen=True)
class Stage:
    title: str
    modules: tuple[Module, ...]


@dataclass(frozen=True)
class Topic:
    id: str
    title: str
    aliases: tuple[str, ...]
    stages: tuple[Stage, ...]

    def concepts(self) -> list[Concept]:
        return [c for stage in self.stages for module in stage.modules for c in module.concepts]


@dataclass(frozen=True)
class TopicMatch:
    topic: Topic
    alias: str
    position: int


class Catalog:
    def __init__(self, topics: list[Topic]) -> None:
        self.topics = {topic.id: topic for topic in topics}

    def topic(self, topic_id: str) -> Topic:
        try:
            return self.topics[topic_id]
        except KeyError:
            raise LookupError(f"no topic {topic_id!r} in the catalog") from None

    def match(self, text: str) -> list[TopicMatch]:
        """The topics named in ``text``, the first mentioned first (a longer
        alias wins at the same place: "web development" over "web")."""
        matches = []
        for topic in self.topics.values():
            found = [
                (m.start(), -len(alias), alias)
                for alias in topic.aliases
                for m in [re.search(rf"\b{re.escape(alias)}\b", text, re.IGNORECASE)]
                if m is not None
            ]
            if found:
                position, _, alias = min(found)
                matches.append(TopicMatch(topic, alias, position))
        return sorted(matches, key=lambda m: (m.position, -len(m.alias)))


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with this package (read once per process)."""
    data = json.loads(files(__package__).joinpath("catalog.json").read_text(encoding="utf-8"))
    return Catalog([_topic(item) for item in data["topics"]])


def _topic(data: dict[str, Any]) -> Topic:
    return Topic(
        data["id"],
        data["title"],
        tuple(data["aliases"]),
        tuple(
            Stage(stage["title"], tuple(
                Module(module["title"], tuple(_concept(c) for c in module["concepts"]))
                for module in stage["modules"]
            ))
            for stage in data["stages"]
        ),
    )


def _concept(data: dict[str, Any]) -> Concept:
    return Concept(
        data["id"], data["title"], float(data["hours"]), data["level"],
        tuple(data["requires"]), tuple(data["keywords"]),
    )
