package http_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	claimhttp "github.com/claimsvc/claimsvc/internal/http"
)

func limits(l claimhttp.Limits) option {
	return func(d *claimhttp.Deps) { d.Limits = l }
}

// wantLimited checks a 429: its Retry-After is 1..maxSecs seconds and agrees
// with X-Ratelimit-Reset: Reset = the answer's Date + Retry-After.
func wantLimited(t *testing.T, r response, maxSecs int64) {
	t.Helper()
	if r.status != 429 || r.body["type"] != "urn:claimsvc:problem:rate-limited" {
		t.Fatalf("want 429, got %d %v %s", r.status, r.header, r.raw)
	}
	retry, err1 := strconv.ParseInt(r.header.Get("Retry-After"), 10, 64)
	reset, err2 := strconv.ParseInt(r.header.Get("X-Ratelimit-Reset"), 10, 64)
	date, err3 := http.ParseTime(r.header.Get("Date"))
	if err1 != nil || err2 != nil || err3 != nil || retry < 1 || retry > maxSecs {
		t.Fatalf("want Retry-After 1..%d and X-Ratelimit-Reset, got %v", maxSecs, r.header)
	}
	if reset-date.Unix() != retry {
		t.Fatalf("Retry-After %d disagrees with X-Ratelimit-Reset %d (Date %d)", retry, reset, date.Unix())
	}
	if !strings.Contains(r.body["detail"].(string), "retry after "+strconv.FormatInt(retry, 10)+" seconds") {
		t.Fatalf("the detail names another wait than Retry-After %d: %s", retry, r.raw)
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
	wantLimited(t, e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "LIMITED_TOKEN_01"}, `{"secretKey":"b"}`), 61)
	wantLimited(t, e.do("GET", "/devices/claims", map[string]string{"X-Device-Token": "LIMITED_TOKEN_01"}, ""), 61)
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
	// Batch items count like single requests, refused ones too: three items
	// for one device with a wrong durationMs, then its own request is over.
	batch := e.do("POST", "/claims:batch", nil, `[{"token":"BATCHED_TOKEN_03","durationMs":0},`+
		`{"token":"BATCHED_TOKEN_03","durationMs":0},{"token":"BATCHED_TOKEN_03","durationMs":0}]`)
	if batch.status != 200 {
		t.Fatalf("batch: %d %s", batch.status, batch.raw)
	}
	wantLimited(t, e.do("POST", "/devices/BATCHED_TOKEN_03/claim", nil, `{}`), 61)
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
	wantLimited(t, e.do("POST", "/devices/IP_LIMIT_TOKEN1/claim", map[string]string{"X-Forwarded-For": "10.9.9.9"}, ``), 2)
	wantLimited(t, e.do("GET", "/claims", nil, ""), 2)
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
	wantLimited(t, get("203.0.113.7"), 61)
	// The proxy's own address is skipped: each client behind it has its own bucket.
	if r := get("198.51.100.1"); r.status != 404 {
		t.Fatalf("another client behind the proxy: %d", r.status)
	}
	// IPv4-mapped IPv6 is the same client.
	wantLimited(t, get("::ffff:203.0.113.7"), 61)
}

// TestRateLimitHeadersOnEveryAnswer: the answers a limit counted carry its
// X-Ratelimit-* headers, 2xx included; on the device routes they describe
// the per-device limit, elsewhere the per-IP one.
func TestRateLimitHeadersOnEveryAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limits(claimhttp.Limits{PerIP: claimhttp.Rate{N: 100, Per: time.Minute}, PerToken: claimhttp.Rate{N: 5, Per: time.Minute}}))
	created := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "HEADER_TOKEN_001"}, `{"secretKey":"a"}`)
	read := e.do("GET", "/devices/claims", map[string]string{"X-Device-Token": "HEADER_TOKEN_001"}, "")
	byID := e.do("GET", created.header.Get("Location"), nil, "")
	for _, c := range []struct {
		name             string
		r                response
		status           int
		limit, remaining string
	}{
		{"created", created, 202, "5", "4"},
		{"read by the device", read, 200, "5", "3"},
		{"read by id", byID, 200, "100", "97"},
	} {
		h := c.r.header
		reset, err := strconv.ParseInt(h.Get("X-Ratelimit-Reset"), 10, 64)
		if c.r.status != c.status || h.Get("X-Ratelimit-Limit") != c.limit || h.Get("X-Ratelimit-Remaining") != c.remaining ||
			err != nil || reset < time.Now().Unix() || reset > time.Now().Add(61*time.Second).Unix() || h.Get("Retry-After") != "" {
			t.Errorf("%s: %d %v", c.name, c.r.status, h)
		}
	}
	if r := e.do("GET", "/livez", nil, ""); r.header.Get("X-Ratelimit-Limit") != "" {
		t.Errorf("probes are not limited, yet say so: %v", r.header)
	}
}

// TestFailedRequestsDoNotCountAgainstTheDevice: an answer 5xx (nothing was
// stored) is given back to the device's limit, on the single route and for
// every item of a batch; requests answered otherwise count.
func TestFailedRequestsDoNotCountAgainstTheDevice(t *testing.T) {
	t.Parallel()
	dead := deadStore(t)
	e := newEnvWithStore(t, dead, limits(claimhttp.Limits{PerToken: claimhttp.Rate{N: 2, Per: time.Hour}}))
	for i := range 4 {
		if r := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "OUTAGE_TOKEN_001"}, ``); r.status != 503 {
			t.Fatalf("request %d during the outage: %d %s", i, r.status, r.raw)
		}
		if r := e.do("POST", "/claims:batch", nil, `[{"token":"OUTAGE_TOKEN_002"}]`); r.status != 503 {
			t.Fatalf("batch %d during the outage: %d %s", i, r.status, r.raw)
		}
	}
	// A 4xx counts: two malformed requests spend the limit.
	for range 2 {
		if r := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "OUTAGE_TOKEN_001"}, `{"secretKey":1}`); r.status != 422 {
			t.Fatalf("malformed: %d", r.status)
		}
	}
	wantLimited(t, e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "OUTAGE_TOKEN_001"}, ``), 3601)
}
