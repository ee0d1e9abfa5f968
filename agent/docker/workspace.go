package docker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/baton-ci/baton/agent"
)

// workspacePath is the step's working directory in the container
// ($BATON_WORKSPACE), a host directory of its own.
const workspacePath = "/workspace"

// Every step attempt gets a directory on the host,
// <work dir>/<agent id>/<step id>-<attempt>, holding:
//
//	workspace/  mounted at /workspace, the working directory
//	baton/      mounted at /.baton; holds $BATON_OUTPUT
//
// Both are writable even when the root file system is read-only. The
// directory is removed when the step ends, also when it is cancelled. The
// Docker daemon mounts the host path, so it must see the work dir at the
// same path as the agent does (mind this when the agent itself runs in a
// container).
type stepDir struct {
	root      string
	workspace string
	meta      string
}

// DefaultWorkDir is where step directories go when Options.WorkDir is empty.
func DefaultWorkDir() string { return filepath.Join(os.TempDir(), "baton-workspaces") }

// prepareWorkDir creates <work dir>/<agent id>, private to the agent, and
// checks that nobody else can swap it for something else: the work dir must
// belong to the agent's user or root, and be writable by others only with
// the sticky bit (like /tmp).
func prepareWorkDir(workDir, agentID string) (string, error) {
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	if err := checkOwner(workDir, true); err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	dir := filepath.Join(workDir, agentID)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("work dir: %w", err)
	}
	if err := checkOwner(dir, false); err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	return dir, nil
}

// stepDirName is the name of a step attempt's directory.
func stepDirName(spec agent.StepSpec) (string, error) {
	name := fmt.Sprintf("%s-%d", spec.StepID, spec.Attempt)
	if spec.StepID == "" || strings.ContainsAny(spec.StepID, `/\`) || !filepath.IsLocal(name) {
		return "", fmt.Errorf("step id %q cannot name a directory", spec.StepID)
	}
	return name, nil
}

// createStepDir makes the step attempt's directories, writable by the
// step's user. A directory left by an agent that was killed is replaced.
func (e *Executor) createStepDir(ctx context.Context, spec agent.StepSpec, image string) (stepDir, error) {
	name, err := stepDirName(spec)
	if err != nil {
		return stepDir{}, err
	}
	d := stepDir{root: filepath.Join(e.workDir, name)}
	d.workspace = filepath.Join(d.root, "workspace")
	d.meta = filepath.Join(d.root, "baton")
	if err := os.Mkdir(d.root, 0o700); errors.Is(err, fs.ErrExist) {
		e.opts.Logger.Warn("replacing a leftover step directory", slog.String("dir", d.root))
		e.removeStepDir(ctx, d.root, spec.StepID, image)
		err = os.Mkdir(d.root, 0o700)
	}
	if err != nil {
		return stepDir{}, fmt.Errorf("create step directory: %w", err)
	}
	if err := e.giveToStep(d); err != nil {
		e.removeStepDir(ctx, d.root, spec.StepID, image)
		return stepDir{}, fmt.Errorf("create step directory: %w", err)
	}
	return d, nil
}

// giveToStep creates the workspace, the meta dir and the empty output file
// so the step's user can write them. When the agent runs as root and the
// step's user is numeric (--user 65534:65534), they are chowned to it.
// Otherwise the agent cannot give them away (or does not know who the
// image's user is), so they are made writable by everyone (0777, 0666).
// That opens them to no one else on the host: the step directory and its
// parent are 0700 to the agent, so only the mounts in this step's container
// reach them.
func (e *Executor) giveToStep(d stepDir) error {
	uid, gid, chown := stepOwner(e.opts.User)
	chown = chown && os.Geteuid() == 0
	dirMode, fileMode := os.FileMode(0o777), os.FileMode(0o666)
	if chown {
		dirMode, fileMode = 0o755, 0o644
	}
	output := filepath.Join(d.meta, path.Base(outputPath))
	for _, p := range []string{d.workspace, d.meta, output} {
		mode := dirMode
		if p == output {
			mode = fileMode
			if err := os.WriteFile(p, nil, fileMode); err != nil {
				return err
			}
		} else if err := os.Mkdir(p, dirMode); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil { // the umask narrowed it
			return err
		}
		if chown {
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}

// userRe is Docker's user form: name or uid, optionally :group or :gid.
var userRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)

// CheckUser tells whether user is a valid Options.User.
func CheckUser(user string) error {
	if user != "" && !userRe.MatchString(user) {
		return fmt.Errorf("user %q: use UID[:GID] (or a NAME[:GROUP] the step images know)", user)
	}
	return nil
}

// stepOwner parses a numeric user, uid or uid:gid; gid is -1 (unchanged)
// when not given. ok is false for names, which only the image can resolve.
func stepOwner(user string) (uid, gid int, ok bool) {
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil || uid < 0 {
		return 0, 0, false
	}
	gid = -1
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil || gid < 0 {
			return 0, 0, false
		}
	}
	return uid, gid, true
}

// mounts binds the step's directories into its container.
func (d stepDir) mounts() []mount.Mount {
	return []mount.Mount{
		{Type: mount.TypeBind, Source: d.workspace, Target: workspacePath},
		{Type: mount.TypeBind, Source: d.meta, Target: path.Dir(outputPath)},
	}
}

// removeStepDir deletes a step directory, even when ctx is cancelled. Files
// a step created belong to its user; an agent that is not root may not
// delete them, so then a container of the step's image, running as root
// with DAC_OVERRIDE and FOWNER only, deletes them for it.
func (e *Executor) removeStepDir(ctx context.Context, dir, stepID, image string) {
	err := os.RemoveAll(dir)
	if err == nil {
		return
	}
	if !errors.Is(err, fs.ErrPermission) || image == "" {
		e.opts.Logger.Warn("remove step directory", slog.String("dir", dir), slog.Any("err", err))
		return
	}
	if cerr := e.removeInContainer(ctx, dir, stepID, image); cerr != nil {
		e.opts.Logger.Warn("remove step directory", slog.String("dir", dir), slog.Any("err", err),
			slog.Any("in_container", cerr))
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		e.opts.Logger.Warn("remove step directory", slog.String("dir", dir), slog.Any("err", err))
	}
}

// removeInContainer empties dir with rm -rf in a container of image,
// labelled like the step's so that Reap spares it while the step is held.
func (e *Executor) removeInContainer(ctx context.Context, dir, stepID, image string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	const target = "/baton-step-dir"
	created, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image: image, User: "0:0", Entrypoint: []string{"rm"}, Cmd: []string{"-rf", target + "/workspace", target + "/baton"},
			Labels: map[string]string{LabelAgent: e.opts.AgentID, LabelStep: stepID},
		},
		HostConfig: &container.HostConfig{
			NetworkMode: NetworkNone,
			CapDrop:     []string{"ALL"},
			CapAdd:      []string{"CAP_DAC_OVERRIDE", "CAP_FOWNER"},
			SecurityOpt: []string{"no-new-privileges:true"},
			Mounts:      []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: target}},
		},
	})
	if err != nil {
		return fmt.Errorf("create cleanup container: %w", err)
	}
	defer e.remove(ctx, created.ID)
	wait := e.cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := e.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start cleanup container: %w", err)
	}
	select {
	case res := <-wait.Result:
		if res.StatusCode != 0 {
			return fmt.Errorf("rm -rf in %s exited with %d", image, res.StatusCode)
		}
		return nil
	case err := <-wait.Error:
		return fmt.Errorf("wait for cleanup container: %w", err)
	}
}

// reapStepDirs removes step directories of this agent last changed before
// before (zero: any time) whose step keep does not claim and no step of
// this executor is using.
func (e *Executor) reapStepDirs(ctx context.Context, before time.Time, keep func(stepID string) bool) (int, error) {
	entries, err := os.ReadDir(e.workDir)
	if err != nil {
		return 0, fmt.Errorf("read work dir: %w", err)
	}
	removed := 0
	for _, ent := range entries {
		i := strings.LastIndexByte(ent.Name(), '-')
		if !ent.IsDir() || i < 0 {
			continue
		}
		stepID := ent.Name()[:i]
		if keep != nil && keep(stepID) || e.stepDirLive(ent.Name()) {
			continue
		}
		if info, err := ent.Info(); err != nil || (!before.IsZero() && !info.ModTime().Before(before)) {
			continue
		}
		e.removeStepDir(ctx, filepath.Join(e.workDir, ent.Name()), stepID, e.opts.DefaultImage)
		e.opts.Logger.Info("removed orphaned step directory", slog.String("dir", ent.Name()), slog.String("step_id", stepID))
		removed++
	}
	return removed, nil
}

// stepDirLive tells whether a step of this executor uses the directory.
func (e *Executor) stepDirLive(name string) bool {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	return e.liveDirs[name]
}

func (e *Executor) setStepDirLive(name string, live bool) {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	if live {
		e.liveDirs[name] = true
	} else {
		delete(e.liveDirs, name)
	}
}
