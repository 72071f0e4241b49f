"""A producer-only process, as on a web host: ``python -m tests.ops.producer
TRACE_ID COUNT IDS_FILE`` logs COUNT records of a trace, flushes, and writes
their ids to IDS_FILE. Its environment needs the broker URL, not the database.
"""

from __future__ import annotations

import sys
from pathlib import Path

from webapp import create_app


def main(trace_id: str, count: int, ids_file: Path) -> None:
    logger = create_app().extensions["execlog"]
    ids = [logger.info(trace_id, "workflow", f"record {i}", details={"seq": i}).id for i in range(count)]
    if not logger.flush(timeout=120):
        raise SystemExit(f"producer: {trace_id} not flushed: {logger.stats()}")
    logger.close()
    ids_file.write_text("\n".join(ids))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
