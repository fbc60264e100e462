// Package client speaks claimsvc's public HTTP API (api/openapi.yaml) for
// factory tools: `claimsvc claim`, `import` and `status`. It sends the API key
// on every call, keeps device tokens out of URLs (X-Device-Token), retries
// only what is safe to send again (reads, and writes that carry an
// Idempotency-Key), and never puts a token, a secret or the key into an error.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/claimsvc/claimsvc/internal/wire"
)

// Options configure a Client.
type Options struct {
	APIKey     string       // sent as Authorization: Bearer; "" sends none
	HTTPClient *http.Client // nil: one with a 75 s timeout (a Prefer: wait may hold 30 s)
	UserAgent  string       // nil: "claimsvc-client"
	// Attempts is how often a call that is safe to repeat is tried when the
	// network fails or claimsvc answers 429, 502, 503 or 504 [5].
	Attempts int
	// Backoff is the first pause between attempts, doubled each time up to
	// 10 s, with jitter, or Retry-After when claimsvc names it [500ms].
	Backoff time.Duration
}

// Client calls one claimsvc. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	key      string
	http     *http.Client
	agent    string
	attempts int
	backoff  time.Duration
}

// New returns a client of the claimsvc at baseURL (http:// or https://).
func New(baseURL string, o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("the claimsvc URL must be http:// or https:// and name a host") // not quoted: it may hold credentials
	}
	if u.User != nil {
		return nil, errors.New("the claimsvc URL must not carry credentials: give the API key with --api-key or CLAIMSVC_API_KEY")
	}
	c := &Client{base: u, key: o.APIKey, http: o.HTTPClient, agent: o.UserAgent, attempts: o.Attempts, backoff: o.Backoff}
	if c.http == nil {
		// Redirects are not followed: Go would send X-Device-Token and the
		// body (a claim's secret) on to wherever a proxy or an attacker on an
		// http:// URL points.
		c.http = &http.Client{Timeout: 75 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if c.agent == "" {
		c.agent = "claimsvc-client"
	}
	if c.attempts <= 0 {
		c.attempts = 5
	}
	if c.backoff <= 0 {
		c.backoff = 500 * time.Millisecond
	}
	return c, nil
}

// URL is the claimsvc's base URL.
func (c *Client) URL() string { return c.base.String() }

// ClaimRequest is the body of a claim (docs/design.md §2.1, §9).
type ClaimRequest struct {
	SecretKey  *string `json:"secretKey,omitempty"`
	DurationMs *int64  `json:"durationMs,omitempty"`
	Delivery   string  `json:"delivery,omitempty"`
	DeviceName string  `json:"deviceName,omitempty"`
}

// The bodies claimsvc answers with are the server's own types (internal/wire):
// the claim view (docs/design.md §2.4), a problem, a batch's answer, the
// stats.
type (
	Claim       = wire.Claim
	Problem     = wire.Problem
	FieldError  = wire.FieldError
	BatchResult = wire.BatchResult
	BatchAnswer = wire.BatchAnswer
	Stats       = wire.Stats
)

// Event is one entry of a claim's audit trail.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Attempt *int      `json:"attempt,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Actor   string    `json:"actor,omitempty"`
}

// CreateOptions are the optional parts of a claim request.
type CreateOptions struct {
	IdempotencyKey string        // makes the request safe to send again (and so retried)
	Wait           time.Duration // Prefer: wait (claimsvc holds at most 30 s)
	Force          bool          // ?force=true: override the hold rule
}

// Created is claimsvc's answer to a claim request.
type Created struct {
	Claim    Claim
	Replayed bool // an earlier identical request's claim (nothing new stored)
}

// Create asks claimsvc to claim the device whose access token is token.
func (c *Client) Create(ctx context.Context, token string, req ClaimRequest, o CreateOptions) (Created, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Created{}, err
	}
	q := url.Values{}
	if o.Force {
		q.Set("force", "true")
	}
	h := http.Header{"X-Device-Token": {token}, "Content-Type": {"application/json"}}
	if o.IdempotencyKey != "" {
		h.Set("Idempotency-Key", o.IdempotencyKey)
	}
	if o.Wait > 0 {
		h.Set("Prefer", "wait="+strconv.Itoa(int(min(o.Wait, 30*time.Second).Seconds())))
	}
	var out Created
	hdr, err := c.do(ctx, http.MethodPost, "/devices/claim", q, h, body, o.IdempotencyKey != "", &out.Claim)
	if err != nil {
		return Created{}, err
	}
	out.Replayed = hdr.Get("Idempotent-Replayed") == "true"
	return out, nil
}

// Get reads one claim.
func (c *Client) Get(ctx context.Context, id string) (Claim, error) {
	var out Claim
	_, err := c.do(ctx, http.MethodGet, "/claims/"+url.PathEscape(id), nil, nil, nil, true, &out)
	return out, err
}

// Events reads a claim's audit trail, oldest first.
func (c *Client) Events(ctx context.Context, id string) ([]Event, error) {
	var out struct {
		Events []Event `json:"events"`
	}
	_, err := c.do(ctx, http.MethodGet, "/claims/"+url.PathEscape(id)+"/events", nil, nil, nil, true, &out)
	return out.Events, err
}

// WaitFinal reads the claim until its status is final or ctx ends, pausing
// every between reads; it returns the last claim read.
func (c *Client) WaitFinal(ctx context.Context, cl Claim, every time.Duration) (Claim, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for !cl.Final() {
		select {
		case <-ctx.Done():
			return cl, nil
		case <-t.C:
		}
		cur, err := c.Get(ctx, cl.ID)
		if err != nil {
			if ctx.Err() != nil {
				return cl, nil
			}
			return cl, err
		}
		cl = cur
	}
	return cl, nil
}

// BatchItem is one claim of a batch (docs/design.md §2.2).
type BatchItem struct {
	Token          string  `json:"token"`
	SecretKey      *string `json:"secretKey,omitempty"`
	DurationMs     *int64  `json:"durationMs,omitempty"`
	Delivery       string  `json:"delivery,omitempty"`
	DeviceName     string  `json:"deviceName,omitempty"`
	IdempotencyKey string  `json:"idempotencyKey,omitempty"`
}

// MaxBatch is the most claims one batch may hold.
const MaxBatch = 1000

// Batch stores up to MaxBatch claims in one request. It is sent again after a
// network failure or a 429/502/503/504 only when every item carries an
// idempotencyKey: then a claim stored by an attempt whose answer was lost is
// answered as a replay, never stored twice.
func (c *Client) Batch(ctx context.Context, items []BatchItem) (BatchAnswer, error) {
	body, err := json.Marshal(items)
	if err != nil {
		return BatchAnswer{}, err
	}
	safe := true
	for _, it := range items {
		safe = safe && it.IdempotencyKey != ""
	}
	var out BatchAnswer
	_, err = c.do(ctx, http.MethodPost, "/claims:batch", nil, http.Header{"Content-Type": {"application/json"}}, body, safe, &out)
	if err == nil && len(out.Results) != len(items) {
		return out, fmt.Errorf("claimsvc answered %d results for %d claims", len(out.Results), len(items))
	}
	return out, err
}

// Stats reads the counts by status and the backlog.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	_, err := c.do(ctx, http.MethodGet, "/stats", nil, nil, nil, true, &out)
	return out, err
}

// do sends one call, again while it fails in a way worth retrying and retry
// is safe, and decodes a 2xx body into out; it returns the answer's header. A
// non-2xx answer is a *Problem.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, h http.Header, body []byte, retry bool,
	out any) (http.Header, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	pause := c.backoff
	for attempt := 1; ; attempt++ {
		status, hdr, raw, err := c.once(ctx, method, u.String(), h, body)
		var wait time.Duration
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			err = fmt.Errorf("%s %s: %w", method, path, scrub(err))
		case status >= 200 && status < 300:
			if out != nil {
				if err := json.Unmarshal(raw, out); err != nil {
					return hdr, fmt.Errorf("%s %s: cannot read the answer: %w", method, path, err)
				}
			}
			return hdr, nil
		default:
			err = problemOf(status, hdr, raw)
			switch status {
			case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				if s, perr := strconv.Atoi(hdr.Get("Retry-After")); perr == nil && s >= 0 {
					wait = time.Duration(min(s, 60)) * time.Second
				}
			default:
				return hdr, err
			}
		}
		if !retry || attempt >= c.attempts {
			return hdr, err
		}
		if wait == 0 {
			wait = pause/2 + rand.N(pause/2+1)
			pause = min(2*pause, 10*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// once sends one request and reads its whole answer (at most 16 MiB).
func (c *Client) once(ctx context.Context, method, u string, h http.Header, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", c.agent)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return res.StatusCode, res.Header, raw, nil
}

// problemOf turns a non-2xx answer into a *Problem, also when claimsvc (or a
// proxy in front of it) did not answer with one.
func problemOf(status int, hdr http.Header, raw []byte) error {
	p := &Problem{}
	if json.Unmarshal(raw, p) != nil || p.Status == 0 {
		p = &Problem{Status: status, Title: http.StatusText(status)}
		if s := strings.TrimSpace(string(raw)); s != "" && len(s) < 200 && !strings.ContainsAny(s, "<{") {
			p.Detail = s
		}
	}
	if p.RequestID == "" {
		p.RequestID = hdr.Get("X-Request-Id")
	}
	return p
}

// scrub keeps a transport error's cause without the URL (it holds nothing
// secret today, but a base URL may carry a path someone considers private).
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
