"""Reading executions, their events and their logs: what the HTTP API, the
pages and the ``flask executions`` commands show, read one way for all of
them (the reads, the live feed, a record's JSON and text forms).

Above the models and the workflow engine, below every interface that shows
them.
"""
