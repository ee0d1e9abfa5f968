-- A project's repository: webhooks read runbooks from it.
ALTER TABLE projects ADD COLUMN repo_url TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN default_branch TEXT NOT NULL DEFAULT '';

-- Why a run failed before any step ran (an invalid runbook from a push).
ALTER TABLE runs ADD COLUMN error TEXT NOT NULL DEFAULT '';

-- Webhook deliveries, once each: a redelivery (same provider and delivery
-- id) finds its row and the run it started.
CREATE TABLE hook_deliveries (
    project_id  TEXT NOT NULL REFERENCES projects(id),
    provider    TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    event       TEXT NOT NULL,            -- JSON of webhook.Event; '' when ignored
    state       TEXT NOT NULL,            -- queued, processing, done, ignored, failed
    run_id      TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    received_at DATETIME NOT NULL,
    PRIMARY KEY (project_id, provider, delivery_id)
);
CREATE INDEX hook_deliveries_state ON hook_deliveries(state, received_at);
