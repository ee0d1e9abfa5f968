package api

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/ui"
)

// page is what every UI page's data carries: the layout needs it.
type page struct {
	Title string
	// User is the logged-in user (nil on the login page); CSRF the token
	// forms and fetches send back.
	User   *server.User
	CSRF   string
	Nav    string
	Status int
}

// Admin reports whether the user may change things.
func (p *page) Admin() bool { return p.User != nil && p.User.Role == server.RoleAdmin }

// pager is data that embeds page.
type pager interface{ base() *page }

func (p *page) base() *page { return p }

var (
	templatesOnce sync.Once
	pageTemplates map[string]*template.Template
	templatesErr  error
)

var templateFuncs = template.FuncMap{
	"ago":      func(t time.Time) string { return humanAge(time.Since(t)) },
	"duration": humanDuration,
	"since": func(start, end *time.Time) string {
		if start == nil {
			return ""
		}
		e := time.Now()
		if end != nil {
			e = *end
		}
		return humanDuration(e.Sub(*start))
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":  strings.Join,
	"query": url.QueryEscape,
	"path":  url.PathEscape,
	"add":   func(a, b int) int { return a + b },
}

// loadTemplates parses layout.html with each page template on its own.
func loadTemplates() (map[string]*template.Template, error) {
	templatesOnce.Do(func() {
		fsys := ui.Templates()
		names, err := fs.Glob(fsys, "*.html")
		if err != nil {
			templatesErr = err
			return
		}
		pageTemplates = map[string]*template.Template{}
		for _, n := range names {
			if n == "layout.html" {
				continue
			}
			t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(fsys, "layout.html", n)
			if err != nil {
				templatesErr = fmt.Errorf("template %s: %w", n, err)
				return
			}
			pageTemplates[strings.TrimSuffix(n, ".html")] = t
		}
	})
	return pageTemplates, templatesErr
}

// securityHeaders are set on every UI response.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", ui.CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// render writes a page; data must embed page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data pager) {
	p := data.base()
	if sess := sessionFrom(r.Context()); sess != nil {
		p.User, p.CSRF = sess.User, sess.CSRF
	}
	p.Status = status
	ts, err := loadTemplates()
	if err != nil {
		s.Logger.ErrorContext(r.Context(), "UI templates", slog.Any("err", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	t := ts[name]
	var buf bytes.Buffer
	if t == nil {
		err = fmt.Errorf("no template %q", name)
	} else {
		err = t.ExecuteTemplate(&buf, "layout.html", data)
	}
	if err != nil {
		s.Logger.ErrorContext(r.Context(), "UI render", slog.String("page", name), slog.Any("err", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage is the data of error.html.
type errorPage struct {
	page
	Message string
}

// wantsJSON: the page's script sent the request and reads JSON back.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json") || strings.HasPrefix(r.URL.Path, "/ui/events/")
}

func errorMessage(err error) string {
	var e *server.Error
	if errors.As(err, &e) && e.Code != server.EINTERNAL {
		return e.Message
	}
	return "internal error"
}

// uiError renders err as a page (or JSON for scripts); internal details
// go to the log only.
func (s *Server) uiError(w http.ResponseWriter, r *http.Request, err error) {
	code := server.ErrorCode(err)
	if code == server.EINTERNAL {
		s.Logger.ErrorContext(r.Context(), "UI request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	s.uiFail(w, r, statusOf[code], errorMessage(err))
}

func (s *Server) uiForbidden(w http.ResponseWriter, r *http.Request, msg string) {
	s.uiFail(w, r, http.StatusForbidden, msg)
}

func (s *Server) uiFail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if wantsJSON(r) || s.Users == nil {
		securityHeaders(w)
		writeJSON(w, status, map[string]string{"error": msg})
		return
	}
	s.render(w, r, status, "error", &errorPage{page: page{Title: http.StatusText(status)}, Message: msg})
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func humanAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
