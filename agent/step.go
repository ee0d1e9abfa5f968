package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
)

// reportTimeout bounds the final report, which is sent even after shutdown.
const reportTimeout = 30 * time.Second

// runStep executes one assignment, streams its output and reports the
// result. The report uses a context detached from cancellation so a killed
// step still gets its final word in.
func (a *Agent) runStep(ctx context.Context, asg *protocol.Assignment, msgs chan<- any) {
	defer func() { msgs <- stepDone{stepID: asg.StepID} }()
	log := a.Logger.With(slog.String("run_id", asg.RunID), slog.String("step_id", asg.StepID),
		slog.String("step", asg.StepName), slog.Int("attempt", asg.Attempt))
	log.Info("step started", slog.String("image", asg.Image))
	started := time.Now()

	out := newLogStream(context.WithoutCancel(ctx), a.Client, asg.StepID, asg.Attempt, log)
	code, err := a.Executor.Execute(ctx, StepSpec{
		RunID: asg.RunID, StepID: asg.StepID, StepName: asg.StepName, Attempt: asg.Attempt,
		Image: asg.Image, Command: asg.Command, Env: asg.Env,
	}, out)
	res := protocol.StepResult{Attempt: asg.Attempt}
	if err != nil {
		res.Error = err.Error()
		fmt.Fprintf(out, "\nbaton: step could not run: %v\n", err)
	} else {
		res.ExitCode = &code
	}
	out.Close()

	reportCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := a.Client.Complete(reportCtx, asg.StepID, res)
		if err == nil || IsRefused(err) {
			if err != nil {
				log.Error("step result refused", slog.Any("err", err))
			}
			break
		}
		delay := networkBackoff.Delay(attempt)
		log.Warn("reporting step result failed; retrying", slog.Any("err", err), slog.Duration("retry_in", delay))
		select {
		case <-reportCtx.Done():
			log.Error("step result lost: server unreachable", slog.Any("err", err))
			return
		case <-time.After(delay):
		}
	}
	attrs := []any{slog.Duration("took", time.Since(started).Round(time.Millisecond))}
	if res.ExitCode != nil {
		attrs = append(attrs, slog.Int("exit_code", *res.ExitCode))
	} else {
		attrs = append(attrs, slog.String("error", res.Error))
	}
	log.Info("step finished", attrs...)
}
