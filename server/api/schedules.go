package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/robfig/cron/v3"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/webhook"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

// cronParser reads standard 5-field expressions and descriptors such as
// @daily and @every 1h (github.com/robfig/cron/v3).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var scheduleNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// cronSchedule reads expr in the time zone tz.
func cronSchedule(expr, tz string) (cron.Schedule, *time.Location, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, nil, fmt.Errorf("timezone %q: %w", tz, err)
	}
	sched, err := cronParser.Parse(expr)
	if err != nil {
		return nil, nil, fmt.Errorf("cron %q: %w", expr, err)
	}
	return sched, loc, nil
}

// nextTick is the first tick of expr in tz strictly after t.
func nextTick(expr, tz string, t time.Time) (time.Time, error) {
	sched, loc, err := cronSchedule(expr, tz)
	if err != nil {
		return time.Time{}, err
	}
	next := sched.Next(t.In(loc))
	if next.IsZero() {
		return time.Time{}, fmt.Errorf("cron %q never fires", expr)
	}
	return next.UTC(), nil
}

// putSchedule creates or replaces a schedule:
// PUT /api/v1/projects/{project}/schedules/{name}.
func (s *Server) putSchedule(w http.ResponseWriter, r *http.Request) {
	project, name := chi.URLParam(r, "project"), chi.URLParam(r, "name")
	var req protocol.Schedule
	if err := decodeJSON(r, 4*1024*1024, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Timezone == "" {
		req.Timezone = "UTC"
	}
	sch := &server.Schedule{Project: project, Name: name, Cron: req.Cron, Timezone: req.Timezone, Branch: req.Branch,
		Runbook: req.Runbook, Params: req.Params}
	if err := s.checkSchedule(r.Context(), sch); err != nil {
		s.writeError(w, r, err)
		return
	}
	next, err := nextTick(sch.Cron, sch.Timezone, s.now())
	if err != nil {
		s.writeError(w, r, server.Errorf(server.EINVALID, "%v", err))
		return
	}
	sch.NextAt = next
	if err := s.Schedules.PutSchedule(r.Context(), sch); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "schedule set", slog.String("project", project), slog.String("schedule", name),
		slog.String("cron", sch.Cron), slog.Time("next", next))
	writeJSON(w, http.StatusOK, scheduleView(sch))
}

// checkSchedule validates a schedule before it is stored: its name, cron
// and timezone, and that it names a runbook that can start now.
func (s *Server) checkSchedule(ctx context.Context, sch *server.Schedule) error {
	switch {
	case !projectNameRe.MatchString(sch.Project):
		return server.Errorf(server.EINVALID, "project %q: use 1 to 100 letters, digits, '-', '_' or '.'", sch.Project)
	case !scheduleNameRe.MatchString(sch.Name):
		return server.Errorf(server.EINVALID, "schedule name %q: use 1 to 100 letters, digits, '-', '_' or '.'", sch.Name)
	case (sch.Branch == "") == (sch.Runbook == ""):
		return server.Errorf(server.EINVALID, "give branch (run the repository's runbook.yml from it) or runbook (its text), not both or neither")
	}
	if _, err := nextTick(sch.Cron, sch.Timezone, time.Now()); err != nil {
		return server.Errorf(server.EINVALID, "%v", err)
	}
	if sch.Runbook != "" {
		_, err := s.newRunChecked(ctx, protocol.CreateRunRequest{Project: sch.Project, Runbook: sch.Runbook, Params: sch.Params},
			event{Kind: runbook.TriggerSchedule})
		var nt *notTaken
		if errors.As(err, &nt) {
			return server.Errorf(server.EINVALID, "%s: this runbook is not started by schedules", nt.why)
		}
		return err
	}
	settings, err := s.Projects.ProjectSettings(ctx, sch.Project)
	if err != nil || settings.RepoURL == "" {
		return server.Errorf(server.EINVALID, "project %s has no repository to read branch %s from", sch.Project, sch.Branch)
	}
	return nil
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	list, err := s.Schedules.ListSchedules(r.Context(), chi.URLParam(r, "project"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]protocol.Schedule, len(list))
	for i, sch := range list {
		out[i] = scheduleView(sch)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	if err := s.Schedules.DeleteSchedule(r.Context(), chi.URLParam(r, "project"), chi.URLParam(r, "name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func scheduleView(sch *server.Schedule) protocol.Schedule {
	next := sch.NextAt
	return protocol.Schedule{Name: sch.Name, Cron: sch.Cron, Timezone: sch.Timezone, Branch: sch.Branch, Runbook: sch.Runbook,
		Params: sch.Params, NextAt: &next, LastRunID: sch.LastRunID}
}

// maxMissedCount bounds how many missed ticks are counted for the log.
const maxMissedCount = 10_000

// RunSchedules starts scheduled runs until ctx is done, checking every few
// seconds. Missed ticks (the server was down) are not caught up one by one:
// a schedule whose ticks passed starts one run, for the latest of them, and
// the log says how many were skipped. Each tick is claimed with a
// conditional update and starts its run with an idempotency key of its
// own, so several replicas never start a tick twice.
func (s *Server) RunSchedules(ctx context.Context, every time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every/2 + rand.N(every)):
		}
		now := s.now()
		due, err := s.Schedules.DueSchedules(ctx, now)
		if err != nil {
			if ctx.Err() == nil {
				s.Logger.ErrorContext(ctx, "due schedules", slog.Any("err", err))
			}
			continue
		}
		for _, sch := range due {
			s.fireSchedule(ctx, sch, now)
		}
	}
}

func (s *Server) fireSchedule(ctx context.Context, sch *server.Schedule, now time.Time) {
	log := s.Logger.With(slog.String("project", sch.Project), slog.String("schedule", sch.Name))
	sched, loc, err := cronSchedule(sch.Cron, sch.Timezone)
	if err != nil {
		log.ErrorContext(ctx, "schedule cannot tick", slog.Any("err", err))
		return
	}
	next := sched.Next(now.In(loc)).UTC()
	if next.IsZero() {
		log.ErrorContext(ctx, "schedule never fires again", slog.String("cron", sch.Cron))
		return
	}
	// The latest tick that has come, and how many before it were missed.
	tick, missed := sch.NextAt, 0
	for t := sched.Next(tick.In(loc)); !t.IsZero() && !t.After(now) && missed < maxMissedCount; t = sched.Next(t) {
		tick, missed = t.UTC(), missed+1
	}
	claimed, err := s.Schedules.ClaimTick(ctx, sch.ID, sch.NextAt, next)
	if err != nil || !claimed {
		return // another replica has it
	}
	if missed > 0 {
		log.WarnContext(ctx, "missed schedule ticks skipped", slog.Int("skipped", missed), slog.Time("running_for", tick))
	}
	run, err := s.scheduledRun(ctx, sch)
	if err != nil {
		log.ErrorContext(ctx, "scheduled run not started", slog.Any("err", err))
		return
	}
	run.Trigger = "schedule"
	run.IdempotencyKey = "schedule:" + sch.ID + ":" + strconv.FormatInt(tick.Unix(), 10)
	if err := s.Runs.CreateRun(ctx, run); err != nil && err != server.ErrRunExists {
		log.ErrorContext(ctx, "scheduled run not started", slog.Any("err", err))
		return
	}
	s.Wake.Notify()
	s.Schedules.SetLastRun(ctx, sch.ID, run.ID)
	log.InfoContext(ctx, "scheduled run started", slog.String("run_id", run.ID), slog.Time("tick", tick), slog.Time("next", next))
}

// scheduledRun builds a tick's run: the inline runbook, or runbook.yml at
// the tip of the branch (building that commit).
func (s *Server) scheduledRun(ctx context.Context, sch *server.Schedule) (*server.Run, error) {
	if sch.Runbook != "" {
		return s.newRunChecked(ctx, protocol.CreateRunRequest{Project: sch.Project, Runbook: sch.Runbook, Params: sch.Params},
			event{Kind: runbook.TriggerSchedule})
	}
	settings, err := s.Projects.ProjectSettings(ctx, sch.Project)
	if err != nil {
		return nil, err
	}
	cred, err := s.repoCredentials(ctx, sch.Project, settings, settings.RepoURL)
	if err != nil {
		return nil, err
	}
	if err := s.Repos.Update(ctx, settings.RepoURL, cred, ""); err != nil {
		return nil, err
	}
	commit, err := s.Repos.Resolve(ctx, settings.RepoURL, sch.Branch)
	if err != nil {
		return nil, err
	}
	return s.runFromEvent(ctx, sch.Project, &webhook.Event{Kind: runbook.TriggerSchedule, Ref: "refs/heads/" + sch.Branch,
		Branch: sch.Branch, Commit: commit, CloneURL: settings.RepoURL}, sch.Params)
}
