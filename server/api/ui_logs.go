package api

import (
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
)

// Step logs in the UI: ANSI SGR colours become segments with class names
// that the page's script puts into spans as text (never as HTML); every
// other escape sequence (cursor moves, OSC 8 hyperlinks, titles) is
// dropped, invalid UTF-8 is replaced, and only a tail of a long log is sent.

// logSegment is a run of text with one style: [class, text].
type logSegment [2]string

type sgrState struct {
	fg, bg                     int // 0: default; 30-37, 90-97 / 40-47, 100-107
	bold, dim, italic, underln bool
}

func (st sgrState) class() string {
	var c []string
	if st.fg != 0 {
		c = append(c, "a-f"+strconv.Itoa(st.fg))
	}
	if st.bg != 0 {
		c = append(c, "a-b"+strconv.Itoa(st.bg))
	}
	if st.bold {
		c = append(c, "a-bold")
	}
	if st.dim {
		c = append(c, "a-dim")
	}
	if st.italic {
		c = append(c, "a-it")
	}
	if st.underln {
		c = append(c, "a-ul")
	}
	return strings.Join(c, " ")
}

func (st *sgrState) apply(params string) {
	if params == "" {
		*st = sgrState{}
		return
	}
	parts := strings.Split(params, ";")
	for i := 0; i < len(parts); i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			continue
		}
		switch {
		case n == 0:
			*st = sgrState{}
		case n == 1:
			st.bold = true
		case n == 2:
			st.dim = true
		case n == 3:
			st.italic = true
		case n == 4:
			st.underln = true
		case n == 22:
			st.bold, st.dim = false, false
		case n == 23:
			st.italic = false
		case n == 24:
			st.underln = false
		case n >= 30 && n <= 37 || n >= 90 && n <= 97:
			st.fg = n
		case n == 39:
			st.fg = 0
		case n >= 40 && n <= 47 || n >= 100 && n <= 107:
			st.bg = n
		case n == 49:
			st.bg = 0
		case n == 38 || n == 48: // 256-colour and RGB: not rendered; skip their arguments
			if i+1 < len(parts) && parts[i+1] == "5" {
				i += 2
			} else if i+1 < len(parts) && parts[i+1] == "2" {
				i += 4
			}
		}
	}
}

// ansiSegments renders terminal output as styled text segments.
func ansiSegments(b []byte) []logSegment {
	var out []logSegment
	var st sgrState
	var text strings.Builder
	flush := func() {
		if text.Len() == 0 {
			return
		}
		t := strings.ToValidUTF8(text.String(), "\uFFFD")
		cls := st.class()
		if n := len(out); n > 0 && out[n-1][0] == cls {
			out[n-1][1] += t
		} else {
			out = append(out, logSegment{cls, t})
		}
		text.Reset()
	}
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == 0x1b && i+1 < len(b) && b[i+1] == '[': // CSI
			j := i + 2
			for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) {
				j++
			}
			if j < len(b) && b[j] == 'm' {
				flush()
				st.apply(string(b[i+2 : j]))
			}
			i = j + 1
		case c == 0x1b && i+1 < len(b) && b[i+1] == ']': // OSC, ended by BEL or ST
			j := i + 2
			for j < len(b) && b[j] != 0x07 && !(b[j] == 0x1b && j+1 < len(b) && b[j+1] == '\\') {
				j++
			}
			if j < len(b) && b[j] == 0x1b {
				j++
			}
			i = j + 1
		case c == 0x1b:
			i += 2
		case c == '\n' || c == '\t':
			text.WriteByte(c)
			i++
		case c < 0x20 || c == 0x7f:
			i++ // other control characters: dropped
		default:
			text.WriteByte(c)
			i++
		}
	}
	flush()
	return out
}

const (
	// logTailBytes is how much of a log the page shows at first.
	logTailBytes = 64 << 10
	// logChunkBytes is the most one poll returns.
	logChunkBytes = 256 << 10
)

type logAnswer struct {
	Offset    int          `json:"offset"`
	Segments  []logSegment `json:"segments"`
	Truncated bool         `json:"truncated"`
}

// uiLog returns a step's log from ?offset= on, as segments:
// GET /ui/runs/{id}/steps/{name}/log. The first call (no offset) gets the
// tail; a long log says so (truncated) and the page links the download.
func (s *Server) uiLog(w http.ResponseWriter, r *http.Request) {
	log, err := s.Runs.StepLog(r.Context(), chi.URLParam(r, "id"), chi.URLParam(r, "name"), 0)
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	ans := logAnswer{Offset: len(log)}
	from := 0
	if v := r.URL.Query().Get("offset"); v != "" {
		if from, err = strconv.Atoi(v); err != nil || from < 0 {
			s.uiFail(w, r, http.StatusBadRequest, "offset must be a byte offset")
			return
		}
	}
	if from > len(log) {
		from = len(log) // a new attempt restarted the log
	}
	limit := logChunkBytes
	if from == 0 {
		limit = logTailBytes
	}
	end := len(log)
	if end-from > limit {
		from, ans.Truncated = end-limit, true
		for from < end && !utf8.RuneStart(log[from]) {
			from++
		}
	}
	ans.Segments = ansiSegments(log[from:end])
	if ans.Segments == nil {
		ans.Segments = []logSegment{}
	}
	securityHeaders(w)
	writeJSON(w, http.StatusOK, ans)
}

// uiLogDownload serves a step's whole log as a text file.
func (s *Server) uiLogDownload(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	log, err := s.Runs.StepLog(r.Context(), chi.URLParam(r, "id"), name, 0)
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+safeFileName(name)+`.log"`)
	w.Write(log)
}

func safeFileName(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			return c
		}
		return '_'
	}, s)
}
