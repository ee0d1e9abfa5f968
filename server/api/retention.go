package api

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// sweepBatch bounds how many runs one sweep round clears.
const sweepBatch = 100

func (s *Server) artifactRetention() time.Duration {
	if s.ArtifactRetention > 0 {
		return s.ArtifactRetention
	}
	return DefaultArtifactRetention
}

// SweepArtifacts deletes the artifacts of runs that finished more than the
// retention before now: the content first, then the records, so a removal
// that fails is tried again by the next sweep. It returns how many runs it
// cleared.
func (s *Server) SweepArtifacts(ctx context.Context, now time.Time) (int, error) {
	if s.Artifacts == nil || s.ArtifactFiles == nil {
		return 0, nil
	}
	cleared := 0
	for {
		runs, err := s.Artifacts.ExpiredArtifactRuns(ctx, now.Add(-s.artifactRetention()), sweepBatch)
		if err != nil {
			return cleared, err
		}
		for _, id := range runs {
			if err := s.ArtifactFiles.RemoveRun(id); err != nil {
				return cleared, err
			}
			if err := s.Artifacts.DeleteRunArtifacts(ctx, id); err != nil {
				return cleared, err
			}
			cleared++
		}
		if len(runs) < sweepBatch {
			return cleared, nil
		}
	}
}

// KeepArtifacts sweeps expired artifacts (SweepArtifacts) until ctx is
// done: about every tenth of the retention, at least every second and at
// most every hour, jittered.
func (s *Server) KeepArtifacts(ctx context.Context) {
	every := min(max(s.artifactRetention()/10, time.Second), time.Hour)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every/2 + rand.N(every)):
		}
		n, err := s.SweepArtifacts(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.Logger.ErrorContext(ctx, "sweep artifacts", slog.Any("err", err))
		case n > 0:
			s.Logger.InfoContext(ctx, "expired artifacts deleted", slog.Int("runs", n),
				slog.Duration("retention", s.artifactRetention()))
		}
	}
}
