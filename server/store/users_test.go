package store_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

func TestUsersAndSessions(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := context.Background()
		if n, err := s.CountUsers(ctx); err != nil || n != 0 {
			t.Fatalf("CountUsers = %d, %v; want 0", n, err)
		}
		// Two first admins at once: exactly one wins.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, name := range []string{"ann", "bob"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.CreateFirstUser(ctx, &server.User{Name: name, Role: server.RoleAdmin, PasswordHash: []byte("h")})
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("CreateFirstUser twice at once: %v, %v; want one success", errs[0], errs[1])
		}
		wantCode(t, "CreateFirstUser(third)", s.CreateFirstUser(ctx, &server.User{Name: "cy", Role: server.RoleAdmin, PasswordHash: []byte("h")}), server.ECONFLICT)
		u := &server.User{Name: "viv", Role: server.RoleViewer, PasswordHash: []byte("hash")}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "CreateUser(taken)", s.CreateUser(ctx, &server.User{Name: "viv", Role: server.RoleAdmin, PasswordHash: []byte("h")}), server.ECONFLICT)
		wantCode(t, "CreateUser(bad role)", s.CreateUser(ctx, &server.User{Name: "x", Role: "root"}), server.EINVALID)
		got, err := s.FindUserByName(ctx, "viv")
		if err != nil || got.ID != u.ID || got.Role != server.RoleViewer || string(got.PasswordHash) != "hash" {
			t.Fatalf("FindUserByName = %+v, %v", got, err)
		}
		_, err = s.FindUserByName(ctx, "nobody")
		wantCode(t, "FindUserByName(unknown)", err, server.ENOTFOUND)

		now := time.Now().UTC()
		sess := &server.Session{Hash: []byte("0123456789abcdef0123456789abcdef"), UserID: u.ID, CSRF: "tok", ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		found, err := s.FindSession(ctx, sess.Hash, now)
		if err != nil || found.CSRF != "tok" || found.User == nil || found.User.Name != "viv" || !bytes.Equal(found.Hash, sess.Hash) {
			t.Fatalf("FindSession = %+v, %v", found, err)
		}
		_, err = s.FindSession(ctx, sess.Hash, now.Add(2*time.Hour))
		wantCode(t, "FindSession(expired)", err, server.ENOTFOUND)
		_, err = s.FindSession(ctx, []byte("other"), now)
		wantCode(t, "FindSession(unknown)", err, server.ENOTFOUND)
		if err := s.DeleteSession(ctx, sess.Hash); err != nil {
			t.Fatal(err)
		}
		_, err = s.FindSession(ctx, sess.Hash, now)
		wantCode(t, "FindSession(logged out)", err, server.ENOTFOUND)
	})
}
