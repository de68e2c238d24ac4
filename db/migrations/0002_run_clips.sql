-- Per (run, clip) status so runs resume and failures are recorded with their reason,
-- plus per-prediction agreement with the human reference for SQL-side sort and filter.

CREATE TABLE run_clips (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    clip_id       INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    status        TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error         TEXT,
    warnings      TEXT NOT NULL DEFAULT '[]',   -- JSON list (e.g. audio truncated)
    label_loglik  BLOB,                         -- float32 per label (likelihood strategy)
    seconds       REAL,                         -- wall time for the clip
    model_seconds REAL,                         -- of which inside backend calls
    updated_at    REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    PRIMARY KEY (run_id, clip_id)
) WITHOUT ROWID;
CREATE INDEX run_clips_status ON run_clips (run_id, status);

-- JS divergence / Bhattacharyya to the human distribution and whether the argmax labels
-- agree; NULL when the clip has no human distribution. Kept current by core/human.py.
ALTER TABLE predictions ADD COLUMN js REAL;
ALTER TABLE predictions ADD COLUMN bc REAL;
ALTER TABLE predictions ADD COLUMN agree INTEGER;
CREATE INDEX predictions_run_strategy_js ON predictions (run_id, strategy, js);
