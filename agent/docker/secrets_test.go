package docker

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/cacher"
	"github.com/baton-ci/baton/agent/internal/syncbuf"
	"github.com/baton-ci/baton/shared/mask"
)

// With cacher mounted, a step's secrets are not in its container's
// configuration (docker inspect, the daemon's files on disk): cacher
// fetches them once from the agent and execs the step's command with them.
func TestSecretsStayOutOfTheContainerConfig(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{})
	work := filepath.Join(t.TempDir(), "w")
	if err := cacher.PrepareWorkDir(work); err != nil {
		t.Fatal(err)
	}
	const secret = "tok-5f2b9c81e0"
	srv, err := cacher.Start(work, cacher.Step{StepID: "s", Artifacts: &memArtifacts{files: map[string][]byte{}},
		Masker: mask.New(nil), SecretEnv: map[string]string{"DEPLOY_TOKEN": secret}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The command must not hold the secret itself: it prints it upper-cased.
	s := spec(`echo "token length ${#DEPLOY_TOKEN}"; echo "token $DEPLOY_TOKEN" | tr a-z A-Z; echo "token ok"; `+
		`cacher exec -- true 2>&1 | sed 's/^/second exec: /'; sleep 2`, nil)
	s.SecretEnv = map[string]string{"DEPLOY_TOKEN": secret}
	s.Cacher = &agent.CacherMount{Binary: staticAgent(t), SocketDir: srv.Dir()}
	var out syncbuf.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var inspected string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil && !strings.Contains(out.String(), "token ok") {
			time.Sleep(20 * time.Millisecond)
		}
		for _, id := range containersOf(t, e, s.StepID) {
			info, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			if err == nil && info.Container.Config != nil {
				inspected = strings.Join(info.Container.Config.Env, " ") + " " + strings.Join(info.Container.Config.Cmd, " ")
			}
		}
	}()
	res, err := e.Execute(ctx, s, &out)
	wg.Wait()
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, %v:\n%s", res.ExitCode, err, out.String())
	}
	if got := out.String(); !strings.Contains(got, "token length 14\nTOKEN "+strings.ToUpper(secret)+"\ntoken ok\n") ||
		!strings.Contains(got, "second exec: cacher: exec: the step's secrets:") {
		t.Errorf("output:\n%s", got)
	}
	if inspected == "" {
		t.Fatal("the running container was not inspected")
	}
	if strings.Contains(inspected, secret) || !strings.Contains(inspected, "cacher exec --") {
		t.Errorf("container config shows the secret or lacks the cacher wrapper: %s", inspected)
	}
}
