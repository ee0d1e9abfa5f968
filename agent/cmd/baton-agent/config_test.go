package main

import (
	"strings"
	"testing"

	"github.com/baton-ci/baton/agent/docker"
)

func TestConfigIsolationDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig([]string{"--name", "n"}, func(k string) string {
		return map[string]string{"BATON_SERVER": "http://127.0.0.1:1"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Network != "none" || cfg.AllowHostNetwork || cfg.ReadOnlyRoot || cfg.User != "" || len(cfg.CapAdd) != 0 || cfg.WorkDir != docker.DefaultWorkDir() {
		t.Errorf("defaults: %s", cfg)
	}
}

// Flags win over BATON_* variables, which win over the defaults.
func TestConfigIsolationFlagsAndEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"BATON_SERVER": "http://127.0.0.1:1", "BATON_STEP_NETWORK": "host", "BATON_ALLOW_HOST_NETWORK": "true",
		"BATON_READ_ONLY_ROOT": "1", "BATON_STEP_USER": "1000", "BATON_STEP_CAP_ADD": "chown, kill", "BATON_WORK_DIR": "/srv/ws",
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := parseConfig([]string{"--name", "n"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Network != "host" || !cfg.AllowHostNetwork || !cfg.ReadOnlyRoot || cfg.User != "1000" ||
		strings.Join(cfg.CapAdd, ",") != "chown,kill" || cfg.WorkDir != "/srv/ws" {
		t.Errorf("from the environment: %s", cfg)
	}
	cfg, err = parseConfig([]string{"--name", "n", "--network", "run", "--read-only-root=false", "--user", "65534:65534",
		"--cap-add", "NET_BIND_SERVICE", "--work-dir", "/var/lib/baton/ws"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	want := "network=run allow-host-network=true read-only-root=false user=65534:65534 cap-add=NET_BIND_SERVICE work-dir=/var/lib/baton/ws"
	if !strings.Contains(cfg.String(), want) {
		t.Errorf("flags: %s\nwant %s", cfg, want)
	}
}

func TestConfigRefusesUnsafeIsolation(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--network", "host"}, "", "--network: network mode host gives steps the host's network stack"},
		{[]string{"--network", "overlay"}, "", `--network: network mode "overlay"`},
		{[]string{"--cap-add", "chown,SYS_ADMIN"}, "", `--cap-add: capability "SYS_ADMIN" is not allowed for steps`},
		{[]string{"--cap-add", "CHOWM"}, "", `--cap-add: capability "CHOWM": no such Linux capability`},
		{[]string{"--user", "a b"}, "", `--user: user "a b"`},
		{[]string{"--work-dir", ""}, "", "--work-dir is required"},
		{nil, "BATON_READ_ONLY_ROOT=yes", `BATON_READ_ONLY_ROOT: "yes" is not true or false`},
	} {
		env := map[string]string{"BATON_SERVER": "http://127.0.0.1:1"}
		if k, v, ok := strings.Cut(c.env, "="); ok {
			env[k] = v
		}
		_, err := parseConfig(append([]string{"--name", "n"}, c.args...), func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %s: err %v, want %q", c.args, c.env, err, c.want)
		}
	}
}
