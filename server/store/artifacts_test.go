package store_test

import (
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// Artifacts are scoped to a run, reached through the lease of a step of
// that run, replaced by key, and their runs expire once finished long
// enough ago.
func TestArtifacts(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		runA := createRun(t, s, &server.Run{Project: "art", Runbook: "x", Steps: []*server.Step{{Name: "a", Command: "true"}, {Name: "b", Command: "true", DependsOn: []string{"a"}}}})
		runB := createRun(t, s, &server.Run{Project: "art", Runbook: "x", Steps: []*server.Step{{Name: "a", Command: "true"}}})
		a := reserve(t, s, "agent-1", "a")
		lease := server.Lease{StepID: a.ID, AgentID: "agent-1", Attempt: a.Attempt, ID: a.LeaseID}
		got, err := s.LeasedRun(ctx, lease)
		if err != nil || got != runA.ID {
			t.Fatalf("LeasedRun = %q, %v; want run %s", got, err, runA.ID)
		}
		for what, l := range map[string]server.Lease{
			"another agent": {StepID: a.ID, AgentID: "agent-2", Attempt: a.Attempt, ID: a.LeaseID},
			"stale lease":   {StepID: a.ID, AgentID: "agent-1", Attempt: a.Attempt, ID: "old"},
			"other attempt": {StepID: a.ID, AgentID: "agent-1", Attempt: 2, ID: a.LeaseID},
		} {
			_, err := s.LeasedRun(ctx, l)
			wantCode(t, "LeasedRun("+what+")", err, server.ECONFLICT)
		}
		_, err = s.LeasedRun(ctx, server.Lease{StepID: "no-such-step", AgentID: "agent-1", Attempt: 1, ID: "x"})
		wantCode(t, "LeasedRun(unknown step)", err, server.ENOTFOUND)

		put := func(run, key, sum string) {
			t.Helper()
			if err := s.PutArtifact(ctx, &server.Artifact{RunID: run, Key: key, Size: int64(len(sum)), SHA256: sum, StepID: a.ID}); err != nil {
				t.Fatalf("PutArtifact(%s): %v", key, err)
			}
		}
		put(runA.ID, "dist/app.tgz", "aaaa")
		put(runA.ID, "dist/app.tgz", "bbbbbb") // replaces
		put(runA.ID, "other", "cc")
		art, err := s.FindArtifact(ctx, runA.ID, "dist/app.tgz")
		if err != nil || art.SHA256 != "bbbbbb" || art.Size != 6 || art.StepID != a.ID || art.CreatedAt.IsZero() {
			t.Fatalf("FindArtifact = %+v, %v", art, err)
		}
		_, err = s.FindArtifact(ctx, runB.ID, "dist/app.tgz")
		wantCode(t, "FindArtifact(of another run)", err, server.ENOTFOUND)
		wantCode(t, "DeleteArtifact(unknown)", s.DeleteArtifact(ctx, runA.ID, "nope"), server.ENOTFOUND)
		if err := s.DeleteArtifact(ctx, runA.ID, "other"); err != nil {
			t.Fatal(err)
		}
		_, err = s.FindArtifact(ctx, runA.ID, "other")
		wantCode(t, "FindArtifact(deleted)", err, server.ENOTFOUND)

		// Expiry: only finished runs, finished before the cut-off.
		if ids, err := s.ExpiredArtifactRuns(ctx, time.Now().Add(time.Hour), 10); err != nil || len(ids) != 0 {
			t.Fatalf("ExpiredArtifactRuns while the run runs = %v, %v", ids, err)
		}
		complete(t, s, a, 0, 1)
		complete(t, s, reserve(t, s, "agent-1", "b"), 0, 0)
		finished := findRun(t, s, runA.ID).FinishedAt
		if finished == nil {
			t.Fatal("run A did not finish")
		}
		if ids, err := s.ExpiredArtifactRuns(ctx, finished.Add(-time.Millisecond), 10); err != nil || len(ids) != 0 {
			t.Fatalf("ExpiredArtifactRuns(just before it finished) = %v, %v", ids, err)
		}
		ids, err := s.ExpiredArtifactRuns(ctx, finished.Add(time.Millisecond), 10)
		if err != nil || len(ids) != 1 || ids[0] != runA.ID {
			t.Fatalf("ExpiredArtifactRuns(after it finished) = %v, %v; want [%s]", ids, err, runA.ID)
		}
		if err := s.DeleteRunArtifacts(ctx, runA.ID); err != nil {
			t.Fatal(err)
		}
		if ids, err := s.ExpiredArtifactRuns(ctx, finished.Add(time.Hour), 10); err != nil || len(ids) != 0 {
			t.Fatalf("ExpiredArtifactRuns after deleting = %v, %v", ids, err)
		}
	})
}
