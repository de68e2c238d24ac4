-- Annotator kind `review`: re-annotations (e.g. colleagues in Label Studio) kept apart from
-- the human reference unless a dataset's reference kinds name it. SQLite cannot alter a
-- CHECK constraint, so the table is rebuilt by the procedure SQLite documents: migrations
-- run with foreign keys off and `apply_migrations` runs `foreign_key_check` before commit.
CREATE TABLE annotators_new (
    id          INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    kind        TEXT NOT NULL
                CHECK (kind IN ('human', 'synthetic', 'self', 'actor', 'review')),
    run_id      INTEGER REFERENCES runs(id) ON DELETE CASCADE,
    meta        TEXT NOT NULL DEFAULT '{}',
    UNIQUE (dataset_id, external_id)
);
INSERT INTO annotators_new (id, dataset_id, external_id, kind, run_id, meta)
    SELECT id, dataset_id, external_id, kind, run_id, meta FROM annotators;
DROP TABLE annotators;
ALTER TABLE annotators_new RENAME TO annotators;
