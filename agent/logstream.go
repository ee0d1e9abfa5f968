package agent

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
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
	client ServerClient
	stepID string
	lease  protocol.LeaseRequest
	log    *slog.Logger

	mu      sync.Mutex
	space   *sync.Cond // signalled when the buffer drains
	buf     []byte
	closed  bool
	kick    chan struct{}
	done    chan struct{}
	offset  int64 // bytes uploaded so far
	dropped bool
	// keepTail (set with closed) keeps the last chunk in tail instead of
	// uploading it.
	keepTail bool
	tail     []byte
	// wrote counts bytes accepted by Write; times holds when lines started
	// (absolute offsets), one entry per moment (see lineTimeGrain).
	wrote       int64
	atLineStart bool
	times       []absLineTime
}

// absLineTime is a LineTime at an offset from the start of the log.
type absLineTime struct {
	offset int64
	at     int64 // Unix ms
}

// lineTimeGrain is the resolution of line timestamps: a line that starts
// within this long of the last recorded time shares it.
const lineTimeGrain = 10 * time.Millisecond

func newLogStream(ctx context.Context, c ServerClient, stepID string, lease protocol.LeaseRequest, log *slog.Logger) *logStream {
	s := &logStream{client: c, stepID: stepID, lease: lease, log: log,
		kick: make(chan struct{}, 1), done: make(chan struct{}), atLineStart: true}
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
	s.stamp(p)
	s.buf = append(s.buf, p...)
	full := len(s.buf) >= flushSize
	s.mu.Unlock()
	if full {
		s.poke()
	}
	return len(p), nil
}

// stamp records when the first line starting in p started, unless the
// last recorded time is recent enough to stand for it. Called with mu held.
func (s *logStream) stamp(p []byte) {
	first := -1
	if s.atLineStart && len(p) > 0 {
		first = 0
	} else if i := bytes.IndexByte(p, '\n'); i >= 0 && i+1 < len(p) {
		first = i + 1
	}
	if first >= 0 {
		now := time.Now().UnixMilli()
		if n := len(s.times); n == 0 || now-s.times[n-1].at >= lineTimeGrain.Milliseconds() {
			s.times = append(s.times, absLineTime{offset: s.wrote + int64(first), at: now})
		}
	}
	if len(p) > 0 {
		s.atLineStart = p[len(p)-1] == '\n'
	}
	s.wrote += int64(len(p))
}

// timesFor takes the line times that fall in [from, from+n) as LineTimes
// relative to from; the first line of a chunk always gets a time (the
// latest before it), so a reader needs no earlier chunk.
func (s *logStream) timesFor(from int64, n int) []protocol.LineTime {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocol.LineTime
	i := 0
	for i < len(s.times) && s.times[i].offset < from+int64(n) {
		t := s.times[i]
		rel := int(max(t.offset-from, 0))
		if len(out) > 0 && out[len(out)-1].Offset == rel {
			out[len(out)-1].At = t.at
		} else if len(out) < protocol.MaxLineTimes {
			out = append(out, protocol.LineTime{Offset: rel, At: t.at})
		}
		i++
	}
	// Keep the last one taken: it still holds for the lines that follow.
	if i > 0 {
		s.times = s.times[i-1:]
		s.times[0].offset = from + int64(n)
		if s.wrote == from+int64(n) && s.atLineStart {
			s.times = s.times[1:] // nothing follows yet; the next line gets its own time
		}
	}
	return out
}

func (s *logStream) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Close flushes what is buffered and waits for the uploads to finish.
func (s *logStream) Close() error {
	s.close(false)
	return nil
}

// CloseKeepingTail is Close, except that the last chunk (up to flushSize)
// is not uploaded but returned, for the step's result to carry; nil if
// nothing was left.
func (s *logStream) CloseKeepingTail() *protocol.LogChunk {
	s.close(true)
	if len(s.tail) == 0 {
		return nil
	}
	return &protocol.LogChunk{Offset: s.offset, Data: s.tail, Times: protocol.FormatLineTimes(s.timesFor(s.offset, len(s.tail)))}
}

func (s *logStream) close(keepTail bool) {
	s.mu.Lock()
	s.closed, s.keepTail = true, keepTail
	s.space.Broadcast()
	s.mu.Unlock()
	s.poke()
	<-s.done
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
		chunk, closed, keepTail := s.buf, s.closed, s.keepTail
		s.buf = nil
		s.space.Broadcast()
		s.mu.Unlock()
		if closed && keepTail && len(chunk) <= flushSize {
			// Nothing is written after close: this is the last chunk.
			s.tail = chunk
			return
		}
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
	times := s.timesFor(s.offset, len(chunk))
	for attempt := 0; attempt < 5; attempt++ {
		err := s.client.AppendLog(ctx, s.stepID, s.lease, s.offset, chunk, times)
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
