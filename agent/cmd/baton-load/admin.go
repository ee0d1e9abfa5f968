package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
)

// admin calls the server's admin API with the admin token.
type admin struct {
	url, token string
	http       *http.Client
}

func newAdmin(serverURL, token string, conns int) *admin {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = conns // keep-alive for every concurrent caller: no port churn
	return &admin{url: serverURL, token: token, http: &http.Client{Transport: t, Timeout: 2 * time.Minute}}
}

// do sends body as JSON (if not nil) and decodes a 2xx answer into out (if not nil).
func (a *admin) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var pe protocol.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		json.Unmarshal(b, &pe)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, pe.Error)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// registrationToken creates a token with no use limit, for the whole fleet.
func (a *admin) registrationToken(ctx context.Context) (string, error) {
	var t protocol.RegistrationToken
	err := a.do(ctx, http.MethodPost, "/api/v1/registration-tokens",
		protocol.CreateRegistrationTokenRequest{Description: "baton-load"}, &t)
	return t.Token, err
}

func (a *admin) createRun(ctx context.Context, project, runbook string) (protocol.Run, error) {
	var run protocol.Run
	err := a.do(ctx, http.MethodPost, "/api/v1/runs", protocol.CreateRunRequest{Project: project, Runbook: runbook}, &run)
	return run, err
}

func (a *admin) run(ctx context.Context, id string) (protocol.Run, error) {
	var run protocol.Run
	err := a.do(ctx, http.MethodGet, "/api/v1/runs/"+url.PathEscape(id), nil, &run)
	return run, err
}

func (a *admin) agents(ctx context.Context) ([]protocol.Agent, error) {
	var list []protocol.Agent
	err := a.do(ctx, http.MethodGet, "/api/v1/agents", nil, &list)
	return list, err
}

// disable is the admin command POST /api/v1/agents/{id}/disable.
func (a *admin) disable(ctx context.Context, agentID string) error {
	return a.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(agentID)+"/disable", nil, nil)
}

// disableFleet is the fleet command POST /api/v1/fleet/disable for every agent.
func (a *admin) disableFleet(ctx context.Context) (protocol.FleetResult, error) {
	var res protocol.FleetResult
	err := a.do(ctx, http.MethodPost, "/api/v1/fleet/disable", protocol.FleetCommand{All: true}, &res)
	return res, err
}

// configure is the admin command PUT /api/v1/agents/{id}/config.
func (a *admin) configure(ctx context.Context, agentID string, s protocol.AgentSettings) error {
	return a.do(ctx, http.MethodPut, "/api/v1/agents/"+url.PathEscape(agentID)+"/config", s, nil)
}
