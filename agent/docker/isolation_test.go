package docker

import (
	"context"
	"strings"
	"testing"
)

// With a read-only root file system, / and /etc cannot be written, while
// /tmp (a bounded tmpfs), /workspace and $BATON_OUTPUT can. The same script
// without the option writes / and /etc, so the test can tell the two apart.
func TestReadOnlyRoot(t *testing.T) {
	t.Parallel()
	script := `touch /x 2>/dev/null && echo "root: writable"
echo x 2>/dev/null >/etc/x && echo "etc: writable"
echo t >/tmp/t && echo "tmp: $(cat /tmp/t)"
echo w >/workspace/w && echo "workspace: $(cat /workspace/w)"
echo "pwd: $(pwd) $BATON_WORKSPACE"
grep -o ' /tmp tmpfs [^ ]*' /proc/mounts | grep -o 'size=[0-9a-z]*'
echo "answer=42" >>"$BATON_OUTPUT"
true`
	for _, readOnly := range []bool{true, false} {
		e := newExecutor(t, Options{ReadOnlyRoot: readOnly})
		res, out := runStep(t, e, spec(script, nil))
		if res.ExitCode != 0 {
			t.Fatalf("read-only %v: exit %d, output %q", readOnly, res.ExitCode, out)
		}
		for _, want := range []string{"tmp: t\n", "workspace: w\n", "pwd: /workspace /workspace\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("read-only %v: output %q lacks %q", readOnly, out, want)
			}
		}
		if string(res.Outputs) != "answer=42\n" {
			t.Errorf("read-only %v: outputs %q", readOnly, res.Outputs)
		}
		writable := strings.Contains(out, "root: writable") || strings.Contains(out, "etc: writable")
		tmpfs := strings.Contains(out, "size=262144k")
		if readOnly && (writable || !tmpfs) {
			t.Errorf("read-only root: output %q, want / and /etc not writable and a 256 MiB /tmp", out)
		}
		if !readOnly && (!strings.Contains(out, "root: writable") || tmpfs) {
			t.Errorf("writable root: output %q, want / writable and no /tmp tmpfs", out)
		}
	}
}

// A step can run as a given non-root user and still write its workspace and
// outputs; the workspace then belongs to that user.
func TestNonRootUser(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{User: "65534:65534", ReadOnlyRoot: true})
	res, out := runStep(t, e, spec(`id -u; id -g; stat -c '%u %a' /workspace
touch /workspace/f && echo "workspace writable"
echo "who=$(id -u)" >>"$BATON_OUTPUT"`, nil))
	if res.ExitCode != 0 || out != "65534\n65534\n65534 755\nworkspace writable\n" {
		t.Errorf("exit %d, output %q", res.ExitCode, out)
	}
	if string(res.Outputs) != "who=65534\n" {
		t.Errorf("outputs %q", res.Outputs)
	}
	// Without --user, the workspace is open to whichever user the image has.
	e = newExecutor(t, Options{})
	if res, out := runStep(t, e, spec(`id -u; stat -c '%a' /workspace`, nil)); res.ExitCode != 0 || out != "0\n777\n" {
		t.Errorf("default user: exit %d, output %q", res.ExitCode, out)
	}
}

// CapAdd gives back exactly the named capabilities: CHOWN is bit 0.
func TestCapAdd(t *testing.T) {
	t.Parallel()
	script := `grep '^CapEff' /proc/self/status; touch /workspace/f; chown 1 /workspace/f 2>/dev/null && echo chowned; true`
	e := newExecutor(t, Options{CapAdd: []string{"chown"}})
	if _, out := runStep(t, e, spec(script, nil)); out != "CapEff:\t0000000000000001\nchowned\n" {
		t.Errorf("with CHOWN: output %q", out)
	}
	e = newExecutor(t, Options{})
	if _, out := runStep(t, e, spec(script, nil)); out != "CapEff:\t0000000000000000\n" {
		t.Errorf("without capabilities: output %q", out)
	}
}

// Bad options are refused before any step runs, with errors that say why.
func TestNewRefusesUnsafeOptions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{CapAdd: []string{"SYS_ADMIN"}}, `capability "SYS_ADMIN" is not allowed for steps`},
		{Options{CapAdd: []string{"CHOWN", "cap_net_admin"}}, `capability "cap_net_admin" is not allowed`},
		{Options{CapAdd: []string{"ALL"}}, "ALL is never added"},
		{Options{CapAdd: []string{"CHOWNN"}}, `capability "CHOWNN": no such Linux capability`},
		{Options{Network: "host"}, "allow it explicitly (--allow-host-network)"},
		{Options{Network: "weird"}, `network mode "weird": use none, bridge, run, host`},
		{Options{User: "root; rm -rf /"}, `user "root; rm -rf /"`},
		{Options{AgentID: "../x"}, "cannot name a directory"},
	} {
		if _, err := New(context.Background(), c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.opts, err, c.want)
		}
	}
}

func TestNormalizeCapabilities(t *testing.T) {
	t.Parallel()
	caps, err := NormalizeCapabilities([]string{"chown", "CAP_CHOWN", " net_bind_service", "Cap_Kill"})
	if err != nil || strings.Join(caps, ",") != "CAP_CHOWN,CAP_NET_BIND_SERVICE,CAP_KILL" {
		t.Errorf("caps %v, err %v", caps, err)
	}
	for _, c := range []string{"SYS_PTRACE", "SYS_MODULE", "DAC_READ_SEARCH", "NET_ADMIN"} {
		if _, err := NormalizeCapabilities([]string{c}); err == nil || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("%s: err %v", c, err)
		}
	}
}
