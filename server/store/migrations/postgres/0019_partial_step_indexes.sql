-- The queue's indexes hold only the steps they are asked about: Ready
-- ones (what to reserve, and why one waits) and Running ones (limits,
-- leases, an agent's steps). Indexes over every step's state were changed
-- on each of a step's transitions and kept every finished step forever.
-- Queries name the state as a literal, so the planner can prove a partial
-- index applies (also in a generic plan of a prepared statement).
DROP INDEX steps_ready;
DROP INDEX steps_lease;
DROP INDEX steps_project_queue;
DROP INDEX steps_agent_state;
CREATE INDEX steps_ready ON steps(project_id, priority DESC, run_id, idx) WHERE state = 'ready';
CREATE INDEX steps_running ON steps(project_id) WHERE state = 'running';
CREATE INDEX steps_agent_running ON steps(agent_id) WHERE state = 'running';
