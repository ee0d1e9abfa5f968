-- Artifacts that a run's steps stored (cacher put). Only what is known
-- about each is here; the content is a file under
-- <data-dir>/artifacts/<run_id>/<sha256(key) hex> (package artifacts).
-- A step reaches the artifacts of its own run only.
CREATE TABLE artifacts (
    run_id     TEXT NOT NULL REFERENCES runs(id),
    key        TEXT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    -- The step that stored it last.
    step_id    TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
