package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/baton-ci/baton/agent/cacher"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/mask"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

// reportTimeout bounds the final report, which is sent even after
// shutdown; it is at least a lease length, during which the server still
// holds the step for this agent.
const reportTimeout = 30 * time.Second

// runStep executes one assignment, streams its output and reports the
// result. The report uses a context detached from cancellation so a killed
// step still gets its final word in.
// stepOptions are how one step runs: its lease keeping, and what the
// server takes with the result (protocol.FeatureCompleteLog, ...NEXT).
type stepOptions struct {
	keeping       leaseKeeping
	logWithResult bool
	askNext       bool
}

func (a *Agent) runStep(ctx context.Context, asg *protocol.Assignment, opts stepOptions, msgs chan<- any) {
	keeping := opts.keeping
	var next *protocol.Assignment
	defer func() { msgs <- stepDone{stepID: asg.StepID, next: next} }()
	log := a.Logger.With(slog.String("run_id", asg.RunID), slog.String("step_id", asg.StepID),
		slog.String("step", asg.StepName), slog.Int("attempt", asg.Attempt))
	log.Info("step started", slog.String("image", asg.Image))
	started := time.Now()
	lease := protocol.LeaseRequest{Attempt: asg.Attempt, LeaseID: asg.LeaseID}

	// The lease keeper stops the step when the server says so (the run was
	// cancelled, or the lease is no longer ours).
	ctx, stopStep := context.WithCancelCause(ctx)
	defer stopStep(nil)
	keeperDone := make(chan struct{})
	defer func() { <-keeperDone }()
	keeperCtx, stopKeeper := context.WithCancel(context.WithoutCancel(ctx))
	defer stopKeeper()
	go func() {
		defer close(keeperDone)
		a.keepLease(keeperCtx, log, asg.StepID, lease, keeping, stopStep)
	}()

	stream := newLogStream(context.WithoutCancel(ctx), a.Client, asg.StepID, lease, log)
	secrets := make([]string, 0, len(asg.Secrets))
	for _, v := range asg.Secrets {
		secrets = append(secrets, v)
	}
	// The repository credentials are not the step's: git alone gets them
	// (agent/source), but whatever git says is masked too.
	for _, c := range []*protocol.GitCredentials{asg.SourceCredentials, asg.CISourceCredentials} {
		if c != nil && c.Password != "" {
			secrets = append(secrets, c.Password, c.Username+":"+c.Password)
		}
		if c != nil && c.SSHKey != "" {
			secrets = append(secrets, c.SSHKey)
		}
	}
	masker := mask.New(secrets)
	limited := newLimitWriter(stream, a.Config.LogLimit)
	masked := masker.NewWriter(limited)
	out := &lastByteWriter{w: masked}
	env := make(map[string]string, len(asg.Env)+1)
	for k, v := range asg.Env {
		env[k] = v
	}
	var helper *cacher.Server
	if a.Config.WorkDir != "" && a.Config.CacherBinary != "" {
		var err error
		helper, err = cacher.Start(a.Config.WorkDir, cacher.Step{StepID: asg.StepID, Lease: lease, Artifacts: a.Client, Masker: masker,
			Logger: log, SecretEnv: asg.Secrets, Runs: a.Client})
		if err != nil {
			log.Error("cacher unavailable", slog.Any("err", err))
			fmt.Fprintf(out, "baton: cacher is not available in this step: %v\n", err)
		}
	}
	hookEnv := []string{"BATON_RUN_ID=" + asg.RunID, "BATON_STEP_ID=" + asg.StepID, "BATON_STEP_NAME=" + asg.StepName,
		fmt.Sprintf("BATON_STEP_ATTEMPT=%d", asg.Attempt), "BATON_PROJECT=" + asg.Project}
	var outcome Outcome
	var err error
	sources, serr := a.prepareSources(ctx, asg, hookEnv, out)
	defer sources.remove()
	if serr != nil {
		err = serr
	} else if _, herr := a.runHook(ctx, HookPreStep, hookEnv, out); herr != nil {
		err = &hookError{herr}
	} else {
		spec := StepSpec{
			RunID: asg.RunID, StepID: asg.StepID, StepName: asg.StepName, Attempt: asg.Attempt,
			Image: asg.Image, Command: asg.Command, Args: asg.Args, Env: env, SecretEnv: asg.Secrets,
			Memory: asg.Memory, NanoCPUs: asg.NanoCPUs,
		}
		if a.Config.SourcesDir != "" {
			if dir, aerr := newArtifactsDir(a.Config.SourcesDir); aerr != nil {
				fmt.Fprintf(out, "baton: no %s for this step: %v\n", ArtifactsMount, aerr)
			} else {
				spec.ArtifactsDir = dir
				defer os.RemoveAll(dir)
			}
		}
		if sources != nil {
			spec.SourceDir, spec.CIDir = sources.src, sources.ci
			if sources.srcCommitID != "" {
				env["BATON_COMMIT"] = sources.srcCommitID
			}
		}
		execCtx, cancelExec := ctx, context.CancelFunc(func() {})
		if asg.Timeout > 0 {
			execCtx, cancelExec = context.WithTimeoutCause(ctx, asg.Timeout, &timeoutError{asg.Timeout})
		}
		if helper != nil {
			spec.Cacher = &CacherMount{Binary: a.Config.CacherBinary, SocketDir: helper.Dir()}
		}
		outcome, err = a.Executor.Execute(execCtx, spec, out)
		cancelExec()
		if spec.ArtifactsDir != "" {
			a.uploadArtifacts(context.WithoutCancel(ctx), asg, spec.ArtifactsDir, out)
		}
	}
	if helper != nil {
		// The step is over: no more calls; its directory goes.
		if cerr := helper.Close(); cerr != nil {
			log.Warn("cacher close", slog.Any("err", cerr))
		}
		outcome.Outputs = cacher.JoinOutputs(outcome.Outputs, helper.Outputs())
	}
	res := resultOf(outcome.ExitCode, err)
	res.Attempt, res.LeaseID = asg.Attempt, asg.LeaseID
	res.Error = string(masker.Mask([]byte(res.Error)))
	if outcome.OOMKilled {
		res.Error = "killed for exceeding its memory limit (out of memory)"
		fmt.Fprintf(out, "\nbaton: step %s\n", res.Error)
	}
	if err != nil {
		fmt.Fprintf(out, "\nbaton: %s\n", res.Error)
	} else if len(outcome.Outputs) > 0 {
		var problems []string
		res.Outputs, problems = runbook.ParseOutputs(outcome.Outputs)
		for k, v := range res.Outputs {
			res.Outputs[k] = string(masker.Mask([]byte(v)))
		}
		for _, p := range problems {
			fmt.Fprintf(out, "baton: $BATON_OUTPUT %s\n", p)
		}
	}
	a.afterHooks(ctx, hookEnv, res, out)
	endLine(out, res, outcome.Container)
	masked.Flush()
	limited.Flush()
	if opts.logWithResult {
		res.Log = stream.CloseKeepingTail() // sent with the result
	} else {
		stream.Close()
	}

	stopKeeper()
	// The next step comes with the result when the agent still takes work.
	res.Next = opts.askNext && a.takesWork.Load()
	if nextRes := a.report(ctx, log, asg.StepID, res, max(reportTimeout, keeping.length)); nextRes != nil {
		if next, err = a.open(nextRes); err != nil {
			next = nil
			a.rejectReservation(ctx, nextRes, err)
		}
	}
	a.Metrics.stepEnded(res, time.Since(started))
	attrs := []any{slog.Duration("took", time.Since(started).Round(time.Millisecond))}
	if res.ExitCode != nil {
		attrs = append(attrs, slog.Int("exit_code", *res.ExitCode))
	}
	if res.Reason != "" {
		attrs = append(attrs, slog.String("reason", string(res.Reason)), slog.String("error", res.Error))
	}
	log.Info("step finished", attrs...)
}

// report sends a step's final result, retrying transient failures with
// backoff for up to within on a context detached from cancellation, so a
// killed step still gets its final word in.
//
// It returns the next step the server reserved with the result, if it
// asked (res.Next). A retry asks again: if the lost answer carried a step,
// the server hands the same one out again.
func (a *Agent) report(ctx context.Context, log *slog.Logger, stepID string, res protocol.StepResult, within time.Duration) *protocol.Reservation {
	reportCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), within)
	defer cancel()
	for attempt := 0; ; attempt++ {
		next, err := a.Client.Complete(reportCtx, stepID, res)
		if err != nil && isBadRequest(err) && (res.Log != nil || res.Next) {
			// A server that does not take what its replica announced (a
			// rolling upgrade): the plain report, the chunk uploaded first.
			log.Warn("the server refused the result's optional parts; reporting without them", slog.Any("err", err))
			if c := res.Log; c != nil {
				times, _ := protocol.ParseLineTimes(c.Times, len(c.Data))
				if err := a.Client.AppendLog(reportCtx, stepID, protocol.LeaseRequest{Attempt: res.Attempt, LeaseID: res.LeaseID},
					c.Offset, c.Data, times); err != nil {
					log.Warn("log upload failed; output lost", slog.Any("err", err))
				}
			}
			res.Log, res.Next = nil, false
			next, err = a.Client.Complete(reportCtx, stepID, res)
		}
		if err == nil || IsRefused(err) {
			if err != nil {
				log.Error("step result refused", slog.Any("err", err))
			}
			return next
		}
		delay := networkBackoff.Delay(attempt)
		log.Warn("reporting step result failed; retrying", slog.Any("err", err), slog.Duration("retry_in", delay))
		select {
		case <-reportCtx.Done():
			log.Error("step result lost: server unreachable", slog.Any("err", err))
			return nil
		case <-time.After(delay):
		}
	}
}

// isBadRequest reports whether the server answered 400.
func isBadRequest(err error) bool {
	var s interface{ HTTPStatus() int }
	return errors.As(err, &s) && s.HTTPStatus() == http.StatusBadRequest
}

// endLine ends a step's log with how it ended: result, failure class,
// exit code and container.
func endLine(out *lastByteWriter, res protocol.StepResult, container string) {
	if out.last != 0 && out.last != '\n' {
		io.WriteString(out, "\n")
	}
	result := "succeeded"
	if res.Reason != "" {
		result = "failed (" + string(res.Reason) + ")"
	}
	code := "none"
	if res.ExitCode != nil {
		code = fmt.Sprint(*res.ExitCode)
	}
	if container == "" {
		container = "none"
	} else if len(container) > 12 {
		container = container[:12]
	}
	fmt.Fprintf(out, "%s %s, exit code %s, container %s\n", EndLinePrefix, result, code, container)
}

// EndLinePrefix starts the last line of every step log.
const EndLinePrefix = "baton: step ended:"

// lastByteWriter remembers the last byte written, so a closing line can
// start on a line of its own.
type lastByteWriter struct {
	w    io.Writer
	last byte
}

func (l *lastByteWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		l.last = p[len(p)-1]
	}
	return l.w.Write(p)
}

// afterHooks runs on-error (if the step failed), post-step and cleanup,
// logging their failures into the step's output.
func (a *Agent) afterHooks(ctx context.Context, env []string, res protocol.StepResult, out io.Writer) {
	result, code := "succeeded", ""
	if res.Reason != "" {
		result = "failed"
	}
	if res.ExitCode != nil {
		code = fmt.Sprint(*res.ExitCode)
	}
	env = append(env, "BATON_STEP_RESULT="+result, "BATON_STEP_EXIT_CODE="+code, "BATON_STEP_REASON="+string(res.Reason))
	phases := []string{HookPostStep, HookCleanup}
	if result == "failed" {
		phases = append([]string{HookOnError}, phases...)
	}
	for _, h := range phases {
		if _, err := a.runHook(ctx, h, env, out); err != nil {
			fmt.Fprintf(out, "baton: %v\n", err)
		}
	}
}

// hookError is a pre-step hook that failed: the step did not run.
type hookError struct{ err error }

func (e *hookError) Error() string { return e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// timeoutError is the cancel cause of a step that ran past its timeout.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("step timed out after %s", e.after) }

// resultOf classifies what Execute returned.
func resultOf(code int, err error) protocol.StepResult {
	var timeout *timeoutError
	switch {
	case err == nil && code == 0:
		return protocol.StepResult{ExitCode: &code}
	case err == nil:
		return protocol.StepResult{ExitCode: &code, Reason: engine.ReasonExitCode}
	case errors.As(err, &timeout):
		return protocol.StepResult{Reason: engine.ReasonTimeout, Error: timeout.Error()}
	case errors.Is(err, context.Canceled) || errors.As(err, new(*stoppedError)):
		return protocol.StepResult{Reason: engine.ReasonCancelled, Error: err.Error()}
	}
	return protocol.StepResult{Reason: engine.ReasonInfra, Error: "step could not run: " + err.Error()}
}
