package tbemu

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDataDirRestart: with a data directory the emulator keeps what ThingsBoard keeps in its
// database (devices, credentials, customers, users, profiles, attributes, API keys, the JWT key)
// and starts with an empty claim cache, as ThingsBoard's Caffeine cache does after a restart.
func TestDataDirRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := DefaultConfig()
	cfg.MQTTAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Clock, cfg.Demo, cfg.DataDir = clock, true, dir
	e, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tenant := login(t, e, "tenant@thingsboard.org", "tenant")
	customer := login(t, e, "customerA@thingsboard.org", "customer")
	demoKey := e.DemoAPIKey()
	if demoKey == "" {
		t.Fatal("no demo API key")
	}
	// A device created over REST, a profile, a server-side claim and a device-side claim.
	if st, b := call(t, "POST", e.HTTPURL()+"/api/device?accessToken=KEPT_DEVICE_TOKEN", tenant, `{"name":"kept"}`); st != 200 {
		t.Fatalf("create device: %d %s", st, b)
	}
	pid, err := e.AddDeviceProfile(DeviceProfile{Name: "kept-profile", TransportType: "MQTT", SendAckOnValidationException: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddDeviceWithProfile("kept-acked", "KEPT_ACKED_TOKEN", pid); err != nil {
		t.Fatal(err)
	}
	kept, _ := e.Device("kept")
	exp := clock.Now().Add(48 * time.Hour).UnixMilli()
	if st, b := call(t, "POST", e.HTTPURL()+"/api/plugins/telemetry/DEVICE/"+kept.ID+"/attributes/SERVER_SCOPE", tenant,
		`{"claimingData":{"secretKey":"attr","expirationTime":`+itoa(exp)+`}}`); st != 200 {
		t.Fatalf("attribute: %d %s", st, b)
	}
	httpClaim(t, e, "T1_TEST_TOKEN", `{"secretKey":"cached"}`)
	flush(t, e)
	if !e.PendingClaim("Thermostat T1") {
		t.Fatal("claim not cached")
	}
	mqttAddr, httpAddr := e.MQTTAddr(), strings.TrimPrefix(e.HTTPURL(), "http://")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Kept-alive connections died with the server (a real restart does that to clients too).
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	info, err := os.Stat(filepath.Join(dir, stateFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v, want mode 0600", info, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}

	// Restart on the same addresses, as ThingsBoard comes back on its ports.
	cfg.MQTTAddr, cfg.HTTPAddr = mqttAddr, httpAddr
	e2, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e2.Close() })
	if e2.PendingClaim("Thermostat T1") || e2.ClaimCacheLen() != 0 {
		t.Fatal("the claim cache survived the restart")
	}
	if st, b := customerClaim(t, e2, customer, "Thermostat T1", "cached"); st != 400 || b != `"FAILURE"` {
		t.Fatalf("cached claim after restart: %d %s, want FAILURE (JWT from before the restart still valid)", st, b)
	}
	if st, b := customerClaim(t, e2, customer, "kept", "attr"); st != 200 {
		t.Fatalf("attribute claim after restart: %d %s", st, b)
	}
	if e2.DemoAPIKey() != demoKey {
		t.Fatal("the demo API key changed across the restart")
	}
	if st, _, b := send(t, "GET", e2.HTTPURL()+"/api/tenant/devices?deviceName=kept", "ApiKey "+demoKey, "", ""); st != 200 || !strings.Contains(string(b), `"customerId":{"entityType":"CUSTOMER","id":"`) || strings.Contains(string(b), nullUUID) {
		t.Fatalf("device after restart: %d %s", st, b)
	}
	// The token and the profile came back: the device connects and its profile acks a bad payload.
	c := connectOK(t, e2.MQTTAddr(), 4, "KEPT_ACKED_TOKEN")
	c.publish(topicDeviceClaim, []byte("[]"), 1, 1)
	c.expectPuback(1)
	// The device registers again and can then be claimed: what claimsvc does after a restart.
	httpClaim(t, e2, "T1_TEST_TOKEN", `{"secretKey":"again"}`)
	flush(t, e2)
	if st, b := customerClaim(t, e2, customer, "Thermostat T1", "again"); st != 200 {
		t.Fatalf("claim after registering again: %d %s", st, b)
	}
}

func TestDataDirDamagedFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir}
	if e, err := Start(context.Background(), cfg); err == nil {
		_ = e.Close()
		t.Fatal("a damaged state file was accepted")
	}
}

func TestWriteFileAtomicReplaces(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	for _, s := range []string{"one", "two"} {
		if err := writeFileAtomic(p, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != s {
			t.Fatalf("content %q, want %q", b, s)
		}
	}
}
