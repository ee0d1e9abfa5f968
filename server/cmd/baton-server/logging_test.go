package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// --log-format json writes one JSON object per line; BATON_LOG_FORMAT and
// BATON_LOG_LEVEL set them too, and bad values are refused.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig(nil, func(k string) string {
		return map[string]string{"BATON_LOG_FORMAT": "json", "BATON_LOG_LEVEL": "debug"}[k]
	})
	if err != nil || cfg.LogFormat != "json" || cfg.LogLevel != "debug" {
		t.Fatalf("from the environment: %+v %v", cfg, err)
	}
	for _, args := range [][]string{{"--log-format", "logfmt"}, {"--log-level", "verbose"}} {
		if _, err := parseConfig(args, func(string) string { return "" }); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	var b bytes.Buffer
	log, err := newLogger(&b, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("step reserved", "run_id", "r", "step", "s", "agent_id", "a")
	var got map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(b.String())), &got); err != nil {
		t.Fatalf("%q: %v", b.String(), err)
	}
	for _, k := range []string{"time", "level", "msg", "run_id", "step", "agent_id"} {
		if _, ok := got[k]; !ok {
			t.Errorf("line lacks %s: %v", k, got)
		}
	}
}
