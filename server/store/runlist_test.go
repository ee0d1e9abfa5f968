package store_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

func TestListRunsAndRunningByAgent(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := context.Background()
		var ids []string
		for i := range 5 {
			project := "list-a"
			if i%2 == 1 {
				project = "list-b"
			}
			ids = append(ids, createRun(t, s, diamond(project)).ID)
		}
		runs, more, err := s.ListRuns(ctx, server.RunFilter{Limit: 2})
		if err != nil || len(runs) != 2 || !more || runs[0].ID != ids[4] || runs[1].ID != ids[3] || runs[0].Trigger != "api" {
			t.Fatalf("first page = %+v, %v, %v", runs, more, err)
		}
		runs, more, err = s.ListRuns(ctx, server.RunFilter{Project: "list-b", State: "pending", Limit: 10})
		if err != nil || len(runs) != 2 || more || runs[0].Project != "list-b" || runs[0].Name != "diamond" {
			t.Fatalf("project list-b = %+v, %v, %v", runs, more, err)
		}
		if runs, _, _ = s.ListRuns(ctx, server.RunFilter{Offset: 4, Limit: 10}); len(runs) != 1 || runs[0].ID != ids[0] {
			t.Fatalf("offset 4 = %+v", runs)
		}
		names, err := s.ProjectNames(ctx)
		if err != nil || len(names) < 2 {
			t.Fatalf("ProjectNames = %v, %v", names, err)
		}

		tok := sha256.Sum256([]byte("list-token"))
		if err := s.CreateRegistrationToken(ctx, &server.RegistrationToken{Hash: tok[:]}); err != nil {
			t.Fatal(err)
		}
		agent := &server.Agent{ID: uuid.NewString(), Name: "lister", SigningKey: make([]byte, 32), HPKEKey: make([]byte, 32)}
		if err := s.RegisterAgent(ctx, agent, tok[:]); err != nil {
			t.Fatal(err)
		}
		st, _, err := s.ReserveStep(ctx, agent.ID, time.Minute)
		if err != nil || st == nil {
			t.Fatalf("ReserveStep = %v, %v", st, err)
		}
		byAgent, err := s.RunningByAgent(ctx)
		if err != nil || len(byAgent[agent.ID]) != 1 || byAgent[agent.ID][0].ID != st.ID {
			t.Fatalf("RunningByAgent = %+v, %v", byAgent, err)
		}
	})
}
