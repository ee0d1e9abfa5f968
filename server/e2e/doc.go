// Package e2e holds end-to-end tests: they build the real baton-server and
// baton-agent binaries, start them as processes on loopback, and run
// runbooks whose steps run in real Docker containers. It has no non-test code
// and imports neither the server nor the agent packages.
package e2e
