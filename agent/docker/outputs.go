package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log/slog"
	"path"
	"time"

	"github.com/moby/moby/client"

	"github.com/baton-ci/baton/shared/runbook"
)

// outputPath is the file a step writes key=value outputs to ($BATON_OUTPUT).
// It is copied into the container before it starts and read back after it
// exits through the Engine API, so no host directory is mounted.
const outputPath = "/.baton/output"

// prepareOutputs creates an empty, world-writable $BATON_OUTPUT so a step
// running as any user can write it.
func (e *Executor) prepareOutputs(ctx context.Context, id string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := path.Dir(outputPath)[1:] + "/"
	now := time.Now()
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o777, ModTime: now})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: outputPath[1:], Mode: 0o666, ModTime: now})
	if err := tw.Close(); err != nil {
		return err
	}
	copyCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := e.cli.CopyToContainer(copyCtx, id, client.CopyToContainerOptions{DestinationPath: "/", Content: &buf}); err != nil {
		return err
	}
	return nil
}

// readOutputs returns what the step wrote to $BATON_OUTPUT, at most one byte
// past runbook.MaxOutputBytes so the parser can tell it was cut. A failure to
// read is logged: the step's result stands without outputs.
func (e *Executor) readOutputs(ctx context.Context, id string) []byte {
	copyCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	res, err := e.cli.CopyFromContainer(copyCtx, id, client.CopyFromContainerOptions{SourcePath: outputPath})
	if err != nil {
		e.opts.Logger.Warn("read step outputs", slog.String("container", id), slog.Any("err", err))
		return nil
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil
		}
		if h.Typeflag == tar.TypeReg {
			data, _ := io.ReadAll(io.LimitReader(tr, runbook.MaxOutputBytes+1))
			return data
		}
	}
}
