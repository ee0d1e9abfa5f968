-- How a run started (api, retry, webhook, schedule), the run it retries,
-- and the Idempotency-Key it was started with: one key never starts two
-- runs of a project.
ALTER TABLE runs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'api';
ALTER TABLE runs ADD COLUMN retry_of TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX runs_idempotency ON runs(project_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The files the runbook included (JSON path -> text), to retry the run.
ALTER TABLE runs ADD COLUMN files TEXT NOT NULL DEFAULT '{}';
