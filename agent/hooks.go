package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Hook phases (seed 001's lifecycle, for the phases a step has today).
// Each is an executable file of that name in the agent's hooks dir, run on
// the agent host, with the step's identity in its environment:
//
//	BATON_RUN_ID, BATON_STEP_ID, BATON_STEP_NAME, BATON_STEP_ATTEMPT,
//	BATON_PROJECT, and after the step BATON_STEP_RESULT (succeeded or
//	failed), BATON_STEP_EXIT_CODE (empty when it never exited) and
//	BATON_STEP_REASON.
//
// Hook output goes to the step's log, prefixed. A pre-source, post-source
// or pre-step hook that fails fails the step (reason infra) before it runs;
// the others are logged only. The source hooks run only for steps whose run
// has a source; they also get BATON_SOURCE_DIR and BATON_CI_DIR (the host
// directories mounted at /job/src and /job/ci; post-source can inspect or
// amend them).
const (
	HookPreSource  = "pre-source"
	HookPostSource = "post-source"
	HookPreStep    = "pre-step"
	HookPostStep   = "post-step" // after every step
	HookOnError    = "on-error"  // after a failed step, before post-step
	HookCleanup    = "cleanup"   // last, always
)

// hookTimeout bounds each hook.
const hookTimeout = time.Minute

// runHook runs the named hook if the hooks dir has it; it reports whether
// it ran and its error.
func (a *Agent) runHook(ctx context.Context, name string, env []string, out io.Writer) (bool, error) {
	if a.Config.HooksDir == "" {
		return false, nil
	}
	path := filepath.Join(a.Config.HooksDir, name)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return true, fmt.Errorf("hook %s is not an executable file", path)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(os.Environ(), env...)
	pw := &prefixWriter{w: out, prefix: "[hook " + name + "] ", start: true}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Run()
	if err != nil {
		return true, fmt.Errorf("hook %s: %w", name, err)
	}
	return true, nil
}

// prefixWriter starts every line with a prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
	start  bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if p.start {
			if _, err := io.WriteString(p.w, p.prefix); err != nil {
				return 0, err
			}
			p.start = false
		}
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i < len(b) {
			i++ // include the newline
			p.start = true
		}
		if _, err := p.w.Write(b[:i]); err != nil {
			return 0, err
		}
		b = b[i:]
	}
	return n, nil
}
