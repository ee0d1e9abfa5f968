package api

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/artifact"
	"github.com/baton-ci/baton/shared/protocol"
)

// Defaults of the artifact limits.
const (
	DefaultArtifactMaxBytes  = 1 << 30
	DefaultArtifactRetention = 7 * 24 * time.Hour
)

// ArtifactFiles keeps artifact content (package artifacts, on the file
// system). Content is staged (streamed into a temporary file while its size
// and SHA-256 are computed), then committed under its key.
type ArtifactFiles interface {
	// Stage streams r into a temporary file of the run; it returns a name
	// for Commit or Discard, the size and the SHA-256 in hex.
	Stage(runID string, r io.Reader) (tmp string, size int64, sum string, err error)
	// Commit makes a staged file the content of key, replacing any.
	Commit(runID, tmp, key string) error
	// Discard removes a staged file.
	Discard(runID, tmp string) error
	// Open opens the content of key (an error wrapping fs.ErrNotExist when
	// there is none).
	Open(runID, key string) (io.ReadCloser, error)
	// Remove deletes the content of key, if any.
	Remove(runID, key string) error
	// RemoveRun deletes every artifact of a run.
	RemoveRun(runID string) error
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// artifactCall is a step-scoped artifact request: the run the lease
// reaches and the key it names.
type artifactCall struct {
	lease server.Lease
	runID string
	key   string
}

// artifactScope checks an artifact request: a valid key, and a lease the
// step is running under; the run is the step's, there is no way to name
// another. It writes the error answer and returns false otherwise.
func (s *Server) artifactScope(w http.ResponseWriter, r *http.Request) (artifactCall, bool) {
	if s.Artifacts == nil || s.ArtifactFiles == nil {
		s.writeError(w, r, server.Errorf(server.EUNAVAILABLE, "this server keeps no artifacts"))
		return artifactCall{}, false
	}
	q := r.URL.Query()
	attempt, err := strconv.Atoi(q.Get("attempt"))
	if err != nil || attempt < 1 {
		s.writeError(w, r, server.Errorf(server.EINVALID, "the attempt query parameter must be a positive integer"))
		return artifactCall{}, false
	}
	c := artifactCall{key: chi.URLParam(r, "*"),
		lease: server.Lease{StepID: chi.URLParam(r, "id"), AgentID: agentFrom(r.Context()).ID, Attempt: attempt, ID: q.Get("lease")}}
	if c.lease.ID == "" {
		s.writeError(w, r, server.Errorf(server.EINVALID, "the lease query parameter is required"))
		return artifactCall{}, false
	}
	if err := artifact.ValidateKey(c.key); err != nil {
		s.writeError(w, r, server.Errorf(server.EINVALID, "%v", err))
		return artifactCall{}, false
	}
	if c.runID, err = s.Artifacts.LeasedRun(r.Context(), c.lease); err != nil {
		s.writeError(w, r, err)
		return artifactCall{}, false
	}
	return c, true
}

func (s *Server) artifactMaxBytes() int64 {
	if s.ArtifactMaxBytes > 0 {
		return s.ArtifactMaxBytes
	}
	return DefaultArtifactMaxBytes
}

// putArtifact stores the request body as an artifact of the step's run,
// streaming it to disk: PUT /api/v1/agent/steps/{id}/artifacts/{key}.
// A body over the limit is refused with 413; with X-Baton-Sha256 the
// content must match it.
func (s *Server) putArtifact(w http.ResponseWriter, r *http.Request) {
	c, ok := s.artifactScope(w, r)
	if !ok {
		return
	}
	limit := s.artifactMaxBytes()
	tooLarge := server.Errorf(server.ETOOLARGE, "artifact %q is larger than this server's limit of %d bytes (--artifact-max-bytes)", c.key, limit)
	if r.ContentLength > limit {
		s.writeError(w, r, tooLarge)
		return
	}
	want := r.Header.Get(protocol.HeaderSHA256)
	if want != "" && !sha256Hex.MatchString(want) {
		s.writeError(w, r, server.Errorf(server.EINVALID, "%s must be 64 lowercase hex digits", protocol.HeaderSHA256))
		return
	}
	body := &readErrors{r: http.MaxBytesReader(w, r.Body, limit)}
	tmp, size, sum, err := s.ArtifactFiles.Stage(c.runID, body)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(body.err, &mbe):
			s.writeError(w, r, tooLarge)
		case body.err != nil:
			s.writeError(w, r, server.Errorf(server.EINVALID, "artifact %q: the upload broke off: %v", c.key, body.err))
		default:
			s.writeError(w, r, err)
		}
		return
	}
	if want != "" && want != sum {
		s.ArtifactFiles.Discard(c.runID, tmp)
		s.writeError(w, r, server.Errorf(server.EINVALID,
			"artifact %q: the content received has SHA-256 %s, not the %s sent: it changed or was damaged in transit", c.key, sum, want))
		return
	}
	a := &server.Artifact{RunID: c.runID, Key: c.key, Size: size, SHA256: sum, StepID: c.lease.StepID}
	unlock := s.artifactLocks.lock(c.runID + "\x00" + c.key)
	err = s.ArtifactFiles.Commit(c.runID, tmp, c.key)
	if err == nil {
		if err = s.Artifacts.PutArtifact(r.Context(), a); err != nil {
			// The content changed but its record did not: drop both, so no
			// reader gets content that does not match its checksum.
			s.ArtifactFiles.Remove(c.runID, c.key)
			s.Artifacts.DeleteArtifact(r.Context(), c.runID, c.key)
		}
	} else {
		s.ArtifactFiles.Discard(c.runID, tmp)
	}
	unlock()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "artifact stored", slog.String("run_id", c.runID), slog.String("step_id", c.lease.StepID),
		slog.String("key", c.key), slog.Int64("size", size))
	writeJSON(w, http.StatusCreated, protocol.Artifact{Key: c.key, Size: size, SHA256: sum, CreatedAt: a.CreatedAt})
}

// getArtifact streams an artifact of the step's run, with its size and
// SHA-256 (X-Baton-Sha256): GET /api/v1/agent/steps/{id}/artifacts/{key}.
func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) {
	c, ok := s.artifactScope(w, r)
	if !ok {
		return
	}
	// Record and content are read together, so a concurrent replace
	// cannot pair one's checksum with the other's bytes (an open file
	// keeps its content after a rename).
	unlock := s.artifactLocks.lock(c.runID + "\x00" + c.key)
	a, err := s.Artifacts.FindArtifact(r.Context(), c.runID, c.key)
	var f io.ReadCloser
	if err == nil {
		f, err = s.ArtifactFiles.Open(c.runID, c.key)
		if errors.Is(err, fs.ErrNotExist) {
			err = server.Errorf(server.ENOTFOUND, "no artifact %q in this run", c.key)
		}
	}
	unlock()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(a.Size, 10))
	w.Header().Set(protocol.HeaderSHA256, a.SHA256)
	w.WriteHeader(http.StatusOK)
	if n, err := io.Copy(w, f); err != nil || n != a.Size {
		s.Logger.WarnContext(r.Context(), "artifact download cut short", slog.String("run_id", c.runID),
			slog.String("key", c.key), slog.Int64("sent", n), slog.Int64("size", a.Size), slog.Any("err", err))
	}
}

// deleteArtifact forgets an artifact of the step's run and removes its
// content: DELETE /api/v1/agent/steps/{id}/artifacts/{key}.
func (s *Server) deleteArtifact(w http.ResponseWriter, r *http.Request) {
	c, ok := s.artifactScope(w, r)
	if !ok {
		return
	}
	unlock := s.artifactLocks.lock(c.runID + "\x00" + c.key)
	err := s.Artifacts.DeleteArtifact(r.Context(), c.runID, c.key)
	if err == nil {
		err = s.ArtifactFiles.Remove(c.runID, c.key)
	}
	unlock()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "artifact deleted", slog.String("run_id", c.runID), slog.String("step_id", c.lease.StepID),
		slog.String("key", c.key))
	w.WriteHeader(http.StatusNoContent)
}

// readErrors remembers the error of the reader it wraps, to tell a broken
// or oversized upload from a failing disk.
type readErrors struct {
	r   io.Reader
	err error
}

func (e *readErrors) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
