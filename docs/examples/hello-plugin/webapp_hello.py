"""A runner plugin in one file: ``pip install docs/examples/hello-plugin``."""

from marshmallow import Schema, fields

from webapp.workflow import Runner, Workflow


class Hello(Runner):
    name = "hello"

    class input_schema(Schema):
        who = fields.String(required=True)

    def run(self, context):
        context.logger.log_agent_start("greeter", f"greeting {context.workflow_input['who']}")
        return {"greeting": f"Hello, {context.workflow_input['who']}!"}


HELLO = Workflow("hello", ["hello"])
