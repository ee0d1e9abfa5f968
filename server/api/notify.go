package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/baton-ci/baton/server"
)

// notifySecretName keeps a project's notification signing secret among
// its secrets (not listed; no user secret can take a BATON name).
const notifySecretName = "BATON_NOTIFY_SECRET"

// Notification delivery: attempts and the backoff between them.
const (
	notifyMaxAttempts = 10
	notifyTimeout     = 10 * time.Second
)

// SendNotifications delivers queued notifications until ctx is done: a
// POST of the event JSON with X-Baton-Signature-256 (sha256=HMAC of the
// body with the project's notify secret) and X-Baton-Delivery, retried with
// exponential backoff (1 s doubling, up to notifyMaxAttempts); a project
// without a notify secret gets none (nothing unsigned is sent).
func (s *Server) SendNotifications(ctx context.Context, client *http.Client) {
	for {
		for ctx.Err() == nil {
			n, err := s.Notifications.ClaimNotification(ctx, notifyTimeout+5*time.Second)
			if err != nil {
				s.Logger.ErrorContext(ctx, "claim notification", slog.Any("err", err))
				break
			}
			if n == nil {
				break
			}
			s.sendNotification(ctx, client, n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500*time.Millisecond + rand.N(500*time.Millisecond)):
		}
	}
}

func (s *Server) sendNotification(ctx context.Context, client *http.Client, n *server.Notification) {
	fail := func(reason string) {
		retry := time.Time{}
		if n.Attempts < notifyMaxAttempts {
			retry = s.now().Add(time.Second << min(n.Attempts-1, 10))
		}
		if err := s.Notifications.NotificationFailed(context.WithoutCancel(ctx), n.ID, reason, retry); err != nil {
			s.Logger.ErrorContext(ctx, "record notification failure", slog.Any("err", err))
		}
		s.Logger.WarnContext(ctx, "notification not delivered", slog.String("project", n.Project), slog.String("id", n.ID),
			slog.Int("attempt", n.Attempts), slog.String("why", reason), slog.Bool("will_retry", !retry.IsZero()))
	}
	sealed, err := s.Secrets.SealedSecrets(ctx, n.Project, []string{notifySecretName})
	if err != nil || sealed[notifySecretName] == nil {
		fail("the project has no notify secret (PUT /api/v1/projects/" + n.Project + "/notify-secret)")
		return
	}
	secret, err := s.Box.Open(n.Project, notifySecretName, sealed[notifySecretName])
	if err != nil {
		fail(err.Error())
		return
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(n.Body)
	reqCtx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, n.URL, bytes.NewReader(n.Body))
	if err != nil {
		fail(err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Baton-Delivery", n.ID)
	req.Header.Set("X-Baton-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := client.Do(req)
	if err != nil {
		fail(err.Error())
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		fail(fmt.Sprintf("the receiver answered %s", resp.Status))
		return
	}
	if err := s.Notifications.NotificationSent(ctx, n.ID); err != nil {
		s.Logger.ErrorContext(ctx, "record notification", slog.Any("err", err))
	}
}
