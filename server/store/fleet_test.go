package store_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// A fleet command changes the agents with all the labels, or all of them,
// leaving deleted agents and those already in the state alone.
func TestSetFleetState(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		hash := createToken(t, s, "brt_fleet")
		seed := byte(10)
		add := func(name string, labels ...string) string {
			seed++
			sk, hk := agentKeys(seed)
			a := &server.Agent{ID: uuid.NewString(), Name: name, Labels: labels, SigningKey: sk, HPKEKey: hk}
			if err := s.RegisterAgent(ctx, a, hash); err != nil {
				t.Fatalf("RegisterAgent %s: %v", name, err)
			}
			return a.ID
		}
		gpu := add("gpu", "gpu", "linux")
		gpuARM := add("gpu-arm", "gpu", "arm64")
		cpu := add("cpu", "linux")
		gone := add("gone", "gpu")
		if err := s.SetAgentState(ctx, gone, server.AgentDeleted); err != nil {
			t.Fatal(err)
		}
		want := func(what string, got []string, err error, ids ...string) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			slices.Sort(got)
			slices.Sort(ids)
			if !slices.Equal(got, ids) {
				t.Errorf("%s changed %v, want %v", what, got, ids)
			}
		}
		ids, err := s.SetFleetState(ctx, []string{"gpu", "linux"}, server.AgentDisabled)
		want("disable gpu+linux", ids, err, gpu)
		ids, err = s.SetFleetState(ctx, []string{"gpu"}, server.AgentDisabled)
		want("disable gpu", ids, err, gpuARM)
		ids, err = s.SetFleetState(ctx, []string{"gpu"}, server.AgentDisabled)
		want("disable gpu again", ids, err)
		ids, err = s.SetFleetState(ctx, nil, server.AgentDraining)
		want("drain all", ids, err, gpu, gpuARM, cpu)
		for id, state := range map[string]server.AgentState{gpu: server.AgentDraining, cpu: server.AgentDraining, gone: server.AgentDeleted} {
			a, err := s.FindAgent(ctx, id)
			if err != nil || a.State != state {
				t.Errorf("agent %s: %v, %v; want %s", id, a, err, state)
			}
		}
	})
}
