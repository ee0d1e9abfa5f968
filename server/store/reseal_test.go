package store_test

import (
	"errors"
	"testing"

	"github.com/baton-ci/baton/server/store"
)

// ResealSecrets rewrites every secret in one transaction: all or none.
func TestResealSecrets(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		for _, slot := range [][2]string{{"a", "X"}, {"a", "Y"}, {"b", "X"}} {
			if err := s.PutSecret(ctx, slot[0], slot[1], []byte("old:"+slot[0]+"/"+slot[1])); err != nil {
				t.Fatal(err)
			}
		}
		// A failure halfway leaves every secret as it was.
		calls := 0
		_, err := s.ResealSecrets(ctx, func(project, name string, sealed []byte) ([]byte, error) {
			if calls++; calls == 3 {
				return nil, errors.New("does not open")
			}
			return []byte("new:" + project + "/" + name), nil
		})
		if err == nil {
			t.Fatal("a failing reseal succeeded")
		}
		got, _ := s.SealedSecrets(ctx, "a", []string{"X", "Y"})
		if string(got["X"]) != "old:a/X" || string(got["Y"]) != "old:a/Y" {
			t.Errorf("after a failed reseal: %q", got)
		}
		n, err := s.ResealSecrets(ctx, func(project, name string, sealed []byte) ([]byte, error) {
			if string(sealed) != "old:"+project+"/"+name {
				t.Errorf("reseal got %s/%s = %q", project, name, sealed)
			}
			if project == "b" {
				return sealed, nil // unchanged: not written
			}
			return []byte("new:" + project + "/" + name), nil
		})
		if err != nil || n != 2 {
			t.Fatalf("ResealSecrets = %d, %v; want 2", n, err)
		}
		got, _ = s.SealedSecrets(ctx, "a", []string{"X", "Y"})
		if string(got["X"]) != "new:a/X" || string(got["Y"]) != "new:a/Y" {
			t.Errorf("after reseal: %q", got)
		}
	})
}
