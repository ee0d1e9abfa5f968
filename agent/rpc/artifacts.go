package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/baton-ci/baton/shared/artifact"
	"github.com/baton-ci/baton/shared/protocol"
)

// Artifact calls stream their bodies and have no client timeout: a large
// artifact takes as long as it takes. They end with ctx (the step's).

// PutArtifact streams body as artifact key of the step's run: size bytes,
// or -1 when unknown. sum, if not empty, is the content's SHA-256 in hex,
// which the server checks.
func (c *Client) PutArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string, body io.Reader, size int64, sum string) (protocol.Artifact, error) {
	var out protocol.Artifact
	path, err := artifactPath(stepID, lease, key)
	if err != nil {
		return out, err
	}
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	if sum != "" {
		h.Set(protocol.HeaderSHA256, sum)
	}
	resp, err := c.stream(ctx, http.MethodPut, path, h, body, size)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("decode artifact answer: %w", err)
	}
	return out, nil
}

// GetArtifact opens artifact key of the step's run. The caller reads and
// closes the body; the Artifact carries the size and SHA-256 the server
// sent, to check what arrives against.
func (c *Client) GetArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) (io.ReadCloser, protocol.Artifact, error) {
	path, err := artifactPath(stepID, lease, key)
	if err != nil {
		return nil, protocol.Artifact{}, err
	}
	resp, err := c.stream(ctx, http.MethodGet, path, nil, nil, 0)
	if err != nil {
		return nil, protocol.Artifact{}, err
	}
	return resp.Body, protocol.Artifact{Key: key, Size: resp.ContentLength, SHA256: resp.Header.Get(protocol.HeaderSHA256)}, nil
}

// DeleteArtifact deletes artifact key of the step's run.
func (c *Client) DeleteArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) error {
	path, err := artifactPath(stepID, lease, key)
	if err != nil {
		return err
	}
	resp, err := c.stream(ctx, http.MethodDelete, path, nil, nil, 0)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func artifactPath(stepID string, lease protocol.LeaseRequest, key string) (string, error) {
	if err := artifact.ValidateKey(key); err != nil {
		return "", err
	}
	return fmt.Sprintf(protocol.PathStepArtifact, url.PathEscape(stepID), key) + "?attempt=" + strconv.Itoa(lease.Attempt) +
		"&lease=" + url.QueryEscape(lease.LeaseID), nil
}

// stream calls the agent API with a streamed body (nil: none) and returns
// a successful response for the caller to read and close. A 401 renews
// the access token and tries once more, if nothing of the body was sent
// yet: the body goes out only after the server's 100 Continue, so a
// refusal before the handler reads it leaves it unread.
func (c *Client) stream(ctx context.Context, method, path string, h http.Header, body io.Reader, size int64) (*http.Response, error) {
	for try := 0; ; try++ {
		token, err := c.accessToken(ctx, try > 0)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range h {
			req.Header[k] = v
		}
		req.Header.Set("Authorization", "Bearer "+token)
		counted := &countingReader{r: body}
		if body != nil {
			// NopCloser: the transport closes what it is given, and the
			// caller's reader may be needed for the retry.
			req.Body = io.NopCloser(counted)
			req.ContentLength = size
			if size == 0 {
				req.Body = http.NoBody
			}
			req.Header.Set("Expect", "100-continue")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 300 {
			return resp, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if try == 0 && resp.StatusCode == http.StatusUnauthorized && counted.n == 0 {
			continue
		}
		return nil, errorFrom(resp.StatusCode, b)
	}
}

// countingReader counts what was read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
