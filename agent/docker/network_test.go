package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/baton-ci/baton/agent"
)

// runSpec is a step of the given run, named name.
func runSpec(runID, name, command string) agent.StepSpec {
	s := spec(command, nil)
	s.RunID, s.StepName = runID, name
	return s
}

// networkOf returns the id of the run's network, or "" when there is none.
func networkOf(t *testing.T, e *Executor, runID string) string {
	t.Helper()
	id, err := e.findNetwork(context.Background(), e.networkName(runID), runID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fetch is a step script that gets url within 3 s, retrying for up to
// about 10 s so that a server still starting is no failure.
func fetch(url string) string {
	return fmt.Sprintf(`for i in $(seq 30); do timeout 3 wget -q -O - %s && exit 0; sleep 0.3; done; exit 1`, url)
}

// Steps of one run on one agent reach each other by step name and by
// address; a step of another run, or of the same run on another agent,
// cannot reach them. The run's network lives as long as a step holds it.
func TestRunNetworkIsolation(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{Network: NetworkRun, StopGrace: time.Second})
	runA, runB := uniqueID("run-a"), uniqueID("run-b")

	server := startStep(t, e, runSpec(runB, "server",
		`echo hello-from-b >/workspace/index.html; exec timeout 20 httpd -f -p 8080 -h /workspace`))
	info, err := e.cli.ContainerInspect(context.Background(), server.id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep := info.Container.NetworkSettings.Networks[e.networkName(runB)]
	if ep == nil || !ep.IPAddress.IsValid() {
		t.Fatalf("server has no address on %s: %+v", e.networkName(runB), info.Container.NetworkSettings.Networks)
	}
	if len(info.Container.NetworkSettings.Networks) != 1 {
		t.Errorf("server is on more networks than its run's: %v", info.Container.NetworkSettings.Networks)
	}
	ip := ep.IPAddress.String()

	for _, url := range []string{"http://server:8080/", "http://" + ip + ":8080/"} {
		res, out := runStep(t, e, runSpec(runB, "client", fetch(url)))
		if res.ExitCode != 0 || out != "hello-from-b\n" {
			t.Errorf("same run, %s: exit %d, output %q; want the server's page", url, res.ExitCode, out)
		}
	}
	if networkOf(t, e, runB) == "" {
		t.Error("run B's network is gone while its server still runs")
	}

	other := newExecutor(t, Options{Network: NetworkRun, AgentID: uniqueID("other-agent")})
	for _, c := range []struct {
		name string
		e    *Executor
		run  string
	}{{"another run", e, runA}, {"the same run on another agent", other, runB}} {
		// Hold the intruder's network, so that running the probe creates
		// no network (see probeIsolation).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := c.e.acquireNetwork(ctx, c.run); err != nil {
			t.Fatal(err)
		}
		cancel()
		probeIsolation(t, c.name, c.e, runSpec(c.run, "intruder", `timeout 3 wget -q -O - http://`+ip+`:8080/ && echo REACHED
timeout 3 wget -q -O - http://server:8080/ && echo REACHED; ls /sys/class/net`))
		c.e.releaseNetwork(context.Background(), c.run)
	}
	if id := networkOf(t, e, runA); id != "" {
		t.Errorf("run A's network %s is left after its step", id)
	}

	server.stop(t)
	if id := networkOf(t, e, runB); id != "" {
		t.Errorf("run B's network %s is left after its last step", id)
	}
}

// probeIsolation runs an intruder step that must not reach the server. On
// Docker 20.10 isolation between bridge networks lapses for milliseconds
// whenever the daemon creates any bridge network (it deletes and re-inserts
// the FORWARD jump to its isolation chain), so a probe that got through is
// retried when the daemon created a network meanwhile (other tests do), and
// is a failure when it did not.
func probeIsolation(t *testing.T, name string, e *Executor, s agent.StepSpec) {
	t.Helper()
	for try := 1; ; try++ {
		start := time.Now()
		res, out := runStep(t, e, s)
		if !strings.Contains(out, "eth0") {
			t.Fatalf("%s: output %q; want a network interface", name, out)
		}
		if !strings.Contains(out, "REACHED") && !strings.Contains(out, "hello-from-b") {
			return
		}
		creates := networkCreates(t, e, start, time.Now().Add(time.Second))
		if creates == 0 || try == 5 {
			t.Errorf("%s: exit %d, output %q (try %d, %d networks created meanwhile); want no way to the server",
				name, res.ExitCode, out, try, creates)
			return
		}
		t.Logf("%s reached the server while the daemon created %d networks; retrying", name, creates)
		s.StepID = uniqueID("step")
	}
}

// networkCreates counts the networks the daemon created between since and
// until, waiting until then.
func networkCreates(t *testing.T, e *Executor, since, until time.Time) int {
	t.Helper()
	stamp := func(at time.Time) string { return fmt.Sprintf("%d.%09d", at.Unix(), at.Nanosecond()) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Until(until)+30*time.Second)
	defer cancel()
	res := e.cli.Events(ctx, client.EventsListOptions{
		Since: stamp(since), Until: stamp(until),
		Filters: make(client.Filters).Add("type", "network").Add("event", "create"),
	})
	n := 0
	for {
		select {
		case <-res.Messages:
			n++
		case err := <-res.Err:
			if !errors.Is(err, io.EOF) {
				t.Fatalf("network events: %v", err)
			}
			return n
		}
	}
}

// With network none a step has only the loopback interface.
func TestNetworkNoneIsLoopbackOnly(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{})
	res, out := runStep(t, e, spec(`ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '`, nil))
	if res.ExitCode != 0 || out != "lo\nlo\n" {
		t.Errorf("exit %d, output %q; want only lo", res.ExitCode, out)
	}
}

// Many steps of one run starting and ending at once share one network,
// which is gone when the last one ends.
func TestRunNetworkSharedByConcurrentSteps(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{Network: NetworkRun})
	runID := uniqueID("run-shared")
	var wg sync.WaitGroup
	outs := make([]string, 6)
	for i := range outs {
		wg.Go(func() {
			// The subnet of eth0 tells which network the step is on.
			s := runSpec(runID, fmt.Sprintf("s%d", i), `ip -4 route | grep -v default | grep eth0 | cut -d' ' -f1`)
			_, outs[i] = runStep(t, e, s)
		})
	}
	wg.Wait()
	for i, out := range outs {
		if out == "" || out != outs[0] {
			t.Errorf("step %d: subnet %q, step 0: %q; want one and the same", i, out, outs[0])
		}
	}
	if id := networkOf(t, e, runID); id != "" {
		t.Errorf("network %s left after all steps", id)
	}
	e.nets.mu.Lock()
	defer e.nets.mu.Unlock()
	if len(e.nets.runs) != 0 {
		t.Errorf("network holds left: %v", e.nets.runs)
	}
}

// Reap removes a run network of this agent that nothing uses, but not one a
// step holds, one made after before, or another agent's.
func TestReapRemovesOrphanNetworks(t *testing.T) {
	t.Parallel()
	agentID := uniqueID("reap-nets")
	e := newExecutor(t, Options{Network: NetworkRun, AgentID: agentID})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	create := func(agentID, runID string) string {
		t.Helper()
		name := "baton-run-" + runID + "-" + agentID
		res, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver: "bridge", Labels: map[string]string{LabelAgent: agentID, LabelRun: runID},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.cli.NetworkRemove(context.Background(), res.ID, client.NetworkRemoveOptions{}) })
		return res.ID
	}
	orphan := create(agentID, uniqueID("run-orphan"))
	foreign := create(uniqueID("another-agent"), uniqueID("run-foreign"))
	held := runSpec(uniqueID("run-held"), "held", "exec timeout 20 sleep 20")
	b := startStep(t, e, held)
	keep := func(stepID string) bool { return stepID == held.StepID }

	if n, err := e.Reap(ctx, time.Now().Add(-time.Hour), keep); err != nil || n != 0 {
		t.Errorf("reap of things made before an hour ago: %d, %v", n, err)
	}
	if n, err := e.Reap(ctx, time.Now().Add(time.Second), keep); err != nil || n != 1 {
		t.Errorf("reap: %d removed, %v; want the orphan network only", n, err)
	}
	exists := func(id string) bool {
		_, err := e.cli.NetworkInspect(ctx, id, client.NetworkInspectOptions{})
		return err == nil
	}
	if exists(orphan) {
		t.Error("the orphan network is still there")
	}
	if !exists(foreign) {
		t.Error("another agent's network was removed")
	}
	if networkOf(t, e, held.RunID) == "" {
		t.Error("the network of a held step was removed")
	}
	b.stop(t)
	if id := networkOf(t, e, held.RunID); id != "" {
		t.Errorf("network %s left after its step", id)
	}
}

// A network already there (left by an earlier agent process, or made by a
// racing creator) is reused; of two with one name, the oldest wins.
func TestRunNetworkReusesExisting(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{Network: NetworkRun, AgentID: uniqueID("reuse")})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runID := uniqueID("run-reuse")
	start := time.Now()
	first, err := e.ensureNetwork(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if n := networkCreates(t, e, start, time.Now().Add(time.Second)); n < 1 { // probeIsolation relies on it
		t.Errorf("%d network create events seen, want at least 1", n)
	}
	t.Cleanup(func() { e.cli.NetworkRemove(context.Background(), first, client.NetworkRemoveOptions{}) })
	second, err := e.ensureNetwork(ctx, runID)
	if err != nil || second != first {
		t.Errorf("second ensure: %s, %v; want %s", second, err, first)
	}
	// Daemons before API 1.44 make a second network of the same name.
	dup, err := e.cli.NetworkCreate(ctx, e.networkName(runID), client.NetworkCreateOptions{
		Driver: "bridge", Labels: map[string]string{LabelAgent: e.opts.AgentID, LabelRun: runID},
	})
	if err == nil {
		t.Cleanup(func() { e.cli.NetworkRemove(context.Background(), dup.ID, client.NetworkRemoveOptions{}) })
		if id, err := e.ensureNetwork(ctx, runID); err != nil || id != first {
			t.Errorf("ensure with a duplicate: %s, %v; want the oldest, %s", id, err, first)
		}
		if _, err := e.cli.NetworkInspect(ctx, dup.ID, client.NetworkInspectOptions{}); err == nil {
			t.Error("the younger duplicate network was not removed")
		}
	}
	res, _ := runStep(t, e, runSpec(runID, "s", "true"))
	if res.ExitCode != 0 {
		t.Errorf("step on the existing network: exit %d", res.ExitCode)
	}
	if id := networkOf(t, e, runID); id != "" {
		t.Errorf("network %s left after the step", id)
	}
}
