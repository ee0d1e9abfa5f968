-- The PostgreSQL twin of sqlite/0002_leases.sql.
-- Leases: a running step is held by its agent only while the agent renews
-- the lease. lease_id fences every step-scoped call (a stale holder gets a
-- conflict); lease_expires and deadline are Unix milliseconds (0: none).
ALTER TABLE steps ADD COLUMN lease_id TEXT NOT NULL DEFAULT '';
ALTER TABLE steps ADD COLUMN lease_expires BIGINT NOT NULL DEFAULT 0;
-- The server's own clock for the step's timeout: started + timeout + the
-- cleanup budget. Past it the step fails with reason timeout, even when its
-- agent is silent.
ALTER TABLE steps ADD COLUMN deadline BIGINT NOT NULL DEFAULT 0;
-- Someone cancelled the run: the holder is told through its lease, and the
-- step ends Cancelled whatever the agent reports (unless it succeeded).
ALTER TABLE steps ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX steps_lease ON steps(state, lease_expires);
ALTER TABLE step_attempts ADD COLUMN lease_id TEXT NOT NULL DEFAULT '';

-- Per-agent overrides of the server's agent config (JSON: pool_size,
-- eviction_time); '{}' keeps the server defaults.
ALTER TABLE agents ADD COLUMN config TEXT NOT NULL DEFAULT '{}';

-- Someone cancelled the run: what has not started will not, cleanup steps
-- still run, and the run ends cancelled.
ALTER TABLE runs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
