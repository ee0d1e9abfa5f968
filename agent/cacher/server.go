package cacher

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-ci/baton/shared/artifact"
	"github.com/baton-ci/baton/shared/mask"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

// Step is what a step attempt's Server serves.
type Step struct {
	StepID    string
	Lease     protocol.LeaseRequest
	Artifacts Artifacts
	Masker    Masker
	Logger    *slog.Logger
	// SecretEnv is handed once to the step's first process (see Exec).
	SecretEnv map[string]string
	// Runs starts follow-up runs; nil: cacher trigger is refused.
	Runs Runs
}

// Server is one step attempt's cacher endpoint: HTTP on a Unix socket in
// a directory of its own.
type Server struct {
	step Step
	dir  string
	ln   net.Listener
	http *http.Server
	done chan struct{}

	mu       sync.Mutex
	outputs  []byte
	envGiven bool
}

// maxSocketPath is the longest Unix socket path Linux takes (sun_path, 108
// bytes with its terminating NUL).
const maxSocketPath = 107

// stepDirPattern names a step attempt's directory in the work dir; the
// name is short, so the socket path fits in sun_path.
const stepDirPattern = "c-*"

// PrepareWorkDir creates workDir (0700: only the agent reaches the step
// directories through it; each step reaches its own through a mount),
// checks that a socket path in it fits, and removes step directories left
// by an agent that was killed.
func PrepareWorkDir(workDir string) error {
	probe := filepath.Join(workDir, "c-0123456789", SocketName)
	if len(probe) > maxSocketPath {
		return fmt.Errorf("work dir %s is too long for a Unix socket path in it (%d bytes; at most %d): choose a shorter one",
			workDir, len(probe), maxSocketPath)
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	if err := os.Chmod(workDir, 0o700); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	removeStale(workDir)
	return nil
}

// removeStale removes the step directories an agent that was killed left
// behind: those whose socket nobody listens on any more.
func removeStale(workDir string) {
	dirs, _ := filepath.Glob(filepath.Join(workDir, stepDirPattern))
	for _, dir := range dirs {
		conn, err := net.DialTimeout("unix", filepath.Join(dir, SocketName), time.Second)
		if err == nil {
			conn.Close() // in use: another agent shares the work dir
			continue
		}
		os.RemoveAll(dir)
	}
}

// Start creates a directory of its own in workDir (see PrepareWorkDir),
// listens on SocketName in it and serves step until Close. The directory
// and socket can be reached by any user, since the step's user is not
// known: the work dir above them is private to the agent, and only the
// step's container gets the directory, as a mount.
func Start(workDir string, step Step) (*Server, error) {
	if step.Logger == nil {
		step.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp(workDir, stepDirPattern)
	if err != nil {
		return nil, fmt.Errorf("cacher: step directory: %w", err)
	}
	s := &Server{step: step, dir: dir, done: make(chan struct{})}
	sock := filepath.Join(dir, SocketName)
	if s.ln, err = net.Listen("unix", sock); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cacher: listen: %w", err)
	}
	if err := errors.Join(os.Chmod(sock, 0o666), os.Chmod(dir, 0o755)); err != nil {
		s.ln.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cacher: %w", err)
	}
	s.http = &http.Server{Handler: http.HandlerFunc(s.route), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		s.http.Serve(s.ln)
	}()
	return s, nil
}

// Dir is the directory holding the socket, to mount into the step.
func (s *Server) Dir() string { return s.dir }

// Outputs returns what the step set with `cacher output`, in the
// $BATON_OUTPUT format (see JoinOutputs).
func (s *Server) Outputs() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.outputs...)
}

// Close stops serving, ends calls under way (their proxied requests are
// cancelled) and removes the directory.
func (s *Server) Close() error {
	err := s.http.Close()
	<-s.done
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("cacher: remove step directory: %w", rerr))
	}
	return err
}

// route dispatches on the raw path, without the cleaning of
// http.ServeMux, so a key is checked as it was sent.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	switch key, isArtifact := strings.CutPrefix(r.URL.Path, pathArtifacts); {
	case isArtifact && r.Method == http.MethodPut:
		s.putArtifact(w, r, key)
	case isArtifact && r.Method == http.MethodGet:
		s.getArtifact(w, r, key)
	case isArtifact && r.Method == http.MethodDelete:
		s.deleteArtifact(w, r, key)
	case r.URL.Path == pathMask && r.Method == http.MethodPost:
		s.mask(w, r)
	case r.URL.Path == pathOutput && r.Method == http.MethodPost:
		s.output(w, r)
	case r.URL.Path == pathEnv && r.Method == http.MethodGet:
		s.env(w, r)
	case r.URL.Path == pathTrigger && r.Method == http.MethodPost:
		s.trigger(w, r)
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s is not a cacher call", r.Method, r.URL.Path))
	}
}

func (s *Server) putArtifact(w http.ResponseWriter, r *http.Request, key string) {
	if err := artifact.ValidateKey(key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a, err := s.step.Artifacts.PutArtifact(r.Context(), s.step.StepID, s.step.Lease, key, r.Body, r.ContentLength,
		r.Header.Get(protocol.HeaderSHA256))
	if err != nil {
		s.upstreamError(w, r, "put", key, err)
		return
	}
	s.step.Logger.Info("cacher put", slog.String("key", key), slog.Int64("size", a.Size))
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request, key string) {
	if err := artifact.ValidateKey(key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, a, err := s.step.Artifacts.GetArtifact(r.Context(), s.step.StepID, s.step.Lease, key)
	if err != nil {
		s.upstreamError(w, r, "get", key, err)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	if a.Size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(a.Size, 10))
	}
	w.Header().Set(protocol.HeaderSHA256, a.SHA256)
	w.WriteHeader(http.StatusOK)
	n, err := io.Copy(w, body)
	if err != nil {
		s.step.Logger.Warn("cacher get cut short", slog.String("key", key), slog.Int64("sent", n), slog.Any("err", err))
		return
	}
	s.step.Logger.Info("cacher get", slog.String("key", key), slog.Int64("size", n))
}

func (s *Server) deleteArtifact(w http.ResponseWriter, r *http.Request, key string) {
	if err := artifact.ValidateKey(key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.step.Artifacts.DeleteArtifact(r.Context(), s.step.StepID, s.step.Lease, key); err != nil {
		s.upstreamError(w, r, "delete", key, err)
		return
	}
	s.step.Logger.Info("cacher delete", slog.String("key", key))
	w.WriteHeader(http.StatusNoContent)
}

// mask takes the request body as a secret. The value is never logged nor
// echoed, also not in an error.
func (s *Server) mask(w http.ResponseWriter, r *http.Request) {
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMaskValue))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a value to mask may have at most %d bytes", maxMaskValue))
		return
	}
	if err := s.step.Masker.AddSecret(string(value)); err != nil {
		if errors.Is(err, mask.ErrTooShort) {
			err = fmt.Errorf("refused: the value has %d characters; values shorter than %d are not masked, as that would hide ordinary text all over the log",
				len(value), mask.MinSecretLength)
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.step.Logger.Info("cacher mask: a value is masked from now on")
	w.WriteHeader(http.StatusNoContent)
}

// output records a step output as if written to $BATON_OUTPUT.
func (s *Server) output(w http.ResponseWriter, r *http.Request) {
	var req outputRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4*runbook.MaxOutputBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid output request: "+err.Error())
		return
	}
	if err := checkOutputName(req.Name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	line := encodeOutput(req.Name, req.Value)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.outputs)+len(line) > runbook.MaxOutputBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("outputs would exceed %d bytes, the limit for a step", runbook.MaxOutputBytes))
		return
	}
	s.outputs = append(s.outputs, line...)
	w.WriteHeader(http.StatusNoContent)
}

// upstreamError answers with the server's refusal (its status and
// message) or, when the server could not be reached, 502.
func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, op, key string, err error) {
	status := http.StatusBadGateway
	var se interface{ HTTPStatus() int }
	if errors.As(err, &se) {
		status = se.HTTPStatus()
	}
	if r.Context().Err() == nil {
		s.step.Logger.Warn("cacher "+op+" failed", slog.String("key", key), slog.Any("err", err))
	}
	writeError(w, status, err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, protocol.Error{Error: msg})
}

// trigger starts a follow-up run through the server.
func (s *Server) trigger(w http.ResponseWriter, r *http.Request) {
	if s.step.Runs == nil {
		writeError(w, http.StatusNotImplemented, "this agent cannot start runs")
		return
	}
	var req triggerRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Runbook == "" {
		writeError(w, http.StatusBadRequest, "invalid trigger request: give the runbook's path")
		return
	}
	id, err := s.step.Runs.Trigger(r.Context(), s.step.StepID, s.step.Lease, req.Runbook, req.Params)
	if err != nil {
		s.upstreamError(w, r, "trigger", req.Runbook, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"run_id": id})
}
