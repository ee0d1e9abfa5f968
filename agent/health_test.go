package agent

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealthProbes(t *testing.T) {
	t.Parallel()
	h := NewHealth()
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string) int {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, c := range []struct {
		state       State
		control     bool
		live, ready int
	}{
		{StateRegistering, false, 200, 503},
		{StateReady, false, 200, 503}, // registered, but the control channel is not up
		{StateReady, true, 200, 200},
		{StateIdle, true, 200, 503},
		{StateDisabled, true, 200, 503},
		{StateDraining, true, 200, 503},
	} {
		if c.state != StateRegistering {
			h.Set(c.state)
		}
		h.SetControl(c.control)
		if got := get("/livez"); got != c.live {
			t.Errorf("%s: /livez %d, want %d", c.state, got, c.live)
		}
		if got := get("/readyz"); got != c.ready {
			t.Errorf("%s (control %v): /readyz %d, want %d", c.state, c.control, got, c.ready)
		}
	}
	if got := get("/other"); got != 404 {
		t.Errorf("/other %d", got)
	}
}
