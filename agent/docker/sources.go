package docker

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/baton-ci/baton/agent"
)

// sourceMounts binds the step's prepared sources: the run's source at
// /job/src, writable (builds write into their tree), and the trusted CI
// source at /job/ci, read-only so the step cannot change the code that
// judges it.
func sourceMounts(spec agent.StepSpec) []mount.Mount {
	var out []mount.Mount
	if spec.SourceDir != "" {
		out = append(out, mount.Mount{Type: mount.TypeBind, Source: spec.SourceDir, Target: agent.SourceMount})
	}
	if spec.CIDir != "" {
		out = append(out, mount.Mount{Type: mount.TypeBind, Source: spec.CIDir, Target: agent.CIMount, ReadOnly: true})
	}
	if spec.ArtifactsDir != "" {
		out = append(out, mount.Mount{Type: mount.TypeBind, Source: spec.ArtifactsDir, Target: agent.ArtifactsMount})
	}
	return out
}

// giveSourceToStep lets the step's user write its source tree: chowned
// when the agent is root and the user numeric, else opened up like the
// workspace (see giveToStep).
func (e *Executor) giveSourceToStep(dir string) error {
	if dir == "" || e.opts.User == "" {
		return nil
	}
	uid, gid, chown := stepOwner(e.opts.User)
	chown = chown && os.Geteuid() == 0
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if chown {
			return os.Lchown(p, uid, gid)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// Everyone may read and write; directories and what was
		// executable stay searchable and executable.
		mode := info.Mode().Perm() | 0o666
		if d.IsDir() || mode&0o111 != 0 {
			mode |= 0o111
		}
		return os.Chmod(p, mode)
	})
}

// applyResources sets the step's memory and CPU limits: the runbook's,
// capped at the agent's (which are also the defaults). A cap is said in
// the step's log.
func (e *Executor) applyResources(hc *container.HostConfig, spec agent.StepSpec, out io.Writer) {
	if m := spec.Memory; m > 0 {
		if e.opts.Memory > 0 && m > e.opts.Memory {
			fmt.Fprintf(out, "baton: the step asks for %d MiB of memory; this agent's maximum is %d MiB\n", m>>20, e.opts.Memory>>20)
			m = e.opts.Memory
		}
		hc.Memory, hc.MemorySwap = m, m
	}
	if c := spec.NanoCPUs; c > 0 {
		if e.opts.NanoCPUs > 0 && c > e.opts.NanoCPUs {
			fmt.Fprintf(out, "baton: the step asks for %.2f CPUs; this agent's maximum is %.2f\n", float64(c)/1e9, float64(e.opts.NanoCPUs)/1e9)
			c = e.opts.NanoCPUs
		}
		hc.NanoCPUs = c
	}
}
