package docker

import (
	"archive/tar"
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/moby/moby/client"

	"github.com/baton-ci/baton/shared/runbook"
)

// outputPath is the file a step writes key=value outputs to ($BATON_OUTPUT).
// Its directory is the step directory's baton/, mounted writable (so it
// works with a read-only root file system); the agent creates the empty file
// before the step starts (see giveToStep) and reads it back through the
// Engine API after the step exits, so that the daemon, not the agent,
// resolves whatever the step left at that path.
const outputPath = "/.baton/output"

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
