// Package docker runs steps in local Docker containers through the Docker
// Engine SDK (github.com/moby/moby/client, the maintained home of the SDK that
// github.com/docker/docker froze at v28). The API version is negotiated with
// the daemon. Containers are created only from Engine API structs.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/baton-ci/baton/agent"
)

// Labels put on every container the agent creates, so orphans can be found.
const (
	LabelAgent   = "dev.baton.agent"
	LabelRun     = "dev.baton.run"
	LabelStep    = "dev.baton.step"
	LabelAttempt = "dev.baton.attempt"
)

// Options are the executor's defaults and limits.
type Options struct {
	AgentID      string
	DefaultImage string
	// Network is the container network mode: NetworkNone (the default),
	// NetworkBridge, NetworkRun, or NetworkHost if AllowHostNetwork.
	Network          string
	AllowHostNetwork bool
	// ReadOnlyRoot makes the container's root file system read-only; /tmp
	// is then a tmpfs of TmpSize. /workspace and $BATON_OUTPUT stay writable.
	ReadOnlyRoot bool
	// User runs steps as this user (UID[:GID], or a name the images know)
	// instead of the image's.
	User string
	// CapAdd gives steps these capabilities back (all others are dropped);
	// see AllowedCapabilities.
	CapAdd []string
	// WorkDir holds the step directories (see stepDir); empty:
	// DefaultWorkDir().
	WorkDir   string
	Memory    int64 // bytes; swap is disabled
	NanoCPUs  int64
	PidsLimit int64
	// StopGrace is how long a cancelled step gets between SIGTERM and SIGKILL.
	StopGrace time.Duration
	// Pull is the image pull policy: PullIfNotPresent (default), PullAlways
	// or PullNever.
	Pull   string
	Logger *slog.Logger
}

// Image pull policies.
const (
	PullIfNotPresent = "if-not-present"
	PullAlways       = "always"
	PullNever        = "never"
)

// TmpSize bounds the /tmp tmpfs of a read-only root file system. Its pages
// count against the container's memory limit.
const TmpSize = 256 << 20

// Executor runs steps as containers.
type Executor struct {
	cli     *client.Client
	opts    Options
	workDir string // <opts.WorkDir>/<agent id>; "" without an agent id
	nets    runNetworks

	liveMu   sync.Mutex
	liveDirs map[string]bool // step directories in use, by name
}

var _ agent.Executor = (*Executor)(nil)

// New checks the options, connects to the Docker daemon named by the
// environment (DOCKER_HOST, or the local socket) and checks that it answers.
// With an agent id, it creates the agent's directory in the work dir.
func New(ctx context.Context, opts Options) (*Executor, error) {
	if opts.Network == "" {
		opts.Network = NetworkNone
	}
	if err := CheckNetwork(opts.Network, opts.AllowHostNetwork); err != nil {
		return nil, err
	}
	caps, err := NormalizeCapabilities(opts.CapAdd)
	if err != nil {
		return nil, err
	}
	opts.CapAdd = caps
	if err := CheckUser(opts.User); err != nil {
		return nil, err
	}
	if opts.WorkDir == "" {
		opts.WorkDir = DefaultWorkDir()
	}
	if opts.WorkDir, err = filepath.Abs(opts.WorkDir); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	e := &Executor{opts: opts, nets: runNetworks{runs: map[string]*runNetwork{}}, liveDirs: map[string]bool{}}
	if opts.AgentID != "" {
		if opts.AgentID == "." || opts.AgentID == ".." || strings.ContainsAny(opts.AgentID, `/\`) {
			return nil, fmt.Errorf("agent id %q cannot name a directory", opts.AgentID)
		}
		if e.workDir, err = prepareWorkDir(opts.WorkDir, opts.AgentID); err != nil {
			return nil, err
		}
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pingCtx, client.PingOptions{}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker daemon not reachable: %w", err)
	}
	switch opts.Pull {
	case "":
		opts.Pull = PullIfNotPresent
	case PullIfNotPresent, PullAlways, PullNever:
	default:
		cli.Close()
		return nil, fmt.Errorf("pull policy %q: use %s, %s or %s", opts.Pull, PullIfNotPresent, PullAlways, PullNever)
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e.cli, e.opts = cli, opts
	return e, nil
}

// Client returns the underlying Docker client.
func (e *Executor) Client() *client.Client { return e.cli }

// Close releases the Docker client and removes the agent's directory in the
// work dir if no step directory is left in it.
func (e *Executor) Close() error {
	if e.workDir != "" {
		os.Remove(e.workDir) // fails, as it should, when not empty
	}
	return e.cli.Close()
}

// Execute runs the step's command with sh -c in a fresh container, streams
// its stdout and stderr to out, and removes the container afterwards.
func (e *Executor) Execute(ctx context.Context, spec agent.StepSpec, out io.Writer) (agent.Outcome, error) {
	var oom bool
	var id string
	code, outputs, err := e.execute(ctx, spec, out, &oom, &id)
	return agent.Outcome{ExitCode: code, Outputs: outputs, OOMKilled: oom, Container: id}, err
}

func (e *Executor) execute(ctx context.Context, spec agent.StepSpec, out io.Writer, oom *bool, containerID *string) (int, []byte, error) {
	image := spec.Image
	if image == "" {
		image = e.opts.DefaultImage
	}
	if image == "" {
		return -1, nil, errors.New("the step names no image and the agent has no default image")
	}
	if e.workDir == "" {
		return -1, nil, errors.New("the executor has no agent id, so no work dir for steps")
	}
	dirName, err := stepDirName(spec)
	if err != nil {
		return -1, nil, err
	}
	if err := e.ensureImage(ctx, image); err != nil {
		return -1, nil, err
	}
	// Deferred calls run last first: the container goes, then the run's
	// network, then the step directory.
	e.setStepDirLive(dirName, true)
	defer e.setStepDirLive(dirName, false)
	dir, err := e.createStepDir(ctx, spec, image)
	if err != nil {
		return -1, nil, err
	}
	defer e.removeStepDir(ctx, dir.root, spec.StepID, image)
	var netConfig *network.NetworkingConfig
	netMode := e.opts.Network
	if netMode == NetworkRun {
		netID, err := e.acquireNetwork(ctx, spec.RunID)
		if err != nil {
			return -1, nil, cancelledOr(ctx, err)
		}
		defer e.releaseNetwork(ctx, spec.RunID)
		netMode = netID
		endpoint := &network.EndpointSettings{}
		if spec.StepName != "" {
			endpoint.Aliases = []string{spec.StepName} // the other steps of the run reach it by name
		}
		netConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netID: endpoint}}
	}
	if err := e.giveSourceToStep(spec.SourceDir); err != nil {
		return -1, nil, fmt.Errorf("give the source to the step's user: %w", err)
	}
	cfg, hostConfig := e.config(spec, image), e.hostConfig(netMode, dir)
	hostConfig.Mounts = append(hostConfig.Mounts, sourceMounts(spec)...)
	e.applyResources(hostConfig, spec, out)
	if err := e.addCacher(ctx, spec, image, cfg, hostConfig); err != nil {
		return -1, nil, cancelledOr(ctx, err)
	}
	// Create on a context the step's cancellation does not interrupt: a
	// cancelled create may still be carried out by the daemon, leaving a
	// container whose id we never learnt.
	createCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	created, err := e.cli.ContainerCreate(createCtx, client.ContainerCreateOptions{
		Name:             containerName(spec),
		Config:           cfg,
		HostConfig:       hostConfig,
		NetworkingConfig: netConfig,
	})
	cancel()
	if err != nil {
		return -1, nil, fmt.Errorf("create container from %s: %w", image, err)
	}
	id := created.ID
	*containerID = id
	defer e.remove(ctx, id)
	if ctx.Err() != nil {
		return -1, nil, fmt.Errorf("step cancelled: %w", context.Cause(ctx))
	}

	// Attach before starting: the attach stream carries all the output,
	// with backpressure, and ends after the last byte. (Following the log
	// API instead loses output when the container exits mid-stream: 13 of
	// 51 MB arrived in a test.)
	// The stream outlives a cancel: what the step prints while it stops
	// (its SIGTERM handler) is part of its log. It ends with the container.
	att, err := e.cli.ContainerAttach(context.WithoutCancel(ctx), id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return -1, nil, cancelledOr(ctx, fmt.Errorf("attach to container output: %w", err))
	}
	copied := make(chan error, 1)
	go func() {
		defer att.Close()
		_, err := stdcopy.StdCopy(out, out, att.Reader)
		copied <- err
	}()
	wait := e.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	// Start on a context the step's cancellation does not interrupt: the
	// container may be running before the daemon answers, and a start
	// abandoned then left it to be removed by force, so a step cancelled
	// just after it began never got its SIGTERM (nor printed what its
	// handler prints). A cancel now reaches wait, which stops it gently.
	startCtx, cancelStart := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	_, err = e.cli.ContainerStart(startCtx, id, client.ContainerStartOptions{})
	cancelStart()
	if err != nil {
		return -1, nil, cancelledOr(ctx, fmt.Errorf("start container: %w", err))
	}

	code, err := e.wait(ctx, id, wait)
	// The container has exited or was stopped, so its output stream ends
	// once the last byte is read (the reader may lag behind a fast writer);
	// waiting for it means nothing reaches out after Execute returns. The
	// bound covers a daemon that keeps the stream open.
	select {
	case <-copied:
	case <-time.After(2 * time.Minute):
		e.opts.Logger.Warn("container output did not end after exit", slog.String("container", id))
		att.Close()
	}
	if err != nil {
		return -1, nil, err
	}
	if code != 0 {
		if info, err := e.cli.ContainerInspect(context.WithoutCancel(ctx), id, client.ContainerInspectOptions{}); err == nil && info.Container.State != nil {
			*oom = info.Container.State.OOMKilled
		}
	}
	return code, e.readOutputs(ctx, id), nil
}

// cancelledOr reports a step cancelled while a Docker call was under way as
// cancelled (with its cause), not as the call's failure.
func cancelledOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("step cancelled: %w", context.Cause(ctx))
	}
	return err
}

// command is the container's command: the exec form as is, else sh -c.
func command(spec agent.StepSpec) []string {
	if len(spec.Args) > 0 {
		return spec.Args
	}
	return []string{"sh", "-c", spec.Command}
}

// containerName is unique per step attempt on this host.
func containerName(spec agent.StepSpec) string {
	return fmt.Sprintf("baton-%s-%d", spec.StepID, spec.Attempt)
}

// wait returns the container's exit code, or stops it when ctx is cancelled.
func (e *Executor) wait(ctx context.Context, id string, wait client.ContainerWaitResult) (int, error) {
	select {
	case res := <-wait.Result:
		if res.Error != nil {
			return -1, fmt.Errorf("wait for container: %s", res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-wait.Error:
		if ctx.Err() == nil {
			return -1, fmt.Errorf("wait for container: %w", err)
		}
		e.stop(ctx, id)
		return -1, fmt.Errorf("step cancelled: %w", context.Cause(ctx))
	}
}

func (e *Executor) config(spec agent.StepSpec, image string) *container.Config {
	env := make([]string, 0, len(spec.Env)+len(spec.SecretEnv)+8)
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	if spec.Cacher == nil {
		// No cacher to hand them over: secrets can only be environment.
		for k, v := range spec.SecretEnv {
			env = append(env, k+"="+v)
		}
	}
	sort.Strings(env)
	env = append(env,
		"CI=true", "BATON=true",
		"BATON_RUN_ID="+spec.RunID, "BATON_STEP_NAME="+spec.StepName, "BATON_OUTPUT="+outputPath,
		"BATON_WORKSPACE="+workspacePath, fmt.Sprintf("BATON_STEP_ATTEMPT=%d", spec.Attempt))
	workDir := workspacePath
	if spec.SourceDir != "" {
		workDir = agent.SourceMount // a step with a source starts in it
		env = append(env, "BATON_SOURCE_DIR="+agent.SourceMount)
	}
	if spec.CIDir != "" {
		env = append(env, "BATON_CI_DIR="+agent.CIMount)
	}
	if spec.ArtifactsDir != "" {
		env = append(env, "BATON_ARTIFACTS_DIR="+agent.ArtifactsMount)
	}
	return &container.Config{
		Image:      image,
		Cmd:        command(spec),
		Env:        env,
		User:       e.opts.User,
		WorkingDir: workDir,
		Labels: map[string]string{
			LabelAgent: e.opts.AgentID, LabelRun: spec.RunID, LabelStep: spec.StepID,
			LabelAttempt: fmt.Sprint(spec.Attempt),
		},
	}
}

// hostConfig is least privilege by default: no capabilities but the
// allowed ones the operator adds, no privilege escalation, bounded
// processes, memory without swap, and CPU; optionally a read-only root
// file system with a size-limited /tmp. The step directory is mounted.
func (e *Executor) hostConfig(netMode string, dir stepDir) *container.HostConfig {
	init := true // a real PID 1 forwards SIGTERM and reaps zombies
	hc := &container.HostConfig{
		Init:           &init,
		NetworkMode:    container.NetworkMode(netMode),
		CapDrop:        []string{"ALL"},
		CapAdd:         e.opts.CapAdd,
		SecurityOpt:    []string{"no-new-privileges:true"},
		ReadonlyRootfs: e.opts.ReadOnlyRoot,
		Mounts:         dir.mounts(),
	}
	if e.opts.ReadOnlyRoot {
		hc.Tmpfs = map[string]string{"/tmp": fmt.Sprintf("rw,nosuid,nodev,size=%d,mode=1777", TmpSize)}
	}
	hc.Memory = e.opts.Memory
	if e.opts.Memory > 0 {
		hc.MemorySwap = e.opts.Memory
	}
	hc.NanoCPUs = e.opts.NanoCPUs
	if e.opts.PidsLimit > 0 {
		limit := e.opts.PidsLimit
		hc.PidsLimit = &limit
	}
	return hc
}

// ensureImage makes the image available as the pull policy says.
func (e *Executor) ensureImage(ctx context.Context, image string) error {
	if e.opts.Pull != PullAlways {
		_, err := e.cli.ImageInspect(ctx, image)
		switch {
		case err == nil:
			return nil
		case !cerrdefs.IsNotFound(err):
			return fmt.Errorf("inspect image %s: %w", image, err)
		case e.opts.Pull == PullNever:
			return fmt.Errorf("image %s is not present on this agent, and its pull policy is never", image)
		}
	}
	pull, err := e.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err == nil {
		err = pull.Wait(ctx)
		pull.Close()
	}
	if err != nil {
		return fmt.Errorf("image %s could not be pulled (pull policy %s): %w", image, e.opts.Pull, err)
	}
	return nil
}

func (e *Executor) stop(ctx context.Context, id string) {
	grace := int(e.opts.StopGrace / time.Second)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.StopGrace+10*time.Second)
	defer cancel()
	if _, err := e.cli.ContainerStop(stopCtx, id, client.ContainerStopOptions{Timeout: &grace}); err != nil && !cerrdefs.IsNotFound(err) {
		e.opts.Logger.Warn("stop container", slog.String("container", id), slog.Any("err", err))
	}
}

// remove deletes the container even when the step's context is cancelled.
func (e *Executor) remove(ctx context.Context, id string) {
	rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := e.cli.ContainerRemove(rmCtx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		e.opts.Logger.Warn("remove container", slog.String("container", id), slog.Any("err", err))
	}
}
