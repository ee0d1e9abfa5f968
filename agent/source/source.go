// Package source prepares a step's code on the agent's host before the step
// runs (seed 001's source preparation): a git checkout at a ref or an exact
// commit, a copy of a local directory, an unpacked tarball, or nothing.
// Local sources (copy, a tarball path, file:// repositories) read the
// agent's host, so they are refused unless the operator allows them.
package source

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/baton-ci/baton/shared/protocol"
)

// Options are the operator's rules for sources.
type Options struct {
	// AllowLocal permits copy, tarball paths and file:// repositories.
	AllowLocal bool
	// MaxTarball bounds a tarball's unpacked size; 0 means 2 GiB.
	MaxTarball int64
	// Git is the git binary; "" finds git on PATH.
	Git string
}

// ErrLocalRefused is returned for a local source the operator did not allow.
var ErrLocalRefused = errors.New("local sources are not allowed on this agent (baton-agent --allow-local-sources)")

// Prepare fills dest, an empty directory, with src, writing progress to
// log. For git it returns the commit checked out; cred (nil for a public
// repository) reaches git only through its environment (package gitauth),
// never its arguments, the checkout's .git/config or the log.
func Prepare(ctx context.Context, opts Options, src *protocol.Source, cred *protocol.GitCredentials, dest string, log io.Writer) (string, error) {
	if src.Empty() {
		return "", nil
	}
	if err := src.Validate("source"); err != nil {
		return "", err
	}
	switch src.Type {
	case protocol.SourceGit:
		return gitCheckout(ctx, opts, src, cred, dest, log)
	case protocol.SourceCopy:
		if !opts.AllowLocal {
			return "", ErrLocalRefused
		}
		return "", copyTree(src.Path, dest, log)
	case protocol.SourceTarball:
		return "", unpack(ctx, opts, src, dest, log)
	}
	return "", fmt.Errorf("source type %q is not supported", src.Type)
}
