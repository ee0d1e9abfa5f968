package api

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

const (
	tokenIssuer   = "baton-server"
	tokenAudience = "baton-agent-api"
	// AgentTokenTTL is how long an agent access token is valid.
	AgentTokenTTL = 15 * time.Minute
)

type ctxKey int

const (
	agentKey ctxKey = iota
	// sessionsKey: the calling agent opens session envelopes
	// (protocol.HeaderEnvelope).
	sessionsKey
)

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Server) requireAdmin(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(s.AdminToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(bearer(r)))
		if s.AdminToken == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			s.writeError(w, r, server.Errorf(server.EUNAUTHORIZED, "admin token required: send Authorization: Bearer <admin token>"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// issueAgentToken signs an access token for the agent.
func (s *Server) issueAgentToken(agentID string, now time.Time) (string, time.Time, error) {
	exp := now.Add(AgentTokenTTL)
	claims := jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Subject:   agentID,
		Audience:  jwt.ClaimStrings{tokenAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(s.SigningKey)
	return signed, exp, err
}

// verifyAgentToken checks signature, algorithm, issuer, audience and times,
// and returns the agent id.
func (s *Server) verifyAgentToken(token string) (string, error) {
	now := s.now()
	if subject, ok := s.tokens.get(token, now); ok {
		return subject, nil
	}
	pub := s.SigningKey.Public().(ed25519.PublicKey)
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithIssuer(tokenIssuer),
		jwt.WithAudience(tokenAudience), jwt.WithLeeway(tokenLeeway), jwt.WithTimeFunc(s.now))
	if err != nil {
		return "", err
	}
	if claims.Subject == "" {
		return "", jwt.ErrTokenInvalidSubject
	}
	s.tokens.put(token, claims.Subject, claims.ExpiresAt.Add(tokenLeeway), now)
	return claims.Subject, nil
}

// tokenLeeway is the clock skew allowed on an access token's times.
const tokenLeeway = 30 * time.Second

// requireAgent admits requests with a valid access token of an agent that
// still exists and is enabled; JWTs cannot be revoked, so the database is
// asked on every call.
func (s *Server) requireAgent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.verifyAgentToken(bearer(r))
		if err != nil {
			s.writeError(w, r, server.Errorf(server.EUNAUTHORIZED, "agent access token is not valid: %v", err))
			return
		}
		// An agent asks for its state after a hint that it changed,
		// perhaps through another replica: that call reads it afresh.
		find := s.Agents.RecentAgent
		if r.URL.Path == protocol.PathAgentState {
			find = s.Agents.FindAgent
		}
		agent, err := find(r.Context(), id)
		if err != nil && server.ErrorCode(err) != server.ENOTFOUND {
			s.writeError(w, r, err)
			return
		}
		// A deleted agent may still learn that it was deleted and report
		// the steps it cancels; nothing else.
		deletedButAllowed := err == nil && agent.State == server.AgentDeleted &&
			(r.URL.Path == protocol.PathAgentState || strings.HasSuffix(r.URL.Path, "/complete"))
		if err != nil || (!agent.State.Connected() && !deletedButAllowed) {
			s.writeError(w, r, server.Errorf(server.EUNAUTHORIZED, "agent %s is unknown or was deleted", id))
			return
		}
		ctx := context.WithValue(r.Context(), agentKey, agent)
		if r.Header.Get(protocol.HeaderEnvelope) == protocol.EnvelopeSession {
			ctx = context.WithValue(ctx, sessionsKey, true)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func agentFrom(ctx context.Context) *server.Agent {
	a, _ := ctx.Value(agentKey).(*server.Agent)
	return a
}
