package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
)

// leaseKeeping is how the Run loop has a step's lease kept: the length the
// server set, and a channel that asks for a renewal now.
type leaseKeeping struct {
	length   time.Duration
	renewNow <-chan struct{}
}

// keepLease renews the lease on a running step every third of the lease
// length, and at once when renewNow fires (the control channel hinted that
// a step was cancelled). It stops the step when the server answers that
// the run was cancelled, or that the lease is no longer this agent's (it
// lapsed and the step went to another attempt, or the step ended). A
// server it cannot reach is retried: the step keeps running, and the
// server decides when the lease lapses.
func (a *Agent) keepLease(ctx context.Context, log *slog.Logger, stepID string, lease protocol.LeaseRequest,
	keeping leaseKeeping, stop context.CancelCauseFunc) {
	length, renewNow := keeping.length, keeping.renewNow
	if length <= 0 {
		length = defaultLease
	}
	every := length / 3
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-renewNow:
			timer.Stop()
		}
		callCtx, cancel := context.WithTimeout(ctx, every)
		ans, err := a.Client.RenewLease(callCtx, stepID, lease)
		cancel()
		switch {
		case err == nil && ans.Cancel:
			log.Info("step cancelled by the server")
			stop(&stoppedError{"cancelled: the run was cancelled"})
			return
		case err == nil:
			timer.Reset(every)
		case ctx.Err() != nil:
			return
		case isStatus(err, http.StatusConflict) || isStatus(err, http.StatusNotFound):
			log.Warn("lease lost: the server no longer gives this step to this agent; stopping it", slog.Any("err", err))
			stop(&stoppedError{"stopped: the step's lease was lost (" + err.Error() + ")"})
			return
		default:
			log.Warn("lease renewal failed; will retry", slog.Any("err", err))
			timer.Reset(min(every, 2*time.Second))
		}
	}
}

// StatusError is an error carrying the server's HTTP status.
type StatusError interface{ HTTPStatus() int }

// isStatus reports whether err is the server answering status.
func isStatus(err error, status int) bool {
	var s StatusError
	return errors.As(err, &s) && s.HTTPStatus() == status
}
