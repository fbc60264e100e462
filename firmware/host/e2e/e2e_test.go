// Package e2e drives claim-sim (the device's claim_core with a Linux port,
// firmware/host/sim) end to end, on 127.0.0.1 only:
//
//   - against the local Mosquitto (127.0.0.1:1883): the MQTT fallback path, with a
//     subscriber checking the topic and the exact payload;
//   - against the real claimsvc (cmd/claimsvc, fresh PostgreSQL database) and the
//     ThingsBoard emulator (cmd/tbemu --demo): the service path and the MQTT
//     fallback with claimsvc stopped both end in a customer claim SUCCESS, and an
//     unknown token stops at once (CONNACK 5) instead of retrying.
//
// Needs gcc, make, pkg-config, libcurl4-openssl-dev and libmosquitto-dev to
// build claim-sim. Outside CI a missing dependency skips; under CI=true it fails,
// so that a green CI means these paths ran. The claimsvc/tbemu test skips only
// when cmd/claimsvc or cmd/tbemu is not in the tree.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/claimsvc/claimsvc/internal/pgtest"
)

const (
	claimTopic = "v1/devices/me/claim"
	mosquitto  = "127.0.0.1:1883"
)

// Exit codes of claim-sim (firmware/host/sim/claim_sim.c).
const (
	exitClaimed       = 0
	exitTokenRejected = 4
)

func inCI() bool { return os.Getenv("CI") == "true" }

// missing skips the test, or fails it under CI=true.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		dir = filepath.Dir(dir)
	}
	t.Fatal("go.mod not found above the test directory")
	return ""
}

var (
	simOnce sync.Once
	simPath string
	simErr  error
	simSkip string
)

// buildSim runs `make -C firmware/host sim` once per test binary.
func buildSim(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	simOnce.Do(func() {
		for _, tool := range []string{"make", "gcc", "pkg-config"} {
			if _, err := exec.LookPath(tool); err != nil {
				simSkip = tool + " is not installed"
				return
			}
		}
		if err := exec.Command("pkg-config", "--exists", "libcurl", "libmosquitto").Run(); err != nil {
			simSkip = "claim-sim needs libcurl and libmosquitto: apt-get install -y libcurl4-openssl-dev libmosquitto-dev"
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", filepath.Join(root, "firmware", "host"), "sim")
		out, err := cmd.CombinedOutput()
		if err != nil {
			simErr = fmt.Errorf("make sim: %w\n%s", err, out)
			return
		}
		simPath = filepath.Join(root, "firmware", "host", "build", "claim-sim")
	})
	if simSkip != "" {
		missing(t, "%s", simSkip)
	}
	if simErr != nil {
		t.Fatal(simErr)
	}
	return simPath
}

type simResult struct {
	code   int
	fields map[string]string // parsed from the stdout line "result=… path=… …"
	stdout string
	stderr string
}

// runSim runs claim-sim with the token and secret in the environment (as a
// device's factory data would be, out of argv) and checks that neither shows
// up in anything it printed.
func runSim(t *testing.T, sim, token, secret string, args ...string) simResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sim, args...)
	cmd.Env = append(os.Environ(), "CLAIM_SIM_TOKEN="+token, "CLAIM_SIM_SECRET="+secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := simResult{stdout: stdout.String(), stderr: stderr.String(), fields: map[string]string{}}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("claim-sim: %v\nstderr:\n%s", err, res.stderr)
	}
	if ctx.Err() != nil {
		t.Fatalf("claim-sim did not finish within 90 s\nstderr:\n%s", res.stderr)
	}
	for _, kv := range strings.Fields(strings.TrimSpace(res.stdout)) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			res.fields[k] = v
		}
	}
	all := res.stdout + res.stderr
	if strings.Contains(all, token) {
		t.Errorf("claim-sim printed the token")
	}
	if secret != "" && strings.Contains(all, secret) {
		t.Errorf("claim-sim printed the secret")
	}
	t.Logf("claim-sim exit %d: %s", res.code, strings.TrimSpace(res.stdout))
	return res
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitTCP(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %s", addr, within)
}

// ---------------------------------------------------------------- Mosquitto

func TestSimMQTTFallbackToMosquitto(t *testing.T) {
	t.Parallel()
	sim := buildSim(t)
	if c, err := net.DialTimeout("tcp", mosquitto, time.Second); err != nil {
		missing(t, "Mosquitto is not reachable at %s (mosquitto -d -c /etc/mosquitto/mosquitto.conf): %v", mosquitto, err)
	} else {
		c.Close()
	}

	// An odd secret: quotes, a backslash and a control character must arrive
	// JSON-escaped and decode back to the same bytes.
	nonce := fmt.Sprint(time.Now().UnixNano())
	secret := fmt.Sprintf("e2e \"odd\" \\ %s\x01", nonce)
	token := fmt.Sprintf("sim-e2e-%d", time.Now().UnixNano())

	got := make(chan []byte, 16)
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + mosquitto).
		SetClientID(fmt.Sprintf("claim-e2e-sub-%d", time.Now().UnixNano())).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	sub := mqtt.NewClient(opts)
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	// The broker is shared with other tests (and benchmarks): keep only our
	// claim, so a flood of others cannot crowd it out of the buffer.
	marker := []byte(nonce)
	if tok := sub.Subscribe(claimTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if !bytes.Contains(m.Payload(), marker) {
			return
		}
		select {
		case got <- append([]byte(nil), m.Payload()...):
		default:
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	// claimsvc is "down": a closed port on 127.0.0.1.
	res := runSim(t, sim, token, secret,
		"--service", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--mqtt", "mqtt://"+mosquitto,
		"--duration-ms", "60000", "--deadline-ms", "20000")
	if res.code != exitClaimed || res.fields["result"] != "ok" || res.fields["path"] != "mqtt" {
		t.Fatalf("want result=ok path=mqtt exit 0, got exit %d %q\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if res.fields["service_tries"] != "1" || res.fields["mqtt_tries"] != "1" {
		t.Errorf("want one service try and one MQTT try, got %q", res.stdout)
	}

	deadline := time.After(10 * time.Second)
	for {
		select {
		case p := <-got:
			var body struct {
				SecretKey  string      `json:"secretKey"`
				DurationMs json.Number `json:"durationMs"`
			}
			if err := json.Unmarshal(p, &body); err != nil || body.SecretKey != secret {
				continue // someone else's claim on the shared broker
			}
			if body.DurationMs.String() != "60000" {
				t.Errorf("durationMs = %q, want the number 60000", body.DurationMs)
			}
			want := `{"secretKey":"` + escapeLikeCore(secret) + `","durationMs":60000}`
			if string(p) != want {
				t.Errorf("payload bytes\n got %s\nwant %s", p, want)
			}
			return
		case <-deadline:
			t.Fatal("no claim with our secret arrived on " + claimTopic + " within 10 s")
		}
	}
}

// escapeLikeCore mirrors claim_json_build's escaping: '"' and '\' with a
// backslash, control characters as \u00xx (lower-case hex), nothing else.
func escapeLikeCore(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, "\\u%04x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ------------------------------------------------------ claimsvc + tbemu

type proc struct {
	name   string
	cmd    *exec.Cmd
	output *bytes.Buffer
	mu     *sync.Mutex
	done   chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, bin, nil, args...)
}

// startProcEnv is startProc with extra environment variables (secrets go
// there, never into argv).
func startProcEnv(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, output: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout = lockedWriter{p.mu, p.output}
	p.cmd.Stderr = lockedWriter{p.mu, p.output}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s output:\n%s", name, p.output.String())
			p.mu.Unlock()
		}
	})
	return p
}

// stop sends SIGTERM, then SIGKILL after 5 s; it is idempotent.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func goBuild(t *testing.T, root, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./"+pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./%s: %v\n%s", pkg, err, b)
	}
	return out
}

func httpClient() *http.Client { return &http.Client{Timeout: 10 * time.Second} }

func waitReady(t *testing.T, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		resp, err := httpClient().Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s: %s", url, within, last)
}

// customerClaim logs in as the demo customer and claims deviceName with secret,
// retrying (bounded) until ThingsBoard answers SUCCESS: the device's claim may
// still be on its way through claimsvc's outbox.
func customerClaim(t *testing.T, tbHTTP, deviceName, secret string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": "customerA@thingsboard.org", "password": "customer"})
	resp, err := httpClient().Post(tbHTTP+"/api/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	var login struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || login.Token == "" {
		t.Fatalf("login: status %d, err %v", resp.StatusCode, err)
	}

	claimBody, _ := json.Marshal(map[string]string{"secretKey": secret})
	target := tbHTTP + "/api/customer/device/" + url.PathEscape(deviceName) + "/claim"
	var lastStatus int
	var lastBody string
	for i := 0; i < 60; i++ {
		req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(claimBody))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Authorization", "Bearer "+login.Token)
		resp, err := httpClient().Do(req)
		if err != nil {
			t.Fatalf("customer claim: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lastStatus, lastBody = resp.StatusCode, string(b)
		if resp.StatusCode == http.StatusOK {
			var out struct {
				Response string `json:"response"`
			}
			if err := json.Unmarshal(b, &out); err != nil || out.Response != "SUCCESS" {
				t.Fatalf("customer claim: 200 without SUCCESS: %s", b)
			}
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("customer claim of %q never succeeded: last %d %s", deviceName, lastStatus, lastBody)
}

// waitDelivered polls claimsvc's device claim list until a claim is delivered.
func waitDelivered(t *testing.T, svc, token string) {
	t.Helper()
	var last string
	for i := 0; i < 60; i++ {
		req, _ := http.NewRequest(http.MethodGet, svc+"/devices/claims", nil)
		req.Header.Set("X-Device-Token", token)
		resp, err := httpClient().Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			if resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(`"status":"delivered"`)) {
				return
			}
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("claim never became delivered in claimsvc: %s", last)
}

// stack is a real claimsvc on a fresh PostgreSQL database plus the ThingsBoard
// emulator with its demo devices, all on 127.0.0.1.
type stack struct {
	svcURL, tbMQTT, tbHTTP, dbURL string
	svc                           *proc
}

func startStack(t *testing.T, tbemuArgs ...string) (string, *stack) {
	t.Helper()
	root := repoRoot(t)
	for _, pkg := range []string{"cmd/claimsvc", "cmd/tbemu"} {
		if _, err := os.Stat(filepath.Join(root, pkg)); err != nil {
			t.Skipf("%s is not in the tree yet; this end-to-end test needs both cmd/claimsvc and cmd/tbemu", pkg)
		}
	}
	sim := buildSim(t)
	st := &stack{dbURL: pgtest.NewDatabase(t)}

	bin := t.TempDir()
	claimsvcBin := goBuild(t, root, bin, "cmd/claimsvc")
	tbemuBin := goBuild(t, root, bin, "cmd/tbemu")

	st.tbMQTT = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tbHTTPAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProc(t, "tbemu", tbemuBin, append([]string{"--mqtt-addr", st.tbMQTT, "--http-addr", tbHTTPAddr, "--demo"},
		tbemuArgs...)...)
	waitTCP(t, st.tbMQTT, 15*time.Second)
	waitTCP(t, tbHTTPAddr, 15*time.Second)
	st.tbHTTP = "http://" + tbHTTPAddr

	svcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	st.svcURL = "http://" + svcAddr
	// As an operator runs it: an API key (the factory's; the device sends
	// none) and a data key, secrets in the environment, never in argv.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	apiKeyHash := sha256.Sum256([]byte("e2e-factory-key"))
	st.svc = startProcEnv(t, "claimsvc", claimsvcBin, []string{
		"CLAIMSVC_DATABASE_URL=" + st.dbURL,
		"CLAIMSVC_DATA_KEY=" + base64.StdEncoding.EncodeToString(key),
		"CLAIMSVC_API_KEYS=" + hex.EncodeToString(apiKeyHash[:]),
	}, "serve", "--http-addr", svcAddr, "--mqtt-url", "tcp://"+st.tbMQTT,
		// One device lives through a dozen scenarios in under a minute here,
		// and the test polls its claims (the device's POST is answered at
		// once now: no key, no Prefer: wait); 20/1m is for real devices.
		"--rate-limit-token", "200/1m")
	waitReady(t, st.svcURL+"/readyz", 30*time.Second)
	return sim, st
}

func TestSimAgainstClaimsvcAndEmulator(t *testing.T) {
	t.Parallel()
	sim, st := startStack(t)
	svc, svcURL, tbMQTT, tbHTTP := st.svc, st.svcURL, st.tbMQTT, st.tbHTTP

	t.Run("service up: claim goes through claimsvc", func(t *testing.T) {
		const token, device = "DHT11_DEMO_TOKEN", "DHT11 Demo Device"
		secret := fmt.Sprintf("svc-path-%d", time.Now().UnixNano())
		res := runSim(t, sim, token, secret,
			"--service", svcURL, "--mqtt", "mqtt://"+tbMQTT,
			"--duration-ms", "600000", "--wait", "5", "--deadline-ms", "60000")
		if res.code != exitClaimed || res.fields["path"] != "service" {
			t.Fatalf("want exit 0 path=service, got exit %d %q\nstderr:\n%s", res.code, res.stdout, res.stderr)
		}
		if st := res.fields["http_status"]; st != "200" && st != "202" {
			t.Errorf("http_status = %s, want 200 or 202", st)
		}
		if res.fields["mqtt_tries"] != "0" {
			t.Errorf("the device itself must not publish when claimsvc took the claim: %q", res.stdout)
		}
		waitDelivered(t, svcURL, token)
		customerClaim(t, tbHTTP, device, secret)
	})

	// claimsvc goes away; the same URL now refuses connections.
	svc.stop()

	t.Run("service down: claim goes over MQTT to ThingsBoard", func(t *testing.T) {
		const token, device = "RASPBERRY_PI_DEMO_TOKEN", "Raspberry Pi Demo Device"
		secret := fmt.Sprintf("mqtt-path \"%d\"", time.Now().UnixNano())
		res := runSim(t, sim, token, secret,
			"--service", svcURL, "--mqtt", "mqtt://"+tbMQTT,
			"--duration-ms", "600000", "--deadline-ms", "60000")
		if res.code != exitClaimed || res.fields["path"] != "mqtt" {
			t.Fatalf("want exit 0 path=mqtt, got exit %d %q\nstderr:\n%s", res.code, res.stdout, res.stderr)
		}
		customerClaim(t, tbHTTP, device, secret)
	})

	t.Run("unknown token: stops at the first CONNACK refusal", func(t *testing.T) {
		start := time.Now()
		res := runSim(t, sim, "NO_SUCH_DEVICE_TOKEN_42", "whatever-secret",
			"--service", svcURL, "--mqtt", "mqtt://"+tbMQTT,
			"--deadline-ms", "60000", "--attempts", "10")
		if res.code != exitTokenRejected || res.fields["result"] != "token-rejected" {
			t.Fatalf("want exit %d result=token-rejected, got exit %d %q\nstderr:\n%s",
				exitTokenRejected, res.code, res.stdout, res.stderr)
		}
		if res.fields["mqtt_tries"] != "1" || res.fields["rounds"] != "1" {
			t.Errorf("want exactly one MQTT try, got %q", res.stdout)
		}
		if c := res.fields["connack"]; c != "4" && c != "5" {
			t.Errorf("connack = %s, want 4 or 5", c)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %s: it should stop at once, not retry until the deadline", d)
		}
	})
}
