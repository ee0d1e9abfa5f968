package runbook

import (
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// Trigger kinds a runbook's on: can name.
const (
	TriggerPush        = "push"
	TriggerPullRequest = "pull_request"
	TriggerSchedule    = "schedule"
	TriggerAPI         = "api"
)

// Triggers is a runbook's on: which events start it. A nil *Triggers (no
// on:) takes every event.
type Triggers struct {
	// Push and PullRequest are nil when the runbook does not take them;
	// their Branches (globs, path.Match syntax) limit them; empty: any.
	Push, PullRequest *BranchFilter
	Schedule, API     bool
}

// BranchFilter limits a trigger to branches matching any of its globs.
type BranchFilter struct {
	Branches []string
}

// Takes reports whether the runbook starts for an event of kind on branch
// (the pushed branch, or a pull request's target); when it does not, the
// reason says why.
func (t *Triggers) Takes(kind, branch string) (bool, string) {
	if t == nil {
		return true, ""
	}
	var f *BranchFilter
	switch kind {
	case TriggerPush:
		f = t.Push
	case TriggerPullRequest:
		f = t.PullRequest
	case TriggerSchedule:
		if t.Schedule {
			return true, ""
		}
		return false, "the runbook's on: does not list schedule"
	case TriggerAPI:
		if t.API {
			return true, ""
		}
		return false, "the runbook's on: does not list api"
	}
	if f == nil {
		return false, "the runbook's on: does not list " + kind
	}
	if len(f.Branches) == 0 {
		return true, ""
	}
	for _, g := range f.Branches {
		if ok, _ := path.Match(g, branch); ok {
			return true, ""
		}
	}
	return false, fmt.Sprintf("branch %q matches none of on.%s.branches (%s)", branch, kind, strings.Join(f.Branches, ", "))
}

// on reads on: a mapping of trigger kinds; push and pull_request may limit
// branches.
func (p *parser) on(n *yaml.Node) *Triggers {
	t := &Triggers{}
	if !p.expect(n, yaml.MappingNode, "on") {
		return t
	}
	p.fields(n, "on", Keys["on"], func(key string, k, v *yaml.Node) {
		switch key {
		case TriggerPush:
			t.Push = p.branchFilter(v, "on.push")
		case TriggerPullRequest:
			t.PullRequest = p.branchFilter(v, "on.pull_request")
		case TriggerSchedule:
			t.Schedule = p.enabled(v, "on.schedule")
		case TriggerAPI:
			t.API = p.enabled(v, "on.api")
		}
	})
	return t
}

// enabled reads a trigger that takes no options: empty, {} or true.
func (p *parser) enabled(n *yaml.Node, what string) bool {
	v := deref(n)
	switch {
	case v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "true"):
		return true
	case v.Kind == yaml.ScalarNode && v.Value == "false":
		return false
	case v.Kind == yaml.MappingNode && len(v.Content) == 0:
		return true
	}
	p.errorf(n, "%s takes no options: leave it empty", what)
	return false
}

func (p *parser) branchFilter(n *yaml.Node, what string) *BranchFilter {
	f := &BranchFilter{}
	v := deref(n)
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return f
	}
	if !p.expect(n, yaml.MappingNode, what) {
		return f
	}
	p.fields(n, what, Keys["trigger"], func(key string, k, v *yaml.Node) {
		f.Branches = p.names(v, what+".branches")
		for _, g := range f.Branches {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				p.errorf(v, "%s.branches: %q is not a branch pattern (use * and ? globs)", what, g)
			}
		}
	})
	return f
}
