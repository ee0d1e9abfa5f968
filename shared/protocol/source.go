package protocol

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// Source is where a run's code comes from. The agent prepares it before a
// step runs: the run's source at /job/src (possibly untrusted, for example
// a pull request from a fork) and its CI source, trusted code from the
// default branch, at /job/ci.
type Source struct {
	// Type is git, copy (a directory on the agent's host), tarball, or
	// none (the default).
	Type string `json:"type"`
	// URL is the repository (git) or archive (tarball) address.
	URL string `json:"url,omitempty"`
	// Ref is a branch or tag (git); Commit pins the exact commit, which is
	// checked after checkout.
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Path is a directory (copy) or archive (tarball) on the agent's host.
	Path string `json:"path,omitempty"`
}

// Source types.
const (
	SourceNone    = "none"
	SourceGit     = "git"
	SourceCopy    = "copy"
	SourceTarball = "tarball"
)

var (
	commitRe = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	refRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$`)
	// scpLikeRe is git's user@host:path form.
	scpLikeRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[A-Za-z0-9._~/-]+$`)
)

// Empty reports whether there is nothing to prepare.
func (s *Source) Empty() bool { return s == nil || s.Type == "" || s.Type == SourceNone }

// Validate names the first problem with the source; what names it in the
// message (source, ci_source).
func (s *Source) Validate(what string) error {
	if s.Empty() {
		return nil
	}
	switch s.Type {
	case SourceGit:
		if scpLikeRe.MatchString(s.URL) {
			break
		}
		if err := validURL(s.URL, "https", "http", "ssh", "git", "file"); err != nil {
			return fmt.Errorf("%s.url: %w", what, err)
		}
		if s.Ref != "" && (!refRe.MatchString(s.Ref) || strings.Contains(s.Ref, "..")) {
			return fmt.Errorf("%s.ref %q is not a branch or tag name", what, s.Ref)
		}
		if s.Commit != "" && !commitRe.MatchString(s.Commit) {
			return fmt.Errorf("%s.commit %q: want a hexadecimal commit id", what, s.Commit)
		}
	case SourceCopy:
		if !path.IsAbs(s.Path) || path.Clean(s.Path) != s.Path {
			return fmt.Errorf("%s.path %q: want a clean absolute directory path on the agent's host", what, s.Path)
		}
	case SourceTarball:
		switch {
		case s.URL != "" && s.Path != "":
			return fmt.Errorf("%s: give url or path, not both", what)
		case s.URL != "":
			if err := validURL(s.URL, "https", "http"); err != nil {
				return fmt.Errorf("%s.url: %w", what, err)
			}
		case !path.IsAbs(s.Path) || path.Clean(s.Path) != s.Path:
			return fmt.Errorf("%s.path %q: want a clean absolute file path on the agent's host", what, s.Path)
		}
	default:
		return fmt.Errorf("%s.type %q: use git, copy, tarball or none", what, s.Type)
	}
	return nil
}

func validURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return fmt.Errorf("%q is not a URL", raw)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return nil
		}
	}
	return fmt.Errorf("%q: the scheme must be one of %s", raw, strings.Join(schemes, ", "))
}
