package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log upload tuning: a chunk goes out when this much is buffered or this
// long has passed; writers block (backpressure) past maxBuffered.
const (
	flushSize     = 64 << 10
	flushInterval = 200 * time.Millisecond
	maxBuffered   = 4 << 20
)

// logStream is the io.Writer a step's output goes to. It uploads chunks in
// order from one goroutine, each tagged with its byte offset so a retried
// upload is stored once.
type logStream struct {
	client  ServerClient
	stepID  string
	attempt int
	log     *slog.Logger

	mu      sync.Mutex
	space   *sync.Cond // signalled when the buffer drains
	buf     []byte
	closed  bool
	kick    chan struct{}
	done    chan struct{}
	offset  int64 // bytes uploaded so far
	dropped bool
}

func newLogStream(ctx context.Context, c ServerClient, stepID string, attempt int, log *slog.Logger) *logStream {
	s := &logStream{client: c, stepID: stepID, attempt: attempt, log: log,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	s.space = sync.NewCond(&s.mu)
	go s.upload(ctx)
	return s
}

// Write buffers p for upload; it blocks while too much is waiting.
func (s *logStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	for len(s.buf) >= maxBuffered && !s.closed {
		s.space.Wait()
	}
	s.buf = append(s.buf, p...)
	full := len(s.buf) >= flushSize
	s.mu.Unlock()
	if full {
		s.poke()
	}
	return len(p), nil
}

func (s *logStream) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Close flushes what is buffered and waits for the uploads to finish.
func (s *logStream) Close() error {
	s.mu.Lock()
	s.closed = true
	s.space.Broadcast()
	s.mu.Unlock()
	s.poke()
	<-s.done
	return nil
}

func (s *logStream) upload(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.kick:
		case <-tick.C:
		}
		s.mu.Lock()
		chunk, closed := s.buf, s.closed
		s.buf = nil
		s.space.Broadcast()
		s.mu.Unlock()
		for len(chunk) > 0 {
			n := min(len(chunk), flushSize*4)
			s.send(ctx, chunk[:n])
			chunk = chunk[n:]
		}
		if closed {
			s.mu.Lock()
			empty := len(s.buf) == 0
			s.mu.Unlock()
			if empty {
				return
			}
		}
	}
}

// send uploads one chunk, retrying transient failures a few times. A chunk
// that cannot be delivered is dropped (and said so once) rather than
// stalling the step.
func (s *logStream) send(ctx context.Context, chunk []byte) {
	for attempt := 0; attempt < 5; attempt++ {
		err := s.client.AppendLog(ctx, s.stepID, s.attempt, s.offset, chunk)
		if err == nil {
			s.offset += int64(len(chunk))
			return
		}
		if IsRefused(err) || attempt == 4 {
			if !s.dropped {
				s.log.Warn("log upload failed; output lost", slog.Any("err", err))
				s.dropped = true
			}
			s.offset += int64(len(chunk))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(networkBackoff.Delay(attempt)):
		}
	}
}
