package docker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Network modes of step containers.
const (
	// NetworkNone gives a step only its loopback interface (the default).
	NetworkNone = "none"
	// NetworkBridge puts a step on Docker's default bridge, where it can
	// reach every other container on that bridge, of any run.
	NetworkBridge = "bridge"
	// NetworkRun puts the steps of one run on this agent on a bridge network
	// of their own, where each is known by its step name. Steps of other
	// runs, and of the same run on other agents, cannot reach them, except
	// (Docker 20.10) for milliseconds while the daemon creates a network:
	// see docs/architecture.md, Step isolation.
	NetworkRun = "run"
	// NetworkHost shares the host's network stack; only with
	// Options.AllowHostNetwork.
	NetworkHost = "host"
)

// NetworkModes lists the network modes.
func NetworkModes() []string { return []string{NetworkNone, NetworkBridge, NetworkRun, NetworkHost} }

// CheckNetwork tells whether mode is a network mode steps may use.
func CheckNetwork(mode string, allowHost bool) error {
	switch mode {
	case NetworkNone, NetworkBridge, NetworkRun:
		return nil
	case NetworkHost:
		if !allowHost {
			return fmt.Errorf("network mode host gives steps the host's network stack (its loopback services, all its interfaces); allow it explicitly (--allow-host-network) or use %s", NetworkRun)
		}
		return nil
	}
	return fmt.Errorf("network mode %q: use %s", mode, strings.Join(NetworkModes(), ", "))
}

// runNetworks counts the steps that use each run's network on this agent,
// so that concurrent steps of a run share one network and the last to end
// removes it.
type runNetworks struct {
	mu   sync.Mutex
	runs map[string]*runNetwork // by run id
}

type runNetwork struct {
	users int        // steps holding the network; guarded by runNetworks.mu
	mu    sync.Mutex // held while the network is looked up, created or removed
	id    string     // the Docker network, once there is one; guarded by mu
}

// networkName names the network of a run on this agent. The agent id keeps
// two agents sharing one Docker daemon out of each other's networks.
func (e *Executor) networkName(runID string) string {
	return "baton-run-" + runID + "-" + e.opts.AgentID
}

// acquireNetwork returns the id of the run's network, creating it when no
// step of the run holds it yet. Each successful call needs a releaseNetwork.
func (e *Executor) acquireNetwork(ctx context.Context, runID string) (string, error) {
	e.nets.mu.Lock()
	n := e.nets.runs[runID]
	if n == nil {
		n = &runNetwork{}
		e.nets.runs[runID] = n
	}
	n.users++
	e.nets.mu.Unlock()

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.id == "" {
		id, err := e.ensureNetwork(ctx, runID)
		if err != nil {
			e.nets.mu.Lock()
			if n.users--; n.users == 0 {
				delete(e.nets.runs, runID)
			}
			e.nets.mu.Unlock()
			return "", err
		}
		n.id = id
	}
	return n.id, nil
}

// releaseNetwork gives up a step's hold on the run's network and removes
// the network when no other step holds it. The removal is best effort and
// is not interrupted by the step's cancellation.
func (e *Executor) releaseNetwork(ctx context.Context, runID string) {
	e.nets.mu.Lock()
	n := e.nets.runs[runID]
	n.users--
	last := n.users == 0
	e.nets.mu.Unlock()
	if !last {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	e.nets.mu.Lock()
	again := n.users > 0 // a new step of the run came meanwhile and keeps the network
	e.nets.mu.Unlock()
	if again {
		return
	}
	if n.id != "" {
		e.removeNetwork(ctx, n.id, runID)
		n.id = ""
	}
	e.nets.mu.Lock()
	if n.users == 0 { // else a step waits for n.mu and will create it anew
		delete(e.nets.runs, runID)
	}
	e.nets.mu.Unlock()
}

// ensureNetwork finds or creates the run's network and returns its id.
func (e *Executor) ensureNetwork(ctx context.Context, runID string) (string, error) {
	name := e.networkName(runID)
	if id, err := e.findNetwork(ctx, name, runID); err != nil || id != "" {
		return id, err
	}
	createCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	_, err := e.cli.NetworkCreate(createCtx, name, client.NetworkCreateOptions{
		Driver: "bridge",
		Labels: map[string]string{LabelAgent: e.opts.AgentID, LabelRun: runID},
	})
	if err != nil && !cerrdefs.IsConflict(err) {
		return "", fmt.Errorf("create network %s: %w", name, err)
	}
	// Look again: someone else may have created it too (a conflict on
	// newer daemons, a second network of the same name before API 1.44).
	id, err := e.findNetwork(ctx, name, runID)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("create network %s: it exists but is not labelled as this agent's", name)
	}
	return id, nil
}

// findNetwork returns the id of this agent's network named name, or ""
// when there is none. Of several, the oldest is the one: every creator
// picks it and removes the others, because Docker refuses to start a
// container on a network whose name is ambiguous.
func (e *Executor) findNetwork(ctx context.Context, name, runID string) (string, error) {
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{
		Filters: make(client.Filters).Add("name", name).Add("label", LabelAgent+"="+e.opts.AgentID),
	})
	if err != nil {
		return "", fmt.Errorf("list networks named %s: %w", name, err)
	}
	nets := slices.DeleteFunc(res.Items, func(n network.Summary) bool { return n.Name != name }) // the filter matches substrings
	if len(nets) == 0 {
		return "", nil
	}
	slices.SortFunc(nets, func(a, b network.Summary) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, extra := range nets[1:] {
		e.removeNetwork(ctx, extra.ID, runID)
	}
	return nets[0].ID, nil
}

// removeNetwork deletes a network, even when ctx is cancelled. Docker
// refuses while a container is attached; Reap retries later.
func (e *Executor) removeNetwork(ctx context.Context, id, runID string) bool {
	rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := e.cli.NetworkRemove(rmCtx, id, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		e.opts.Logger.Warn("remove run network", slog.String("network", id), slog.String("run_id", runID), slog.Any("err", err))
		return false
	}
	return true
}

// reapNetworks removes this agent's run networks created before before (zero:
// any time) that no step of this executor holds and no container uses.
func (e *Executor) reapNetworks(ctx context.Context, before time.Time) (int, error) {
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{
		Filters: make(client.Filters).Add("label", LabelAgent+"="+e.opts.AgentID),
	})
	if err != nil {
		return 0, fmt.Errorf("list networks: %w", err)
	}
	removed := 0
	for _, nw := range res.Items {
		if !before.IsZero() && !nw.Created.Before(before) {
			continue
		}
		runID := nw.Labels[LabelRun]
		// Take the run's entry so that no step of the run creates or joins
		// its network while it is being removed; skip runs with live steps.
		e.nets.mu.Lock()
		if _, live := e.nets.runs[runID]; live {
			e.nets.mu.Unlock()
			continue
		}
		n := &runNetwork{}
		n.mu.Lock()
		e.nets.runs[runID] = n
		e.nets.mu.Unlock()

		used, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
			All: true, Filters: make(client.Filters).Add("network", nw.ID),
		})
		if err == nil && len(used.Items) == 0 && e.removeNetwork(ctx, nw.ID, runID) {
			e.opts.Logger.Info("removed orphaned run network", slog.String("network", nw.Name), slog.String("run_id", runID))
			removed++
		}

		e.nets.mu.Lock()
		if n.users == 0 {
			delete(e.nets.runs, runID)
		}
		e.nets.mu.Unlock()
		n.mu.Unlock()
		if err != nil {
			return removed, fmt.Errorf("list containers on network %s: %w", nw.Name, err)
		}
	}
	return removed, nil
}
