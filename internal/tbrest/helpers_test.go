package tbrest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/tbemu"
)

// startEmulator starts a ThingsBoard emulator with the demo data on free ports; clock nil means
// real time.
func startEmulator(t *testing.T, clock tbemu.Clock) *tbemu.Emulator {
	t.Helper()
	cfg := tbemu.DefaultConfig()
	cfg.MQTTAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Demo = true
	if clock != nil {
		cfg.Clock = clock
	}
	emu, err := tbemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	return emu
}

// requests counts OnRequest calls by "op/outcome".
type requests struct {
	mu sync.Mutex
	n  map[string]int
}

func newRequests() *requests { return &requests{n: map[string]int{}} }

func (r *requests) hook(op, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n[op+"/"+outcome]++
}

func (r *requests) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[key]
}

// total counts the requests of one op, whatever their outcome.
func (r *requests) total(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, v := range r.n {
		if strings.HasPrefix(k, op+"/") {
			n += v
		}
	}
	return n
}

func (r *requests) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.n))
	for k := range r.n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strings.Repeat("|", r.n[k]))
		b.WriteString(" ")
	}
	return b.String()
}

// newClient builds a Client with fast backoff, for tests.
func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.backoffBase, c.backoffMax = time.Millisecond, 4*time.Millisecond
	t.Cleanup(c.Close)
	return c
}

// tbCall makes a raw JSON call to ThingsBoard, as a test's own witness of what the server holds.
func tbCall(t *testing.T, method, u, jwt string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if jwt != "" {
		req.Header.Set("X-Authorization", "Bearer "+jwt)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, bytes.TrimSpace(b)
}

// loginJWT logs a user in through ThingsBoard's REST API and returns the JWT.
func loginJWT(t *testing.T, base, user, password string) string {
	t.Helper()
	st, b := tbCall(t, http.MethodPost, base+"/api/auth/login", "", map[string]string{"username": user, "password": password})
	var pair struct {
		Token string `json:"token"`
	}
	if st != http.StatusOK || json.Unmarshal(b, &pair) != nil || pair.Token == "" {
		t.Fatalf("login %s: %d %s", user, st, b)
	}
	return pair.Token
}

// customerClaim claims a device by name as customerA@thingsboard.org (docs/thingsboard.md §4.1) and
// returns the status, the body, and on SUCCESS the device's new customer id.
func customerClaim(t *testing.T, base, deviceName, secret string) (int, string, string) {
	t.Helper()
	jwt := loginJWT(t, base, "customerA@thingsboard.org", tbemu.DemoCustomerPassword)
	st, b := tbCall(t, http.MethodPost, base+"/api/customer/device/"+url.PathEscape(deviceName)+"/claim", jwt,
		map[string]string{"secretKey": secret})
	var v struct {
		Device struct {
			CustomerID struct {
				ID string `json:"id"`
			} `json:"customerId"`
		} `json:"device"`
		Response string `json:"response"`
	}
	if st == http.StatusOK {
		if err := json.Unmarshal(b, &v); err != nil || v.Response != "SUCCESS" {
			t.Fatalf("claim answer %s", b)
		}
	}
	return st, string(b), v.Device.CustomerID.ID
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
