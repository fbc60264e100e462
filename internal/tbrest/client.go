package tbrest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxAnswer bounds the body read from any answer.
const maxAnswer = 1 << 20

// Client talks to one ThingsBoard. It is safe for concurrent use; Close releases its idle
// connections.
type Client struct {
	base     string // scheme://host[/prefix], no trailing slash
	http     *http.Client
	tr       *http.Transport
	sem      chan struct{} // one slot per request in flight
	timeout  time.Duration
	retries  int
	log      *slog.Logger
	onReq    func(op, outcome string)
	apiKey   string
	user     string
	password string
	jwt      *session // nil unless Username is set

	// Tests replace these.
	now         func() time.Time
	backoffBase time.Duration
	backoffMax  time.Duration
}

// New checks cfg and returns a Client. It sends nothing: use Check to see whether ThingsBoard
// answers and accepts the credentials.
func New(cfg Config) (*Client, error) {
	base, tc, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// One transport for the REST and the device API: keep-alive connections, as many idle ones as
	// can be in flight, so a steady stream of device claims reuses them.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   cfg.Timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          cfg.MaxConcurrent,
		MaxIdleConnsPerHost:   cfg.MaxConcurrent,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c := &Client{
		base: base,
		http: &http.Client{
			Transport: tr,
			// ThingsBoard's API does not redirect; a redirect would carry X-Authorization along.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		tr:          tr,
		sem:         make(chan struct{}, cfg.MaxConcurrent),
		timeout:     cfg.Timeout,
		retries:     cfg.Retries,
		log:         cfg.Logger,
		onReq:       cfg.OnRequest,
		apiKey:      cfg.APIKey,
		user:        cfg.Username,
		password:    cfg.Password,
		now:         time.Now,
		backoffBase: 200 * time.Millisecond,
		backoffMax:  5 * time.Second,
	}
	if cfg.Username != "" {
		c.jwt = newSession()
	}
	if u, _ := url.Parse(base); u.Scheme == "http" && !loopback(u.Host) && (cfg.APIKey != "" || cfg.Username != "") {
		c.log.Warn("tb rest: credentials will travel unencrypted: ThingsBoard's URL is http://, not https://", "host", u.Host)
	}
	return c, nil
}

// HasCredentials reports whether the Client was given an API key or a user name, and so can make
// REST calls.
func (c *Client) HasCredentials() bool { return c.apiKey != "" || c.jwt != nil }

// Close closes idle connections. Calls may still be made afterwards; they open new ones.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// request is one call: what to send, and how to read the answer.
type request struct {
	op       string
	method   string
	path     string // escaped path and query, appended to the base URL
	body     []byte // nil: no body
	auth     bool   // send the tenant credentials
	device   bool   // the HTTP device API: 401 means an unknown token
	notFound bool   // 404 means the device does not exist (ErrNotFound)
	secrets  []string
}

// answer is a 2xx answer.
type answer struct {
	status int
	body   []byte
}

// do sends r, logging in as needed, and retries it on no answer or a 5xx. On a 401 to a JWT it
// logs in again and resends, once per call.
func (c *Client) do(ctx context.Context, r request) (*answer, error) {
	if r.auth && !c.HasCredentials() {
		return nil, &Error{Op: r.op, Kind: KindUnauthorized, Err: ErrNoCredentials}
	}
	var stale string // a JWT that ThingsBoard refused during this call
	relogged := false
	for attempt := 1; ; attempt++ {
		var (
			authz, used string
			ans         *answer
			e           *Error
			retry       bool
		)
		if r.auth {
			authz, used, e, retry = c.authorization(ctx, stale)
		}
		if e == nil {
			ans, e, retry = c.send(ctx, r, authz)
		}
		if e != nil && e.Status == http.StatusUnauthorized && used != "" && !relogged {
			c.log.Info("tb rest: the JWT was refused; logging in again", "op", r.op)
			relogged, stale = true, used
			attempt-- // not a retry: the same attempt with a new login
			continue
		}
		if e == nil {
			return ans, nil
		}
		if !retry || attempt > c.retries {
			return nil, e
		}
		delay := c.backoff(attempt)
		c.log.Warn("tb rest: request failed; retrying", "op", e.Op, "kind", e.Kind, "status", e.Status,
			"attempt", attempt, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.Canceled) {
				// A shutdown: the caller must see it, or it counts as a failed
				// attempt and may trip the breaker. The last failure's words go
				// with it.
				return nil, &Error{Op: e.Op, Kind: KindCanceled, Status: e.Status, Code: e.Code,
					Err: fmt.Errorf("%w after: %s", ctx.Err(), e.Error())}
			}
			return nil, e // out of time: the last failure says more than "deadline exceeded"
		case <-t.C:
		}
	}
}

// backoff is the wait before retry n (1, 2, …): exponential, capped, with the upper half jittered.
func (c *Client) backoff(n int) time.Duration {
	d := c.backoffBase
	for i := 1; i < n && d < c.backoffMax; i++ {
		d *= 2
	}
	d = min(d, c.backoffMax)
	half := d / 2
	return half + rand.N(half+1)
}

// send makes one HTTP request and classifies its answer. It returns the answer of a 2xx status, or
// an *Error and whether sending again could help. Each request is reported to OnRequest.
func (c *Client) send(ctx context.Context, r request, authz string) (*answer, *Error, bool) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &Error{Op: r.op, Kind: KindCanceled, Err: ctx.Err()}, false
	}
	defer func() { <-c.sem }()

	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(actx, r.method, c.base+r.path, body)
	if err != nil {
		// err would quote the URL, which may hold a device token.
		return nil, invalid(r.op, "cannot build the request"), false
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if !r.device {
		req.Header.Set("Accept", "application/json")
	}
	if authz != "" {
		req.Header.Set("X-Authorization", authz)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	var b []byte
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
		_ = resp.Body.Close()
	}
	if err != nil {
		e, retry := c.transportError(ctx, actx, r, authz, err)
		c.report(r.op, string(e.Kind))
		c.log.Debug("tb rest: no answer", "op", r.op, "kind", e.Kind, "took", time.Since(start), "error", e.Err)
		return nil, e, retry
	}
	e, retry := classify(r, resp.StatusCode, b)
	outcome := OutcomeOK
	if e != nil {
		outcome = string(e.Kind)
	}
	c.report(r.op, outcome)
	c.log.Debug("tb rest: answer", "op", r.op, "status", resp.StatusCode, "took", time.Since(start))
	if e != nil {
		return nil, e, retry
	}
	return &answer{status: resp.StatusCode, body: b}, nil, false
}

func (c *Client) report(op, outcome string) {
	if c.onReq != nil {
		c.onReq(op, outcome)
	}
}

// transportError turns a failed round trip into an *Error that holds neither the URL nor a
// secret. actx is the request's own context, bounded by the Client's timeout.
func (c *Client) transportError(ctx, actx context.Context, r request, authz string, err error) (*Error, bool) {
	if ctx.Err() != nil {
		return &Error{Op: r.op, Kind: KindCanceled, Err: ctx.Err()}, false
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return &Error{Op: r.op, Kind: KindUnreachable, Err: &timeoutError{c.timeout}}, true
	}
	secrets := append([]string{c.apiKey, c.password, strings.TrimPrefix(authz, "Bearer ")}, r.secrets...)
	return &Error{Op: r.op, Kind: KindUnreachable, Err: cleanCause(err, secrets)}, !permanentTransport(err)
}

// classify maps an answer's status to nil (2xx) or an *Error, and says whether to retry.
func classify(r request, status int, body []byte) (*Error, bool) {
	e := &Error{Op: r.op, Status: status}
	if !r.device {
		e.Code = errorCode(body)
	}
	switch {
	case status >= 200 && status <= 299:
		if len(body) > maxAnswer {
			e.Kind, e.Err = KindBadResponse, errors.New("answer larger than 1 MiB")
			return e, false
		}
		return nil, false
	case status == http.StatusUnauthorized && r.device:
		e.Kind = KindUnknownToken
	case status == http.StatusUnauthorized || (status == http.StatusForbidden && !r.device):
		e.Kind = KindUnauthorized
	case status == http.StatusNotFound && r.notFound && thingsBoardNotFound(e.Code, body):
		// ThingsBoard's own "no such item" (docs/thingsboard.md §4.1). A 404
		// without it is a proxy or a wrong URL prefix, not a missing device:
		// a client error, retried, never a claim rejected for good.
		e.Kind, e.Err = KindNotFound, ErrNotFound
	case status >= 400 && status <= 499:
		e.Kind = KindClient
	case status >= 500 && status <= 599:
		e.Kind = KindServer
		return e, true
	case status >= 300 && status <= 399:
		e.Kind, e.Err = KindBadResponse, errors.New("redirect not followed")
	default:
		e.Kind = KindBadResponse
	}
	return e, false
}

// tbItemNotFound is ThingsBoard's errorCode of a missing item (ITEM_NOT_FOUND).
const tbItemNotFound = 32

// thingsBoardNotFound reports whether a 404's body is ThingsBoard's: its
// JSON error with ITEM_NOT_FOUND, or the plain text its telemetry controller
// answers for a missing device ("Device with requested id wasn't found!").
func thingsBoardNotFound(code int, body []byte) bool {
	return code == tbItemNotFound || bytes.Contains(body, []byte("wasn't found"))
}

// errorCode reads errorCode from ThingsBoard's error body {status, message, errorCode, timestamp};
// the message is left out, as it may quote what was sent.
func errorCode(body []byte) int {
	var v struct {
		ErrorCode int `json:"errorCode"`
	}
	if json.Unmarshal(body, &v) != nil {
		return 0
	}
	return v.ErrorCode
}

// decodeJSON decodes a 2xx answer's body into v.
func decodeJSON(op string, ans *answer, v any) error {
	if err := json.Unmarshal(ans.body, v); err != nil {
		return &Error{Op: op, Kind: KindBadResponse, Status: ans.status, Err: errors.New("the answer is not the JSON expected")}
	}
	return nil
}
