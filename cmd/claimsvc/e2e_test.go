package main

// End-to-end: claimsvc (real PostgreSQL) delivering to the ThingsBoard
// emulator, then a customer claiming through the emulator's REST API, as a
// factory and a customer would.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/tbemu"
)

func startEmulator(t *testing.T, mqttAddr string) *tbemu.Emulator {
	t.Helper()
	cfg := tbemu.DefaultConfig()
	cfg.Demo = true
	cfg.MQTTAddr, cfg.HTTPAddr = mqttAddr, "127.0.0.1:0"
	emu, err := tbemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	return emu
}

// customerClaim logs in as Customer A's user and claims the device by name,
// as the ThingsBoard UI does; it returns the HTTP status and the body.
func customerClaim(t *testing.T, emu *tbemu.Emulator, device, secret string) (int, string) {
	t.Helper()
	if err := emu.Flush(t.Context()); err != nil { // registration runs after PUBACK, asynchronously
		t.Fatal(err)
	}
	post := func(path, jwt string, body any) (int, []byte) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", emu.HTTPURL()+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if jwt != "" {
			req.Header.Set("X-Authorization", "Bearer "+jwt)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		return res.StatusCode, out
	}
	status, body := post("/api/auth/login", "", map[string]string{"username": "customerA@thingsboard.org", "password": "customer"})
	var login struct{ Token string }
	if status != 200 || json.Unmarshal(body, &login) != nil {
		t.Fatalf("login: %d %s", status, body)
	}
	status, body = post("/api/customer/device/"+url.PathEscape(device)+"/claim", login.Token, map[string]string{"secretKey": secret})
	return status, strings.TrimSpace(string(body))
}

func TestEndToEndCustomerOwnsTheDevice(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "127.0.0.1:0")
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + emu.MQTTAddr()})

	status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "DHT11_DEMO_TOKEN", "Prefer": "wait=5"},
		`{"secretKey":"factory-secret-1","durationMs":600000}`)
	if status != 200 || v["status"] != "delivered" {
		t.Fatalf("claim: %d %v", status, v)
	}
	code, body := customerClaim(t, emu, "DHT11 Demo Device", "factory-secret-1")
	if code != 200 || !strings.Contains(body, `"response":"SUCCESS"`) {
		t.Fatalf("customer claim: %d %s", code, body)
	}
	// ThingsBoard's answer to a second attempt: the device is taken.
	if code, body := customerClaim(t, emu, "DHT11 Demo Device", "factory-secret-1"); code != 400 || body != `"CLAIMED"` {
		t.Fatalf("second customer claim: %d %s", code, body)
	}

	// An unknown token: ThingsBoard refuses the connection; the claim ends rejected after one attempt.
	status, v = svc.post(t, "/devices/NOT_A_DEVICE_TOKEN_1/claim", map[string]string{"Prefer": "wait=5"}, `{"secretKey":"x"}`)
	if status != 200 || v["status"] != "rejected" || v["attempts"] != float64(1) {
		t.Fatalf("unknown token: %d %v", status, v)
	}
}

func TestEndToEndThingsBoardDownThenUp(t *testing.T) {
	t.Parallel()
	mqttAddr := freeAddr(t) // ThingsBoard is not running yet
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + mqttAddr,
		"CLAIMSVC_MQTT_CONNECT_TIMEOUT": "1s"})
	ids := map[string]string{}
	for token, secret := range map[string]string{"DHT11_DEMO_TOKEN": "s-dht", "RASPBERRY_PI_DEMO_TOKEN": "s-rpi", "T1_TEST_TOKEN": "s-t1"} {
		status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": token}, `{"secretKey":"`+secret+`"}`)
		if status != 202 {
			t.Fatalf("%d %v", status, v)
		}
		ids[token] = v["id"].(string)
	}
	time.Sleep(1500 * time.Millisecond) // a failed attempt opens the breaker: the others are held
	emu := startEmulator(t, mqttAddr)
	total := 0.0
	for _, id := range ids {
		got := svc.waitStatus(t, id, "delivered", 15*time.Second)
		if got["attempts"].(float64) > 2 {
			t.Fatalf("attempts %v: the breaker should hold a claim after the first attempt that found ThingsBoard down", got["attempts"])
		}
		total += got["attempts"].(float64)
	}
	if total < float64(len(ids))+1 {
		t.Fatalf("%v attempts for %d claims: no attempt found ThingsBoard down", total, len(ids))
	}
	if code, body := customerClaim(t, emu, "Raspberry Pi Demo Device", "s-rpi"); code != 200 || !strings.Contains(body, "SUCCESS") {
		t.Fatalf("customer claim: %d %s", code, body)
	}
}

// TestEndToEndHoldRule documents why claimsvc answers 409: ThingsBoard keeps
// the first claim of a device in its cache (put-if-absent) and silently
// ignores a second one with another secret. Forcing the second is delivered
// (PUBACK) but has no effect, and a customer typing the new secret gets
// FAILURE, which also evicts the first claim: the device must claim again.
func TestEndToEndHoldRule(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "127.0.0.1:0")
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + emu.MQTTAddr()})
	hdr := map[string]string{"X-Device-Token": "T1_TEST_TOKEN", "Prefer": "wait=5"}

	status, first := svc.post(t, "/devices/claim", hdr, `{"secretKey":"first-secret"}`)
	if status != 200 || first["status"] != "delivered" {
		t.Fatalf("first: %d %v", status, first)
	}
	status, conflict := svc.post(t, "/devices/claim", hdr, `{"secretKey":"second-secret"}`)
	if status != 409 || conflict["blockingClaimId"] != first["id"] {
		t.Fatalf("second without force: %d %v", status, conflict)
	}
	status, forced := svc.post(t, "/devices/claim?force=true", hdr, `{"secretKey":"second-secret"}`)
	if status != 200 || forced["status"] != "delivered" {
		t.Fatalf("second with force: %d %v", status, forced)
	}
	// Delivered, yet ThingsBoard still holds the first secret only.
	if code, body := customerClaim(t, emu, "Thermostat T1", "second-secret"); code != 400 || body != `"FAILURE"` {
		t.Fatalf("claim with the forced secret: %d %s (want 400 \"FAILURE\")", code, body)
	}
	// ... and that wrong secret evicted the first claim too.
	if code, body := customerClaim(t, emu, "Thermostat T1", "first-secret"); code != 400 || body != `"FAILURE"` {
		t.Fatalf("claim with the first secret after the eviction: %d %s", code, body)
	}
}

// TestEndToEndWrongSecretPlaybook is the README's "a customer typed a wrong
// secret" playbook: the typo drops the delivered device-side claim in
// ThingsBoard, the 409 says a new claim is then needed and how to send it,
// and the forced attribute claim it suggests survives the next typo.
func TestEndToEndWrongSecretPlaybook(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "127.0.0.1:0")
	db := pgtest.NewDatabase(t)
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": db, "CLAIMSVC_MQTT_URL": "tcp://" + emu.MQTTAddr(),
		"CLAIMSVC_TB_URL": emu.HTTPURL(), "CLAIMSVC_TB_API_KEY": emu.DemoAPIKey()})
	hdr := map[string]string{"X-Device-Token": "T2_TEST_TOKEN", "Prefer": "wait=5"}
	status, first := svc.post(t, "/devices/claim", hdr, `{"secretKey":"label-secret","deviceName":"Thermostat T2"}`)
	if status != 200 || first["status"] != "delivered" {
		t.Fatalf("first: %d %v", status, first)
	}
	// The customer mistypes: ThingsBoard drops the cached claim.
	if code, body := customerClaim(t, emu, "Thermostat T2", "label-secert"); code != 400 || body != `"FAILURE"` {
		t.Fatalf("typo: %d %s", code, body)
	}
	// A new claim is refused by the hold rule, and the refusal says what to do.
	status, conflict := svc.post(t, "/devices/claim", hdr, `{"secretKey":"label-secret-2","deviceName":"Thermostat T2"}`)
	detail, _ := conflict["detail"].(string)
	if status != 409 || conflict["blockingClaimId"] != first["id"] || !strings.Contains(detail, "wrong secret") ||
		!strings.Contains(detail, "?force=true") || !strings.Contains(detail, `"attribute"`) {
		t.Fatalf("409 without a way forward: %d %v", status, conflict)
	}
	// The way it names: force, as an attribute claim.
	status, again := svc.post(t, "/devices/claim?force=true", hdr,
		`{"secretKey":"label-secret-2","deviceName":"Thermostat T2","delivery":"attribute","durationMs":604800000}`)
	if status != 200 || again["status"] != "delivered" || again["delivery"] != "attribute" {
		t.Fatalf("forced attribute claim: %d %v", status, again)
	}
	// Another typo does not drop an attribute claim; the right secret then works.
	if code, body := customerClaim(t, emu, "Thermostat T2", "typo-again"); code != 400 || body != `"FAILURE"` {
		t.Fatalf("second typo: %d %s", code, body)
	}
	if code, body := customerClaim(t, emu, "Thermostat T2", "label-secret-2"); code != 200 || !strings.Contains(body, "SUCCESS") {
		t.Fatalf("the customer with the new secret: %d %s", code, body)
	}
}

// TestDemoMode is the README's first command: serve --demo runs the emulator
// in-process with no setup at all (no API key, no data key), says loudly
// that it is open, and a claim goes from curl to "customer owns the device".
func TestDemoMode(t *testing.T) {
	t.Parallel()
	restAddr := freeAddr(t)
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_DEMO": "true",
		"CLAIMSVC_DEMO_MQTT_ADDR": freeAddr(t), "CLAIMSVC_DEMO_HTTP_ADDR": restAddr,
		"CLAIMSVC_API_KEYS": "", "CLAIMSVC_DATA_KEY": ""})
	wants := []string{"demo mode", "INSECURE: no API keys (--demo", "INSECURE: no data key"}
	for _, d := range tbemu.DemoClaimable() { // the log names every device a customer can claim
		wants = append(wants, d.Name+" ("+d.Token+")")
	}
	for _, want := range wants {
		if !strings.Contains(svc.out.String(), want) {
			t.Fatalf("the log does not say %q:\n%s", want, svc.out.String())
		}
	}
	status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "DHT11_DEMO_TOKEN", "Prefer": "wait=5"}, `{"secretKey":"demo-secret"}`)
	if status != 200 || v["status"] != "delivered" {
		t.Fatalf("claim: %d %v", status, v)
	}
	rest := func(path, jwt, body string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+restAddr+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if jwt != "" {
			req.Header.Set("X-Authorization", "Bearer "+jwt)
		}
		var res *http.Response
		var err error
		for range 20 { // registration follows the PUBACK asynchronously
			if res, err = http.DefaultClient.Do(req.Clone(t.Context())); err != nil {
				t.Fatal(err)
			}
			req.Body = io.NopCloser(strings.NewReader(body))
			if res.StatusCode != 400 || jwt == "" {
				break
			}
			res.Body.Close()
			time.Sleep(50 * time.Millisecond)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	_, body := rest("/api/auth/login", "", `{"username":"customerA@thingsboard.org","password":"customer"}`)
	var login struct{ Token string }
	_ = json.Unmarshal([]byte(body), &login)
	if code, body := rest("/api/customer/device/DHT11%20Demo%20Device/claim", login.Token, `{"secretKey":"demo-secret"}`); code != 200 || !strings.Contains(body, "SUCCESS") {
		t.Fatalf("customer claim: %d %s", code, body)
	}
}
