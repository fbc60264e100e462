package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/claimsvc/claimsvc/internal/mqtt/mqtttest"
	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/syncbuf"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// service is one `claimsvc serve` run in-process through run().
type service struct {
	url    string
	out    *syncbuf.Buffer
	stop   func() error
	stopMu sync.Once
	apiKey string // sent by post and get, as a factory tool or an operator would; "" for none
}

// testAPIKey is the key the services of these tests accept; secureEnv
// configures it (as its digest) and a data key, as an operator must.
const testAPIKey = "TEST_API_KEY_CANARY_0123456789"

func secureEnv() map[string]string {
	sum := sha256.Sum256([]byte(testAPIKey))
	return map[string]string{"CLAIMSVC_API_KEYS": hex.EncodeToString(sum[:]), "CLAIMSVC_DATA_KEY": testDataKey}
}

// testDataKey is the data key of these tests' services (one key, so that a
// restarted service opens what the first run stored).
var testDataKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("k"), 32))

func newDataKey() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return base64.StdEncoding.EncodeToString(key)
}

// startService runs serve with an API key and a data key (secureEnv) plus
// env; an env value "" removes a setting.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	addr := freeAddr(t)
	base := map[string]string{"CLAIMSVC_HTTP_ADDR": addr, "CLAIMSVC_LOG_LEVEL": "debug", "CLAIMSVC_SHUTDOWN_TIMEOUT": "4s"}
	for k, v := range secureEnv() {
		base[k] = v
	}
	for k, v := range env {
		base[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, func(k string) string { return base[k] }, out, out) }()
	s := &service{url: "http://" + addr, out: out}
	if base["CLAIMSVC_API_KEYS"] != "" {
		s.apiKey = testAPIKey
	}
	var runErr error
	s.stop = func() error {
		s.stopMu.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = s.stop() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if res, err := http.Get(s.url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("service not ready:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *service) post(t *testing.T, path string, header map[string]string, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if s.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(res.Body).Decode(&v)
	return res.StatusCode, v
}

func (s *service) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+path, nil)
	if s.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (s *service) waitStatus(t *testing.T, id, want string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, body := s.get(t, "/claims/"+id)
		var v map[string]any
		_ = json.Unmarshal([]byte(body), &v)
		if v["status"] == want {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim %s: %s, want status %s within %s", id, body, want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--help"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"serve", "migrate", "healthcheck", "version", "rekey", "CLAIMSVC_DATABASE_URL_FILE", "CLAIMSVC_DATABASE_URL",
		"--mqtt-url", "CLAIMSVC_DATA_KEY", "CLAIMSVC_TB_CLAIM_HOLD", "CLAIMSVC_MAX_PENDING_AGE", "--demo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %s", want)
		}
	}
	out.Reset()
	if err := run(t.Context(), []string{"serve", "--help"}, func(string) string { return "" }, &out, &out); !errors.Is(err, flag.ErrHelp) ||
		!strings.Contains(out.String(), "CLAIMSVC_WORKERS") {
		t.Fatalf("serve --help: %v\n%s", err, out.String())
	}
	for _, cmd := range []string{"migrate", "rekey"} { // each names itself, not serve
		out.Reset()
		if err := run(t.Context(), []string{cmd, "--help"}, func(string) string { return "" }, &out, &out); !errors.Is(err, flag.ErrHelp) ||
			!strings.HasPrefix(out.String(), "Usage: claimsvc "+cmd+" ") || strings.Contains(out.String(), "Runs the HTTP API") {
			t.Errorf("%s --help: %v\n%s", cmd, err, out.String())
		}
	}
	out.Reset()
	if err := run(t.Context(), []string{"version"}, nil, &out, &out); err != nil || !strings.HasPrefix(out.String(), "claimsvc ") {
		t.Fatalf("version: %v %s", err, out.String())
	}
	if err := run(t.Context(), []string{"frobnicate"}, nil, &out, &out); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	var out bytes.Buffer
	env := map[string]string{"CLAIMSVC_DATABASE_URL": db}
	if err := run(t.Context(), []string{"migrate"}, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "0001_claims.sql") {
		t.Fatalf("migrate did not report what it applied:\n%s", out.String())
	}
}

// TestFullClaimLeaksNoSecrets runs claims end to end, including a rejected
// token, a 409, validation errors and a delivery after a broker outage, and
// greps everything the service wrote and answered for the tokens and secrets.
func TestFullClaimLeaksNoSecrets(t *testing.T) {
	t.Parallel()
	const (
		token    = "TOKENxLEAKxCANARYx0001"
		secret   = "SECRETxLEAKxCANARYx0001"
		badToken = "TOKENxLEAKxCANARYxBAD9"
	)
	brokerAddr := freeAddr(t) // down at first
	svc := startService(t, map[string]string{
		"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + brokerAddr,
		"CLAIMSVC_MQTT_CONNECT_TIMEOUT": "1s",
	})
	var answers strings.Builder
	status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": token}, `{"secretKey":"`+secret+`","durationMs":60000}`)
	if status != 202 {
		t.Fatalf("create: %d %v", status, v)
	}
	id := v["id"].(string)
	fmt.Fprint(&answers, v)
	// A failed attempt while the broker is down.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := svc.get(t, "/claims/"+id)
		if strings.Contains(body, `"lastError":"`) {
			answers.WriteString(body)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt while the broker was down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b := mqtttest.Start(t, brokerAddr, func(u string) bool { return u == token })
	got := svc.waitStatus(t, id, "delivered", 10*time.Second)
	fmt.Fprint(&answers, got)
	if got["attempts"].(float64) < 2 {
		t.Fatalf("attempts %v, want > 1", got["attempts"])
	}
	m := b.WaitFor(t, 1, time.Second)[0]
	if m.Username != token || m.Topic != "v1/devices/me/claim" || string(m.Payload) != `{"secretKey":"`+secret+`","durationMs":60000}` {
		t.Fatalf("delivered %+v", m)
	}

	// A refused token ends rejected after one attempt.
	status, v = svc.post(t, "/devices/"+badToken+"/claim", map[string]string{"Prefer": "wait=5"}, `{"secretKey":"`+secret+`"}`)
	fmt.Fprint(&answers, v)
	if status != 200 || v["status"] != "rejected" || v["attempts"] != float64(1) {
		t.Fatalf("rejected: %d %v", status, v)
	}
	// A conflicting claim and some bad input.
	for _, req := range []struct{ path, body string }{
		{"/devices/" + token + "/claim", `{"secretKey":"other-` + secret + `"}`},
		{"/devices/" + token + "/claim", `{"secretKey":"` + secret + `","durationMs":"x"}`},
		{"/devices/" + token + "/claim", `{"secretKey":"` + secret + `","bogus":1}`},
		{"/devices/" + token + "%2F/claim", `{"secretKey":"` + secret + `"}`},
	} {
		status, v := svc.post(t, req.path, nil, req.body)
		if status < 400 {
			t.Fatalf("%s %s: %d", req.path, req.body, status)
		}
		fmt.Fprint(&answers, v)
	}
	_, metricsText := svc.get(t, "/metrics")
	_, list := svc.get(t, "/devices/"+token+"/claims")
	_, events := svc.get(t, "/claims/"+id+"/events")
	if err := svc.stop(); err != nil {
		t.Fatal(err)
	}
	everything := svc.out.String() + answers.String() + metricsText + list + events
	for _, s := range []string{"LEAKxCANARY", token, secret, badToken, testAPIKey, testDataKey} {
		if strings.Contains(everything, s) {
			i := strings.Index(everything, s)
			t.Fatalf("%q leaked: …%s…", s, everything[max(0, i-200):min(len(everything), i+100)])
		}
	}
	for _, want := range []string{`"msg":"claim delivered"`, `"msg":"claim rejected`, `"route":"/devices/{token}/claim"`, `"msg":"stopped"`} {
		if !strings.Contains(svc.out.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

func TestPendingClaimsAreDeliveredAfterRestart(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	brokerAddr := freeAddr(t) // the broker is down during the first run
	env := map[string]string{"CLAIMSVC_DATABASE_URL": db, "CLAIMSVC_MQTT_URL": "tcp://" + brokerAddr, "CLAIMSVC_MQTT_CONNECT_TIMEOUT": "1s"}
	first := startService(t, env)
	var ids []string
	for i := range 10 {
		status, v := first.post(t, fmt.Sprintf("/devices/RESTART_TOKEN_%04d/claim", i), nil, `{"secretKey":"k"}`)
		if status != 202 {
			t.Fatalf("create: %d %v", status, v)
		}
		ids = append(ids, v["id"].(string))
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	b := mqtttest.Start(t, brokerAddr, nil)
	second := startService(t, env)
	for _, id := range ids {
		second.waitStatus(t, id, "delivered", 15*time.Second)
	}
	if n := len(b.Messages()); n < len(ids) {
		t.Fatalf("%d messages for %d claims", n, len(ids))
	}
}

// TestLocalMosquitto is the acceptance check: a claim against the
// running service with the local Mosquitto ends delivered within a second and
// a subscriber on v1/devices/me/claim sees the exact payload.
func TestLocalMosquitto(t *testing.T) {
	t.Parallel()
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://127.0.0.1:1883").SetClientID("claimsvc-test-sub").
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(2 * time.Second))
	if tok := sub.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		msg := fmt.Sprintf("local Mosquitto at 127.0.0.1:1883 is unreachable (start it: mosquitto -d -c /etc/mosquitto/mosquitto.conf): %v", tok.Error())
		if getenvCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	defer sub.Disconnect(100)
	payload := fmt.Sprintf(`{"secretKey":"mosq-%d","durationMs":60000}`, time.Now().UnixNano())
	got := make(chan string, 1)
	// The broker is shared: keep only our claim, never block paho's callback.
	if tok := sub.Subscribe("v1/devices/me/claim", 1, func(_ paho.Client, m paho.Message) {
		if string(m.Payload()) == payload {
			select {
			case got <- payload:
			default:
			}
		}
	}); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://127.0.0.1:1883"})
	start := time.Now()
	status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "MOSQUITTO_TEST_TOKEN"}, payload)
	if status != 202 {
		t.Fatalf("create: %d %v", status, v)
	}
	svc.waitStatus(t, v["id"].(string), "delivered", time.Second)
	t.Logf("delivered %s after the request", time.Since(start))
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatalf("subscriber did not see %s", payload)
	}
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://127.0.0.1:1"})
	var out bytes.Buffer
	if err := run(t.Context(), []string{"healthcheck", "--url", svc.url + "/readyz"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatalf("healthcheck of a ready service: %v", err)
	}
	addr := strings.TrimPrefix(svc.url, "http://")
	if err := run(t.Context(), []string{"healthcheck"}, func(k string) string { return map[string]string{"CLAIMSVC_HTTP_ADDR": addr}[k] }, &out, &out); err != nil {
		t.Fatalf("healthcheck via CLAIMSVC_HTTP_ADDR: %v", err)
	}
	if err := run(t.Context(), []string{"healthcheck", "--url", "http://" + freeAddr(t) + "/readyz"}, func(string) string { return "" }, &out, &out); err == nil {
		t.Fatal("healthcheck of nothing succeeded")
	}
}
