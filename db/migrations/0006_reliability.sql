-- Annotator reliability models fitted on a dataset's human votes (core/reference/reliability.py):
-- Dawid-Skene and MACE, one current fit per (dataset, model), replaced by each refit.
-- A fit records the votes_version it saw: readers compare it with datasets.votes_version
-- and report a stale fit instead of using it. Blobs are float32 like human_dist (db/codec.py).

CREATE TABLE reliability_fits (
    id            INTEGER PRIMARY KEY,
    dataset_id    INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    model         TEXT NOT NULL,               -- 'ds' (Dawid-Skene) or 'mace'
    settings      TEXT NOT NULL,               -- JSON: iterations, tolerance, seed, smoothing, ...
    votes_version INTEGER NOT NULL,            -- datasets.votes_version the fit was computed on
    summary       TEXT NOT NULL DEFAULT '{}',  -- JSON: class prior, iterations, rater counts
    shift_cut     REAL NOT NULL,               -- clips with shift >= this are `unreliable`
    fitted_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (dataset_id, model)
);

-- One row per rater of a fit: its reliability (the model's own scalar, see summary) and
-- its K x K confusion matrix, row = true label, column = the label it gave.
CREATE TABLE reliability_raters (
    fit_id       INTEGER NOT NULL REFERENCES reliability_fits(id) ON DELETE CASCADE,
    annotator_id INTEGER NOT NULL REFERENCES annotators(id) ON DELETE CASCADE,
    n_votes      INTEGER NOT NULL,
    reliability  REAL NOT NULL,
    confusion    BLOB NOT NULL,
    PRIMARY KEY (fit_id, annotator_id)
) WITHOUT ROWID;

-- The posterior label distribution of each clip the raters voted on, and its shift: the JS
-- divergence (bits) from the clip's raw vote distribution (what `unreliable` filters on).
CREATE TABLE reliability_posteriors (
    fit_id       INTEGER NOT NULL REFERENCES reliability_fits(id) ON DELETE CASCADE,
    clip_id      INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    distribution BLOB NOT NULL,
    shift        REAL NOT NULL,
    PRIMARY KEY (fit_id, clip_id)
) WITHOUT ROWID;
CREATE INDEX reliability_posteriors_clip ON reliability_posteriors (clip_id);
