package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/moby/moby/client"
)

// Reap removes what this agent left behind (for example when it was killed
// mid-step), created before the second of before (zero: any time); things
// created since then belong to steps started after the caller looked:
//
//   - every container labelled with this agent's id whose step keep does
//     not claim;
//   - then every run network labelled with this agent's id that no step of
//     this executor holds and no container is attached to (a network
//     carries no step, so keep cannot claim it);
//   - every step directory in the agent's work dir whose step keep does not
//     claim and no step of this executor uses.
//
// It returns how many things it removed.
func (e *Executor) Reap(ctx context.Context, before time.Time, keep func(stepID string) bool) (int, error) {
	removed, err := e.reapContainers(ctx, before, keep)
	if err != nil {
		return removed, err
	}
	n, netErr := e.reapNetworks(ctx, before)
	removed += n
	if e.workDir == "" {
		return removed, netErr
	}
	n, dirErr := e.reapStepDirs(ctx, before, keep)
	return removed + n, errors.Join(netErr, dirErr)
}

func (e *Executor) reapContainers(ctx context.Context, before time.Time, keep func(stepID string) bool) (int, error) {
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", LabelAgent+"="+e.opts.AgentID),
	})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	removed := 0
	for _, c := range res.Items {
		if (!before.IsZero() && c.Created >= before.Unix()) || (keep != nil && keep(c.Labels[LabelStep])) {
			continue
		}
		e.remove(ctx, c.ID)
		e.opts.Logger.Info("removed orphaned step container", slog.String("container", c.ID),
			slog.String("step_id", c.Labels[LabelStep]), slog.String("run_id", c.Labels[LabelRun]))
		removed++
	}
	return removed, nil
}
