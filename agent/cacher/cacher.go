// Package cacher lets a step's commands reach their agent while they run,
// with no network: the agent serves HTTP on a Unix socket in a directory of
// its own for each step attempt, mounted into the step's container along
// with the agent's own static binary, which runs as `cacher` there.
//
//	cacher put <key> <path>       store a file as an artifact of the run
//	cacher get <key> <path>       fetch an artifact of the run into a file
//	cacher delete <key>           delete an artifact of the run
//	cacher mask <value>           mask value in the rest of the step's log
//	cacher output <name> <value>  set a step output, as $BATON_OUTPUT does
//	cacher trigger <runbook> [k=v...]  start a follow-up run of a runbook
//
// Artifacts are proxied to the server's artifact API with the step's
// lease, streamed both ways, so a step reaches only its own run's
// artifacts. Keys follow artifact.ValidateKey, checked on both sides;
// content is checked against its SHA-256 end to end.
//
// The server side is Start (one Server per step attempt); the command
// side is Main.
package cacher

import (
	"context"
	"io"

	"github.com/baton-ci/baton/shared/protocol"
)

const (
	// SocketName is the socket's name in the step's directory.
	SocketName = "cacher.sock"
	// EnvSocket names the socket's path inside the step.
	EnvSocket = "BATON_CACHER_SOCKET"
)

// Artifacts is the server's artifact API, reached under the step's lease
// (agent/rpc implements it).
type Artifacts interface {
	PutArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string, body io.Reader, size int64, sum string) (protocol.Artifact, error)
	GetArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) (io.ReadCloser, protocol.Artifact, error)
	DeleteArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) error
}

// Runs starts follow-up runs under the step's lease (agent/rpc).
type Runs interface {
	Trigger(ctx context.Context, stepID string, lease protocol.LeaseRequest, runbook string, params map[string]string) (string, error)
}

// Masker takes secrets to mask in the rest of the step's output
// (mask.Masker).
type Masker interface {
	AddSecret(value string) error
}

// Paths on the socket.
const (
	pathArtifacts = "/artifacts/"
	pathMask      = "/mask"
	pathOutput    = "/output"
	pathTrigger   = "/trigger"
)

// triggerRequest is the body of POST /trigger.
type triggerRequest struct {
	Runbook string            `json:"runbook"`
	Params  map[string]string `json:"params,omitempty"`
}

// maxMaskValue bounds one mask request.
const maxMaskValue = 64 << 10

// outputRequest is the body of POST /output.
type outputRequest struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}
