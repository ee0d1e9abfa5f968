package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/shared/protocol"
)

const twoSteps = "steps:\n  - name: a\n    command: a\n  - name: b\n    command: b\n    depends_on: [a]\n"

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// artifactPath is the agent API path of key for a step under its lease.
func (ts *testServer) artifactPath(stepID string, attempt int, key string) string {
	return fmt.Sprintf(protocol.PathStepArtifact, stepID, key) + fmt.Sprintf("?attempt=%d&lease=%s", attempt, ts.lease(stepID))
}

// artifactCall sends an artifact request with an optional checksum and
// body; a nil body with size -1 sends a chunked one from r.
func (a *testAgent) artifactCall(t *testing.T, ts *testServer, method, path string, body io.Reader, checksum string) *response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	if checksum != "" {
		req.Header.Set(protocol.HeaderSHA256, checksum)
	}
	res, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &response{Status: res.StatusCode, Header: res.Header, Body: b}
}

func wantError(t *testing.T, what string, res *response, status int, parts ...string) {
	t.Helper()
	wantStatus(t, what, res, status)
	msg := res.errorMessage(t)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("%s: error %q lacks %q", what, msg, p)
		}
	}
}

// Artifacts through the agent API: stored streamed and checksummed, read
// back with size and checksum, scoped to the run of the step whose lease
// is presented, keys validated, and deleted.
func TestArtifactRoutes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "art")
	runA := ts.createRun(t, "art", twoSteps)
	a := agent.reserveStep(t, ts, "a")
	content := bytes.Repeat([]byte("artifact bytes "), 50_000)
	path := ts.artifactPath(a.StepID, 1, "dist/app.tgz")

	res := agent.artifactCall(t, ts, http.MethodPut, path, bytes.NewReader(content), sum(content))
	wantStatus(t, "put", res, http.StatusCreated)
	var stored protocol.Artifact
	res.decode(t, &stored)
	if stored.Key != "dist/app.tgz" || stored.Size != int64(len(content)) || stored.SHA256 != sum(content) || stored.CreatedAt.IsZero() {
		t.Errorf("put answered %+v", stored)
	}
	res = agent.artifactCall(t, ts, http.MethodGet, path, nil, "")
	wantStatus(t, "get", res, http.StatusOK)
	if !bytes.Equal(res.Body, content) || res.Header.Get(protocol.HeaderSHA256) != sum(content) ||
		res.Header.Get("Content-Length") != fmt.Sprint(len(content)) {
		t.Errorf("get: %d bytes, %s %s", len(res.Body), res.Header.Get(protocol.HeaderSHA256), res.Header.Get("Content-Length"))
	}
	// Replacing; a chunked upload without a checksum is fine.
	res = agent.artifactCall(t, ts, http.MethodPut, path, io.MultiReader(strings.NewReader("v2")), "")
	wantStatus(t, "replace (chunked)", res, http.StatusCreated)
	if res = agent.artifactCall(t, ts, http.MethodGet, path, nil, ""); string(res.Body) != "v2" || res.Header.Get(protocol.HeaderSHA256) != sum([]byte("v2")) {
		t.Errorf("after replace: %q %s", res.Body, res.Header.Get(protocol.HeaderSHA256))
	}
	// Content that does not match the checksum sent is not stored.
	res = agent.artifactCall(t, ts, http.MethodPut, path, strings.NewReader("tampered"), sum([]byte("original")))
	wantError(t, "put with a wrong checksum", res, http.StatusBadRequest, "dist/app.tgz", "damaged in transit")
	if res = agent.artifactCall(t, ts, http.MethodGet, path, nil, ""); string(res.Body) != "v2" {
		t.Errorf("a refused put changed the artifact: %q", res.Body)
	}
	wantError(t, "put with a malformed checksum", agent.artifactCall(t, ts, http.MethodPut, path, strings.NewReader("x"), "abc"),
		http.StatusBadRequest, protocol.HeaderSHA256)

	// Unknown keys, and keys that try to leave the run.
	wantError(t, "get unknown", agent.artifactCall(t, ts, http.MethodGet, ts.artifactPath(a.StepID, 1, "nope/x"), nil, ""),
		http.StatusNotFound, `no artifact "nope/x"`)
	for key, want := range map[string]string{
		"../x":         `must not be ".."`,
		"a/../../x":    `must not be ".."`,
		"/etc/passwd":  "must be relative",
		"%2Fetc%2Fpwd": "is not allowed",
		"a/":           "must not end with '/'",
	} {
		for _, method := range []string{http.MethodPut, http.MethodGet, http.MethodDelete} {
			res := agent.artifactCall(t, ts, method, ts.artifactPath(a.StepID, 1, key), strings.NewReader("x"), "")
			wantError(t, method+" "+key, res, http.StatusBadRequest, want)
		}
	}
	entries, _ := os.ReadDir(ts.artifacts)
	if len(entries) != 1 || entries[0].Name() != runA.ID {
		t.Errorf("artifact dir holds %v, want only run %s", entries, runA.ID)
	}

	// Leases: a stale lease, another agent, a missing lease or attempt.
	wantStatus(t, "get with a stale lease", agent.artifactCall(t, ts, http.MethodGet,
		fmt.Sprintf(protocol.PathStepArtifact, a.StepID, "dist/app.tgz")+"?attempt=1&lease=old", nil, ""), http.StatusConflict)
	other := ts.newAgent(t, "other")
	wantStatus(t, "get by another agent", other.artifactCall(t, ts, http.MethodGet, path, nil, ""), http.StatusConflict)
	wantError(t, "get without a lease", agent.artifactCall(t, ts, http.MethodGet,
		fmt.Sprintf(protocol.PathStepArtifact, a.StepID, "dist/app.tgz")+"?attempt=1", nil, ""), http.StatusBadRequest, "lease")
	wantError(t, "get without an attempt", agent.artifactCall(t, ts, http.MethodGet,
		fmt.Sprintf(protocol.PathStepArtifact, a.StepID, "dist/app.tgz")+"?lease=x", nil, ""), http.StatusBadRequest, "attempt")

	// The next step of the same run sees it; a step of another run does not.
	wantStatus(t, "complete a", agent.complete(t, ts, a.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusNoContent)
	wantStatus(t, "get after a ended", agent.artifactCall(t, ts, http.MethodGet, path, nil, ""), http.StatusConflict)
	b := agent.reserveStep(t, ts, "b")
	if res = agent.artifactCall(t, ts, http.MethodGet, ts.artifactPath(b.StepID, 1, "dist/app.tgz"), nil, ""); res.Status != 200 || string(res.Body) != "v2" {
		t.Errorf("b of the same run: %d %q", res.Status, res.Body)
	}
	ts.createRun(t, "art", twoSteps)
	otherRun := other.reserveStep(t, ts, "a")
	wantError(t, "get from another run", other.artifactCall(t, ts, http.MethodGet, ts.artifactPath(otherRun.StepID, 1, "dist/app.tgz"), nil, ""),
		http.StatusNotFound, `no artifact "dist/app.tgz" in this run`)

	// Delete.
	delPath := ts.artifactPath(b.StepID, 1, "dist/app.tgz")
	wantStatus(t, "delete", agent.artifactCall(t, ts, http.MethodDelete, delPath, nil, ""), http.StatusNoContent)
	wantError(t, "get deleted", agent.artifactCall(t, ts, http.MethodGet, delPath, nil, ""), http.StatusNotFound, "dist/app.tgz")
	wantError(t, "delete again", agent.artifactCall(t, ts, http.MethodDelete, delPath, nil, ""), http.StatusNotFound, "dist/app.tgz")
	if files, _ := os.ReadDir(filepath.Join(ts.artifacts, runA.ID)); len(files) != 0 {
		t.Errorf("content left after delete: %v", files)
	}
}

// An artifact over --artifact-max-bytes is refused with 413, whether its
// size is announced or found out while streaming; nothing is kept.
func TestArtifactSizeLimit(t *testing.T) {
	t.Parallel()
	ts := newTestServerWith(t, func(s *api.Server) { s.ArtifactMaxBytes = 1000 })
	agent := ts.newAgent(t, "limits")
	run := ts.createRun(t, "limits", twoSteps)
	a := agent.reserveStep(t, ts, "a")
	path := ts.artifactPath(a.StepID, 1, "big")
	big := bytes.Repeat([]byte("x"), 1001)
	wantError(t, "put with Content-Length over the limit", agent.artifactCall(t, ts, http.MethodPut, path, bytes.NewReader(big), ""),
		http.StatusRequestEntityTooLarge, `artifact "big" is larger than this server's limit of 1000 bytes`)
	wantError(t, "chunked put over the limit", agent.artifactCall(t, ts, http.MethodPut, path, io.MultiReader(bytes.NewReader(big)), ""),
		http.StatusRequestEntityTooLarge, "limit of 1000 bytes")
	wantStatus(t, "get", agent.artifactCall(t, ts, http.MethodGet, path, nil, ""), http.StatusNotFound)
	if files, _ := os.ReadDir(filepath.Join(ts.artifacts, run.ID)); len(files) != 0 {
		t.Errorf("files left after refused puts: %v", files)
	}
	wantStatus(t, "put at the limit", agent.artifactCall(t, ts, http.MethodPut, path, io.MultiReader(bytes.NewReader(big[:1000])), ""), http.StatusCreated)
}

// The retention sweep deletes the artifacts of runs that finished longer
// ago than the retention, and only those.
func TestSweepArtifacts(t *testing.T) {
	t.Parallel()
	const retention = 50 * time.Millisecond
	ts := newTestServerWith(t, func(s *api.Server) { s.ArtifactRetention = retention })
	agent := ts.newAgent(t, "sweep")
	done := ts.createRun(t, "sweep", "steps:\n  - name: a\n    command: a\n")
	a := agent.reserveStep(t, ts, "a")
	wantStatus(t, "put", agent.artifactCall(t, ts, http.MethodPut, ts.artifactPath(a.StepID, 1, "k"), strings.NewReader("kept a while"), ""), http.StatusCreated)
	wantStatus(t, "complete", agent.complete(t, ts, a.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusNoContent)
	finished := ts.getRun(t, done.ID).FinishedAt
	if finished == nil {
		t.Fatal("run did not finish")
	}
	running := ts.createRun(t, "sweep", "steps:\n  - name: a\n    command: a\n")
	r := agent.reserveStep(t, ts, "a")
	wantStatus(t, "put", agent.artifactCall(t, ts, http.MethodPut, ts.artifactPath(r.StepID, 1, "k"), strings.NewReader("in use"), ""), http.StatusCreated)

	if n, err := ts.srv.SweepArtifacts(t.Context(), finished.Add(retention-10*time.Millisecond)); err != nil || n != 0 {
		t.Fatalf("sweep within the retention: %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(ts.artifacts, done.ID)); err != nil {
		t.Fatalf("swept too early: %v", err)
	}
	if n, err := ts.srv.SweepArtifacts(t.Context(), finished.Add(retention+10*time.Millisecond)); err != nil || n != 1 {
		t.Fatalf("sweep past the retention: %d, %v; want 1 run", n, err)
	}
	if _, err := os.Stat(filepath.Join(ts.artifacts, done.ID)); !os.IsNotExist(err) {
		t.Errorf("the finished run's artifacts are still on disk: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ts.artifacts, running.ID)); err != nil {
		t.Errorf("the running run's artifacts were swept: %v", err)
	}
	if res := agent.artifactCall(t, ts, http.MethodGet, ts.artifactPath(r.StepID, 1, "k"), nil, ""); string(res.Body) != "in use" {
		t.Errorf("running run's artifact: %d %q", res.Status, res.Body)
	}
	if n, err := ts.srv.SweepArtifacts(t.Context(), time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("second sweep: %d, %v; want nothing left to clear", n, err)
	}
}
