package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A project secret reaches the step as an environment variable and is
// masked in its log and outputs; it is never in the database in plaintext.
func TestSecretsAreInjectedAndMasked(t *testing.T) {
	t.Parallel()
	s := fleet(t)
	const value = "hunter2-correct-horse"
	body, _ := json.Marshal(map[string]string{"value": value})
	if code := s.do(t, "PUT", "/api/v1/projects/sec/secrets/API_TOKEN", "application/json", body, nil); code != 204 {
		t.Fatalf("set secret: %d", code)
	}
	run := s.submit(t, "sec", `
steps:
  - name: use
    secrets: [API_TOKEN]
    command: echo "token is $API_TOKEN"; echo "length ${#API_TOKEN}"; echo "leak=$API_TOKEN" >> "$BATON_OUTPUT"
`)
	run = s.waitRun(t, run.ID, 60*time.Second)
	if run.State != "succeeded" {
		t.Fatalf("run %s: %+v", run.State, run.Steps)
	}
	if got, want := s.stepLog(t, run.ID, "use"), "token is ***\nlength 21\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
	if out := run.step(t, "use").Outputs["leak"]; out != "***" {
		t.Errorf("output %q, want the secret masked", out)
	}
	s.stop()
	db, err := readAll(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(db, value) {
		t.Error("the secret value is stored in plaintext in the data dir")
	}
}
