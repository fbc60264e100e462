package main

// End-to-end tests of the three deliveries and what becomes of a delivered
// claim (docs/design.md §9): claimsvc with real PostgreSQL, delivering to the
// ThingsBoard emulator over its real MQTT transport, HTTP device API and REST
// API, and customers claiming through the emulator's REST API.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/tbemu"
)

const pollInterval = time.Second

// tbEnv points a service at emu's MQTT transport and REST API, as the demo's
// tenant administrator, with a 1 s poll interval.
func tbEnv(t *testing.T, emu *tbemu.Emulator) map[string]string {
	return map[string]string{
		"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + emu.MQTTAddr(),
		"CLAIMSVC_TB_URL": emu.HTTPURL(), "CLAIMSVC_TB_USERNAME": "tenant@thingsboard.org", "CLAIMSVC_TB_PASSWORD": "tenant",
		"CLAIMSVC_TB_POLL_INTERVAL": pollInterval.String(), "CLAIMSVC_RATE_LIMIT_TOKEN": "off",
	}
}

// customer is a ThingsBoard customer user claiming devices through the
// emulator's REST API, as the ThingsBoard UI does.
type customer struct {
	t    *testing.T
	base string
	jwt  string
}

func customerOf(t *testing.T, emu *tbemu.Emulator) *customer {
	return loginAs(t, emu, "customerA@thingsboard.org", "customer")
}

// loginAs logs in to the emulator's REST API as a ThingsBoard user.
func loginAs(t *testing.T, emu *tbemu.Emulator, user, password string) *customer {
	c := &customer{t: t, base: emu.HTTPURL()}
	status, body := c.call("POST", "/api/auth/login", map[string]string{"username": user, "password": password})
	var login struct{ Token string }
	if status != 200 || json.Unmarshal([]byte(body), &login) != nil {
		t.Fatalf("login as %s: %d %s", user, status, body)
	}
	c.jwt = login.Token
	return c
}

func (c *customer) call(method, path string, body any) (int, string) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(c.t.Context(), method, c.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if c.jwt != "" {
		req.Header.Set("X-Authorization", "Bearer "+c.jwt)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(out))
}

// claim types the device name and secret, as a customer does.
func (c *customer) claim(device, secret string) (int, string) {
	return c.call("POST", "/api/customer/device/"+url.PathEscape(device)+"/claim", map[string]string{"secretKey": secret})
}

func claimBody(secret, delivery, device string, durationMs int64) string {
	b, _ := json.Marshal(map[string]any{"secretKey": secret, "delivery": delivery, "deviceName": device, "durationMs": durationMs})
	return string(b)
}

// An attribute claim of 7 days: a customer's typo does not stop the right
// secret afterwards (the attribute is not evicted), and claimsvc sees the
// customer within two poll intervals.
func TestAttributeClaimSurvivesATypoAndIsClaimed(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "127.0.0.1:0")
	svc := startService(t, tbEnv(t, emu))
	status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "DHT11_DEMO_TOKEN", "Prefer": "wait=5"},
		claimBody("attr-secret-1", "attribute", "DHT11 Demo Device", 7*24*3600*1000))
	if status != 200 || v["status"] != "delivered" || v["delivery"] != "attribute" || v["deviceName"] != "DHT11 Demo Device" {
		t.Fatalf("claim: %d %v", status, v)
	}
	expires, _ := time.Parse(time.RFC3339Nano, v["expiresAt"].(string))
	if d := time.Until(expires); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour {
		t.Fatalf("expiresAt %v, want 7 days from now", expires)
	}
	cust := customerOf(t, emu)
	if code, body := cust.claim("DHT11 Demo Device", "typo"); code != 400 || body != `"FAILURE"` {
		t.Fatalf("a wrong secret: %d %s", code, body)
	}
	if code, body := cust.claim("DHT11 Demo Device", "attr-secret-1"); code != 200 || !strings.Contains(body, `"SUCCESS"`) {
		t.Fatalf("the right secret after a typo: %d %s", code, body)
	}
	at := time.Now()
	got := svc.waitStatus(t, v["id"].(string), "claimed", 2*pollInterval+time.Second)
	t.Logf("claimed seen %s after the customer claimed (poll interval %s)", time.Since(at).Round(time.Millisecond), pollInterval)
	if got["claimedAt"] == nil || got["customerId"] == nil {
		t.Fatalf("claimed: %v", got)
	}
	_, events := svc.get(t, "/claims/"+v["id"].(string)+"/events")
	if !strings.Contains(events, `"kind":"claimed"`) {
		t.Fatalf("no claimed event: %s", events)
	}
	_, metrics := svc.get(t, "/metrics")
	if !strings.Contains(metrics, `claimsvc_claim_transitions_total{to="claimed"} 1`) {
		t.Fatal("no claimed transition in the metrics")
	}
}

// A short attribute claim that nobody uses expires, and claimsvc deletes its
// claimingData attribute in ThingsBoard.
func TestShortAttributeClaimExpires(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "127.0.0.1:0")
	svc := startService(t, tbEnv(t, emu))
	status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "RASPBERRY_PI_DEMO_TOKEN", "Prefer": "wait=5"},
		claimBody("short-1", "attribute", "Raspberry Pi Demo Device", 1500))
	if status != 200 || v["status"] != "delivered" {
		t.Fatalf("claim: %d %v", status, v)
	}
	svc.waitStatus(t, v["id"].(string), "expired", 1500*time.Millisecond+2*pollInterval+time.Second)
	dev, ok := emu.Device("Raspberry Pi Demo Device")
	if !ok {
		t.Fatal("no device")
	}
	tenant := tenantOf(t, emu)
	if code, body := tenant.call("GET", "/api/plugins/telemetry/DEVICE/"+dev.ID+"/values/attributes/SERVER_SCOPE", nil); code != 200 || strings.Contains(body, "claimingData") {
		t.Fatalf("the attribute of an expired claim: %d %s", code, body)
	}
	if code, body := customerOf(t, emu).claim("Raspberry Pi Demo Device", "short-1"); code != 400 || body != `"FAILURE"` {
		t.Fatalf("claiming an expired claim: %d %s", code, body)
	}
}

func tenantOf(t *testing.T, emu *tbemu.Emulator) *customer {
	return loginAs(t, emu, "tenant@thingsboard.org", "tenant")
}

// The http delivery: ThingsBoard's HTTP device API takes the claim and a
// customer can use it; a device-side claim longer than ThingsBoard's claim
// cache keeps it is refused, pointing at attribute; DELETE revokes a
// delivered attribute claim.
func TestHTTPDeliveryAndTheDurationRule(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "127.0.0.1:0")
	svc := startService(t, tbEnv(t, emu))
	status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "T1_TEST_TOKEN", "Prefer": "wait=5"},
		claimBody("http-secret-1", "http", "Thermostat T1", 600000))
	if status != 200 || v["status"] != "delivered" || v["delivery"] != "http" {
		t.Fatalf("http claim: %d %v", status, v)
	}
	if err := emu.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, body := customerOf(t, emu).claim("Thermostat T1", "http-secret-1"); code != 200 || !strings.Contains(body, "SUCCESS") {
		t.Fatalf("customer claim: %d %s", code, body)
	}
	svc.waitStatus(t, v["id"].(string), "claimed", 2*pollInterval+time.Second)

	for _, delivery := range []string{"mqtt", "http"} {
		status, v = svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "T2_TEST_TOKEN"},
			claimBody("k", delivery, "Thermostat T2", 25*3600*1000))
		if status != 422 || !strings.Contains(fmt.Sprint(v["errors"]), "attribute") {
			t.Fatalf("%s claim of 25 h: %d %v", delivery, status, v)
		}
	}

	status, v = svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "T2_TEST_TOKEN", "Prefer": "wait=5"},
		claimBody("revoke-me", "attribute", "Thermostat T2", 3600*1000))
	if status != 200 || v["status"] != "delivered" {
		t.Fatalf("attribute claim: %d %v", status, v)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "DELETE", svc.url+"/claims/"+v["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+svc.apiKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"status":"cancelled"`) {
		t.Fatalf("revoke: %d %s", res.StatusCode, body)
	}
	if code, body := customerOf(t, emu).claim("Thermostat T2", "revoke-me"); code != 400 || body != `"FAILURE"` {
		t.Fatalf("claiming a revoked claim: %d %s", code, body)
	}
}

// ThingsBoard's REST API away: attribute claims wait (202, pending), and are
// all delivered once it answers; nothing is lost.
func TestRESTOutageDelaysAndLosesNothing(t *testing.T) {
	t.Parallel()
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	env := map[string]string{
		"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + mqttAddr,
		"CLAIMSVC_TB_URL": "http://" + httpAddr, "CLAIMSVC_TB_USERNAME": "tenant@thingsboard.org", "CLAIMSVC_TB_PASSWORD": "tenant",
		"CLAIMSVC_TB_POLL_INTERVAL": pollInterval.String(), "CLAIMSVC_RATE_LIMIT_TOKEN": "off",
	}
	svc := startService(t, env)
	devices := map[string]string{"DHT11_DEMO_TOKEN": "DHT11 Demo Device", "RASPBERRY_PI_DEMO_TOKEN": "Raspberry Pi Demo Device",
		"T1_TEST_TOKEN": "Thermostat T1"}
	ids := map[string]string{}
	for token, name := range devices {
		status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": token}, claimBody("s-"+token, "attribute", name, 3600*1000))
		if status != 202 || v["status"] != "pending" {
			t.Fatalf("claim while ThingsBoard is away: %d %v", status, v)
		}
		ids[name] = v["id"].(string)
	}
	time.Sleep(1500 * time.Millisecond) // a failed attempt each
	_, ready := svc.get(t, "/readyz")
	if !strings.Contains(ready, `"thingsboard_rest":{"up":false`) {
		t.Fatalf("/readyz does not show ThingsBoard's REST API down: %s", ready)
	}
	cfg := tbemu.DefaultConfig()
	cfg.Demo, cfg.MQTTAddr, cfg.HTTPAddr = true, mqttAddr, httpAddr
	emu, err := tbemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	cust := customerOf(t, emu)
	for name, id := range ids {
		got := svc.waitStatus(t, id, "delivered", 20*time.Second)
		if got["attempts"].(float64) < 2 {
			t.Fatalf("%s: attempts %v, want the failed ones counted", name, got["attempts"])
		}
		token := ""
		for tok, n := range devices {
			if n == name {
				token = tok
			}
		}
		if code, body := cust.claim(name, "s-"+token); code != 200 || !strings.Contains(body, "SUCCESS") {
			t.Fatalf("%s: customer claim: %d %s", name, code, body)
		}
	}
}

// ThingsBoard restarts between the factory's claim and the customer's: the
// claim cache is gone, the database is not. An attribute claim survives; a
// device-side claim does not (which is why attribute exists).
func TestAttributeClaimSurvivesAThingsBoardRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	start := func() *tbemu.Emulator {
		cfg := tbemu.DefaultConfig()
		cfg.Demo, cfg.DataDir, cfg.MQTTAddr, cfg.HTTPAddr = true, dir, mqttAddr, httpAddr
		emu, err := tbemu.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return emu
	}
	emu := start()
	svc := startService(t, tbEnv(t, emu))
	status, attr := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "DHT11_DEMO_TOKEN", "Prefer": "wait=5"},
		claimBody("survives-1", "attribute", "DHT11 Demo Device", 7*24*3600*1000))
	if status != 200 || attr["status"] != "delivered" {
		t.Fatalf("attribute claim: %d %v", status, attr)
	}
	status, dev := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "RASPBERRY_PI_DEMO_TOKEN", "Prefer": "wait=5"},
		claimBody("lost-1", "mqtt", "Raspberry Pi Demo Device", 3600*1000))
	if status != 200 || dev["status"] != "delivered" {
		t.Fatalf("mqtt claim: %d %v", status, dev)
	}
	if err := emu.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := emu.Close(); err != nil {
		t.Fatal(err)
	}
	emu = start() // the same data dir: devices, users, attributes; an empty claim cache
	t.Cleanup(func() { _ = emu.Close() })
	cust := customerOf(t, emu)
	if code, body := cust.claim("Raspberry Pi Demo Device", "lost-1"); code != 400 || body != `"FAILURE"` {
		t.Fatalf("the device-side claim after a restart: %d %s (ThingsBoard forgets its claim cache)", code, body)
	}
	if code, body := cust.claim("DHT11 Demo Device", "survives-1"); code != 200 || !strings.Contains(body, "SUCCESS") {
		t.Fatalf("the attribute claim after a restart: %d %s", code, body)
	}
	svc.waitStatus(t, attr["id"].(string), "claimed", 2*pollInterval+time.Second)
}

// 1,500 devices in one factory run: as attribute claims every one is
// claimable; as mqtt claims, ThingsBoard's 1,000-entry claim cache keeps
// only 1,000 of them. The test shows the difference.
func TestBatchOf1500AttributeVersusMQTT(t *testing.T) {
	t.Parallel()
	const n = 1500
	emu := startEmulator(t, "127.0.0.1:0") // ThingsBoard's default claim cache: 1,000 entries
	env := tbEnv(t, emu)
	env["CLAIMSVC_TB_POLL_INTERVAL"] = "1h" // no need to track here
	svc := startService(t, env)
	claimable := map[string]int{}
	for _, delivery := range []string{"attribute", "mqtt"} {
		items := make([]map[string]any, n)
		for i := range n {
			name := fmt.Sprintf("line-%s-%04d", delivery, i)
			token := fmt.Sprintf("TOKEN_%s_%04d", strings.ToUpper(delivery), i)
			if _, err := emu.AddDevice(name, token); err != nil {
				t.Fatal(err)
			}
			items[i] = map[string]any{"token": token, "secretKey": "s-" + name, "delivery": delivery, "deviceName": name,
				"durationMs": 3600 * 1000}
		}
		var ids []string
		for from := 0; from < n; from += 1000 { // 1,000 claims per batch at most
			body, _ := json.Marshal(items[from:min(from+1000, n)])
			status, v := svc.post(t, "/claims:batch", nil, string(body))
			if status != 200 || v["created"] != float64(min(1000, n-from)) {
				t.Fatalf("%s batch: %d created %v failed %v", delivery, status, v["created"], v["failed"])
			}
			for _, r := range v["results"].([]any) {
				ids = append(ids, r.(map[string]any)["claim"].(map[string]any)["id"].(string))
			}
		}
		deadline := time.Now().Add(90 * time.Second)
		for _, id := range ids {
			svc.waitStatus(t, id, "delivered", time.Until(deadline))
		}
		if err := emu.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		cust := customerOf(t, emu)
		for i := range n {
			name := fmt.Sprintf("line-%s-%04d", delivery, i)
			if code, _ := cust.claim(name, "s-"+name); code == 200 {
				claimable[delivery]++
			}
		}
	}
	t.Logf("claimable by a customer: attribute %d of %d, mqtt %d of %d (claim cache: 1,000 entries)",
		claimable["attribute"], n, claimable["mqtt"], n)
	if claimable["attribute"] != n {
		t.Fatalf("attribute: %d of %d claimable", claimable["attribute"], n)
	}
	if claimable["mqtt"] > 1000 {
		t.Fatalf("mqtt: %d of %d claimable, but ThingsBoard's claim cache holds 1,000", claimable["mqtt"], n)
	}
}
