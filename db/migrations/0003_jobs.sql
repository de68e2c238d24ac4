-- Background jobs (core/jobs.py, core/worker.py): what the queue needs beyond the v1 jobs
-- table, the workers that claim jobs (liveness visible to other processes) and the log
-- lines a job writes (the TUI polls them). Times are Unix seconds (REAL), like jobs.*_at.

-- Why a job failed (the one-line reason stays in jobs.error) and what a finished job made.
ALTER TABLE jobs ADD COLUMN traceback TEXT;
ALTER TABLE jobs ADD COLUMN result TEXT;             -- JSON, kind-specific (e.g. run id)
-- A job whose worker dies this many times (lease expired each time) is failed, not retried
-- forever: a job that kills its worker (OOM killer, segfault) must not loop.
ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;
ALTER TABLE jobs ADD COLUMN updated_at REAL;

CREATE TABLE workers (
    id          TEXT PRIMARY KEY,          -- "host:pid:token", also jobs.owner
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    node        TEXT NOT NULL,             -- host + pid namespace: where `pid` means this process
    device      TEXT,
    lease_s     REAL NOT NULL,             -- heartbeat older than this = dead worker
    started_at  REAL NOT NULL,
    heartbeat   REAL NOT NULL,
    current_job INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    status      TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped', 'lost')),
    stopped_at  REAL,
    jobs_done   INTEGER NOT NULL DEFAULT 0,
    log_path    TEXT
);
CREATE INDEX workers_status ON workers (status, heartbeat);

CREATE TABLE job_events (
    id      INTEGER PRIMARY KEY,
    job_id  INTEGER REFERENCES jobs(id) ON DELETE CASCADE,   -- NULL: a worker-level line
    time    REAL NOT NULL,
    level   TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error')),
    message TEXT NOT NULL,
    worker  TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, id);
