package http_test

// The defences of docs/security.md, through the real HTTP server, the real
// PostgreSQL store and (where an outcome matters) a real dispatcher and MQTT
// broker that refuses unknown tokens the way ThingsBoard does.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/dispatch"
	"github.com/claimsvc/claimsvc/internal/health"
	claimhttp "github.com/claimsvc/claimsvc/internal/http"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/mqtt/mqtttest"
)

const testAPIKey = "factory-line-key"

var keyHeader = map[string]string{"Authorization": "Bearer " + testAPIKey}

func withKeys() option {
	sum := sha256.Sum256([]byte(testAPIKey))
	return func(d *claimhttp.Deps) { d.Access = claimhttp.Access{KeyHashes: [][]byte{sum[:]}} }
}

// withGuard turns the rejected-token budget on (limit per hour) and trusts
// X-Forwarded-For from 127.0.0.1, so a test can speak as many client IPs.
func withGuard(t *testing.T, limit int) option {
	return func(d *claimhttp.Deps) {
		d.Limits.TrustedProxies = []string{"127.0.0.1/32"}
		d.Guard = claimhttp.NewTokenGuard(claimhttp.Rate{N: limit, Per: time.Hour}, d.Store.(claimhttp.OutcomeReader), d.Metrics, d.Log)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Guard.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
}

func withMetrics(m *metrics.Metrics) option { return func(d *claimhttp.Deps) { d.Metrics = m } }

// deliverTo runs a dispatcher that sends e's claims to an MQTT broker which
// lets in only the tokens allow accepts (CONNACK 5 for the others).
func deliverTo(t *testing.T, e *env, allow func(string) bool) {
	t.Helper()
	b := mqtttest.Start(t, "127.0.0.1:0", allow)
	pub, err := mqtt.New(mqtt.Config{URL: b.URL()})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(e.store, dispatch.Senders{claim.DeliveryMQTT: pub}, dispatch.Config{Workers: 4}, slog.New(slog.DiscardHandler), metrics.New(), e.hub.Done)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func from(ip string, h map[string]string) map[string]string {
	out := map[string]string{"X-Forwarded-For": ip}
	for k, v := range h {
		out[k] = v
	}
	return out
}

func metricValue(t *testing.T, e *env, series string) string {
	t.Helper()
	m := e.do("GET", "/metrics", nil, "")
	for _, line := range strings.Split(string(m.raw), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// Item 1: with keys configured, reads by id, the audit trail and the batch
// need a key (they show the token hint, the audit trail and the broker's
// address in lastError); the device routes stay open to the firmware, but
// show lastError to key holders only; a wrong key is refused wherever it is
// sent.
func TestReadsByIDAndBatchNeedAKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withKeys())
	c := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "KEYED_TOKEN_0001"}, `{"secretKey":"s"}`)
	if c.status != 202 {
		t.Fatalf("the firmware's route without a key: %d %s", c.status, c.raw)
	}
	id := c.body["id"].(string)
	if r := e.do("GET", "/devices/claims", map[string]string{"X-Device-Token": "KEYED_TOKEN_0001"}, ""); r.status != 200 {
		t.Fatalf("a device reading its own claims without a key: %d", r.status)
	}
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/claims/" + id, ""},
		{"GET", "/claims/" + id + "/events", ""},
		{"POST", "/claims:batch", `[{"token":"KEYED_TOKEN_0002"}]`},
		{"POST", "/claims:batch?force=true", `[{"token":"KEYED_TOKEN_0001"}]`},
		{"GET", "/claims", ""},
		{"POST", "/claims/" + id + "/retry", ""},
		{"DELETE", "/claims/" + id, ""},
	} {
		r := e.do(rt.method, rt.path, nil, rt.body)
		if r.status != 401 || r.header.Get("WWW-Authenticate") == "" || strings.Contains(string(r.raw), "KEYE") {
			t.Errorf("%s %s without a key: %d %s", rt.method, rt.path, r.status, r.raw)
		}
		if r := e.do(rt.method, rt.path, map[string]string{"X-API-Key": "wrong"}, rt.body); r.status != 403 {
			t.Errorf("%s %s with a wrong key: %d", rt.method, rt.path, r.status)
		}
	}
	if r := e.do("GET", "/claims/"+id, keyHeader, ""); r.status != 200 {
		t.Fatalf("read by id with the key: %d", r.status)
	}
	// lastError names the broker's address: key holders only.
	if _, err := e.store.Pool().Exec(t.Context(), `UPDATE claims SET last_error = 'broker unreachable: dial tcp 10.9.8.7:1883' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"X-Device-Token": "KEYED_TOKEN_0001"}
	if r := e.do("GET", "/devices/claims", h, ""); r.status != 200 || strings.Contains(string(r.raw), "10.9.8.7") ||
		!strings.Contains(string(r.raw), `"lastError":null`) {
		t.Fatalf("a device's read shows lastError: %s", r.raw)
	}
	h["Authorization"] = "Bearer " + testAPIKey
	if r := e.do("GET", "/devices/claims", h, ""); !strings.Contains(string(r.raw), "10.9.8.7") {
		t.Fatalf("a key holder's read lacks lastError: %s", r.raw)
	}
	if r := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "KEYED_TOKEN_0001"}, `{"secretKey":"s"}`); r.status != 200 ||
		strings.Contains(string(r.raw), "10.9.8.7") {
		t.Fatalf("a replay without a key shows lastError: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", "/claims/"+id+"/events", keyHeader, ""); r.status != 200 {
		t.Fatalf("events with the key: %d", r.status)
	}
	if r := e.do("POST", "/claims:batch", keyHeader, `[{"token":"KEYED_TOKEN_0002"}]`); r.status != 200 {
		t.Fatalf("batch with the key: %d %s", r.status, r.raw)
	}
	if r := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": "KEYED_TOKEN_0003", "X-API-Key": "wrong"}, ""); r.status != 403 {
		t.Fatalf("a wrong key on a device route: %d", r.status)
	}
	var n int
	_ = e.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d claims stored, want 2 (the refused batches stored nothing)", n)
	}
}

// Item 2: the token oracle. Without a key, a caller learns nothing of a
// claim's delivery outcome from its POST (no Prefer: wait), and every
// unknown token it tries or reads costs its IP's budget: after the budget,
// 429. The device with the real token, from its own IP, is never refused,
// and a key holder still gets the outcome at once.
func TestTokenGuessingIsBounded(t *testing.T) {
	t.Parallel()
	const budget = 5
	m := metrics.New()
	e := newEnv(t, withMetrics(m), withKeys(), withGuard(t, budget))
	deliverTo(t, e, func(u string) bool { return strings.HasPrefix(u, "REAL_") })
	attacker, device := "203.0.113.66", "198.51.100.7"

	// The firmware's call: Prefer: wait=5, no key. 2xx means done; the
	// answer does not wait for ThingsBoard and does not say how it went.
	start := time.Now()
	r := e.do("POST", "/devices/claim", from(device, map[string]string{"X-Device-Token": "REAL_DEVICE_TOKEN_01", "Prefer": "wait=5"}), `{"secretKey":"s"}`)
	if r.status != 202 || r.body["status"] != "pending" || r.header.Get("Preference-Applied") != "" || time.Since(start) > 4*time.Second {
		t.Fatalf("firmware claim: %d %s %v", r.status, r.raw, r.header)
	}
	// The device reads its own claims by its own token (firmware rule).
	waitFor(t, func() bool {
		l := e.do("GET", "/devices/claims", from(device, map[string]string{"X-Device-Token": "REAL_DEVICE_TOKEN_01"}), "")
		return l.status == 200 && strings.Contains(string(l.raw), `"status":"delivered"`)
	})

	// The attacker guesses, with Prefer: wait: every answer is 202 pending.
	tried := 0
	for i := 0; i < budget; i++ {
		r := e.do("POST", "/devices/claim", from(attacker, map[string]string{"X-Device-Token": fmt.Sprintf("GUESS_%04d_TOKEN", i), "Prefer": "wait=5"}), ``)
		if r.status == 429 {
			break
		}
		tried++
		if r.status != 202 || r.body["status"] != "pending" || r.header.Get("Preference-Applied") != "" {
			t.Fatalf("guess %d: %d %s", i, r.status, r.raw)
		}
	}
	// Pending guesses count already; once ThingsBoard rejects them they
	// stay counted for the window.
	waitFor(t, func() bool {
		return metricValue(t, e, `claimsvc_rejected_tokens_total{via="outcome"}`) == fmt.Sprint(tried)
	})
	for _, req := range []struct{ method, path string }{{"POST", "/devices/claim"}, {"GET", "/devices/claims"}} {
		// Over the budget: 429, whose Retry-After agrees with X-Ratelimit-Reset.
		wantLimited(t, e.do(req.method, req.path, from(attacker, map[string]string{"X-Device-Token": "GUESS_9999_TOKEN"}), ""), 3600)
	}
	// Reading a guessed token's claims costs the budget too (another IP).
	reader := "203.0.113.99"
	for i := 0; i < budget; i++ {
		r := e.do("GET", "/devices/claims", from(reader, map[string]string{"X-Device-Token": fmt.Sprintf("READ_GUESS_%04d", i)}), "")
		if r.status != 200 {
			t.Fatalf("read guess %d: %d", i, r.status)
		}
	}
	if r := e.do("GET", "/devices/claims", from(reader, map[string]string{"X-Device-Token": "REAL_DEVICE_TOKEN_01"}), ""); r.status != 429 {
		t.Fatalf("reader over the budget: %d", r.status)
	}
	// The device is not affected, however often it asks.
	for range 2 * budget {
		if r := e.do("GET", "/devices/claims", from(device, map[string]string{"X-Device-Token": "REAL_DEVICE_TOKEN_01"}), ""); r.status != 200 {
			t.Fatalf("the device was refused: %d", r.status)
		}
	}
	// A key holder (the factory) gets the outcome, from any IP.
	k := e.do("POST", "/devices/claim", from(attacker, map[string]string{"X-Device-Token": "REAL_DEVICE_TOKEN_02", "Prefer": "wait=5",
		"Authorization": "Bearer " + testAPIKey}), `{"secretKey":"s"}`)
	if k.status != 200 || k.body["status"] != "delivered" || k.header.Get("Preference-Applied") != "wait=5" {
		t.Fatalf("key holder: %d %s", k.status, k.raw)
	}
	if v := metricValue(t, e, `claimsvc_rejected_tokens_total{via="read"}`); v != fmt.Sprint(budget) {
		t.Fatalf("rejected_tokens via read = %s, want %d", v, budget)
	}
	if v := metricValue(t, e, "claimsvc_rejected_token_refusals_total"); v == "" || v == "0" {
		t.Fatalf("refusals not counted: %q", v)
	}
	if !strings.Contains(e.logs.String(), "rejected-token budget") || !strings.Contains(e.logs.String(), attacker) {
		t.Fatalf("no log line names the client that spent its budget:\n%s", e.logs.String())
	}
	// Over the whole test, the attacker made claimsvc try at most the
	// budget's worth of tokens against ThingsBoard.
	var guesses int
	_ = e.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims WHERE token_hint LIKE 'GUES%'`).Scan(&guesses)
	if guesses > budget {
		t.Fatalf("%d guessed tokens were sent to ThingsBoard, budget %d", guesses, budget)
	}
	t.Logf("figures: budget=%d guesses_sent=%d", budget, guesses)
}

// A replay by Idempotency-Key shows the stored claim; for a caller without
// a key, showing a rejected one costs the budget like any other read.
func TestReplayOfARejectedClaimCostsTheBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withKeys(), withGuard(t, 3))
	deliverTo(t, e, func(string) bool { return false })
	h := from("192.0.2.10", map[string]string{"X-Device-Token": "UNKNOWN_TOKEN_0001", "Idempotency-Key": "k1"})
	if r := e.do("POST", "/devices/claim", h, ""); r.status != 202 {
		t.Fatalf("first: %d", r.status)
	}
	waitFor(t, func() bool { return metricValue(t, e, `claimsvc_rejected_tokens_total{via="outcome"}`) == "1" })
	r := e.do("POST", "/devices/claim", h, "")
	if r.status != 200 || r.body["status"] != "rejected" {
		t.Fatalf("replay: %d %s", r.status, r.raw)
	}
	if v := metricValue(t, e, `claimsvc_rejected_tokens_total{via="read"}`); v != "1" {
		t.Fatalf("the replay showing a rejected claim was not counted: %s", v)
	}
}

// Guesses sent at once cannot outrun the budget: each request holds a unit
// of it from the moment it is admitted (a live probe of 50 concurrent
// guesses got 51 through a budget of 20 before this).
func TestConcurrentGuessesCannotOutrunTheBudget(t *testing.T) {
	t.Parallel()
	const budget, clients = 5, 60
	e := newEnv(t, withKeys(), withGuard(t, budget))
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range clients {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", e.srv.URL+"/devices/claim", nil)
			req.Header.Set("X-Device-Token", fmt.Sprintf("CONCURRENT_GUESS_%04d", i))
			req.Header.Set("X-Forwarded-For", "192.0.2.30")
			<-start
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			mu.Lock()
			got[res.StatusCode]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	var stored int
	_ = e.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims`).Scan(&stored)
	t.Logf("figures: %d concurrent guesses, budget %d: %v, %d stored", clients, budget, got, stored)
	if got[202] > budget || stored > budget || got[202]+got[429] != clients {
		t.Fatalf("%d concurrent guesses with a budget of %d: %v, %d stored", clients, budget, got, stored)
	}
}

// Claims created without a key whose outcome is not known yet (ThingsBoard
// away, or fire-and-forget guessing) count against the budget until they
// are resolved: a guesser cannot queue guesses faster than they resolve.
func TestUnresolvedClaimsCountAgainstTheBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withKeys(), withGuard(t, 4)) // no dispatcher: nothing resolves
	for i := range 4 {
		if r := e.do("POST", "/devices/claim", from("192.0.2.20", map[string]string{"X-Device-Token": fmt.Sprintf("QUEUED_GUESS_%04d", i)}), ""); r.status != 202 {
			t.Fatalf("guess %d: %d", i, r.status)
		}
	}
	if r := e.do("POST", "/devices/claim", from("192.0.2.20", map[string]string{"X-Device-Token": "QUEUED_GUESS_9999"}), ""); r.status != 429 {
		t.Fatalf("fifth unresolved guess: %d", r.status)
	}
	if r := e.do("POST", "/devices/claim", from("192.0.2.21", map[string]string{"X-Device-Token": "ANOTHER_DEVICE_01"}), ""); r.status != 202 {
		t.Fatalf("another client: %d", r.status)
	}
	waitFor(t, func() bool { return metricValue(t, e, "claimsvc_unresolved_claims_without_key") == "5" })
}

// Item 3: at most Caps.Waiters requests hold their answer; the others are
// answered at once (202, no Preference-Applied) instead of piling up
// goroutines, connections and database polls.
func TestWaitersAreCapped(t *testing.T) {
	t.Parallel()
	const cap, clients = 10, 60
	e := newEnv(t, func(d *claimhttp.Deps) { d.Caps = claimhttp.Caps{Waiters: cap} }) // no dispatcher: claims stay pending
	var mu sync.Mutex
	waited, atOnce := 0, 0
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", e.srv.URL+fmt.Sprintf("/devices/WAIT_TOKEN_%04d/claim", i), nil)
			req.Header.Set("Prefer", "wait=4")
			t0 := time.Now()
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch {
			// "At once" is well before the wait ends; -race on a loaded
			// machine takes over a second to answer 60 clients.
			case res.StatusCode == 202 && res.Header.Get("Preference-Applied") == "wait=4" && time.Since(t0) >= 3900*time.Millisecond:
				waited++
			case res.StatusCode == 202 && res.Header.Get("Preference-Applied") == "" && time.Since(t0) < 3*time.Second:
				atOnce++
			default:
				t.Errorf("status %d, Preference-Applied %q after %s", res.StatusCode, res.Header.Get("Preference-Applied"), time.Since(t0))
			}
		})
	}
	wg.Wait()
	t.Logf("figures: clients=%d cap=%d waited=%d answered_at_once=%d in %s", clients, cap, waited, atOnce, time.Since(start).Round(time.Millisecond))
	if waited > cap || waited+atOnce != clients || atOnce < clients-cap {
		t.Fatalf("waited %d (cap %d), at once %d of %d", waited, cap, atOnce, clients)
	}
	if v := metricValue(t, e, "claimsvc_http_waits_declined_total"); v != fmt.Sprint(atOnce) {
		t.Fatalf("declined waits = %s, want %d", v, atOnce)
	}
	if v := metricValue(t, e, "claimsvc_http_waiters"); v != "0" {
		t.Fatalf("waiters after the run = %s", v)
	}
}

// Item 3: batch bodies are capped at 512 KiB, at most Caps.Batches run at
// once (the next waits, then 503 without reading its body), and each item
// counts against the per-device limit: ?force=true cannot send 200 claims
// for one device when the single route allows 20.
func TestBatchLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withKeys(), func(d *claimhttp.Deps) {
		d.Caps = claimhttp.Caps{Batches: 1, BatchWait: 500 * time.Millisecond}
		d.Limits.PerToken = claimhttp.Rate{N: 20, Per: time.Minute}
	})
	big := "[" + strings.Repeat(`{"token":"BIG_BODY_TOKEN_1"},`, (claimhttp.MaxBatchBody/28)+1) + `{"token":"BIG_BODY_TOKEN_1"}]`
	if r := e.do("POST", "/claims:batch", keyHeader, big); r.status != 413 {
		t.Fatalf("a %d-byte batch: %d", len(big), r.status)
	}

	items := make([]string, 200)
	for i := range items {
		items[i] = fmt.Sprintf(`{"token":"ONE_DEVICE_TOKEN_1","secretKey":"s%d"}`, i)
	}
	r := e.do("POST", "/claims:batch?force=true", keyHeader, "["+strings.Join(items, ",")+"]")
	res := results(t, r)
	created, limited := 0, 0
	for _, x := range res {
		switch x["httpStatus"] {
		case float64(202):
			created++
		case float64(429):
			limited++
		}
	}
	if created != 20 || limited != 180 || r.body["created"] != float64(20) {
		t.Fatalf("200 forced items for one device: %d created, %d limited: %.300s", created, limited, r.raw)
	}
	// The single route for the same device is over its limit too.
	if s := e.do("POST", "/devices/ONE_DEVICE_TOKEN_1/claim?force=true", keyHeader, ""); s.status != 429 {
		t.Fatalf("single route after the batch: %d", s.status)
	}

	// One batch at a time: hold one open by sending its body slowly.
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `[{"token":"SLOW_BATCH_TOKEN_1"}]`
	fmt.Fprintf(conn, "POST /claims:batch HTTP/1.1\r\nHost: c\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n[",
		testAPIKey, len(body))
	time.Sleep(time.Second) // the handler now holds the only slot, reading
	start := time.Now()
	busy := e.do("POST", "/claims:batch", keyHeader, `[{"token":"SECOND_BATCH_TOK1"}]`)
	if busy.status != 503 || busy.header.Get("Retry-After") != "1" || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("second batch while one runs: %d after %s %s", busy.status, time.Since(start), busy.raw)
	}
	_, _ = io.WriteString(conn, body[1:])
	slow, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	slow.Body.Close()
	if slow.StatusCode != 200 {
		t.Fatalf("the slow batch: %d", slow.StatusCode)
	}
	if r := e.do("POST", "/claims:batch", keyHeader, `[{"token":"THIRD_BATCH_TOKE1"}]`); r.status != 200 {
		t.Fatalf("a batch after the slot was freed: %d", r.status)
	}
	if v := metricValue(t, e, "claimsvc_batches_refused_total"); v != "1" {
		t.Fatalf("batches refused = %s", v)
	}
}

// Item 3: headers are capped (NewHTTPServer: 8 KiB).
func TestHeaderSizeIsCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = claimhttp.NewHTTPServer(e.srv.Config.Handler, nil)
	srv.Start()
	t.Cleanup(srv.Close)
	send := func(n int) int {
		req, _ := http.NewRequest("GET", srv.URL+"/livez", nil)
		req.Header.Set("X-Padding", strings.Repeat("p", n))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := send(4 << 10); s != 200 {
		t.Fatalf("a 4 KiB header: %d", s)
	}
	if s := send(32 << 10); s != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 32 KiB header: %d", s)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// /readyz says which dependency is down to anyone, and why (the detail names
// the broker's address) only to key holders.
func TestReadyzShowsWhyOnlyToKeyHolders(t *testing.T) {
	t.Parallel()
	board := health.New(nil)
	board.Set(health.MQTT, false, "broker unreachable: dial tcp 10.1.2.3:1883: connection refused")
	e := newEnv(t, withKeys(), func(d *claimhttp.Deps) { d.Health = board })
	anon := e.do("GET", "/readyz", nil, "")
	if anon.status != 200 || strings.Contains(string(anon.raw), "10.1.2.3") || !strings.Contains(string(anon.raw), `"up":false`) {
		t.Fatalf("without a key: %d %s", anon.status, anon.raw)
	}
	keyed := e.do("GET", "/readyz", keyHeader, "")
	if keyed.status != 200 || !strings.Contains(string(keyed.raw), "10.1.2.3") {
		t.Fatalf("with a key: %d %s", keyed.status, keyed.raw)
	}
	// A probe with a stale key is still a probe: 200, no detail.
	stale := e.do("GET", "/readyz", map[string]string{"Authorization": "Bearer stale"}, "")
	if stale.status != 200 || strings.Contains(string(stale.raw), "10.1.2.3") {
		t.Fatalf("with a stale key: %d %s", stale.status, stale.raw)
	}
}
