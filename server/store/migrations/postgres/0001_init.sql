-- The PostgreSQL twin of sqlite/0001_init.sql: the same tables, columns and
-- indexes. Times are TIMESTAMPTZ, binary values BYTEA, Unix milliseconds
-- BIGINT. JSON values stay TEXT, as in SQLite (queries cast to jsonb), so
-- both dialects scan into the same rows.
CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    name        TEXT NOT NULL DEFAULT '',
    params      TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL,
    runbook     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX runs_project ON runs(project_id, created_at);

CREATE TABLE steps (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs(id),
    name        TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    image       TEXT NOT NULL DEFAULT '',
    command     TEXT NOT NULL,
    args        TEXT NOT NULL DEFAULT '[]',
    env         TEXT NOT NULL DEFAULT '{}',
    depends_on  TEXT NOT NULL DEFAULT '[]',
    timeout_ms  BIGINT NOT NULL,
    retry       TEXT NOT NULL DEFAULT '{}',
    if_cond     TEXT NOT NULL DEFAULT '',
    assert      TEXT NOT NULL DEFAULT 'null',
    runs_on     TEXT NOT NULL DEFAULT '[]',
    priority    INTEGER NOT NULL DEFAULT 0,
    approval    TEXT NOT NULL DEFAULT 'null',
    secrets     TEXT NOT NULL DEFAULT '[]',
    state       TEXT NOT NULL,
    exit_code   INTEGER,
    reason      TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    outputs     TEXT NOT NULL DEFAULT '{}',
    agent_id    TEXT NOT NULL DEFAULT '',
    attempt     INTEGER NOT NULL DEFAULT 0,
    -- A Ready step waiting out a retry delay is not reservable before this
    -- (Unix milliseconds; 0 = now).
    not_before  BIGINT NOT NULL DEFAULT 0,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    UNIQUE (run_id, name)
);
CREATE INDEX steps_ready ON steps(state, priority DESC, run_id, idx, not_before);
CREATE INDEX steps_run_state ON steps(run_id, state);

-- The DAG's edges, written once with the run, so that completing a step
-- finds its dependents without loading the whole run.
CREATE TABLE step_deps (
    run_id     TEXT NOT NULL REFERENCES runs(id),
    depends_on TEXT NOT NULL,
    step_id    TEXT NOT NULL REFERENCES steps(id),
    PRIMARY KEY (run_id, depends_on, step_id)
);

-- Every attempt of a step; the steps row mirrors the latest.
CREATE TABLE step_attempts (
    step_id     TEXT NOT NULL REFERENCES steps(id),
    attempt     INTEGER NOT NULL,
    run_id      TEXT NOT NULL REFERENCES runs(id),
    agent_id    TEXT NOT NULL,
    state       TEXT NOT NULL,
    exit_code   INTEGER,
    reason      TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    -- What the agent reported, to acknowledge a retried report.
    reported    TEXT NOT NULL DEFAULT '',
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (step_id, attempt)
);
CREATE INDEX step_attempts_run ON step_attempts(run_id);

CREATE TABLE step_logs (
    step_id TEXT NOT NULL REFERENCES steps(id),
    attempt INTEGER NOT NULL,
    byte_offset BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (step_id, attempt, byte_offset)
);

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL DEFAULT '',
    labels      TEXT NOT NULL DEFAULT '[]',
    state       TEXT NOT NULL,
    signing_key BYTEA NOT NULL,
    hpke_key    BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL
);

CREATE TABLE registration_tokens (
    id          TEXT PRIMARY KEY,
    hash        BYTEA NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ,       -- NULL: never
    max_uses    INTEGER NOT NULL DEFAULT 0, -- 0: unlimited; a use is a new agent
    uses        INTEGER NOT NULL DEFAULT 0,
    revoked_at  TIMESTAMPTZ
);

-- Project secrets, sealed with the server's secret key (AES-256-GCM, bound
-- to project and name); never stored in plaintext.
CREATE TABLE project_secrets (
    project_id TEXT NOT NULL REFERENCES projects(id),
    name       TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, name)
);
