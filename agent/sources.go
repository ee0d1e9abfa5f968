package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/baton-ci/baton/agent/source"
	"github.com/baton-ci/baton/shared/protocol"
)

// preparedSources are a step's sources on the agent's host.
type preparedSources struct {
	root        string // removed after the step
	src, ci     string // "" when the run has none
	srcCommitID string
}

func (p *preparedSources) remove() {
	if p != nil && p.root != "" {
		os.RemoveAll(p.root)
	}
}

// prepareSources fetches the run's source and CI source into a private
// directory under the agent's work dir, between the pre-source and
// post-source hooks. A step whose run has neither gets nil.
func (a *Agent) prepareSources(ctx context.Context, asg *protocol.Assignment, hookEnv []string, out io.Writer) (*preparedSources, error) {
	if asg.Source.Empty() && asg.CISource.Empty() {
		return nil, nil
	}
	base := a.Config.SourcesDir
	if base == "" {
		base = os.TempDir()
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	root, err := os.MkdirTemp(base, "sources-")
	if err != nil {
		return nil, fmt.Errorf("sources directory: %w", err)
	}
	// Steps may run as another user (--user): the trees must be readable.
	os.Chmod(root, 0o755)
	p := &preparedSources{root: root}
	if !asg.Source.Empty() {
		p.src = filepath.Join(root, "src")
	}
	if !asg.CISource.Empty() {
		p.ci = filepath.Join(root, "ci")
	}
	for _, d := range []string{p.src, p.ci} {
		if d != "" {
			if err := os.Mkdir(d, 0o755); err != nil {
				p.remove()
				return nil, err
			}
		}
	}
	env := append(hookEnv, "BATON_SOURCE_DIR="+p.src, "BATON_CI_DIR="+p.ci)
	fail := func(err error) (*preparedSources, error) {
		p.remove()
		return nil, err
	}
	if _, err := a.runHook(ctx, HookPreSource, env, out); err != nil {
		return fail(&hookError{err})
	}
	if p.ci != "" {
		if _, err := source.Prepare(ctx, a.Config.Sources, asg.CISource, asg.CISourceCredentials, p.ci, out); err != nil {
			return fail(fmt.Errorf("CI source: %w", err))
		}
	}
	if p.src != "" {
		if p.srcCommitID, err = source.Prepare(ctx, a.Config.Sources, asg.Source, asg.SourceCredentials, p.src, out); err != nil {
			return fail(fmt.Errorf("source: %w", err))
		}
	}
	if _, err := a.runHook(ctx, HookPostSource, env, out); err != nil {
		return fail(&hookError{err})
	}
	return p, nil
}
