"""The library methods the app overrides where the library has no public
hook are the ones it was written against.

flask-smorest documents its error responses with ``application/json``, and
has no hook for the content type of error responses alone:
``webapp.api.Api._register_responses`` overrides the method, and
flask-smorest is pinned to the minor version it was written for
(pyproject.toml). If the original changes, this fails: read the new
original, bring the override in line, then record the new digest here.
(kombu's are pinned in test_kombu_pins.py.)

Celery's consumer step ``DelayedDelivery`` sets native delayed delivery up
through every node of a RabbitMQ cluster, with retries, and has no hook to
do it through the first node that answers: ``webapp.execlog.consumer``'s
``ClusterDelayedDelivery`` replaces its ``start`` (which calls
``_setup_delayed_delivery``) and takes its place in the consumer's steps.
Celery is pinned to the minor version it was written for.
"""

from __future__ import annotations

import hashlib
import inspect
from importlib.metadata import version

from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer.delayed_delivery import DelayedDelivery
from flask_smorest.spec import APISpecMixin

from webapp.api import Api
from webapp.execlog.consumer import Consumer

#: sha256 (first 16 hex digits) of the source of flask-smorest 0.47's original.
REGISTER_RESPONSES = "42ac780261644c27"
#: The same of Celery 5.7's DelayedDelivery.start and the method it calls.
DELAYED_DELIVERY = {"start": "28f53fd4146ff3f7", "_setup_delayed_delivery": "c0fc7a7aca55f41c"}


def digest(function: object) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def test_flask_smorest_is_the_minor_version_the_override_was_written_for():
    assert version("flask-smorest").startswith("0.47."), "see this module's docstring"


def test_flask_smorests_register_responses_is_unchanged():
    assert digest(APISpecMixin._register_responses) == REGISTER_RESPONSES, (
        "flask-smorest's _register_responses changed: review webapp/api/__init__.py"
    )


def test_errors_go_through_flask_smorests_public_hook():
    assert "handle_http_exception" in vars(Api) and "_register_error_handlers" not in vars(Api)


def test_celery_is_the_minor_version_the_delayed_delivery_step_was_written_for():
    assert version("celery").startswith("5.7."), "see this module's docstring"


def test_celerys_delayed_delivery_step_is_unchanged_and_replaced():
    changed = [name for name, expected in DELAYED_DELIVERY.items()
               if digest(getattr(DelayedDelivery, name)) != expected]
    assert not changed, f"Celery's DelayedDelivery.{changed} changed: review webapp/execlog/consumer.py"
    original = "celery.worker.consumer.delayed_delivery:DelayedDelivery"
    assert original in CeleryConsumer.Blueprint.default_steps
    ours = Consumer.Blueprint.default_steps
    assert original not in ours and "webapp.execlog.consumer:ClusterDelayedDelivery" in ours
