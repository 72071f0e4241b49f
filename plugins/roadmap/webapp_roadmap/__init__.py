"""webapp-roadmap: the built-in runners of webapp and the ``roadmap``
workflow, installed like any third-party plugin (entry points in the
``webapp.runners`` and ``webapp.workflows`` groups)."""
