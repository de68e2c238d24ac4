"""A test-only job kind, `test-flag`, loaded by worker processes as a plug-in.

Worker processes import it with `--import tests.core.jobs.flag_kind` or
$AMBISCOPE_JOB_MODULES, the way a lab's own job kinds are loaded; it imports nothing
but the job API, so a worker that loads it still has neither click nor textual.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from ambiscope.core.jobs.kinds import JobContext, job_kind

FLAG_KIND = "test-flag"


@job_kind(FLAG_KIND, describe=lambda p: f"flag {p['flag']}")
def flag_clips(ctx: JobContext) -> dict[str, Any]:
    """Flag each listed clip (resumable: flagged clips are skipped), one per unit of work.

    Params: clip_ids, flag, delay (s per clip), fail (raise after the clips). Each
    execution also tags the first clip `ran:<job>:<nonce>`, so a test can count how often
    a job was started.
    """
    p = ctx.params
    ids: list[int] = p["clip_ids"]
    ctx.ws.set_tag(ids[0], f"ran:{ctx.job.id}:{secrets.token_hex(3)}", True)
    done = {
        r[0] for r in ctx.ws.conn.execute("SELECT clip_id FROM flags WHERE name = ?", (p["flag"],))
    }
    flagged = 0
    for i, clip_id in enumerate(ids):
        if ctx.should_stop():
            break
        if clip_id not in done:
            ctx.ws.set_flag(clip_id, p["flag"], True, author=ctx.worker_id)
            flagged += 1
        ctx.progress(i + 1, len(ids))
        time.sleep(p.get("delay", 0.0))
    if p.get("fail"):
        raise RuntimeError(p["fail"])
    return {"flagged": flagged}


def flag_params(ids: list[int], flag: str, **kw: Any) -> dict[str, Any]:
    return {"clip_ids": ids, "flag": flag, **kw}
