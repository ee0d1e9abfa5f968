-- Follow-up runs started from inside a step (cacher trigger): the step
-- that caused the run (run id/step name), and how deep the chain is.
ALTER TABLE runs ADD COLUMN caused_by TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
