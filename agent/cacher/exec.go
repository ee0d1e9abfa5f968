package cacher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
)

// pathEnv serves the step's secret environment, once.
const pathEnv = "/env"

// Exec is the first process of a step whose secrets must not sit in its
// container's configuration (where `docker inspect` and the daemon's files
// on disk would show them): it fetches them from the agent over the
// socket (the agent hands them out once), adds them to its environment and
// replaces itself with the step's command (args).
func Exec(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "cacher: exec needs a command")
		return 2
	}
	sock := getenv(EnvSocket)
	if sock == "" {
		fmt.Fprintf(stderr, "cacher: exec: %s is not set\n", EnvSocket)
		return 1
	}
	var secrets map[string]string
	if err := newClient(sock).call(ctx, http.MethodGet, pathEnv, nil, 0, nil, &secrets); err != nil {
		fmt.Fprintf(stderr, "cacher: exec: the step's secrets: %v\n", err)
		return 1
	}
	env := os.Environ()
	for k, v := range secrets {
		env = append(env, k+"="+v)
	}
	bin, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "cacher: exec: %v\n", err)
		return 127
	}
	err = syscall.Exec(bin, args, env)
	fmt.Fprintf(stderr, "cacher: exec %s: %v\n", args[0], err)
	return 126
}

// env hands the step's secret environment to the step's first process,
// once: a later call (anything else in the step) gets 410.
func (s *Server) env(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	secrets, given := s.step.SecretEnv, s.envGiven
	s.envGiven = true
	s.mu.Unlock()
	if given {
		writeError(w, http.StatusGone, "the step's secrets were handed out already")
		return
	}
	if secrets == nil {
		secrets = map[string]string{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(secrets)
}
