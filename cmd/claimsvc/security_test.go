package main

// docs/security.md's defences as an operator meets them: the binary's own
// start-up rules, its secrets, pprof, and claimsvc rekey.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/mqtt/mqtttest"
	"github.com/claimsvc/claimsvc/internal/pgtest"
)

// runOnce runs one command with env and returns its output and error.
func runOnce(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, args, func(k string) string { return env[k] }, &out, &out)
	return out.String(), err
}

// Item 1: serve does not start open. Without API keys or without a data key
// it refuses, naming what to set and the explicit opt-outs; secrets given as
// flags are refused before anything else.
func TestServeRefusesToStartOpen(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	keys := secureEnv()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no API keys", map[string]string{"CLAIMSVC_DATABASE_URL": db, "CLAIMSVC_DATA_KEY": keys["CLAIMSVC_DATA_KEY"]}, nil, "CLAIMSVC_INSECURE_NO_API_KEYS"},
		{"no data key", map[string]string{"CLAIMSVC_DATABASE_URL": db, "CLAIMSVC_API_KEYS": keys["CLAIMSVC_API_KEYS"]}, nil, "CLAIMSVC_INSECURE_NO_DATA_KEY"},
		{"data key as a flag", nil, []string{"--data-key=" + testDataKey}, "CLAIMSVC_DATA_KEY_FILE"},
		{"database URL as a flag", nil, []string{"--database-url=" + db}, "CLAIMSVC_DATABASE_URL_FILE"},
	} {
		out, err := runOnce(t, tc.env, append([]string{"serve"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error()+out, testDataKey) {
			t.Errorf("%s: %v\n%s", tc.name, err, out)
		}
	}
}

// The explicit opt-outs start an open service and say so, in the log and in
// claimsvc_insecure_settings.
func TestInsecureOptOutsAreLoud(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://127.0.0.1:1",
		"CLAIMSVC_API_KEYS": "", "CLAIMSVC_DATA_KEY": "", "CLAIMSVC_INSECURE_NO_API_KEYS": "true", "CLAIMSVC_INSECURE_NO_DATA_KEY": "true"})
	for _, want := range []string{"INSECURE: no API keys (CLAIMSVC_INSECURE_NO_API_KEYS=true)", "INSECURE: no data key"} {
		if !strings.Contains(svc.out.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	_, m := svc.get(t, "/metrics")
	for _, want := range []string{`claimsvc_insecure_settings{setting="no_api_keys"} 1`, `claimsvc_insecure_settings{setting="no_data_key"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if status, _ := svc.get(t, "/claims"); status != 200 {
		t.Fatalf("the opt-out is open: GET /claims %d", status)
	}
	// With keys, the same route is closed, and a device still claims.
	keyed := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://127.0.0.1:1"})
	keyed.apiKey = ""
	if status, _ := keyed.get(t, "/claims"); status != 401 {
		t.Fatalf("GET /claims without a key: %d", status)
	}
	status, v := keyed.post(t, "/devices/claim", map[string]string{"X-Device-Token": "FIRMWARE_TOKEN_01", "Prefer": "wait=5"}, `{}`)
	if status != 202 {
		t.Fatalf("the firmware's call: %d %v", status, v)
	}
	if status, _ := keyed.get(t, "/claims/"+v["id"].(string)); status != 401 {
		t.Fatalf("GET /claims/{id} without a key: %d", status)
	}
	_, m = keyed.get(t, "/metrics")
	if !strings.Contains(m, `claimsvc_insecure_settings{setting="no_api_keys"} 0`) {
		t.Error("claimsvc_insecure_settings does not show 0 with keys")
	}
}

// Item 6: pprof serves no cmdline (it would print argv), and no profile
// shows the data key.
func TestPprofServesNoCmdline(t *testing.T) {
	t.Parallel()
	pprofAddr := freeAddr(t)
	startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://127.0.0.1:1",
		"CLAIMSVC_PPROF_ADDR": pprofAddr})
	get := func(path string) (int, string) {
		res, err := http.Get("http://" + pprofAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if status, _ := get("/debug/pprof/cmdline"); status != 404 {
		t.Fatalf("/debug/pprof/cmdline: %d", status)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=2", "/debug/pprof/heap?debug=1"} {
		status, body := get(p)
		if status != 200 || strings.Contains(body, testDataKey) || strings.Contains(body, testAPIKey) {
			t.Fatalf("%s: %d (or it shows a secret)", p, status)
		}
	}
}

// Item 4: a rotation with claimsvc rekey, and a tampered row that neither
// stops the start nor reaches the broker.
func TestRekeyCommandAndATamperedRow(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	oldKey, newKey := newDataKey(), newDataKey()
	brokerAddr := freeAddr(t) // down while the claims are taken
	env := map[string]string{"CLAIMSVC_DATABASE_URL": db, "CLAIMSVC_MQTT_URL": "tcp://" + brokerAddr,
		"CLAIMSVC_MQTT_CONNECT_TIMEOUT": "1s", "CLAIMSVC_DATA_KEY": oldKey}
	first := startService(t, env)
	ids := map[string]string{}
	for _, tok := range []string{"REKEY_TOKEN_0001", "REKEY_TOKEN_0002", "REKEY_TOKEN_SWAP"} {
		status, v := first.post(t, "/devices/claim", map[string]string{"X-Device-Token": tok}, `{"secretKey":"secret-`+tok+`"}`)
		if status != 202 {
			t.Fatalf("create: %d %v", status, v)
		}
		ids[tok] = v["id"].(string)
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `UPDATE claims SET token = secret, secret = token WHERE id = $1`, ids["REKEY_TOKEN_SWAP"]); err != nil {
		t.Fatal(err)
	}

	// The new key first, the old one after it.
	out, err := runOnce(t, map[string]string{"CLAIMSVC_DATABASE_URL": db, "CLAIMSVC_DATA_KEYS": newKey + "," + oldKey}, "rekey")
	if err == nil || !strings.Contains(err.Error(), "1 claims do not open") || !strings.Contains(err.Error(), ids["REKEY_TOKEN_SWAP"]) ||
		!strings.Contains(out, "rekey: 2 claims sealed again") {
		t.Fatalf("rekey: %v\n%s", err, out)
	}
	if out, err := runOnce(t, map[string]string{"CLAIMSVC_DATABASE_URL": db}, "rekey"); err == nil || !strings.Contains(err.Error(), "CLAIMSVC_DATA_KEYS") {
		t.Fatalf("rekey without keys: %v\n%s", err, out)
	}

	// The rekeyed claims go out; the tampered one does not open, is reported
	// by its id, and does not stop the start. (internal/store TestRekey shows
	// that the old key can then leave the keyring.)
	b := mqtttest.Start(t, brokerAddr, nil)
	env["CLAIMSVC_DATA_KEY"], env["CLAIMSVC_DATA_KEYS"] = "", newKey+","+oldKey
	second := startService(t, env)
	for _, tok := range []string{"REKEY_TOKEN_0001", "REKEY_TOKEN_0002"} {
		second.waitStatus(t, ids[tok], "delivered", 15*time.Second)
	}
	time.Sleep(500 * time.Millisecond)
	for _, m := range b.Messages() {
		if m.Username != "REKEY_TOKEN_0001" && m.Username != "REKEY_TOKEN_0002" {
			t.Fatalf("the broker saw user name %q", m.Username)
		}
	}
	_, body := second.get(t, "/claims/"+ids["REKEY_TOKEN_SWAP"])
	if !strings.Contains(body, `"status":"pending"`) || !strings.Contains(second.out.String(), "does not open") ||
		!strings.Contains(second.out.String(), ids["REKEY_TOKEN_SWAP"]) {
		t.Fatalf("the tampered claim: %s", body)
	}
}
