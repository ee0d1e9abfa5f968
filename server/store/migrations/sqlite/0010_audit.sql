-- Who did what to a run: approvals and rejections (with the comment),
-- cancels, retries and resumes.
CREATE TABLE audit_events (
    id      TEXT PRIMARY KEY,
    at      DATETIME NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    run_id  TEXT NOT NULL DEFAULT '',
    step    TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_run ON audit_events(run_id, at);
