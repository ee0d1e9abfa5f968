package artifact_test

import (
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/artifact"
)

func TestValidateKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key  string
		want string // "" when valid, else part of the error
	}{
		{"build.tar", ""},
		{"dist/app-1.2_3.tgz", ""},
		{"a", ""},
		{"..x/y..", ""},
		{".cache/go", ""},
		{strings.Repeat("k", artifact.MaxKeyLength), ""},
		{"", "empty"},
		{strings.Repeat("k", artifact.MaxKeyLength+1), "the limit is 200"},
		{"../x", `must not be ".."`},
		{"a/../b", `must not be ".."`},
		{"a/..", `must not be ".."`},
		{"..", `must not be ".."`},
		{"./x", `must not be "."`},
		{"a/./b", `must not be "."`},
		{".", `must not be "."`},
		{"/etc/passwd", "must be relative"},
		{"/", "must be relative"},
		{"a/", "must not end with '/'"},
		{"a//b", "empty path segment"},
		{"a b", "' ' is not allowed"},
		{`a\b`, `'\\' is not allowed`},
		{"a%2e", "'%' is not allowed"},
		{"naïve", "is not allowed"},
		{"a\x00b", "is not allowed"},
		{"a\nb", "is not allowed"},
	} {
		err := artifact.ValidateKey(tc.key)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want valid", tc.key, err)
		case tc.want != "" && err == nil:
			t.Errorf("%q: valid, want an error with %q", tc.key, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%q: %v, want an error with %q", tc.key, err, tc.want)
		}
	}
}

func FuzzValidateKey(f *testing.F) {
	f.Add("dist/app.tgz")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, key string) {
		if artifact.ValidateKey(key) != nil {
			return
		}
		// A valid key stays inside its directory whatever joins it.
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("valid key %q has segment %q", key, seg)
			}
		}
		if strings.HasPrefix(key, "/") || len(key) > artifact.MaxKeyLength {
			t.Fatalf("valid key %q", key)
		}
	})
}
