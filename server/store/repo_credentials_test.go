package store_test

import (
	"reflect"
	"testing"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// A private repository's credentials (secret names and known hosts) are
// kept with the project, through create and replace; clearing them makes
// the repository public again.
func TestRepoCredentialsKept(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		cred := &server.RepoCredentials{Username: "x-access-token", PasswordSecret: "REPO_TOKEN"}
		if err := s.CreateProject(ctx, "priv", server.ProjectSettings{Weight: 1, RepoURL: "https://git.example.com/o/r.git",
			RepoCredentials: cred}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ProjectSettings(ctx, "priv"); err != nil || !reflect.DeepEqual(got.RepoCredentials, cred) {
			t.Fatalf("after create: %+v, %v", got.RepoCredentials, err)
		}
		ssh := &server.RepoCredentials{SSHKeySecret: "DEPLOY_KEY", KnownHosts: "git.example.com ssh-ed25519 AAAA"}
		if err := s.SetProjectSettings(ctx, "priv", server.ProjectSettings{Weight: 1, RepoURL: "git@git.example.com:o/r.git",
			RepoCredentials: ssh}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ProjectSettings(ctx, "priv"); err != nil || !reflect.DeepEqual(got.RepoCredentials, ssh) {
			t.Fatalf("after replace: %+v, %v", got.RepoCredentials, err)
		}
		if err := s.SetProjectSettings(ctx, "priv", server.ProjectSettings{Weight: 1, RepoURL: "https://git.example.com/o/r.git"}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ProjectSettings(ctx, "priv"); err != nil || got.RepoCredentials != nil {
			t.Fatalf("after clearing: %+v, %v", got.RepoCredentials, err)
		}
	})
}
