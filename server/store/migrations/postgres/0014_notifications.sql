-- Outgoing notifications (signed webhooks on run and step state changes):
-- where a project's go, and an outbox filled in the same transaction as
-- the change, delivered with retries by any server replica.
ALTER TABLE projects ADD COLUMN notify_url TEXT NOT NULL DEFAULT '';
CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    body       TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    BIGINT NOT NULL,
    state      TEXT NOT NULL,          -- queued, sent, failed
    error      TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_due ON notifications(state, next_at);
