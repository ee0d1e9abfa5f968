package api_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/baton-ci/baton/shared/protocol"
)

func TestFleetCommand(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	gpu := ts.labelledAgent(t, "gpu", "gpu", "linux")
	cpu := ts.labelledAgent(t, "cpu", "linux")

	for _, bad := range []struct {
		path string
		body any
		want int
	}{
		{"/api/v1/fleet/disable", protocol.FleetCommand{}, http.StatusBadRequest},
		{"/api/v1/fleet/disable", protocol.FleetCommand{All: true, Labels: []string{"gpu"}}, http.StatusBadRequest},
		{"/api/v1/fleet/disable", protocol.FleetCommand{Labels: []string{" "}}, http.StatusBadRequest},
		{"/api/v1/fleet/delete", protocol.FleetCommand{All: true}, http.StatusNotFound},
	} {
		res := ts.admin(t, http.MethodPost, bad.path, bad.body)
		wantStatus(t, "POST "+bad.path, res, bad.want)
		res.errorMessage(t)
	}
	res := ts.do(t, request{Method: http.MethodPost, Path: "/api/v1/fleet/disable", ContentType: "application/json", Body: []byte(`{"all":true}`)})
	wantStatus(t, "fleet command without the admin token", res, http.StatusUnauthorized)

	disable := func(cmd protocol.FleetCommand, want ...string) {
		t.Helper()
		res := ts.admin(t, http.MethodPost, "/api/v1/fleet/disable", cmd)
		wantStatus(t, "fleet disable", res, http.StatusOK)
		var got protocol.FleetResult
		res.decode(t, &got)
		slices.Sort(got.Agents)
		slices.Sort(want)
		if got.State != "disabled" || !slices.Equal(got.Agents, want) || got.Agents == nil {
			t.Errorf("fleet disable %+v = %+v, want disabled %v", cmd, got, want)
		}
	}
	disable(protocol.FleetCommand{Labels: []string{"gpu"}}, gpu.ID)
	wantStatus(t, "reserve by a disabled agent", gpu.reserve(t, ts, "0s"), http.StatusConflict)
	wantStatus(t, "reserve by an agent left alone", cpu.reserve(t, ts, "0s"), http.StatusNoContent)
	disable(protocol.FleetCommand{All: true}, cpu.ID)
	disable(protocol.FleetCommand{All: true})
	wantStatus(t, "reserve after disabling all", cpu.reserve(t, ts, "0s"), http.StatusConflict)
}
