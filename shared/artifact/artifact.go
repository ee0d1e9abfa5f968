// Package artifact holds what the agent's cacher and the server agree on
// about artifacts: which keys are valid. Both sides check every key, so a
// key can never name a path outside its run's artifacts.
package artifact

import (
	"fmt"
	"strings"
)

// MaxKeyLength is the longest artifact key, in bytes.
const MaxKeyLength = 200

// ValidateKey reports why key cannot name an artifact: a key is 1 to
// MaxKeyLength characters of A-Z a-z 0-9 . _ / -, relative (no leading
// '/'), with no empty, "." or ".." segment and no trailing '/'.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("artifact key is empty")
	case len(key) > MaxKeyLength:
		return fmt.Errorf("artifact key is %d characters; the limit is %d", len(key), MaxKeyLength)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !keyChar(c) {
			return fmt.Errorf("artifact key %q: character %q is not allowed (use A-Z a-z 0-9 . _ / -)", key, c)
		}
	}
	switch {
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("artifact key %q: it must be relative, not start with '/'", key)
	case strings.HasSuffix(key, "/"):
		return fmt.Errorf("artifact key %q: it must not end with '/'", key)
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("artifact key %q: it must not contain an empty path segment ('//')", key)
		case ".", "..":
			return fmt.Errorf("artifact key %q: a path segment must not be %q", key, seg)
		}
	}
	return nil
}

func keyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-'
}
