package docker

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/internal/syncbuf"
)

// runStep runs a step to its end, within 60 s, and returns its outcome and
// output.
func runStep(t *testing.T, e *Executor, s agent.StepSpec) (agent.Outcome, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := e.Execute(ctx, s, &out)
	if err != nil {
		t.Fatalf("step %s: %v\noutput: %s", s.StepID, err, out.String())
	}
	return res, out.String()
}

// background is a step running in a goroutine.
type background struct {
	id     string // its container
	out    *syncbuf.Buffer
	cancel context.CancelFunc
	done   chan error
}

// startStep starts a long-running step and waits until its container runs.
// The step is cancelled and awaited at the end of the test at the latest.
func startStep(t *testing.T, e *Executor, s agent.StepSpec) *background {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	b := &background{out: &syncbuf.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		_, err := e.Execute(ctx, s, b.out)
		b.done <- err
	}()
	t.Cleanup(func() { b.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ids := containersOf(t, e, s.StepID); len(ids) == 1 {
			info, err := e.cli.ContainerInspect(context.Background(), ids[0], client.ContainerInspectOptions{})
			if err == nil && info.Container.State != nil && info.Container.State.Running {
				b.id = ids[0]
				return b
			}
		}
		select {
		case err := <-b.done:
			t.Fatalf("step %s ended before it ran: %v\noutput: %s", s.StepID, err, b.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("step %s: no running container after 30 s", s.StepID)
	return nil
}

// stop cancels the step and waits for Execute to return (once).
func (b *background) stop(t *testing.T) {
	t.Helper()
	if b.done == nil {
		return
	}
	b.cancel()
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Errorf("step still running 30 s after its cancel")
	}
	b.done = nil
}
