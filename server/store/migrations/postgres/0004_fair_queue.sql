-- The PostgreSQL twin of sqlite/0004_fair_queue.sql. (0003 is left for the
-- artifacts migration.)
-- Fair queue: steps know their project, so the scheduler can pick a
-- project first (fair share) and then its best step.
ALTER TABLE steps ADD COLUMN project_id TEXT NOT NULL DEFAULT '';
UPDATE steps SET project_id = (SELECT project_id FROM runs WHERE runs.id = steps.run_id);
CREATE INDEX steps_project_queue ON steps(project_id, state, priority DESC, run_id, idx);

-- max_running: the project's concurrency limit (0: none). weight: its share
-- of the fleet against other projects (running steps / weight is compared).
-- served: when it was last given a step, as a sequence number, so projects
-- with equal shares take turns. Replicas reserve concurrently, so the
-- number comes from a sequence (SQLite, one writer, takes MAX(served) + 1).
ALTER TABLE projects ADD COLUMN max_running INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN weight INTEGER NOT NULL DEFAULT 1;
ALTER TABLE projects ADD COLUMN served BIGINT NOT NULL DEFAULT 0;
CREATE SEQUENCE projects_served;
