package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/runbook"
)

// The web UI's login: users with bcrypt password hashes, server-side
// sessions (only the cookie's SHA-256 is stored), a CSRF token per session
// that every state change must carry, and a login rate limit.

const (
	sessionCookie = "baton_session"
	// loginCookie carries the CSRF token of the login and setup forms,
	// which have no session yet (double-submit).
	loginCookie = "baton_login"
	// SessionTTL is how long a UI session lasts.
	SessionTTL = 12 * time.Hour
	// MinPasswordLength is the shortest password a UI user may have.
	MinPasswordLength = 10
)

// bcryptCost is the work factor of UI password hashes (tests lower it).
var bcryptCost = 12

const sessionKey ctxKey = 100

// HashPassword returns the bcrypt hash of a UI user's password.
func HashPassword(password string) ([]byte, error) {
	if len(password) < MinPasswordLength {
		return nil, server.Errorf(server.EINVALID, "password must be at least %d characters", MinPasswordLength)
	}
	if len(password) > 72 {
		return nil, server.Errorf(server.EINVALID, "password must be at most 72 bytes (bcrypt's limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// ValidUserName reports whether name can be a UI user's name.
func ValidUserName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._@-", c)) {
			return false
		}
	}
	return true
}

// dummyHash is compared against when the user does not exist, so a login
// for an unknown name takes as long as one with a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("baton-no-such-user"), bcryptCost)
	return h
})

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(v string) []byte {
	h := sha256.Sum256([]byte(v))
	return h[:]
}

func sessionFrom(ctx context.Context) *server.Session {
	s, _ := ctx.Value(sessionKey).(*server.Session)
	return s
}

func secureRequest(r *http.Request) bool { return r.TLS != nil }

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
}

// startSession logs the user in: a new session and its cookie.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u *server.User) error {
	value := randomToken()
	sess := &server.Session{Hash: hashToken(value), UserID: u.ID, CSRF: randomToken(), ExpiresAt: s.now().Add(SessionTTL)}
	if err := s.Users.CreateSession(r.Context(), sess); err != nil {
		return err
	}
	s.setCookie(w, r, sessionCookie, value, int(SessionTTL/time.Second))
	s.setCookie(w, r, loginCookie, "", -1)
	return nil
}

// session returns the request's valid session, or nil.
func (s *Server) session(r *http.Request) (*server.Session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	sess, err := s.Users.FindSession(r.Context(), hashToken(c.Value), s.now())
	if server.ErrorCode(err) == server.ENOTFOUND {
		return nil, nil
	}
	return sess, err
}

// requireSession admits logged-in users; others go to the login page
// (pages) or get 401 (everything else).
func (s *Server) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.session(r)
		if err != nil {
			s.uiError(w, r, err)
			return
		}
		if sess == nil {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/ui/") {
				http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.uiError(w, r, server.Errorf(server.EUNAUTHORIZED, "log in first"))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey, sess)))
	})
}

// requireCSRF refuses (403) a state change without the session's CSRF
// token, in the X-CSRF-Token header or the csrf form field.
func (s *Server) requireCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		sess := sessionFrom(r.Context())
		got := r.Header.Get("X-CSRF-Token")
		if got == "" {
			// A form: its fields, a pasted runbook at most, are read here.
			r.Body = http.MaxBytesReader(w, r.Body, 3*runbook.MaxSize)
			got = r.PostFormValue("csrf")
		}
		if sess == nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) != 1 {
			s.uiForbidden(w, r, "CSRF token missing or wrong: reload the page and try again")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireRole lets only admins change anything; viewers read.
func (s *Server) requireRole(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if sess := sessionFrom(r.Context()); sess == nil || sess.User.Role != server.RoleAdmin {
				s.uiForbidden(w, r, "your role is viewer: only admins may change things")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// loginLimiter counts failed logins per client address and per user name
// in a sliding window.
type loginLimiter struct {
	mu       sync.Mutex
	failures map[string][]time.Time
}

const (
	loginWindow      = 15 * time.Minute
	loginMaxFailures = 5
)

// blocked says how long key must wait, or 0.
func (l *loginLimiter) blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	recent := l.prune(key, now)
	if len(recent) < loginMaxFailures {
		return 0
	}
	return recent[0].Add(loginWindow).Sub(now)
}

func (l *loginLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == nil {
		l.failures = map[string][]time.Time{}
	}
	l.failures[key] = append(l.prune(key, now), now)
	if len(l.failures) > 100_000 { // bound memory under a spray of names
		for k := range l.failures {
			delete(l.failures, k)
			break
		}
	}
}

func (l *loginLimiter) prune(key string, now time.Time) []time.Time {
	ts := l.failures[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= loginWindow {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.failures, key)
	} else {
		l.failures[key] = ts
	}
	return ts
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// loginForm is the data of the login and setup pages.
type loginForm struct {
	page
	Next, Name, Error string
	Setup             bool
}

// loginCSRF returns the login form's CSRF token, setting its cookie.
func (s *Server) loginCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) > 20 {
		return c.Value
	}
	v := randomToken()
	s.setCookie(w, r, loginCookie, v, 3600)
	return v
}

func (s *Server) checkLoginCSRF(r *http.Request) bool {
	c, err := r.Cookie(loginCookie)
	got := r.PostFormValue("csrf")
	return err == nil && c.Value != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(got)) == 1
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	n, err := s.Users.CountUsers(r.Context())
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	if n == 0 {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	f := loginForm{page: page{Title: "Log in", CSRF: s.loginCSRF(w, r)}, Next: safeNext(r.URL.Query().Get("next"))}
	s.render(w, r, http.StatusOK, "login", &f)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !s.checkLoginCSRF(r) {
		s.uiForbidden(w, r, "CSRF token missing or wrong: reload the login page and try again")
		return
	}
	name, password := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("password")
	f := loginForm{page: page{Title: "Log in", CSRF: s.loginCSRF(w, r)}, Next: safeNext(r.PostFormValue("next")), Name: name}
	now := s.now()
	ipKey, userKey := "ip:"+clientIP(r), "user:"+strings.ToLower(name)
	wait := max(s.logins.blocked(ipKey, now), s.logins.blocked(userKey, now))
	if wait > 0 {
		f.Error = fmt.Sprintf("Too many failed logins. Try again in %d minutes.", int(wait.Minutes())+1)
		s.render(w, r, http.StatusTooManyRequests, "login", &f)
		return
	}
	u, err := s.Users.FindUserByName(r.Context(), name)
	if err != nil && server.ErrorCode(err) != server.ENOTFOUND {
		s.uiError(w, r, err)
		return
	}
	hash := dummyHash()
	if u != nil {
		hash = u.PasswordHash
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || u == nil {
		s.logins.fail(ipKey, now)
		s.logins.fail(userKey, now)
		s.Logger.WarnContext(r.Context(), "UI login failed", slog.String("user", name), slog.String("ip", clientIP(r)))
		f.Error = "Wrong name or password."
		s.render(w, r, http.StatusUnauthorized, "login", &f)
		return
	}
	if err := s.startSession(w, r, u); err != nil {
		s.uiError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "UI login", slog.String("user", u.Name))
	next := f.Next
	if next == "" {
		next = "/fleet"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.Users.DeleteSession(r.Context(), hashToken(c.Value)); err != nil {
			s.uiError(w, r, err)
			return
		}
	}
	s.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// setupPage creates the first admin, for whoever holds the admin token.
func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) {
	n, err := s.Users.CountUsers(r.Context())
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	if n > 0 {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	f := loginForm{page: page{Title: "Set up Baton", CSRF: s.loginCSRF(w, r)}, Setup: true}
	if r.Method == http.MethodGet {
		s.render(w, r, http.StatusOK, "setup", &f)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !s.checkLoginCSRF(r) {
		s.uiForbidden(w, r, "CSRF token missing or wrong: reload the setup page and try again")
		return
	}
	now, ipKey := s.now(), "setup:"+clientIP(r)
	if wait := s.logins.blocked(ipKey, now); wait > 0 {
		f.Error = fmt.Sprintf("Too many wrong admin tokens. Try again in %d minutes.", int(wait.Minutes())+1)
		s.render(w, r, http.StatusTooManyRequests, "setup", &f)
		return
	}
	f.Name = strings.TrimSpace(r.PostFormValue("name"))
	token, password := strings.TrimSpace(r.PostFormValue("token")), r.PostFormValue("password")
	want, got := sha256.Sum256([]byte(s.AdminToken)), sha256.Sum256([]byte(token))
	status := http.StatusBadRequest
	switch {
	case s.AdminToken == "" || subtle.ConstantTimeCompare(want[:], got[:]) != 1:
		s.logins.fail(ipKey, now)
		f.Error, status = "That is not the admin token (see admin-token in the server's data directory).", http.StatusUnauthorized
	case !ValidUserName(f.Name):
		f.Error = "Name: 1 to 64 letters, digits, dots, dashes, underscores or @."
	case password != r.PostFormValue("password2"):
		f.Error = "The two passwords differ."
	}
	var hash []byte
	if f.Error == "" {
		if hash, err = HashPassword(password); err != nil {
			f.Error = errorMessage(err)
		}
	}
	if f.Error != "" {
		s.render(w, r, status, "setup", &f)
		return
	}
	u := &server.User{Name: f.Name, Role: server.RoleAdmin, PasswordHash: hash}
	if err := s.Users.CreateFirstUser(r.Context(), u); err != nil {
		s.uiError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "first UI admin created", slog.String("user", u.Name))
	if err := s.startSession(w, r, u); err != nil {
		s.uiError(w, r, err)
		return
	}
	http.Redirect(w, r, "/fleet", http.StatusSeeOther)
}

// safeNext keeps a post-login target only if it is a path on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\r\n") {
		return ""
	}
	return next
}
