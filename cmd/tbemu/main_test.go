package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/syncbuf"
)

// startRun runs the command in-process on free ports and returns its addresses.
func startRun(t *testing.T, args ...string) (mqttAddr, httpURL string, stderr *syncbuf.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr = &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, args...), pw, stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("no ready line; stderr:\n%s", stderr)
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "mqtt="); ok {
				mqttAddr = v
			}
			if v, ok := strings.CutPrefix(f, "http="); ok {
				httpURL = v
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tbemu did not become ready")
	}
	if mqttAddr == "" || httpURL == "" {
		t.Fatal("ready line lacks addresses")
	}
	return mqttAddr, httpURL, stderr
}

func post(t *testing.T, url, jwt, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if jwt != "" {
		req.Header.Set("X-Authorization", "Bearer "+jwt)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestDemoWithMosquittoPub is the acceptance check: mosquitto_pub registers a claim for the
// DHT11 demo device, customer A claims it (SUCCESS), a second attempt is CLAIMED, and an unknown
// token makes mosquitto_pub fail with "not authorised".
func TestDemoWithMosquittoPub(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Skip("mosquitto_pub not installed (apt-get install mosquitto-clients)")
	}
	mqttAddr, httpURL, stderr := startRun(t, "--demo")
	host, port, _ := strings.Cut(mqttAddr, ":")

	pub := func(token string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-u", token, "-t", "v1/devices/me/claim",
			"-m", `{"secretKey":"abc","durationMs":60000}`, "-q", "1").CombinedOutput()
		return string(out), err
	}
	if out, err := pub("DHT11_DEMO_TOKEN"); err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}

	st, body := post(t, httpURL+"/api/auth/login", "", `{"username":"customerA@thingsboard.org","password":"customer"}`)
	if st != 200 {
		t.Fatalf("login: %d %s", st, body)
	}
	var pair struct{ Token string }
	_ = json.Unmarshal([]byte(body), &pair)

	claimURL := httpURL + "/api/customer/device/DHT11%20Demo%20Device/claim"
	var res struct{ Response string }
	for i := 0; i < 50; i++ { // the registration runs after the PUBACK
		st, body = post(t, claimURL, pair.Token, `{"secretKey":"abc"}`)
		if st == 200 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st != 200 || json.Unmarshal([]byte(body), &res) != nil || res.Response != "SUCCESS" {
		t.Fatalf("claim: %d %s, want 200 SUCCESS", st, body)
	}
	if st, body = post(t, claimURL, pair.Token, `{"secretKey":"abc"}`); st != 400 || strings.TrimSpace(body) != `"CLAIMED"` {
		t.Fatalf("second claim: %d %s, want 400 \"CLAIMED\"", st, body)
	}

	out, err := pub("NO_SUCH_TOKEN")
	if err == nil || !strings.Contains(out, "not authorised") {
		t.Fatalf("unknown token: err %v output %q, want a failure saying not authorised", err, out)
	}
	if strings.Contains(stderr.String(), "DHT11_DEMO_TOKEN") {
		t.Errorf("a device token reached the log:\n%s", stderr)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var out syncbuf.Buffer
	err := run(context.Background(), []string{"--help"}, io.Discard, &out)
	if err == nil || !strings.Contains(err.Error(), "help requested") {
		t.Fatalf("run --help: %v", err)
	}
	for _, f := range []string{"--mqtt-addr", "--http-addr", "--demo", "--claim-duration", "--cache-ttl", "--cache-size", "--allow-claiming-by-default"} {
		if !strings.Contains(out.String(), strings.TrimPrefix(f, "-")) {
			t.Errorf("help lacks %s:\n%s", f, out.String())
		}
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--nope"}, {"--cache-size", "-1"}, {"extra"}, {"--log-level", "loud"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
}
