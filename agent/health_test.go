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
		live, ready int
	}{
		{StateRegistering, 200, 503},
		{StateReady, 200, 200},
		{StateDraining, 200, 503},
	} {
		if c.state != StateRegistering {
			h.Set(c.state)
		}
		if got := get("/livez"); got != c.live {
			t.Errorf("%s: /livez %d, want %d", c.state, got, c.live)
		}
		if got := get("/readyz"); got != c.ready {
			t.Errorf("%s: /readyz %d, want %d", c.state, got, c.ready)
		}
	}
	if got := get("/other"); got != 404 {
		t.Errorf("/other %d", got)
	}
}
