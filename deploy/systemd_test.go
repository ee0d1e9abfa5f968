package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const unitPath = "deploy/systemd/baton-agent.service"

// unitFile is a systemd unit: each section's settings in order.
type unitFile map[string][][2]string

func parseUnit(t *testing.T, b []byte) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("unit line %q", line)
			}
			u[section] = append(u[section], [2]string{k, v})
		}
	}
	return u
}

// values lists what key is set to in section, in order.
func (u unitFile) values(section, key string) []string {
	var vs []string
	for _, kv := range u[section] {
		if kv[0] == key {
			vs = append(vs, kv[1])
		}
	}
	return vs
}

func (u unitFile) value(section, key string) string {
	vs := u.values(section, key)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, with
// ExecStart pointed at an executable that exists here (verify wants one).
// Any warning fails: verify exits 0 on unknown keys and bad values.
func TestSystemdUnitVerifies(t *testing.T) {
	t.Parallel()
	need(t, "systemd-analyze", "--version")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := readFile(t, unitPath)
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/baton-agent\n")) {
		t.Fatal("ExecStart is not /usr/local/bin/baton-agent, where install.sh puts it")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "baton-agent.service")
	unit = bytes.Replace(unit, []byte("ExecStart=/usr/local/bin/baton-agent"), []byte("ExecStart="+exe), 1)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := command(t, time.Minute, ".", []string{"SYSTEMD_LOG_COLOR=0"}, "systemd-analyze", "verify", path)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// verify does catch a mistake, as a warning.
	bad := bytes.Replace(unit, []byte("NoNewPrivileges=yes"), []byte("NoNewPrivilege=yes"), 1)
	os.WriteFile(path, bad, 0o644)
	if out, _ := command(t, time.Minute, ".", nil, "systemd-analyze", "verify", path); !strings.Contains(out, "NoNewPrivilege") {
		t.Errorf("systemd-analyze verify did not report an unknown key:\n%s", out)
	}
}

// TestSystemdUnitSettings checks the settings the deployment relies on.
func TestSystemdUnitSettings(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, readFile(t, unitPath))
	for _, want := range [][3]string{
		{"Service", "User", "baton"},
		{"Service", "EnvironmentFile", "/etc/baton/agent.env"},
		{"Service", "ExecStart", "/usr/local/bin/baton-agent"},
		{"Service", "SupplementaryGroups", "docker"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "Restart", "on-failure"},
		{"Service", "KillSignal", "SIGTERM"},
		{"Service", "KillMode", "mixed"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := u.value(want[0], want[1]); got != want[2] {
			t.Errorf("[%s] %s=%q, want %q", want[0], want[1], got, want[2])
		}
	}
	// The drain needs the eviction time (10m by default) and some more.
	stop, err := systemdDuration(u.value("Service", "TimeoutStopSec"))
	if err != nil || stop < 10*time.Minute+30*time.Second {
		t.Errorf("TimeoutStopSec=%s (%v): want at least the default eviction time 10m + 30s", u.value("Service", "TimeoutStopSec"), err)
	}
	// The environment: known variables; state and work dir writable; the
	// work dir not in the private /tmp, which the daemon would not see.
	env := map[string]string{}
	for _, e := range u.values("Service", "Environment") {
		k, v, _ := strings.Cut(strings.Trim(e, `"`), "=")
		env[k] = v
	}
	envs, _ := knownConfig(t, "agent")
	example := readFile(t, "deploy/systemd/agent.env.example")
	for _, m := range regexp.MustCompile(`(?m)^#?(BATON_[A-Z_]+)=`).FindAllSubmatch(example, -1) {
		env[string(m[1])] += ""
	}
	for k := range env {
		if !slices.Contains(envs, k) {
			t.Errorf("baton-agent reads no %s", k)
		}
	}
	var rw []string
	for _, p := range strings.Fields(strings.Join(u.values("Service", "ReadWritePaths"), " ")) {
		rw = append(rw, strings.TrimLeft(p, "-+")) // "-": ignored when missing
	}
	for _, d := range strings.Fields(u.value("Service", "StateDirectory")) {
		rw = append(rw, "/var/lib/"+d)
	}
	for _, k := range []string{"BATON_STATE_DIR", "BATON_WORK_DIR"} {
		dir := env[k]
		if dir == "" || strings.HasPrefix(dir, "/tmp/") || strings.HasPrefix(dir, "/var/tmp/") {
			t.Errorf("%s=%q: want a directory outside the private /tmp", k, dir)
		}
		if !slices.ContainsFunc(rw, func(p string) bool { return dir == p || strings.HasPrefix(dir, p+"/") }) {
			t.Errorf("%s=%s is not writable under ProtectSystem=strict (ReadWritePaths %v)", k, dir, rw)
		}
	}
}

// systemdDuration parses the time spans the unit uses: "660", "11min",
// "10min 30s".
func systemdDuration(s string) (time.Duration, error) {
	if regexp.MustCompile(`^\d+$`).MatchString(s) {
		s += "s"
	}
	s = strings.ReplaceAll(strings.ReplaceAll(s, " ", ""), "min", "m")
	return time.ParseDuration(s)
}

// TestDeployScripts checks every shell script of deploy/ with bash -n and
// shellcheck.
func TestDeployScripts(t *testing.T) {
	t.Parallel()
	scripts, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "*", "*.sh"))
	if err != nil || len(scripts) < 5 {
		t.Fatalf("scripts %v: %v", scripts, err)
	}
	for _, s := range scripts {
		if out, err := command(t, 30*time.Second, ".", nil, "bash", "-n", s); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		if fi, err := os.Stat(s); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
	}
	need(t, "shellcheck", "--version")
	if out, err := command(t, time.Minute, ".", nil, "shellcheck", scripts...); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// TestSystemdInstallScripts runs install.sh and uninstall.sh on a file tree
// of their own (--root): user, binary, unit, env file (0600, kept on a
// second install), the enable link; then uninstall, and --purge.
func TestSystemdInstallScripts(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		missing(t, "install.sh must run as root")
	}
	need(t, "useradd")
	need(t, "userdel")
	need(t, "systemctl", "--version")
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	for name, content := range map[string]string{
		"passwd":  "root:x:0:0:root:/root:/bin/bash\n",
		"group":   "root:x:0:\n",
		"shadow":  "root:*:19000:0:99999:7:::\n",
		"gshadow": "root:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	install := []string{"deploy/systemd/install.sh", "--root", root, "--binary", exe, "--server", "https://baton.example", "--token", "brt_test123"}

	// Without a docker group the unit could not start: refused.
	if out, err := command(t, time.Minute, ".", nil, install[0], install[1:]...); err == nil || !strings.Contains(out, "no docker group") {
		t.Fatalf("install without a docker group: %v\n%s", err, out)
	}
	f, _ := os.OpenFile(filepath.Join(root, "etc", "group"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("docker:x:4242:\n")
	f.Close()
	fg, _ := os.OpenFile(filepath.Join(root, "etc", "gshadow"), os.O_APPEND|os.O_WRONLY, 0)
	fg.WriteString("docker:!::\n")
	fg.Close()

	must(t, time.Minute, ".", nil, install[0], install[1:]...)
	file := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if !regexp.MustCompile(`(?m)^baton:x:\d+:\d+:.*:/var/lib/baton-agent:/usr/sbin/nologin$`).MatchString(file("etc/passwd")) {
		t.Errorf("no system user baton:\n%s", file("etc/passwd"))
	}
	env := filepath.Join(root, "etc/baton/agent.env")
	if fi, err := os.Stat(env); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent.env: %v, mode %v; want 0600", err, fi.Mode())
	}
	if e := file("etc/baton/agent.env"); !strings.Contains(e, "\nBATON_SERVER=https://baton.example\n") ||
		!strings.Contains(e, "\nBATON_REGISTRATION_TOKEN=brt_test123\n") || strings.Contains(e, "@") {
		t.Errorf("agent.env:\n%s", e)
	}
	if file("etc/systemd/system/baton-agent.service") != string(readFile(t, unitPath)) {
		t.Error("the installed unit differs from deploy/systemd/baton-agent.service")
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/local/bin/baton-agent")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("binary: %v", err)
	}
	link := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/baton-agent.service")
	if target, err := os.Readlink(link); err != nil || target != "/etc/systemd/system/baton-agent.service" {
		t.Errorf("not enabled: %s -> %q, %v", link, target, err)
	}

	// Again: an upgrade keeps the operator's env file and the user.
	os.WriteFile(env, []byte("BATON_SERVER=https://edited.example\n"), 0o600)
	must(t, time.Minute, ".", nil, install[0], install[1:]...)
	if e := file("etc/baton/agent.env"); e != "BATON_SERVER=https://edited.example\n" {
		t.Errorf("a second install changed agent.env:\n%s", e)
	}
	if n := strings.Count(file("etc/passwd"), "\nbaton:"); n != 1 {
		t.Errorf("%d users baton after two installs", n)
	}

	must(t, time.Minute, ".", nil, "deploy/systemd/uninstall.sh", "--root", root)
	for _, p := range []string{"usr/local/bin/baton-agent", "etc/systemd/system/baton-agent.service", "etc/systemd/system/multi-user.target.wants/baton-agent.service"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("uninstall left %s: %v", p, err)
		}
	}
	if _, err := os.Stat(env); err != nil {
		t.Errorf("uninstall without --purge removed agent.env: %v", err)
	}
	must(t, time.Minute, ".", nil, "deploy/systemd/uninstall.sh", "--root", root, "--purge")
	if _, err := os.Stat(env); !os.IsNotExist(err) {
		t.Errorf("--purge kept agent.env: %v", err)
	}
	if strings.Contains(file("etc/passwd"), "\nbaton:") {
		t.Errorf("--purge kept the user baton:\n%s", file("etc/passwd"))
	}
}
