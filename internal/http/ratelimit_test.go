package http_test

import (
	"strings"
	"testing"
	"time"

	claimhttp "github.com/claimsvc/claimsvc/internal/http"
)

func limits(l claimhttp.Limits) option {
	return func(d *claimhttp.Deps) { d.Limits = l }
}

func wantLimited(t *testing.T, r response, retryAfter string) {
	t.Helper()
	if r.status != 429 || r.body["type"] != "urn:claimsvc:problem:rate-limited" || r.header.Get("Retry-After") != retryAfter {
		t.Fatalf("want 429 with Retry-After %s, got %d %v %s", retryAfter, r.status, r.header, r.raw)
	}
}

func TestRateLimitPerToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limits(claimhttp.Limits{PerToken: claimhttp.Rate{N: 3, Per: time.Minute}}))
	// Path and header forms, creates and reads: one bucket per device.
	for i, r := range []response{
		e.do("POST", "/devices/LIMITED_TOKEN_01/claim", nil, `{"secretKey":"a"}`),
		e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "LIMITED_TOKEN_01"}, `{"secretKey":"a"}`),
		e.do("GET", "/devices/LIMITED_TOKEN_01/claims", nil, ""),
	} {
		if r.status >= 300 {
			t.Fatalf("request %d under the limit: %d %s", i, r.status, r.raw)
		}
	}
	wantLimited(t, e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "LIMITED_TOKEN_01"}, `{"secretKey":"b"}`), "60")
	wantLimited(t, e.do("GET", "/devices/claims", map[string]string{"X-Device-Token": "LIMITED_TOKEN_01"}, ""), "60")
	// Another device is not affected, nor are invalid tokens counted for it.
	if r := e.do("POST", "/devices/OTHER_TOKEN_002/claim", nil, ``); r.status != 202 {
		t.Fatalf("other device: %d %s", r.status, r.raw)
	}
	var n int
	_ = e.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d claims stored, want 2", n)
	}
	if strings.Contains(e.logs.String(), "LIMITED_TOKEN") {
		t.Fatal("the token reached the logs")
	}
}

func TestRateLimitPerIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limits(claimhttp.Limits{PerIP: claimhttp.Rate{N: 4, Per: time.Second}}))
	for i := range 4 {
		// A spoofed X-Forwarded-For does not make a new client: no proxy is trusted.
		h := map[string]string{"X-Forwarded-For": "10.0.0." + string(rune('1'+i))}
		if r := e.do("GET", "/claims/00000000-0000-7000-8000-000000000000", h, ""); r.status != 404 {
			t.Fatalf("request %d under the limit: %d", i, r.status)
		}
	}
	wantLimited(t, e.do("POST", "/devices/IP_LIMIT_TOKEN1/claim", map[string]string{"X-Forwarded-For": "10.9.9.9"}, ``), "1")
	wantLimited(t, e.do("GET", "/claims", nil, ""), "1")
	if r := e.do("GET", "/livez", nil, ""); r.status != 200 {
		t.Fatalf("probes are never limited: %d", r.status)
	}
	time.Sleep(2100 * time.Millisecond) // two windows: the sliding count is back to zero
	if r := e.do("POST", "/devices/IP_LIMIT_TOKEN1/claim", nil, ``); r.status != 202 {
		t.Fatalf("after the window: %d %s", r.status, r.raw)
	}
}

func TestRateLimitBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limits(claimhttp.Limits{PerIP: claimhttp.Rate{N: 2, Per: time.Minute}, TrustedProxies: []string{"127.0.0.1/32", "::1/128"}}))
	get := func(xff string) response {
		return e.do("GET", "/claims/00000000-0000-7000-8000-000000000000", map[string]string{"X-Forwarded-For": xff}, "")
	}
	for range 2 {
		if r := get("203.0.113.7"); r.status != 404 {
			t.Fatalf("under the limit: %d", r.status)
		}
	}
	wantLimited(t, get("203.0.113.7"), "60")
	// The proxy's own address is skipped: each client behind it has its own bucket.
	if r := get("198.51.100.1"); r.status != 404 {
		t.Fatalf("another client behind the proxy: %d", r.status)
	}
	// IPv4-mapped IPv6 is the same client.
	wantLimited(t, get("::ffff:203.0.113.7"), "60")
}
