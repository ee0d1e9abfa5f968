package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

// createRegistrationToken makes a new random token; only its hash is kept
// and the token itself is in this answer only. The body is optional:
// {"description", "expires_in", "max_uses"}.
func (s *Server) createRegistrationToken(w http.ResponseWriter, r *http.Request) {
	var req protocol.CreateRegistrationTokenRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, 4<<10, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	t := &server.RegistrationToken{Description: req.Description, MaxUses: req.MaxUses}
	switch {
	case req.MaxUses < 0:
		s.writeError(w, r, server.Errorf(server.EINVALID, "max_uses must not be negative"))
		return
	case len(req.Description) > 200:
		s.writeError(w, r, server.Errorf(server.EINVALID, "description is longer than 200 characters"))
		return
	case req.ExpiresIn != "":
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			s.writeError(w, r, server.Errorf(server.EINVALID, "expires_in %q: use a positive duration such as 24h", req.ExpiresIn))
			return
		}
		exp := s.now().Add(d).UTC()
		t.ExpiresAt = &exp
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	token := "brt_" + base64.RawURLEncoding.EncodeToString(secret)
	hash := sha256.Sum256([]byte(token))
	t.Hash = hash[:]
	if err := s.Agents.CreateRegistrationToken(r.Context(), t); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "registration token created", slog.String("token_id", t.ID))
	v := tokenView(t)
	v.Token = token
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listRegistrationTokens(w http.ResponseWriter, r *http.Request) {
	tokens, err := s.Agents.ListRegistrationTokens(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]protocol.RegistrationToken, len(tokens))
	for i, t := range tokens {
		out[i] = tokenView(t)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revokeRegistrationToken(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := s.Agents.RevokeRegistrationToken(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "registration token revoked", slog.String("token_id", id))
	w.WriteHeader(http.StatusNoContent)
}

func tokenView(t *server.RegistrationToken) protocol.RegistrationToken {
	return protocol.RegistrationToken{ID: t.ID, Description: t.Description, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		MaxUses: t.MaxUses, Uses: t.Uses, Revoked: t.RevokedAt != nil}
}
