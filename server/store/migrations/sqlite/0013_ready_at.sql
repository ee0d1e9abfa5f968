-- When a step last became ready (Unix ms; past a retry delay: when the delay
-- ends), for the queue's oldest-ready age.
ALTER TABLE steps ADD COLUMN ready_at INTEGER NOT NULL DEFAULT 0;
