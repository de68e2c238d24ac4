-- ambiscope workspace schema, version 1.
-- Distributions are float32 little-endian blobs over the dataset's ordered label set
-- (db/codec.py); JSON columns hold small structured options and provenance.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE datasets (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    format        TEXT NOT NULL,
    root          TEXT,
    label_set     TEXT NOT NULL,               -- JSON array, ordered
    options       TEXT NOT NULL DEFAULT '{}',  -- JSON: import options
    votes_version INTEGER NOT NULL DEFAULT 0,  -- bumped by every vote write
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE clips (
    id             INTEGER PRIMARY KEY,
    dataset_id     INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    path           TEXT,            -- relative to the dataset root; NULL when no audio
    duration       REAL,
    sample_rate    INTEGER,
    speaker        TEXT,
    gender         TEXT,
    split          TEXT,
    transcript     TEXT,
    intended_label TEXT,
    meta           TEXT NOT NULL DEFAULT '{}',
    UNIQUE (dataset_id, key)
);
CREATE INDEX clips_dataset_split ON clips (dataset_id, split);
CREATE INDEX clips_dataset_speaker ON clips (dataset_id, speaker);

CREATE TABLE annotators (
    id          INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('human', 'synthetic', 'self', 'actor')),
    run_id      INTEGER REFERENCES runs(id) ON DELETE CASCADE,
    meta        TEXT NOT NULL DEFAULT '{}',
    UNIQUE (dataset_id, external_id)
);

CREATE TABLE votes (
    clip_id      INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    annotator_id INTEGER NOT NULL REFERENCES annotators(id) ON DELETE CASCADE,
    label        TEXT NOT NULL,
    rank         INTEGER NOT NULL DEFAULT 0 CHECK (rank >= 0),
    weight       REAL NOT NULL DEFAULT 1.0 CHECK (weight >= 0),
    raw_label    TEXT,
    created_at   REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    PRIMARY KEY (clip_id, annotator_id, label)
) WITHOUT ROWID;
CREATE INDEX votes_annotator ON votes (annotator_id);

-- Cached human distribution per clip, derived from votes (core/human.py).
CREATE TABLE human_dist (
    clip_id      INTEGER PRIMARY KEY REFERENCES clips(id) ON DELETE CASCADE,
    dataset_id   INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    distribution BLOB,              -- NULL when the clip has no usable votes
    n_votes      REAL NOT NULL,
    n_raters     INTEGER NOT NULL,
    majority     TEXT,
    is_tie       INTEGER NOT NULL DEFAULT 0,
    entropy      REAL,
    norm_entropy REAL,
    ambiguity    TEXT CHECK (ambiguity IN ('low', 'medium', 'high'))
);
CREATE INDEX human_dist_dataset_entropy ON human_dist (dataset_id, norm_entropy);
CREATE INDEX human_dist_dataset_ambiguity ON human_dist (dataset_id, ambiguity);
CREATE INDEX human_dist_majority ON human_dist (dataset_id, majority);

-- One row per dataset: the options and votes_version the cache was computed with.
CREATE TABLE human_state (
    dataset_id    INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
    options       TEXT NOT NULL,
    votes_version INTEGER NOT NULL,
    cuts          TEXT NOT NULL,   -- JSON: ambiguity method and cut points
    agreement     TEXT NOT NULL,   -- JSON: kappa, alpha, items used
    computed_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    dataset_id      INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name            TEXT,
    model           TEXT NOT NULL,
    revision        TEXT,
    backend         TEXT NOT NULL,
    prompt_template TEXT,
    prompt_text     TEXT,
    mode            TEXT NOT NULL,
    n               INTEGER NOT NULL CHECK (n >= 1),
    temperature     REAL,
    top_p           REAL,
    search          TEXT NOT NULL DEFAULT 'sample',
    seed            INTEGER,
    verifier        TEXT,
    config          TEXT NOT NULL DEFAULT '{}',  -- JSON: full provenance
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE samples (
    run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    clip_id        INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    idx            INTEGER NOT NULL,
    raw_text       TEXT,
    label          TEXT,
    distribution   BLOB,
    logprob        REAL,
    logprob_norm   REAL,
    n_tokens       INTEGER,
    verifier_score REAL,
    valid          INTEGER NOT NULL DEFAULT 1,
    error          TEXT,
    PRIMARY KEY (run_id, clip_id, idx)
) WITHOUT ROWID;

CREATE TABLE predictions (
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    strategy     TEXT NOT NULL,
    clip_id      INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    distribution BLOB NOT NULL,
    label        TEXT,
    entropy      REAL,
    PRIMARY KEY (run_id, strategy, clip_id)
) WITHOUT ROWID;

CREATE TABLE flags (
    clip_id    INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    author     TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    PRIMARY KEY (clip_id, name)
);
CREATE INDEX flags_name ON flags (name);

CREATE TABLE tags (
    clip_id    INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    author     TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    PRIMARY KEY (clip_id, name)
);
CREATE INDEX tags_name ON tags (name);

CREATE TABLE notes (
    clip_id    INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    author     TEXT NOT NULL DEFAULT '',
    body       TEXT NOT NULL,
    updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    PRIMARY KEY (clip_id, author)
);

CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    params         TEXT NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress_done  INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL DEFAULT 0,
    owner          TEXT,
    lease_expires  REAL,
    heartbeat      REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts       INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    created_at     REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    started_at     REAL,
    finished_at    REAL
);
CREATE INDEX jobs_status ON jobs (status, id);
