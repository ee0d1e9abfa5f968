package docker

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/cacher"
)

// Where cacher appears inside a step container.
const (
	cacherBinDir = "/baton/bin"
	cacherRunDir = "/baton/run"
	// defaultPath is PATH for an image that sets none.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// addCacher gives the step its cacher, when spec asks for one: the agent's
// static binary, read-only, as /baton/bin/cacher (first on PATH), and the
// step's socket directory as /baton/run, read-only too (a socket in a
// read-only mount can still be connected to; the step cannot leave files
// in the agent's directory). BATON_CACHER_SOCKET names the socket. No
// network is involved, so it works with network none.
func (e *Executor) addCacher(ctx context.Context, spec agent.StepSpec, image string, cfg *container.Config, hc *container.HostConfig) error {
	if spec.Cacher == nil {
		return nil
	}
	base := defaultPath
	inspect, err := e.cli.ImageInspect(ctx, image)
	if err != nil {
		return fmt.Errorf("inspect image %s: %w", image, err)
	}
	if inspect.Config != nil {
		for _, kv := range inspect.Config.Env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				base = v
			}
		}
	}
	// A PATH the step sets itself wins over the image's.
	env := cfg.Env[:0:0]
	for _, kv := range cfg.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			base = v
			continue
		}
		env = append(env, kv)
	}
	cfg.Env = append(env, "PATH="+cacherBinDir+":"+base, cacher.EnvSocket+"="+path.Join(cacherRunDir, cacher.SocketName))
	if len(spec.SecretEnv) > 0 {
		// Secrets stay out of the container's configuration: cacher fetches
		// them from the agent, once, and becomes the step's command.
		cfg.Cmd = append([]string{path.Join(cacherBinDir, "cacher"), "exec", "--"}, cfg.Cmd...)
	}
	hc.Mounts = append(hc.Mounts,
		mount.Mount{Type: mount.TypeBind, Source: spec.Cacher.Binary, Target: path.Join(cacherBinDir, "cacher"), ReadOnly: true},
		mount.Mount{Type: mount.TypeBind, Source: spec.Cacher.SocketDir, Target: cacherRunDir, ReadOnly: true},
	)
	return nil
}
