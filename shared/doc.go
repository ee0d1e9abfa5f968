// Package shared is the wire contract between the Baton server and its
// agents: protocol types (protocol), the runbook model and its validation
// (runbook), and the step state machine (engine). It imports neither the
// server nor the agent, nor any storage, HTTP router or Docker library; the
// test in this package enforces the import boundaries of the whole module.
package shared
