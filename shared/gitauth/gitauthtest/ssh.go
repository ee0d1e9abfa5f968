package gitauthtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SSHServer is an OpenSSH server on loopback that lets one key in, as the
// user running the test, to reach repositories by their absolute paths.
type SSHServer struct {
	// Addr is host:port; KnownHosts the line that vouches for its host
	// key; Key a private key it accepts, OtherKey one it does not.
	Addr, KnownHosts, Key, OtherKey string
	user                            string
}

// StartSSH starts sshd (from openssh-server) on a free loopback port until
// the test ends. Without sshd the test is skipped, loudly, or fails when
// CI=true.
func StartSSH(t testing.TB) *SSHServer {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
		if _, err := os.Stat(sshd); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("sshd (openssh-server) is required when CI=true")
			}
			t.Skip("SKIPPING: sshd (openssh-server) is not installed")
		}
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if me.Uid == "0" {
		// sshd run by root wants its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	keygen := func(name string) (private, public string) {
		path := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
		priv, _ := os.ReadFile(path)
		pub, _ := os.ReadFile(path + ".pub")
		return string(priv), strings.TrimSpace(string(pub))
	}
	_, hostPub := keygen("host")
	key, keyPub := keygen("client")
	other, _ := keygen("other")
	os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(keyPub+"\n"), 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	config := strings.Join([]string{
		"Port " + port, "ListenAddress 127.0.0.1", "HostKey " + filepath.Join(dir, "host"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"), "PidFile " + filepath.Join(dir, "sshd.pid"),
		"PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
		"PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no", "LogLevel VERBOSE",
	}, "\n") + "\n"
	cfgPath := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfgPath, []byte(config), 0o600)
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfgPath)
	logPath := filepath.Join(dir, "sshd.log")
	logFile, _ := os.Create(logPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("---- sshd ----\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("sshd exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hostFields := strings.Fields(hostPub)
	return &SSHServer{Addr: addr, KnownHosts: fmt.Sprintf("[127.0.0.1]:%s %s %s", port, hostFields[0], hostFields[1]),
		Key: key, OtherKey: other, user: me.Username}
}

// URL is the ssh:// address of the repository at path (absolute) on this
// machine.
func (s *SSHServer) URL(path string) string {
	return "ssh://" + s.user + "@" + s.Addr + path
}
