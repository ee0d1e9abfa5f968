package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Metrics need a token of 16+ characters and the health listener; the
// token comes from the flag, BATON_METRICS_TOKEN or a file, and is never
// printed. Log format and level are checked.
func TestConfigMetricsAndLogs(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-a-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args      []string
		env       map[string]string
		token     string
		format    string
		wantError string
	}{
		{args: nil, token: "", format: "text"},
		{args: []string{"--health-addr", "127.0.0.1:0", "--metrics-token", "from-the-flag-0123456789"}, token: "from-the-flag-0123456789", format: "text"},
		{args: []string{"--health-addr", "127.0.0.1:0"}, env: map[string]string{"BATON_METRICS_TOKEN_FILE": file, "BATON_LOG_FORMAT": "json"}, token: "from-a-file-0123456789", format: "json"},
		{args: []string{"--health-addr", "127.0.0.1:0", "--metrics-token", "short"}, wantError: "at least 16 characters"},
		{args: []string{"--metrics-token", "from-the-flag-0123456789"}, wantError: "--metrics-token needs --health-addr"},
		{args: []string{"--log-format", "xml"}, wantError: "--log-format must be text or json"},
		{args: []string{"--log-level", "loud"}, wantError: "--log-level must be"},
	} {
		env := map[string]string{"BATON_SERVER": "http://127.0.0.1:1"}
		for k, v := range c.env {
			env[k] = v
		}
		cfg, err := parseConfig(append([]string{"--name", "n"}, c.args...), func(k string) string { return env[k] })
		if c.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantError) {
				t.Errorf("%v: err %v, want %q", c.args, err, c.wantError)
			}
			continue
		}
		if err != nil || cfg.MetricsToken != c.token || cfg.LogFormat != c.format {
			t.Errorf("%v %v: token %q format %q err %v", c.args, c.env, cfg.MetricsToken, cfg.LogFormat, err)
		}
		if c.token != "" && strings.Contains(cfg.String(), c.token) {
			t.Errorf("String() shows the metrics token: %s", cfg)
		}
	}
}

// JSON logs are one object per line, at the level asked for.
func TestNewLoggerJSON(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	log, err := newLogger(&b, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.With("agent_id", "a1").Warn("step finished", "run_id", "r1", "step", "build")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line (info is below warn), got %q", b.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("%q: %v", lines[0], err)
	}
	if got["msg"] != "step finished" || got["agent_id"] != "a1" || got["run_id"] != "r1" || got["step"] != "build" || got["level"] != "WARN" {
		t.Errorf("line %v", got)
	}
}
