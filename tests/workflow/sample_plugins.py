"""Objects that entry points in the registry tests point at."""

from marshmallow import Schema, fields

from webapp.workflow import Runner, Step, Workflow


class Echo(Runner):
    name = "echo"

    class input_schema(Schema):
        text = fields.String(required=True)

    def run(self, context):
        return {"text": context.workflow_input["text"]}


class Upper(Runner):
    name = "upper"

    def run(self, context):
        return {"text": context.workflow_input["text"].upper()}


class Misnamed(Runner):
    name = "something-else"

    def run(self, context):
        return {}


class Unfinished(Runner):
    name = "unfinished"


class BadSchema(Runner):
    name = "bad-schema"
    input_schema = {"text": "string"}

    def run(self, context):
        return {}


def not_a_runner():
    return "I am a function"


ECHO_TWICE = Workflow("echo-twice", ["echo", Step("echo", name="again")])


def make_echo_once():
    return Workflow("echo-once", ["echo"])


def make_nothing():
    return ["echo"]


def explode():
    raise RuntimeError("the factory broke")


USES_MISSING = Workflow("uses-missing", ["echo", "teleport"])


class NotJson(Runner):
    name = "not-json"

    def run(self, context):
        return {"when": object()}


class NotADict(Runner):
    name = "not-a-dict"

    def run(self, context):
        return ["a", "list"]


class Counted(Runner):
    name = "counted"

    class output_schema(Schema):
        count = fields.Integer(required=True)

    def run(self, context):
        return {"count": "many"}


class Tuples(Runner):
    name = "tuples"

    def run(self, context):
        return {"pair": (1, 2), 3: "three"}


class Peek(Runner):
    """Reports the Python types of what it was given by ``tuples``."""

    name = "peek"

    def run(self, context):
        given = context.outputs["tuples"]
        return {"pair": type(given["pair"]).__name__, "keys": sorted(repr(key) for key in given)}
