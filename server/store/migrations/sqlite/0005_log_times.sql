-- When each line of a chunk was written, as the agent sent it
-- (protocol.FormatLineTimes: "offset:unixms,..."; offsets within the chunk).
ALTER TABLE step_logs ADD COLUMN times TEXT NOT NULL DEFAULT '';
