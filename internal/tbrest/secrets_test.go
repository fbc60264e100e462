package tbrest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/syncbuf"
	"github.com/claimsvc/claimsvc/internal/tbemu"
)

// TestSecretsNeverLeak makes every call fail in every way it can (ThingsBoard down, connections
// cut, timeouts, answers that quote the request) and checks that no error, cause or log line holds
// the password, the API key, a JWT, the device token, the secret key or a request URL.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	const (
		password = "Pw-leak-canary-91"
		apiKey   = "tb_APIKEY-leak-canary-92"
		token    = "TOKEN-leak-canary-93/x?y"
		secret   = "SECRET-leak-canary-94"
	)
	payload := []byte(`{"secretKey":"` + secret + `","durationMs":60000}`)
	var logs syncbuf.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var printed []string
	record := func(what string, err error) {
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		printed = append(printed, err.Error(), fmt.Sprintf("%v|%+v|%#v|%q", err, err, err, err))
		for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
			printed = append(printed, e.Error(), fmt.Sprintf("%#v", e))
		}
	}
	calls := func(name string, c *Client, timeout time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		record(name+" check", c.Check(ctx))
		_, err := c.DeviceByName(ctx, "d")
		record(name+" device_by_name", err)
		record(name+" set_claiming_data", c.SetClaimingData(ctx, "0b8c2f1e-0000-4000-8000-000000000001", secret, time.Now().Add(time.Hour)))
		record(name+" device_claim", c.ClaimAsDevice(ctx, token, payload))
	}
	cfg := func(base string) Config {
		return Config{BaseURL: base, Username: "tenant@thingsboard.org", Password: password, Logger: logger,
			Timeout: 300 * time.Millisecond, Retries: 1}
	}

	// 1. Nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	_ = ln.Close()
	calls("down jwt", newClient(t, cfg(down)), 5*time.Second)
	keyCfg := cfg(down)
	keyCfg.Username, keyCfg.Password, keyCfg.APIKey = "", "", apiKey
	calls("down api key", newClient(t, keyCfg), 5*time.Second)

	// 2. Logged in to a ThingsBoard that then goes away: the JWT is held while calls fail.
	emu := startEmulator(t, nil)
	live := cfg(emu.HTTPURL())
	live.Password = tbemu.DemoTenantAdminPassword
	c := newClient(t, live)
	if err := c.Check(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	jwt, refresh := c.jwt.access, c.jwt.refresh
	record("unknown token", c.ClaimAsDevice(ctxT(t), token, payload))
	_ = emu.Close()
	calls("emulator gone", c, 5*time.Second)

	// 3. Connections cut before an answer, 4. no answer in time, 5. answers that quote the request.
	cut := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close()
		}
	})
	calls("cut", newClient(t, cfg(cut.URL)), 5*time.Second)
	stop := make(chan struct{})
	slow := serve(t, func(_ http.ResponseWriter, r *http.Request) {
		select { // a handler that has not read the body does not see the client leave
		case <-r.Context().Done():
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) }) // runs before slow.Close
	calls("slow", newClient(t, cfg(slow.URL)), 5*time.Second)
	calls("caller deadline", newClient(t, cfg(slow.URL)), 100*time.Millisecond)
	echo := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprintf(w, `{"status":500,"message":"%s %s %s","errorCode":2}`, r.URL, r.Header.Get("X-Authorization"), b)
	})
	calls("echo", newClient(t, cfg(echo.URL)), 5*time.Second)

	everything := strings.Join(printed, "\n") + "\n" + logs.String()
	for _, s := range []string{password, apiKey, token, url.PathEscape(token), "TOKEN-leak-canary-93", secret, jwt, refresh,
		"/api/", "http://"} {
		if strings.Contains(everything, s) {
			i := strings.Index(everything, s)
			t.Errorf("%q leaked: …%s…", s, everything[max(0, i-200):min(len(everything), i+100)])
		}
	}
	if len(printed) < 40 || !strings.Contains(logs.String(), "retrying") {
		t.Fatalf("the test saw too little: %d errors, logs:\n%s", len(printed), logs.String())
	}
}
