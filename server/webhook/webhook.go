// Package webhook reads forge deliveries: it checks a delivery's signature
// against the project's webhook secret and turns the payloads Baton acts
// on (pushes and pull or merge requests from GitHub, GitLab and
// Gitea/Forgejo) into one Event shape. It does no I/O.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// MaxBody is the largest delivery read (GitHub's own cap is 25 MiB).
const MaxBody = 25 << 20

// Event kinds.
const (
	Push        = "push"
	PullRequest = "pull_request"
)

// Event is what a delivery asks Baton to build.
type Event struct {
	// Kind is Push or PullRequest.
	Kind string `json:"kind"`
	// Ref is the full ref pushed (refs/heads/main, refs/tags/v1), or the
	// pull request's target branch ref.
	Ref string `json:"ref"`
	// Branch is the pushed branch, or the pull request's target branch.
	Branch string `json:"branch,omitempty"`
	// Commit is the commit to build: the pushed head, or the pull
	// request's head.
	Commit string `json:"commit"`
	// CloneURL is where Commit can be fetched: the repository pushed to,
	// or the pull request's head repository (a fork's).
	CloneURL string `json:"clone_url"`
	// Fork: the pull request comes from another repository, so its code
	// is not trusted.
	Fork bool `json:"fork,omitempty"`
	// Number is the pull request's number.
	Number int `json:"number,omitempty"`
	// Deleted: the push deleted the ref (nothing to build).
	Deleted bool `json:"deleted,omitempty"`
}

// Delivery is a verified delivery.
type Delivery struct {
	// ID is the forge's delivery id, unique per delivery; a redelivery
	// repeats it.
	ID string
	// Event is nil for deliveries Baton does not act on (ping, issues, a
	// closed pull request); Ignored then says why.
	Event   *Event
	Ignored string
}

// Errors a handler maps to statuses.
var (
	ErrUnauthorized = errors.New("the delivery's signature does not match the project's webhook secret")
	ErrProvider     = errors.New("unknown provider: use github, gitlab or gitea")
)

// Parse verifies a delivery from provider (github, gitlab, gitea or
// forgejo) and reads its event.
func Parse(provider string, secret []byte, h http.Header, body []byte) (*Delivery, error) {
	switch provider {
	case "github":
		if !validHMAC(secret, body, strings.TrimPrefix(h.Get("X-Hub-Signature-256"), "sha256=")) {
			return nil, ErrUnauthorized
		}
		return parseGitHub(h.Get("X-GitHub-Delivery"), h.Get("X-GitHub-Event"), body)
	case "gitea", "forgejo":
		sig := h.Get("X-Gitea-Signature")
		if sig == "" {
			sig = h.Get("X-Forgejo-Signature")
		}
		if !validHMAC(secret, body, sig) {
			return nil, ErrUnauthorized
		}
		id := h.Get("X-Gitea-Delivery")
		if id == "" {
			id = h.Get("X-Forgejo-Delivery")
		}
		event := h.Get("X-Gitea-Event")
		if event == "" {
			event = h.Get("X-Forgejo-Event")
		}
		return parseGitHub(id, event, body) // Gitea's payloads follow GitHub's
	case "gitlab":
		token := h.Get("X-Gitlab-Token")
		if len(secret) == 0 || subtle.ConstantTimeCompare([]byte(token), secret) != 1 {
			return nil, ErrUnauthorized
		}
		id := h.Get("Idempotency-Key")
		if id == "" {
			id = h.Get("X-Gitlab-Event-UUID")
		}
		return parseGitLab(id, h.Get("X-Gitlab-Event"), body)
	}
	return nil, ErrProvider
}

// validHMAC compares a hex HMAC-SHA256 of body in constant time.
func validHMAC(secret, body []byte, sigHex string) bool {
	if len(secret) == 0 {
		return false
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), sig)
}

// Sign returns the X-Hub-Signature-256 value for body (for tests and tools).
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func checkID(id string) error {
	if id == "" || len(id) > 200 {
		return errors.New("the delivery has no delivery id header (or one over 200 characters)")
	}
	return nil
}

type ghRepo struct {
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
}

func parseGitHub(id, event string, body []byte) (*Delivery, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	d := &Delivery{ID: id}
	switch event {
	case "push":
		var p struct {
			Ref        string `json:"ref"`
			After      string `json:"after"`
			Deleted    bool   `json:"deleted"`
			Repository ghRepo `json:"repository"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("push payload: %w", err)
		}
		d.Event = &Event{Kind: Push, Ref: p.Ref, Branch: strings.TrimPrefix(p.Ref, "refs/heads/"), Commit: p.After,
			CloneURL: p.Repository.CloneURL, Deleted: p.Deleted || strings.Trim(p.After, "0") == ""}
		if !strings.HasPrefix(p.Ref, "refs/heads/") {
			d.Event.Branch = ""
		}
	case "pull_request":
		var p struct {
			Action      string `json:"action"`
			Number      int    `json:"number"`
			PullRequest struct {
				Head struct {
					Sha  string `json:"sha"`
					Repo ghRepo `json:"repo"`
				} `json:"head"`
				Base struct {
					Ref  string `json:"ref"`
					Repo ghRepo `json:"repo"`
				} `json:"base"`
			} `json:"pull_request"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("pull_request payload: %w", err)
		}
		switch p.Action {
		case "opened", "synchronize", "reopened", "synchronized":
		default:
			d.Ignored = "pull request action " + p.Action
			return d, nil
		}
		pr := p.PullRequest
		d.Event = &Event{Kind: PullRequest, Ref: "refs/heads/" + pr.Base.Ref, Branch: pr.Base.Ref, Commit: pr.Head.Sha,
			CloneURL: pr.Head.Repo.CloneURL, Number: p.Number, Fork: pr.Head.Repo.FullName != pr.Base.Repo.FullName}
	default:
		d.Ignored = "event " + event
		return d, nil
	}
	return d, validEvent(d.Event)
}

func parseGitLab(id, event string, body []byte) (*Delivery, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	d := &Delivery{ID: id}
	switch event {
	case "Push Hook", "Tag Push Hook":
		var p struct {
			Ref         string `json:"ref"`
			After       string `json:"after"`
			CheckoutSha string `json:"checkout_sha"`
			Project     struct {
				GitHTTPURL string `json:"git_http_url"`
			} `json:"project"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("push payload: %w", err)
		}
		commit := p.CheckoutSha
		if commit == "" {
			commit = p.After
		}
		d.Event = &Event{Kind: Push, Ref: p.Ref, Commit: commit, CloneURL: p.Project.GitHTTPURL,
			Deleted: strings.Trim(p.After, "0") == ""}
		if b, ok := strings.CutPrefix(p.Ref, "refs/heads/"); ok {
			d.Event.Branch = b
		}
	case "Merge Request Hook":
		var p struct {
			ObjectAttributes struct {
				IID          int    `json:"iid"`
				Action       string `json:"action"`
				TargetBranch string `json:"target_branch"`
				LastCommit   struct {
					ID string `json:"id"`
				} `json:"last_commit"`
				Source struct {
					GitHTTPURL string `json:"git_http_url"`
				} `json:"source"`
				Target struct {
					GitHTTPURL string `json:"git_http_url"`
				} `json:"target"`
			} `json:"object_attributes"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("merge request payload: %w", err)
		}
		mr := p.ObjectAttributes
		switch mr.Action {
		case "open", "reopen", "update":
		default:
			d.Ignored = "merge request action " + mr.Action
			return d, nil
		}
		d.Event = &Event{Kind: PullRequest, Ref: "refs/heads/" + mr.TargetBranch, Branch: mr.TargetBranch,
			Commit: mr.LastCommit.ID, CloneURL: mr.Source.GitHTTPURL, Number: mr.IID,
			Fork: mr.Source.GitHTTPURL != mr.Target.GitHTTPURL}
	default:
		d.Ignored = "event " + event
		return d, nil
	}
	return d, validEvent(d.Event)
}

// validEvent checks what a run will be made from.
func validEvent(e *Event) error {
	if e.Deleted {
		return nil
	}
	if len(e.Commit) < 7 || len(e.Commit) > 64 || strings.Trim(e.Commit, "0123456789abcdef") != "" {
		return fmt.Errorf("the delivery names no commit to build (%q)", e.Commit)
	}
	if e.CloneURL == "" {
		return errors.New("the delivery names no repository to clone")
	}
	return nil
}
