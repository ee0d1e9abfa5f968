-- Web UI users (bcrypt password hashes) and their server-side sessions:
-- only the SHA-256 hash of a session cookie is stored.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    password_hash BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE ui_sessions (
    hash       BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    csrf       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ui_sessions_expiry ON ui_sessions(expires_at);

-- The UI's run list: newest first, by project or state.
CREATE INDEX runs_created ON runs(created_at, id);
CREATE INDEX runs_state_created ON runs(state, created_at);
-- The fleet page: running steps by agent.
CREATE INDEX steps_agent_state ON steps(agent_id, state);
