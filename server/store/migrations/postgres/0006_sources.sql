-- Where a run's code comes from (JSON of server.Source; '' for none): the
-- run's own source and the trusted CI source.
ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN ci_source TEXT NOT NULL DEFAULT '';
