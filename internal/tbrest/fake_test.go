package tbrest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// These tests run the Client against servers of their own, to check the exact requests
// ThingsBoard expects and what the Client does with failures the emulator does not produce.

const testKey = "tb_test-api-key-Zx81"

// fakeJWT builds an unsigned token with ThingsBoard's iat and exp claims; the Client never
// verifies signatures.
func fakeJWT(iat, exp time.Time, tag string) string {
	enc := base64.RawURLEncoding.EncodeToString
	body, _ := json.Marshal(map[string]any{"sub": "tenant@thingsboard.org", "iat": iat.Unix(), "exp": exp.Unix(), "tag": tag})
	return enc([]byte(`{"alg":"HS512"}`)) + "." + enc(body) + "." + enc([]byte("sig-"+tag))
}

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// TestAPIKeyHeader checks the header of ThingsBoard 4.3+ API keys (docs/thingsboard.md §9): exactly
// "X-Authorization: ApiKey <key>", no login, no Bearer, and the device name as a query parameter.
func TestAPIKeyHeader(t *testing.T) {
	t.Parallel()
	var logins, calls atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/auth/login") {
			logins.Add(1)
		}
		calls.Add(1)
		if got := r.Header.Values("X-Authorization"); len(got) != 1 || got[0] != "ApiKey "+testKey {
			t.Errorf("X-Authorization = %q", got)
		}
		if r.Header.Get("Authorization") != "" {
			t.Errorf("Authorization header sent too")
		}
		switch r.URL.Path {
		case "/api/auth/user":
			_, _ = io.WriteString(w, `{"id":{"entityType":"USER","id":"u"}}`)
		case "/api/tenant/devices":
			if r.Method != http.MethodGet || r.URL.Query().Get("deviceName") != "My Device+1&x=2" || len(r.URL.Query()) != 1 {
				t.Errorf("device query %s %q", r.Method, r.URL.RawQuery)
			}
			_, _ = io.WriteString(w, `{"id":{"entityType":"DEVICE","id":"0b8c2f1e-0000-4000-8000-000000000001"},"name":"My Device+1&x=2",`+
				`"customerId":{"entityType":"CUSTOMER","id":"`+nullCustomerID+`"}}`)
		default:
			http.NotFound(w, r)
		}
	})
	c := newClient(t, Config{BaseURL: srv.URL + "/", APIKey: testKey})
	ctx := ctxT(t)
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := c.DeviceByName(ctx, "My Device+1&x=2")
	if err != nil || d.ID != "0b8c2f1e-0000-4000-8000-000000000001" || d.Claimed() {
		t.Fatalf("DeviceByName = %+v, %v", d, err)
	}
	if logins.Load() != 0 || calls.Load() != 2 {
		t.Fatalf("logins %d, calls %d", logins.Load(), calls.Load())
	}
}

// TestSetClaimingDataRequest checks the request of docs/thingsboard.md §3.2 byte for byte.
func TestSetClaimingDataRequest(t *testing.T) {
	t.Parallel()
	id := uuid.NewString()
	var got string
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = fmt.Sprintf("%s %s ct=%s auth=%s body=%s", r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"),
			r.Header.Get("X-Authorization"), b)
	})
	c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey})
	exp := time.UnixMilli(1893456000123)
	if err := c.SetClaimingData(ctxT(t), id, `s"3\cret`, exp); err != nil {
		t.Fatal(err)
	}
	want := "POST /api/plugins/telemetry/DEVICE/" + id + "/attributes/SERVER_SCOPE ct=application/json auth=ApiKey " + testKey +
		` body={"claimingData":{"secretKey":"s\"3\\cret","expirationTime":1893456000123}}`
	if got != want {
		t.Fatalf("request\n got %s\nwant %s", got, want)
	}
	if err := c.SetClaimingData(ctxT(t), "../x", "k", exp); KindOf(err) != KindInvalid {
		t.Fatalf("a device id that is not a UUID: %v", err)
	}
}

// TestDeleteClaimingDataRequest checks TelemetryController's DELETE route:
// DELETE /api/plugins/telemetry/DEVICE/{id}/SERVER_SCOPE?keys=claimingData, answered 200.
func TestDeleteClaimingDataRequest(t *testing.T) {
	t.Parallel()
	id := uuid.NewString()
	var got string
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = fmt.Sprintf("%s %s?%s auth=%s body=%q", r.Method, r.URL.EscapedPath(), r.URL.RawQuery,
			r.Header.Get("X-Authorization"), b)
		if r.URL.Path == "/api/plugins/telemetry/DEVICE/"+id+"/SERVER_SCOPE" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"status":404,"message":"Device with requested id wasn't found!","errorCode":32}`)
	})
	c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey})
	if err := c.DeleteClaimingData(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	want := "DELETE /api/plugins/telemetry/DEVICE/" + id + "/SERVER_SCOPE?keys=claimingData auth=ApiKey " + testKey + ` body=""`
	if got != want {
		t.Fatalf("request\n got %s\nwant %s", got, want)
	}
	err := c.DeleteClaimingData(ctxT(t), uuid.NewString())
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Code != 32 || strings.Contains(err.Error(), "wasn't found") {
		t.Fatalf("missing device: %v (want ErrNotFound with errorCode 32 and no message)", err)
	}
}

func TestDeviceJSON(t *testing.T) {
	t.Parallel()
	id := uuid.NewString()
	for _, tc := range []struct {
		body     string
		customer string
		kind     Kind
	}{
		{`{"id":{"id":"` + id + `"},"name":"n","customerId":{"entityType":"CUSTOMER","id":"` + nullCustomerID + `"}}`, "", ""},
		{`{"id":{"id":"` + id + `"},"name":"n","customerId":null}`, "", ""},
		{`{"id":{"id":"` + id + `"},"name":"n"}`, "", ""},
		{`{"id":{"id":"` + id + `"},"name":"n","customerId":{"id":"c1"},"version":3,"extra":{}}`, "c1", ""},
		{`{"name":"n"}`, "", KindBadResponse},
		{`<html>proxy error</html>`, "", KindBadResponse},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, tc.body) }))
		c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey})
		d, err := c.Device(ctxT(t), id)
		srv.Close()
		if KindOf(err) != tc.kind || (err == nil && (d.ID != id || d.CustomerID != tc.customer || d.Claimed() != (tc.customer != ""))) {
			t.Errorf("%s: %+v, %v", tc.body, d, err)
		}
	}
}

// TestStatusesAndRetries: 5xx and no answer are retried with backoff, Retries times; 4xx never.
func TestStatusesAndRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		statuses []int // answered in turn; the last one repeats
		retries  int
		kind     Kind
		sent     int
	}{
		{"503 twice then 200", []int{503, 503, 200}, 3, "", 3},
		{"500 always", []int{500}, 3, KindServer, 4},
		{"502 no retries", []int{502}, -1, KindServer, 1},
		{"400", []int{400}, 3, KindClient, 1},
		{"429", []int{429}, 3, KindClient, 1},
		{"405", []int{405}, 3, KindClient, 1},
		{"404", []int{404}, 3, KindNotFound, 1},
		{"403", []int{403}, 3, KindUnauthorized, 1},
		{"401 api key", []int{401}, 3, KindUnauthorized, 1},
		{"302", []int{302}, 3, KindBadResponse, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
				i := int(n.Add(1)) - 1
				st := tc.statuses[min(i, len(tc.statuses)-1)]
				if st == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(st)
				if st == 404 { // ThingsBoard's own: ITEM_NOT_FOUND
					_, _ = io.WriteString(w, `{"status":404,"message":"Requested item wasn't found!","errorCode":32}`)
				} else if st != 200 {
					_, _ = io.WriteString(w, `{"status":0,"message":"m","errorCode":2}`)
				} else {
					_, _ = io.WriteString(w, `{"id":{"id":"x"},"name":"d"}`)
				}
			})
			reqs := newRequests()
			c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey, Retries: tc.retries, OnRequest: reqs.hook})
			_, err := c.DeviceByName(ctxT(t), "d")
			if KindOf(err) != tc.kind || int(n.Load()) != tc.sent || reqs.total(OpDeviceByName) != tc.sent {
				t.Fatalf("err %v (kind %q), sent %d; want kind %q, sent %d (%s)", err, KindOf(err), n.Load(), tc.kind, tc.sent, reqs)
			}
			var e *Error
			wantCode := 2
			if tc.statuses[len(tc.statuses)-1] == 404 {
				wantCode = 32
			}
			if err != nil && (!errors.As(err, &e) || e.Status != tc.statuses[len(tc.statuses)-1] || e.Code != wantCode || e.Op != OpDeviceByName) {
				t.Fatalf("error fields: %#v", e)
			}
		})
	}
}

// TestDeviceAPIAnswers: 200 is nil, 401 an unknown token, 500 (whose body quotes the payload,
// docs/thingsboard.md §1.3) a server error that keeps no body, and it is retried.
func TestDeviceAPIAnswers(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Authorization") != "" {
			t.Errorf("headers %v", r.Header)
		}
		switch r.URL.EscapedPath() {
		case "/api/v1/GOOD_TOKEN/claim":
		case "/api/v1/BAD_PAYLOAD/claim":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "Can't parse value: "+string(b))
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	c := newClient(t, Config{BaseURL: srv.URL, Retries: 2, Username: "tenant@thingsboard.org", Password: "pw"})
	ctx := ctxT(t)
	if err := c.ClaimAsDevice(ctx, "GOOD_TOKEN", []byte(`{"secretKey":"k"}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.ClaimAsDevice(ctx, "OTHER", nil); !IsUnknownToken(err) {
		t.Fatalf("401: %v", err)
	}
	n.Store(0)
	err := c.ClaimAsDevice(ctx, "BAD_PAYLOAD", []byte(`["SECRET-IN-PAYLOAD"]`))
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindServer || e.Status != 500 || e.Code != 0 || n.Load() != 3 ||
		strings.Contains(err.Error(), "SECRET-IN-PAYLOAD") || strings.Contains(err.Error(), "BAD_PAYLOAD") {
		t.Fatalf("500: %v after %d requests", err, n.Load())
	}
}

// TestNoAnswerIsRetried: connections cut before an answer are KindUnreachable and retried.
func TestNoAnswerIsRetried(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= 2 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
	})
	reqs := newRequests()
	c := newClient(t, Config{BaseURL: srv.URL, OnRequest: reqs.hook})
	if err := c.ClaimAsDevice(ctxT(t), "TOKEN_X", nil); err != nil {
		t.Fatal(err)
	}
	if reqs.get("device_claim/unreachable") != 2 || reqs.get("device_claim/ok") != 1 {
		t.Fatalf("want 2 cut, 1 ok: %s", reqs)
	}

	// Always cut: the error says there was no answer, and names neither the URL nor the token.
	n.Store(-100)
	err := c.ClaimAsDevice(ctxT(t), "TOKEN_X", nil)
	if !IsUnreachable(err) || strings.Contains(err.Error(), "TOKEN_X") || strings.Contains(err.Error(), "/api/v1") {
		t.Fatalf("always cut: %v", err)
	}
}

// TestTimeout: a request that gets no answer within Timeout is KindUnreachable, wraps
// context.DeadlineExceeded, and is retried; the whole call stays bounded.
func TestTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var n atomic.Int32
	srv := serve(t, func(_ http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey, Timeout: 100 * time.Millisecond, Retries: 1})
	start := time.Now()
	err := c.Check(ctxT(t))
	took := time.Since(start)
	if !IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) || n.Load() != 2 {
		t.Fatalf("err %v after %d requests", err, n.Load())
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Fatalf("took %v for 2 attempts of 100ms", took)
	}
}

// TestCallerContext: the caller's context bounds retries, backoff and the wait for a slot.
func TestCallerContext(t *testing.T) {
	t.Parallel()
	srv := serve(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey, Retries: 10})
	c.backoffBase, c.backoffMax = 10*time.Second, 10*time.Second

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Check(ctx)
	if took := time.Since(start); took > 2*time.Second || KindOf(err) != KindServer {
		t.Fatalf("a 10 s backoff under a 300 ms context: %v after %v (want the last answer, quickly)", err, took)
	}

	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := c.Check(done); KindOf(err) != KindCanceled || !errors.Is(err, context.Canceled) || IsUnreachable(err) {
		t.Fatalf("canceled context: %v", err)
	}
}

// TestConcurrencyBound: never more than MaxConcurrent requests in flight; a call waiting for a
// slot gives up with its context.
func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	var inflight, peak atomic.Int32
	gate := make(chan struct{})
	srv := serve(t, func(_ http.ResponseWriter, _ *http.Request) {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		<-gate
	})
	c := newClient(t, Config{BaseURL: srv.URL, MaxConcurrent: 3})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() { errs <- c.ClaimAsDevice(ctx, "T", nil) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for inflight.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // give a fourth request every chance to arrive
	if got := inflight.Load(); got != 3 {
		t.Errorf("in flight with all slots taken: %d, want 3", got)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if err := c.Check(short); KindOf(err) != KindUnauthorized {
		t.Errorf("no credentials must fail before waiting: %v", err)
	}
	if err := c.ClaimAsDevice(short, "T", nil); KindOf(err) != KindCanceled {
		t.Errorf("waiting for a slot past the context: %v", err)
	}
	cancel()
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if peak.Load() != 3 {
		t.Fatalf("peak in flight %d, want 3", peak.Load())
	}
}

// TestKeepAlive: device claims in a row reuse one connection.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(_ http.ResponseWriter, _ *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, Config{BaseURL: srv.URL})
	for i := range 20 {
		if err := c.ClaimAsDevice(ctxT(t), fmt.Sprintf("TOKEN_%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if conns.Load() != 1 {
		t.Fatalf("20 claims opened %d connections, want 1", conns.Load())
	}
}

// TestRedirectNotFollowed: a redirect is an error and the credential goes nowhere else.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var other atomic.Int32
	elsewhere := serve(t, func(_ http.ResponseWriter, _ *http.Request) { other.Add(1) })
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey})
	err := c.Check(ctxT(t))
	if KindOf(err) != KindBadResponse || other.Load() != 0 || strings.Contains(err.Error(), elsewhere.URL) {
		t.Fatalf("redirect: %v, %d requests elsewhere", err, other.Load())
	}
}

// fakeTB answers logins and refreshes with fake JWTs and serves /api/auth/user with a handler.
type fakeTB struct {
	logins, refreshes, calls atomic.Int32
	life                     time.Duration
	now                      func() time.Time
	refreshStatus            int // 0: 200
	loginBody                string
	user                     func(w http.ResponseWriter, r *http.Request, jwt string)
}

func (f *fakeTB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pair := func(tag string) {
		now := f.now()
		_ = json.NewEncoder(w).Encode(map[string]string{"token": fakeJWT(now, now.Add(f.life), tag),
			"refreshToken": fakeJWT(now, now.Add(7*24*time.Hour), "refresh-"+tag)})
	}
	switch r.URL.Path {
	case "/api/auth/login":
		n := f.logins.Add(1)
		var req map[string]string
		if json.NewDecoder(r.Body).Decode(&req) != nil || req["username"] != "tenant@thingsboard.org" || req["password"] != "pw-Zq7" ||
			r.Header.Get("X-Authorization") != "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if f.loginBody != "" {
			_, _ = io.WriteString(w, f.loginBody)
			return
		}
		pair(fmt.Sprintf("login-%d", n))
	case "/api/auth/token":
		n := f.refreshes.Add(1)
		var req map[string]string
		if json.NewDecoder(r.Body).Decode(&req) != nil || !strings.HasPrefix(req["refreshToken"], "eyJ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if f.refreshStatus != 0 {
			w.WriteHeader(f.refreshStatus)
			_, _ = io.WriteString(w, `{"status":401,"message":"Token has expired","errorCode":11}`)
			return
		}
		pair(fmt.Sprintf("refresh-%d", n))
	case "/api/auth/user":
		f.calls.Add(1)
		jwt, ok := strings.CutPrefix(r.Header.Get("X-Authorization"), "Bearer ")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f.user(w, r, jwt)
	default:
		http.NotFound(w, r)
	}
}

// TestReloginOncePerCall: a JWT that ThingsBoard keeps refusing leads to one new login per call,
// then KindUnauthorized; never a loop.
func TestReloginOncePerCall(t *testing.T) {
	t.Parallel()
	f := &fakeTB{life: time.Hour, now: time.Now, user: func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"status":401,"message":"Token has expired","errorCode":11}`)
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := newClient(t, Config{BaseURL: srv.URL, Username: "tenant@thingsboard.org", Password: "pw-Zq7"})
	for call := 1; call <= 2; call++ {
		err := c.Check(ctxT(t))
		var e *Error
		if !IsUnauthorized(err) || !errors.As(err, &e) || e.Op != OpCheck || e.Code != 11 {
			t.Fatalf("call %d: %v", call, err)
		}
	}
	if f.logins.Load() != 3 || f.calls.Load() != 4 {
		t.Fatalf("logins %d, calls %d; want 3 and 4 (one re-login per call)", f.logins.Load(), f.calls.Load())
	}
}

// TestRefreshFailureLogsIn: when the refresh is refused, the Client logs in again.
func TestRefreshFailureLogsIn(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var lastJWT atomic.Value
	f := &fakeTB{life: 10 * time.Minute, now: clock, refreshStatus: http.StatusUnauthorized,
		user: func(w http.ResponseWriter, _ *http.Request, jwt string) {
			lastJWT.Store(jwt)
			_, _ = io.WriteString(w, `{}`)
		}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	reqs := newRequests()
	c := newClient(t, Config{BaseURL: srv.URL, Username: "tenant@thingsboard.org", Password: "pw-Zq7", OnRequest: reqs.hook})
	c.now = clock
	if err := c.Check(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	first := lastJWT.Load()
	mu.Lock()
	now = now.Add(10*time.Minute - 30*time.Second) // inside the refresh margin
	mu.Unlock()
	if err := c.Check(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if reqs.get("refresh/unauthorized") != 1 || reqs.get("login/ok") != 2 || lastJWT.Load() == first {
		t.Fatalf("want a refused refresh then a login with a new JWT: %s", reqs)
	}
}

// TestShortLivedJWT: a JWT that lives less than two refresh margins is refreshed at half its life.
func TestShortLivedJWT(t *testing.T) {
	t.Parallel()
	s := newSession()
	now := time.Unix(1_800_000_000, 0)
	s.iat, s.exp = now, now.Add(40*time.Second)
	if s.due(now.Add(19*time.Second)) || !s.due(now.Add(20*time.Second)) {
		t.Fatal("a 40 s JWT is due at 20 s")
	}
	s.iat, s.exp = now, now.Add(9000*time.Second)
	if s.due(now.Add(8939*time.Second)) || !s.due(now.Add(8940*time.Second)) {
		t.Fatal("a 9000 s JWT is due a minute before its exp")
	}
	s.exp = time.Time{}
	if s.due(now.Add(100 * 365 * 24 * time.Hour)) {
		t.Fatal("a JWT without exp is never due")
	}
}

func TestJWTTimes(t *testing.T) {
	t.Parallel()
	iat, exp := time.Unix(1_800_000_000, 0), time.Unix(1_800_009_000, 0)
	gi, ge := jwtTimes(fakeJWT(iat, exp, "x"))
	if !gi.Equal(iat) || !ge.Equal(exp) {
		t.Fatalf("got %v %v", gi, ge)
	}
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a." + base64.RawURLEncoding.EncodeToString([]byte(`[1]`)) + ".c",
		"a." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":"soon"}`)) + ".c"} {
		if gi, ge := jwtTimes(bad); !gi.IsZero() || !ge.IsZero() {
			t.Errorf("%q: %v %v", bad, gi, ge)
		}
	}
}

// TestLoginTwoFactor: a login that answers a pre-verification token is an operator problem.
func TestLoginTwoFactor(t *testing.T) {
	t.Parallel()
	f := &fakeTB{now: time.Now, loginBody: `{"token":"eyJx.eyJ5.z","refreshToken":null,"scope":"PRE_VERIFICATION_TOKEN"}`}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := newClient(t, Config{BaseURL: srv.URL, Username: "tenant@thingsboard.org", Password: "pw-Zq7"})
	if err := c.Check(ctxT(t)); !IsUnauthorized(err) || !errors.Is(err, errTwoFactor) || f.calls.Load() != 0 {
		t.Fatalf("two-factor login: %v", err)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []Config{
		{},
		{BaseURL: "127.0.0.1:9090"},
		{BaseURL: "ftp://tb"},
		{BaseURL: "http://"},
		{BaseURL: "http://tenant:pw-in-url-77@tb:8080"},
		{BaseURL: "http://tb?x=1"},
		{BaseURL: "http://tb#frag"},
		{BaseURL: "http://tb", APIKey: "k", Username: "u", Password: "p"},
		{BaseURL: "http://tb", Username: "u"},
		{BaseURL: "http://tb", Password: "pw-in-url-77"},
		{BaseURL: "http://tb", CAFile: notPEM},
		{BaseURL: "https://tb", CAFile: notPEM},
		{BaseURL: "https://tb", CAFile: filepath.Join(dir, "missing.pem")},
		{BaseURL: "http://tb", Timeout: -time.Second},
		{BaseURL: "http://tb", APIKey: "a\nb"},
	} {
		c, err := New(tc)
		if err == nil {
			c.Close()
			t.Errorf("New(%+v) accepted", tc)
		} else if strings.Contains(err.Error(), "pw-in-url-77") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	c, err := New(Config{BaseURL: "http://tb:9090/prefix/"})
	if err != nil || c.base != "http://tb:9090/prefix" || c.timeout != DefaultTimeout || cap(c.sem) != DefaultMaxConcurrent ||
		c.retries != DefaultRetries || c.HasCredentials() {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c.Close()
}

// TestTLSWithCAFile: an https ThingsBoard with a private CA is trusted through CAFile, and refused
// without it (once: a certificate error is not retried).
func TestTLSWithCAFile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{}`) }))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey, CAFile: ca})
	if err := c.Check(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	reqs := newRequests()
	plain := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey, OnRequest: reqs.hook})
	err := plain.Check(ctxT(t))
	if !IsUnreachable(err) || reqs.get("check/unreachable") != 1 || strings.Contains(err.Error(), testKey) {
		t.Fatalf("without the CA: %v (%s)", err, reqs)
	}
}
