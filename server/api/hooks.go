package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/webhook"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/series"
)

// webhookSecretName is where a project's webhook secret is kept among its
// secrets (a BATON name no user secret can take; not listed).
const webhookSecretName = "BATON_WEBHOOK_SECRET"

// RepoReader reads runbooks from project repositories (package gitcache).
type RepoReader interface {
	// Update fetches url, with cred for a private repository (nil:
	// public), making sure commit want is there when set.
	Update(ctx context.Context, url string, cred *protocol.GitCredentials, want string) error
	Resolve(ctx context.Context, url, branch string) (string, error)
	Read(ctx context.Context, url, commit, path string) ([]byte, error)
}

// putHiddenSecret sets one of a project's own secrets (webhook or notify),
// write-only and not listed: PUT /api/v1/projects/{project}/webhook-secret
// or .../notify-secret with {"value": "..."}, 16 to 256 bytes.
func (s *Server) putHiddenSecret(name, what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		project := chi.URLParam(r, "project")
		if !projectNameRe.MatchString(project) {
			s.writeError(w, r, server.Errorf(server.EINVALID, "project %q: use 1 to 100 letters, digits, '-', '_' or '.'", project))
			return
		}
		var body struct {
			Value string `json:"value"`
		}
		if err := decodeJSON(r, 4<<10, &body); err != nil {
			s.writeError(w, r, err)
			return
		}
		if n := len(body.Value); n < 16 || n > 256 {
			s.writeError(w, r, server.Errorf(server.EINVALID, "%s is %d bytes: use 16 to 256", what, n))
			return
		}
		if err := s.Secrets.PutSecret(r.Context(), project, name, s.Box.Seal(project, name, []byte(body.Value))); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.Logger.InfoContext(r.Context(), what+" set", slog.String("project", project))
		w.WriteHeader(http.StatusNoContent)
	}
}

// hookAnswer is the body of a webhook's answer.
type hookAnswer struct {
	Delivery string `json:"delivery"`
	State    string `json:"state"`
	RunID    string `json:"run_id,omitempty"`
	Ignored  string `json:"ignored,omitempty"`
}

// receiveHook takes a delivery: POST /api/v1/hooks/{provider}/{project}.
// It only reads (at most webhook.MaxBody bytes), verifies, records and
// queues, and answers 202; the run is made by ProcessHooks. A redelivery
// answers 200 with what the first became.
func (s *Server) receiveHook(w http.ResponseWriter, r *http.Request) {
	provider, project := chi.URLParam(r, "provider"), chi.URLParam(r, "project")
	switch provider {
	case "github", "gitlab", "gitea", "forgejo":
	default:
		s.writeError(w, r, server.Errorf(server.ENOTFOUND, "%v", webhook.ErrProvider))
		return
	}
	outcome := series.WebhookError
	defer func() { s.Metrics.Webhook(provider, outcome) }()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhook.MaxBody))
	if err != nil {
		outcome = series.WebhookTooLarge
		writeJSON(w, http.StatusRequestEntityTooLarge, protocol.Error{Error: fmt.Sprintf("delivery body over %d bytes", webhook.MaxBody)})
		return
	}
	denied := server.Errorf(server.EUNAUTHORIZED, "the delivery's signature does not match the project's webhook secret")
	sealed, err := s.Secrets.SealedSecrets(r.Context(), project, []string{webhookSecretName})
	if err != nil || sealed[webhookSecretName] == nil {
		outcome = series.WebhookUnauthorized
		s.writeError(w, r, denied) // no such project, or no secret: nothing can verify
		return
	}
	secret, err := s.Box.Open(project, webhookSecretName, sealed[webhookSecretName])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := webhook.Parse(provider, secret, r.Header, body)
	switch {
	case errors.Is(err, webhook.ErrUnauthorized):
		s.Logger.WarnContext(r.Context(), "webhook refused", slog.String("project", project), slog.String("provider", provider))
		outcome = series.WebhookUnauthorized
		s.writeError(w, r, denied)
		return
	case err != nil:
		outcome = series.WebhookInvalid
		s.writeError(w, r, server.Errorf(server.EINVALID, "%v", err))
		return
	}
	rec := &server.HookDelivery{Project: project, Provider: provider, DeliveryID: d.ID, State: server.HookQueued}
	if d.Event == nil || d.Event.Deleted {
		rec.State, rec.Error = server.HookIgnored, d.Ignored
		if d.Event != nil {
			rec.Error = "the push deleted " + d.Event.Ref
		}
	} else {
		event, _ := json.Marshal(d.Event)
		rec.Event = string(event)
	}
	existing, created, err := s.Hooks.RecordDelivery(r.Context(), rec)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !created {
		outcome = series.WebhookDuplicate
		writeJSON(w, http.StatusOK, hookAnswer{Delivery: existing.DeliveryID, State: existing.State, RunID: existing.RunID, Ignored: ignoredWhy(existing)})
		return
	}
	s.Logger.InfoContext(r.Context(), "webhook received", slog.String("project", project), slog.String("provider", provider),
		slog.String("delivery", d.ID), slog.String("state", rec.State))
	outcome = series.WebhookIgnored
	if rec.State == server.HookQueued {
		outcome = series.WebhookQueued
		s.pokeHooks()
	}
	writeJSON(w, http.StatusAccepted, hookAnswer{Delivery: d.ID, State: rec.State, Ignored: ignoredWhy(rec)})
}

func ignoredWhy(d *server.HookDelivery) string {
	if d.State == server.HookIgnored {
		return d.Error
	}
	return ""
}

func (s *Server) pokeHooks() {
	select {
	case s.hookWake <- struct{}{}:
	default:
	}
}

// hookClaimStale is how long a claimed delivery may stay unfinished before
// another server process takes it again.
const hookClaimStale = 5 * time.Minute

// ProcessHooks turns queued deliveries into runs until ctx is done: woken
// by new deliveries, and every few seconds as a safety net (and for
// deliveries queued before a restart, or by another replica).
func (s *Server) ProcessHooks(ctx context.Context) {
	for {
		for ctx.Err() == nil {
			d, err := s.Hooks.ClaimDelivery(ctx, hookClaimStale)
			if err != nil {
				s.Logger.ErrorContext(ctx, "claim webhook delivery", slog.Any("err", err))
				break
			}
			if d == nil {
				break
			}
			s.processHook(ctx, d)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.hookWake:
		case <-time.After(3*time.Second + rand.N(2*time.Second)):
		}
	}
}

// processHook makes the run a delivery asks for: the runbook.yml at the
// event's commit of the project's repository (for a pull request from a
// fork, at the tip of the default branch: a fork's runbook is not
// trusted), with the commit as the run's source. An invalid runbook makes
// a failed run that says why.
func (s *Server) processHook(ctx context.Context, d *server.HookDelivery) {
	log := s.Logger.With(slog.String("project", d.Project), slog.String("delivery", d.DeliveryID))
	finish := func(state, runID, msg string) {
		d.State, d.RunID, d.Error = state, runID, msg
		if err := s.Hooks.FinishDelivery(context.WithoutCancel(ctx), d); err != nil {
			log.ErrorContext(ctx, "record webhook outcome", slog.Any("err", err))
		}
	}
	var ev webhook.Event
	if err := json.Unmarshal([]byte(d.Event), &ev); err != nil {
		finish(server.HookFailed, "", "unreadable event: "+err.Error())
		return
	}
	run, err := s.runFromEvent(ctx, d.Project, &ev, nil)
	var nt *notTaken
	if errors.As(err, &nt) {
		log.InfoContext(ctx, "webhook delivery ignored", slog.String("why", nt.why))
		finish(server.HookIgnored, "", nt.why)
		return
	}
	if err != nil {
		log.WarnContext(ctx, "webhook delivery failed", slog.Any("err", err))
		finish(server.HookFailed, "", err.Error())
		return
	}
	run.Trigger = "webhook"
	run.IdempotencyKey = "hook:" + d.Provider + ":" + d.DeliveryID
	err = s.Runs.CreateRun(ctx, run)
	if errors.Is(err, server.ErrRunExists) {
		err = nil // processed before, by a replica that died before recording it
	}
	if err != nil {
		finish(server.HookFailed, "", err.Error())
		return
	}
	s.Wake.Notify()
	log.InfoContext(ctx, "run created from webhook", slog.String("run_id", run.ID), slog.String("commit", ev.Commit))
	finish(server.HookDone, run.ID, run.Error)
}

// runFromEvent reads the runbook for an event and builds the run (with
// params, for a schedule's).
func (s *Server) runFromEvent(ctx context.Context, project string, ev *webhook.Event, params map[string]any) (*server.Run, error) {
	settings, err := s.Projects.ProjectSettings(ctx, project)
	if err != nil {
		return nil, err
	}
	repo := settings.RepoURL
	if repo == "" {
		return nil, fmt.Errorf("project %s has no repository (PUT /api/v1/projects/%s with repository.url)", project, project)
	}
	branch := settings.DefaultBranch
	if branch == "" {
		branch = "main"
	}
	fetchCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	runbookCommit := ev.Commit
	src := &protocol.Source{Type: protocol.SourceGit, URL: repo, Commit: ev.Commit}
	var ci *protocol.Source
	// A repository that cannot be read (its credentials missing or
	// refused, or the commit absent) makes a failed run that says so.
	unreadable := func(err error) (*server.Run, error) {
		return &server.Run{Project: project, Source: domainSource(src), CISource: domainSource(ci),
			Error: "cannot read runbook.yml: " + err.Error()}, nil
	}
	cred, err := s.repoCredentials(ctx, project, settings, repo)
	if err != nil {
		return unreadable(err)
	}
	if ev.Fork {
		// The fork's code runs at /job/src; the runbook and CI code come
		// from the trusted default branch.
		if err := s.Repos.Update(fetchCtx, repo, cred, ""); err != nil {
			return unreadable(err)
		}
		if runbookCommit, err = s.Repos.Resolve(fetchCtx, repo, branch); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(ev.CloneURL, "https://") && !strings.HasPrefix(ev.CloneURL, "http://") {
			return nil, fmt.Errorf("fork repository %q: only http(s) forks are fetched", ev.CloneURL)
		}
		src = &protocol.Source{Type: protocol.SourceGit, URL: ev.CloneURL, Commit: ev.Commit}
		ci = &protocol.Source{Type: protocol.SourceGit, URL: repo, Commit: runbookCommit}
	} else if err := s.Repos.Update(fetchCtx, repo, cred, ev.Commit); err != nil {
		return unreadable(err)
	}
	text, err := s.Repos.Read(fetchCtx, repo, runbookCommit, "runbook.yml")
	if err != nil {
		return nil, err
	}
	req := protocol.CreateRunRequest{Project: project, Runbook: string(text), Source: src, CISource: ci, Params: params}
	// Included files come from the same commit.
	run, perr := s.newRunFrom(ctx, req, func(path string) ([]byte, error) {
		return s.Repos.Read(fetchCtx, repo, runbookCommit, path)
	}, event{Kind: ev.Kind, Branch: ev.Branch})
	var nt *notTaken
	switch {
	case perr == nil:
		if ev.Fork {
			untrusted(run)
		}
		return run, nil
	case errors.As(perr, &nt):
		return nil, perr // not an error: the runbook does not take this event
	}
	return &server.Run{Project: project, Runbook: req.Runbook, Source: domainSource(src), CISource: domainSource(ci),
		Error: problemText(perr)}, nil
}

// problemText is an error as a person reads it: the message, then each
// detail (file:line: problem) on a line of its own.
func problemText(err error) string {
	var se *server.Error
	if !errors.As(err, &se) {
		return err.Error()
	}
	if len(se.Details) > 0 {
		return strings.Join(se.Details, "\n") // each names its file:line
	}
	return se.Message
}

// untrustedLabel is the label an agent needs to run steps of untrusted
// code (pull requests from forks).
const untrustedLabel = "untrusted"

// untrusted strips a run of code from a fork of its secrets, and sends its
// steps only to agents labelled for untrusted work.
func untrusted(run *server.Run) {
	run.Untrusted = true
	for _, st := range run.Steps {
		st.Secrets = nil
		st.RunsOn = append(st.RunsOn, untrustedLabel)
	}
}

// trustRun lets an admin vouch for a run of fork code:
// POST /api/v1/runs/{id}/trust. Its steps that have not started get the
// runbook's secrets and labels back (they may run on any agent again).
func (s *Server) trustRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.Runs.FindRun(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !run.Untrusted {
		s.writeError(w, r, server.Errorf(server.ECONFLICT, "run %s is trusted already", run.ID))
		return
	}
	full, err := s.newRunChecked(r.Context(), protocol.CreateRunRequest{Project: run.Project, Runbook: run.Runbook,
		Params: run.Params, Files: run.Files}, event{})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	grants := make(map[string]server.StepGrant, len(full.Steps))
	for _, st := range full.Steps {
		grants[st.Name] = server.StepGrant{Secrets: st.Secrets, RunsOn: st.RunsOn}
	}
	if err := s.Runs.TrustRun(r.Context(), run.ID, grants); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.audit(r, "trust", run.ID, "")
	s.Wake.Notify()
	s.Logger.InfoContext(r.Context(), "untrusted run trusted", slog.String("run_id", run.ID))
	s.getRun(w, r)
}
