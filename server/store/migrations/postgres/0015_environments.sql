-- The environment a step's secrets come from (secrets set for it win over
-- the project-wide ones); '' for none.
ALTER TABLE steps ADD COLUMN environment TEXT NOT NULL DEFAULT '';
