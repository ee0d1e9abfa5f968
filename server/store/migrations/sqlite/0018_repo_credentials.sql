-- A private repository's credentials: the names of the project secrets
-- that hold them (never the values), and known_hosts lines for SSH.
ALTER TABLE projects ADD COLUMN repo_username TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN repo_password_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN repo_ssh_key_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN repo_known_hosts TEXT NOT NULL DEFAULT '';
