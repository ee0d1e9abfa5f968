package api

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/gitauth"
	"github.com/baton-ci/baton/shared/protocol"
)

// maxKnownHosts bounds a repository's known_hosts lines.
const maxKnownHosts = 16 << 10

// repoSettings checks a project request's repository, with its
// credentials (secret names only: the values are set with PUT
// .../secrets/NAME and never leave the secrets store through the API).
func repoSettings(repo *protocol.Repository) (string, string, *server.RepoCredentials, error) {
	if err := (&protocol.Source{Type: protocol.SourceGit, URL: repo.URL, Ref: repo.DefaultBranch}).Validate("repository"); err != nil {
		return "", "", nil, server.Errorf(server.EINVALID, "%v", err)
	}
	if u, err := url.Parse(repo.URL); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return "", "", nil, server.Errorf(server.EINVALID, "repository.url holds a password: keep the token in a project secret and name it in repository.credentials.password_secret")
		}
	}
	c := repo.Credentials
	if c == nil || (*c == protocol.RepoCredentials{}) {
		return repo.URL, repo.DefaultBranch, nil, nil
	}
	for what, name := range map[string]string{"password_secret": c.PasswordSecret, "ssh_key_secret": c.SSHKeySecret} {
		if name != "" && (!secretNameRe.MatchString(name) || strings.HasPrefix(name, "BATON")) {
			return "", "", nil, server.Errorf(server.EINVALID, "repository.credentials.%s %q: name a project secret (letters, digits, '_')", what, name)
		}
	}
	ssh := gitauth.IsSSH(repo.URL)
	switch {
	case len(c.KnownHosts) > maxKnownHosts:
		return "", "", nil, server.Errorf(server.EINVALID, "repository.credentials.known_hosts is over %d bytes", maxKnownHosts)
	case ssh && (c.SSHKeySecret == "" || c.PasswordSecret != "" || c.Username != ""):
		return "", "", nil, server.Errorf(server.EINVALID, "repository %s is an SSH address: give credentials.ssh_key_secret (and known_hosts), not a username or password", repo.URL)
	case !ssh && (c.SSHKeySecret != "" || c.KnownHosts != ""):
		return "", "", nil, server.Errorf(server.EINVALID, "ssh_key_secret and known_hosts are for ssh:// and user@host:path repositories, not %s", repo.URL)
	case !ssh && !strings.HasPrefix(repo.URL, "https://") && !strings.HasPrefix(repo.URL, "http://"):
		return "", "", nil, server.Errorf(server.EINVALID, "repository %s: credentials are used over https or ssh only", repo.URL)
	case !ssh && (c.PasswordSecret == "" || c.Username == "" || strings.ContainsAny(c.Username, ":\r\n")):
		return "", "", nil, server.Errorf(server.EINVALID, "repository.credentials: over HTTPS give username and password_secret "+
			"(GitHub: x-access-token and a token; GitLab: oauth2 or the deploy token's user; Gitea/Forgejo: your user name and an access token)")
	}
	if !ssh {
		sess, err := gitauth.New(repo.URL, &protocol.GitCredentials{Username: c.Username, Password: "checked-later"})
		if err != nil {
			return "", "", nil, server.Errorf(server.EINVALID, "%v", err) // for example a password over plain http
		}
		sess.Close()
	}
	return repo.URL, repo.DefaultBranch, &server.RepoCredentials{Username: c.Username, PasswordSecret: c.PasswordSecret,
		SSHKeySecret: c.SSHKeySecret, KnownHosts: c.KnownHosts}, nil
}

// repositoryView is a project's repository as the API shows it: secret
// names, never values.
func repositoryView(settings server.ProjectSettings) *protocol.Repository {
	if settings.RepoURL == "" {
		return nil
	}
	v := &protocol.Repository{URL: settings.RepoURL, DefaultBranch: settings.DefaultBranch}
	if c := settings.RepoCredentials; c != nil {
		v.Credentials = &protocol.RepoCredentials{Username: c.Username, PasswordSecret: c.PasswordSecret,
			SSHKeySecret: c.SSHKeySecret, KnownHosts: c.KnownHosts}
	}
	return v
}

// repoCredentials opens the credentials of a project's private repository
// for a fetch of repoURL: nil when repoURL is not the project's repository
// (credentials go to nothing else) or the repository is public.
func (s *Server) repoCredentials(ctx context.Context, project string, settings server.ProjectSettings, repoURL string) (*protocol.GitCredentials, error) {
	c := settings.RepoCredentials
	if c == nil || repoURL == "" || repoURL != settings.RepoURL {
		return nil, nil
	}
	var names []string
	for _, n := range []string{c.PasswordSecret, c.SSHKeySecret} {
		if n != "" {
			names = append(names, n)
		}
	}
	values, err := s.openSecretValues(ctx, project, "", names)
	if err != nil {
		return nil, fmt.Errorf("credentials of repository %s: project %q has no secret %s: set it with PUT /api/v1/projects/%s/secrets/NAME",
			gitauth.Redact(repoURL), project, strings.Join(names, " or "), project)
	}
	return &protocol.GitCredentials{Username: c.Username, Password: values[c.PasswordSecret], SSHKey: values[c.SSHKeySecret],
		KnownHosts: c.KnownHosts}, nil
}

// projectRepoCredentials is repoCredentials reading the settings.
func (s *Server) projectRepoCredentials(ctx context.Context, project, repoURL string) (*protocol.GitCredentials, error) {
	settings, err := s.Projects.ProjectSettings(ctx, project)
	if server.ErrorCode(err) == server.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.repoCredentials(ctx, project, settings, repoURL)
}

// credentialValues are the values a project's repository credentials
// hold, for masking step logs (whether or not the step was given them).
func credentialValues(c *protocol.GitCredentials) map[string]string {
	if c == nil {
		return nil
	}
	out := map[string]string{}
	if c.Password != "" {
		out["\x00repo-password"] = c.Password
		out["\x00repo-basic"] = c.Username + ":" + c.Password
	}
	if c.SSHKey != "" {
		out["\x00repo-ssh-key"] = c.SSHKey
	}
	return out
}

// sourceCredentials are what an agent needs to fetch a run's sources: the
// credentials of the project's private repository for each source that is
// that repository, and none at all for an untrusted run (code from a fork
// never gets them, on any path, until an admin trusts the run). mask holds
// the values given, for the server's masking pass. A run with no git
// source costs no lookup.
func (s *Server) sourceCredentials(ctx context.Context, run *server.Run) (src, ci *protocol.GitCredentials, mask map[string]string, err error) {
	isGit := func(src *server.Source) bool { return src != nil && src.Type == protocol.SourceGit }
	if run.Untrusted || (!isGit(run.Source) && !isGit(run.CISource)) {
		return nil, nil, nil, nil
	}
	settings, err := s.Projects.ProjectSettings(ctx, run.Project)
	if server.ErrorCode(err) == server.ENOTFOUND || (err == nil && settings.RepoCredentials == nil) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	src = &protocol.GitCredentials{} // a marker until opened
	ci = src
	if !isGit(run.Source) || run.Source.URL != settings.RepoURL {
		src = nil
	}
	if !isGit(run.CISource) || run.CISource.URL != settings.RepoURL {
		ci = nil
	}
	if src == nil && ci == nil {
		return nil, nil, nil, nil // its sources are other repositories
	}
	cred, err := s.repoCredentials(ctx, run.Project, settings, settings.RepoURL)
	if err != nil {
		return nil, nil, nil, err
	}
	if src != nil {
		src = cred
	}
	if ci != nil {
		ci = cred
	}
	return src, ci, credentialValues(cred), nil
}

// projectCredentialValues are the values of a project's repository
// credentials (none when it has none or they cannot be opened), for
// masking.
func (s *Server) projectCredentialValues(ctx context.Context, project string) map[string]string {
	settings, err := s.Projects.ProjectSettings(ctx, project)
	if err != nil || settings.RepoCredentials == nil {
		return nil
	}
	cred, err := s.repoCredentials(ctx, project, settings, settings.RepoURL)
	if err != nil {
		return nil
	}
	return credentialValues(cred)
}
