-- A run of untrusted code (a pull request from a fork): its steps get no
-- secrets and run only on agents labelled untrusted, and so do its retries
-- and the runs it triggers.
ALTER TABLE runs ADD COLUMN untrusted BOOLEAN NOT NULL DEFAULT FALSE;
