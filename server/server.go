// Package server holds the Baton server's domain: projects, runs, steps,
// agents and registration tokens, the errors its services return, and the
// small store interfaces its adapters implement. Subpackages wrap one
// technology each: store (gorm and SQL), api (chi HTTP), and cmd/baton-server
// wires them together.
package server
