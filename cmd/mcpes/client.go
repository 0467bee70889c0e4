package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// apiClient talks to a running mcpes over its HTTP API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// apiError is the API's error body: {"error": {"code": "...", "message": "..."}}.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Details json.RawMessage
}

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (%d %s)", msg, e.Status, e.Code)
	}
	return fmt.Sprintf("%s (%d)", msg, e.Status)
}

func (e *env) client() (*apiClient, error) {
	u, err := url.Parse(e.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--url %q: want an http:// or https:// URL", e.url)
	}
	return &apiClient{base: strings.TrimRight(e.url, "/"), token: e.getenv("MCPES_TOKEN"),
		http: &http.Client{}}, nil
}

// do sends one request and returns the response when its status is 2xx; otherwise
// the decoded *apiError. The caller closes the body.
func (c *apiClient) do(ctx context.Context, method, path string, q url.Values, body []byte, accept string) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach mcpes at %s (is 'mcpes serve' running? or use --data DIR): %w", c.base, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ae := &apiError{Status: resp.StatusCode}
	var wrap struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &wrap) == nil && len(wrap.Error) > 0 {
		_ = json.Unmarshal(wrap.Error, ae)
		ae.Details = wrap.Error
	} else {
		ae.Message = strings.TrimSpace(string(raw))
	}
	return nil, ae
}

// getJSON sends a request and decodes a JSON answer into out (when out is not nil).
// It returns the raw body too, for --json output.
func (c *apiClient) call(ctx context.Context, method, path string, q url.Values, body []byte, out any) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	resp, err := c.do(ctx, method, path, q, body, "application/json")
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, resp.StatusCode, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return raw, resp.StatusCode, nil
}

// ownerQuery is the ?owner= of an --owner flag; "app" (or "_") is the app level,
// which the API takes as no owner.
func ownerQuery(owner string) url.Values {
	q := url.Values{}
	if owner != "" && ownerArg(owner) != domain.SharedOwner {
		q.Set("owner", owner)
	}
	return q
}

// isAPIStatus reports whether err is an API error with the given status.
func isAPIStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}
