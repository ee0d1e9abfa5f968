// Package gitauth lets git fetch a private repository without its
// credentials reaching a URL, argv, a config file on disk or a log. Both
// the server's mirror (server/gitcache) and the agent's checkout
// (agent/source) run git through it.
//
// Over HTTPS the token goes in an http.<url>.extraHeader set through
// GIT_CONFIG_COUNT/KEY/VALUE: environment variables of the git child only,
// scoped to the repository's URL. Over SSH the key is written 0600 into a
// private temporary directory, removed by Close, and GIT_SSH_COMMAND runs
// ssh with that identity only, host keys always checked (against the
// given known_hosts lines, or the system's files). Mask hides every form
// of the credentials in git's messages.
package gitauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/baton-ci/baton/shared/mask"
	"github.com/baton-ci/baton/shared/protocol"
)

// Session is what the git commands against one repository need.
type Session struct {
	env    []string
	dir    string // holds the SSH key and known_hosts; removed by Close
	masker *mask.Masker
}

// scpLikeRe is git's user@host:path form of an SSH address.
var scpLikeRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:`)

// IsSSH reports whether git reaches rawURL over SSH.
func IsSSH(rawURL string) bool {
	return strings.HasPrefix(rawURL, "ssh://") || strings.HasPrefix(rawURL, "git+ssh://") || scpLikeRe.MatchString(rawURL)
}

// New prepares a session for rawURL; with c nil git runs without
// credentials. The caller must Close it.
func New(rawURL string, c *protocol.GitCredentials) (*Session, error) {
	s := &Session{masker: mask.New(nil)}
	if c == nil {
		return s, nil
	}
	for _, v := range []string{c.Password, c.Username + ":" + c.Password, c.SSHKey} {
		if v != ":" && v != "" {
			s.masker.AddSecret(v) // a value too short to mask was refused when set
		}
	}
	switch {
	case IsSSH(rawURL):
		if c.SSHKey == "" {
			return nil, fmt.Errorf("%s is an SSH address: its credentials need an SSH key (ssh_key_secret)", Redact(rawURL))
		}
		if err := s.ssh(c); err != nil {
			return nil, err
		}
	case strings.HasPrefix(rawURL, "https://") || strings.HasPrefix(rawURL, "http://"):
		if c.Password == "" {
			return nil, fmt.Errorf("%s is an HTTP address: its credentials need a password or token (password_secret)", Redact(rawURL))
		}
		if err := s.http(rawURL, c); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: credentials are used only over https or ssh", Redact(rawURL))
	}
	return s, nil
}

func (s *Session) http(rawURL string, c *protocol.GitCredentials) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL", Redact(rawURL))
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return fmt.Errorf("%s: refusing to send credentials over plain http; use https", Redact(rawURL))
	}
	if strings.ContainsAny(c.Username, ":\r\n") || strings.ContainsAny(c.Password, "\r\n") {
		return errors.New("repository credentials: the username may not hold ':' or a line break, nor the password a line break")
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	header := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password))
	// Scoped to the repository's URL: git sends it to nothing else.
	s.env = append(s.env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http."+u.String()+".extraHeader", "GIT_CONFIG_VALUE_0="+header)
	return nil
}

func (s *Session) ssh(c *protocol.GitCredentials) error {
	dir, err := os.MkdirTemp("", "baton-git-ssh-")
	if err != nil {
		return fmt.Errorf("repository credentials: %w", err)
	}
	s.dir = dir
	if strings.ContainsAny(dir, `'"\`+"\n") {
		s.Close()
		return fmt.Errorf("repository credentials: temporary directory %q is not usable in a command line", dir)
	}
	key := strings.ReplaceAll(c.SSHKey, "\r\n", "\n")
	if !strings.HasSuffix(key, "\n") {
		key += "\n" // ssh refuses a key without its final newline
	}
	keyPath := filepath.Join(dir, "id")
	if err := os.WriteFile(keyPath, []byte(key), 0o600); err != nil {
		s.Close()
		return fmt.Errorf("repository credentials: %w", err)
	}
	cmd := "ssh -F /dev/null -i '" + keyPath + "' -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes"
	if c.KnownHosts != "" {
		hosts := filepath.Join(dir, "known_hosts")
		if err := os.WriteFile(hosts, []byte(strings.TrimSpace(c.KnownHosts)+"\n"), 0o600); err != nil {
			s.Close()
			return fmt.Errorf("repository credentials: %w", err)
		}
		cmd += " -o UserKnownHostsFile='" + hosts + "' -o GlobalKnownHostsFile=/dev/null"
	}
	s.env = append(s.env, "GIT_SSH_COMMAND="+cmd, "GIT_SSH_VARIANT=ssh")
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// scrubbed are inherited variables that could prompt, trace requests,
// change the transport or add configuration behind the session's back.
var scrubbed = []string{"GIT_ASKPASS=", "SSH_ASKPASS=", "GIT_SSH=", "GIT_SSH_COMMAND=", "GIT_SSH_VARIANT=", "GIT_TRACE",
	"GIT_CURL_VERBOSE=", "GIT_CONFIG_COUNT=", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_", "GIT_CONFIG_PARAMETERS=",
	"GIT_TERMINAL_PROMPT=", "GIT_CONFIG_NOSYSTEM=", "GIT_CONFIG_GLOBAL=", "GIT_REDACT_COOKIES="}

// Env returns base (usually os.Environ()) without the variables that could
// prompt or leak, plus the session's: no prompts, no system or user git
// config (which could run helpers), and the credentials' transport.
func (s *Session) Env(base []string) []string {
	out := make([]string, 0, len(base)+len(s.env)+3)
	for _, kv := range base {
		keep := true
		for _, p := range scrubbed {
			if strings.HasPrefix(kv, p) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	out = append(out, "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	return append(out, s.env...)
}

// Mask hides the credentials, in every form, in text (git's output).
func (s *Session) Mask(text string) string {
	if s == nil || s.masker.Empty() {
		return text
	}
	return string(s.masker.Mask([]byte(text)))
}

// Explain returns git's message with a hint when it says the repository
// asked for credentials it did not get or refused them.
func Explain(msg string) string {
	for _, sign := range []string{"could not read Username", "Authentication failed", "terminal prompts disabled",
		"Permission denied (publickey", "Host key verification failed", "HTTP Basic: Access denied", "returned error: 403"} {
		if strings.Contains(msg, sign) {
			return msg + " (the repository refused access: it needs credentials, or refused the ones given;" +
				" see the project's repository.credentials and the secret they name)"
		}
	}
	return msg
}

// Close removes the key files; it is safe to call more than once.
func (s *Session) Close() error {
	if s == nil || s.dir == "" {
		return nil
	}
	err := os.RemoveAll(s.dir)
	s.dir = ""
	return err
}

// Redact drops a password from a URL's user part, for messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "***")
		return strings.Replace(u.String(), "%2A%2A%2A", "***", 1)
	}
	return rawURL
}
