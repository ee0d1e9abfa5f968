-- Cron schedules: a project's runbook started at each tick. next_at is the
-- next tick (Unix ms); a replica claims a tick by moving next_at on with a
-- conditional update, so a tick starts at most one run.
CREATE TABLE schedules (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    name        TEXT NOT NULL,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL DEFAULT 'UTC',
    branch      TEXT NOT NULL DEFAULT '',  -- read runbook.yml from this branch of the project's repository
    runbook     TEXT NOT NULL DEFAULT '',  -- or run this runbook text
    params      TEXT NOT NULL DEFAULT '{}',
    next_at     BIGINT NOT NULL,
    last_run_id TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX schedules_due ON schedules(next_at);
