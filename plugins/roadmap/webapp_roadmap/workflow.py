"""The ``roadmap`` workflow: a learning goal to a week-by-week roadmap.

Input: ``{"goal": "<free text>"}`` plus optional ``weekly_hours``, ``level``
(beginner, intermediate, advanced) and ``deadline_weeks``. The steps are
deterministic, so nothing is worth retrying: each is tried once.
"""

from webapp.workflow import RetryPolicy, Step, Workflow

ONCE = RetryPolicy(max_attempts=1)

ROADMAP = Workflow(
    "roadmap",
    (
        Step("intent", retry=ONCE),
        Step("curriculum", retry=ONCE),
        Step("validate", retry=ONCE),
        Step("schedule", retry=ONCE),
    ),
    description="A learning goal in free text to a week-by-week roadmap with milestones",
)
