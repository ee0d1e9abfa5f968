package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func giteaSig(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestParse(t *testing.T) {
	secret := []byte("hook-secret-1")
	push := []byte(`{"ref":"refs/heads/main","after":"` + sha + `","repository":{"full_name":"o/r","clone_url":"https://git.example/o/r.git"}}`)
	fork := []byte(`{"action":"opened","number":7,"pull_request":{"head":{"sha":"` + sha + `","repo":{"full_name":"evil/r","clone_url":"https://git.example/evil/r.git"}},"base":{"ref":"main","repo":{"full_name":"o/r","clone_url":"https://git.example/o/r.git"}}}}`)
	closed := []byte(`{"action":"closed","number":7,"pull_request":{}}`)
	glPush := []byte(`{"ref":"refs/heads/dev","after":"` + sha + `","checkout_sha":"` + sha + `","project":{"git_http_url":"https://gl.example/o/r.git"}}`)
	glMR := []byte(`{"object_attributes":{"iid":3,"action":"open","target_branch":"main","last_commit":{"id":"` + sha + `"},"source":{"git_http_url":"https://gl.example/o/r.git"},"target":{"git_http_url":"https://gl.example/o/r.git"}}}`)
	for _, c := range []struct {
		name, provider string
		h              http.Header
		body           []byte
		err            error
		want           Event
		ignored        bool
	}{
		{"github push", "github", headers("X-Hub-Signature-256", Sign(secret, push), "X-GitHub-Delivery", "d1", "X-GitHub-Event", "push"), push, nil,
			Event{Kind: Push, Ref: "refs/heads/main", Branch: "main", Commit: sha, CloneURL: "https://git.example/o/r.git"}, false},
		{"github bad signature", "github", headers("X-Hub-Signature-256", Sign([]byte("other"), push), "X-GitHub-Delivery", "d1", "X-GitHub-Event", "push"), push, ErrUnauthorized, Event{}, false},
		{"github no signature", "github", headers("X-GitHub-Delivery", "d1", "X-GitHub-Event", "push"), push, ErrUnauthorized, Event{}, false},
		{"github fork pull request", "github", headers("X-Hub-Signature-256", Sign(secret, fork), "X-GitHub-Delivery", "d2", "X-GitHub-Event", "pull_request"), fork, nil,
			Event{Kind: PullRequest, Ref: "refs/heads/main", Branch: "main", Commit: sha, CloneURL: "https://git.example/evil/r.git", Fork: true, Number: 7}, false},
		{"github closed pull request", "github", headers("X-Hub-Signature-256", Sign(secret, closed), "X-GitHub-Delivery", "d3", "X-GitHub-Event", "pull_request"), closed, nil, Event{}, true},
		{"github ping", "github", headers("X-Hub-Signature-256", Sign(secret, []byte(`{}`)), "X-GitHub-Delivery", "d4", "X-GitHub-Event", "ping"), []byte(`{}`), nil, Event{}, true},
		{"gitea push", "gitea", headers("X-Gitea-Signature", giteaSig(secret, push), "X-Gitea-Delivery", "g1", "X-Gitea-Event", "push"), push, nil,
			Event{Kind: Push, Ref: "refs/heads/main", Branch: "main", Commit: sha, CloneURL: "https://git.example/o/r.git"}, false},
		{"gitea tampered body", "gitea", headers("X-Gitea-Signature", giteaSig(secret, push), "X-Gitea-Delivery", "g1", "X-Gitea-Event", "push"), append([]byte(" "), push...), ErrUnauthorized, Event{}, false},
		{"gitlab push", "gitlab", headers("X-Gitlab-Token", string(secret), "Idempotency-Key", "l1", "X-Gitlab-Event", "Push Hook"), glPush, nil,
			Event{Kind: Push, Ref: "refs/heads/dev", Branch: "dev", Commit: sha, CloneURL: "https://gl.example/o/r.git"}, false},
		{"gitlab merge request", "gitlab", headers("X-Gitlab-Token", string(secret), "X-Gitlab-Event-UUID", "l2", "X-Gitlab-Event", "Merge Request Hook"), glMR, nil,
			Event{Kind: PullRequest, Ref: "refs/heads/main", Branch: "main", Commit: sha, CloneURL: "https://gl.example/o/r.git", Number: 3}, false},
		{"gitlab wrong token", "gitlab", headers("X-Gitlab-Token", "nope", "Idempotency-Key", "l1", "X-Gitlab-Event", "Push Hook"), glPush, ErrUnauthorized, Event{}, false},
		{"unknown provider", "svn", headers(), push, ErrProvider, Event{}, false},
	} {
		d, err := Parse(c.provider, secret, c.h, c.body)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s: err %v, want %v", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if c.ignored {
			if d.Event != nil || d.Ignored == "" {
				t.Errorf("%s: %+v, want ignored", c.name, d)
			}
			continue
		}
		if d.Event == nil || *d.Event != c.want {
			t.Errorf("%s: event %+v, want %+v", c.name, d.Event, c.want)
		}
	}
	if _, err := Parse("github", secret, headers("X-Hub-Signature-256", Sign(secret, push), "X-GitHub-Event", "push"), push); err == nil {
		t.Error("a delivery without a delivery id was accepted")
	}
	if _, err := Parse("github", nil, headers("X-Hub-Signature-256", Sign(nil, push), "X-GitHub-Delivery", "d", "X-GitHub-Event", "push"), push); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("an empty secret verified a delivery: %v", err)
	}
}
