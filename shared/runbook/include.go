package runbook

import (
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/baton-ci/baton/shared/expr"
)

// MaxIncludeDepth bounds nested includes.
const MaxIncludeDepth = 8

// includes reads the include list: {path, as, after}.
func (p *parser) includes(n *yaml.Node) []Include {
	if !p.expect(n, yaml.SequenceNode, "include") {
		return nil
	}
	var out []Include
	for _, in := range n.Content {
		inc := Include{Pos: Pos{File: p.included, Line: in.Line, Column: in.Column}}
		if !p.expect(in, yaml.MappingNode, "an include") {
			continue
		}
		p.fields(in, "include", Keys["include"], func(key string, k, v *yaml.Node) {
			switch key {
			case "path":
				inc.Path = p.scalar(v, "include.path")
			case "as":
				inc.As = p.scalar(v, "include.as")
			case "after":
				inc.After = p.names(v, "include.after")
			}
		})
		switch {
		case inc.Path == "":
			p.errorf(in, "include has no path: give the runbook's path in the repository")
		case inc.As == "":
			p.errorf(in, "include of %s has no as: give a prefix for its step names", inc.Path)
		case !stepNameRe.MatchString(inc.As):
			p.errorf(in, "include as %q: use letters, digits, '-', '_' and '.'", inc.As)
		}
		out = append(out, inc)
	}
	return out
}

// cleanIncludePath resolves an include path against the repository root and
// refuses one that would leave it.
func cleanIncludePath(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("include path %q is absolute: give it relative to the repository root", p)
	}
	clean := path.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("include path %q leaves the repository", p)
	}
	return clean, nil
}

// resolveIncludes grafts every included runbook into rb: its steps are
// renamed AS.NAME (references between them follow), its entry steps depend
// on the include's after, its global env, image and timeout are folded into
// its steps, and its params join rb's. stack holds the files being included,
// to refuse include cycles.
func (p *parser) resolveIncludes(rb *Runbook, load Loader, stack []string) {
	for _, inc := range rb.Includes {
		at := func(format string, args ...any) {
			file := p.file
			if inc.Pos.File != "" {
				file = inc.Pos.File
			}
			p.errs = append(p.errs, Error{File: file, Pos: inc.Pos, Msg: fmt.Sprintf(format, args...)})
		}
		if inc.Path == "" || inc.As == "" {
			continue // reported by includes
		}
		if load == nil {
			at("include %s: includes are read from the runbook's repository, which this run does not have (send the files with the run)", inc.Path)
			continue
		}
		file, err := cleanIncludePath(inc.Path)
		if err != nil {
			at("%v", err)
			continue
		}
		if contains(stack, file) {
			at("include cycle: %s -> %s", strings.Join(stack, " -> "), file)
			continue
		}
		if len(stack) > MaxIncludeDepth {
			at("includes nest more than %d deep", MaxIncludeDepth)
			continue
		}
		text, err := load(file)
		if err != nil {
			at("include %s: %v", file, err)
			continue
		}
		sub := &parser{file: file, included: file}
		subrb := sub.parse(text)
		sub.resolveIncludes(subrb, load, append(stack, file))
		p.errs = append(p.errs, sub.errs...)
		if len(sub.errs) > 0 {
			continue
		}
		known := map[string]bool{}
		for _, s := range rb.Steps {
			known[s.Name] = true
		}
		for _, a := range inc.After {
			if !known[a] {
				at("include %s: after names unknown step %q (steps of this runbook, or of an earlier include)", file, a)
			}
		}
		p.mergeParams(rb, subrb, at)
		local := map[string]bool{}
		for _, s := range subrb.Steps {
			local[s.Name] = true
		}
		for _, s := range subrb.Steps {
			rb.Steps = append(rb.Steps, graft(inc, subrb, s, local))
		}
	}
}

// mergeParams adds an included runbook's params to rb's; one declared by
// both must have the same type.
func (p *parser) mergeParams(rb, sub *Runbook, at func(string, ...any)) {
	for _, sp := range sub.Params {
		found := false
		for _, rp := range rb.Params {
			if rp.Name == sp.Name {
				found = true
				if rp.Type != sp.Type {
					at("param %q is a %s here and a %s in %s", sp.Name, rp.Type, sp.Type, sp.Pos.File)
				}
			}
		}
		if !found {
			rb.Params = append(rb.Params, sp)
		}
	}
}

// graft returns an included step as the including runbook sees it.
func graft(inc Include, sub *Runbook, s Step, local map[string]bool) Step {
	rename := func(name string) string { return inc.As + "." + name }
	refs := func(path []string) []string {
		if len(path) > 1 && path[0] == "steps" && local[path[1]] {
			path[1] = rename(path[1])
		}
		return path
	}
	text := func(t string) string {
		tm, err := expr.ParseTemplate(t)
		if err != nil || len(tm.Refs()) == 0 {
			return t // errors are reported by validation, unchanged
		}
		return tm.RewriteRefs(refs)
	}
	out := s
	out.Name = rename(s.Name)
	out.DependsOn = nil
	for _, d := range s.DependsOn {
		out.DependsOn = append(out.DependsOn, rename(d))
	}
	if len(s.DependsOn) == 0 {
		out.DependsOn = append([]string(nil), inc.After...)
	}
	if out.Image == "" {
		out.Image = sub.Global.Image
	}
	if out.Timeout == 0 {
		out.Timeout = sub.Global.Timeout
	}
	out.Image = text(out.Image)
	out.Command = text(out.Command)
	out.Args = nil
	for _, a := range s.Args {
		out.Args = append(out.Args, text(a))
	}
	out.Env = make(map[string]string, len(sub.Global.Env)+len(s.Env))
	for k, v := range sub.Global.Env {
		out.Env[k] = text(v)
	}
	for k, v := range s.Env {
		out.Env[k] = text(v)
	}
	if s.If != "" {
		if e, err := expr.ParseCondition(s.If); err == nil {
			out.If = e.RewriteRefs(refs)
		}
	}
	return out
}
