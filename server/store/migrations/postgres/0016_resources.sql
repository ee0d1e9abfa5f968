-- A step's memory (bytes) and CPU (billionths) limits from its runbook;
-- 0: the agent's default. Agents cap them at their maximums.
ALTER TABLE steps ADD COLUMN memory BIGINT NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN nano_cpus BIGINT NOT NULL DEFAULT 0;
