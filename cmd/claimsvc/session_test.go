package main

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/claimsvc/claimsvc/internal/pgtest"
)

// A device that is online, reconnecting at once whenever it is cut off (as
// real firmware does), while ThingsBoard keeps one session per device (the
// emulator's default): an mqtt claim for it still gets through in a bounded
// number of attempts, each attempt disconnects the device at most once, and
// the claim's events show every attempt.
func TestMQTTClaimForAnOnlineDevice(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "127.0.0.1:0")
	var lost atomic.Int32
	opts := paho.NewClientOptions().AddBroker("tcp://" + emu.MQTTAddr()).SetClientID("the-device").
		SetUsername("DHT11_DEMO_TOKEN").SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(true).SetMaxReconnectInterval(20 * time.Millisecond).SetConnectRetry(true).
		SetConnectRetryInterval(20 * time.Millisecond).
		SetConnectionLostHandler(func(paho.Client, error) { lost.Add(1) })
	device := paho.NewClient(opts)
	if tok := device.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { device.Disconnect(0) })
	if n := emu.Sessions("DHT11 Demo Device"); n != 1 {
		t.Fatalf("%d sessions before the claim", n)
	}

	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + emu.MQTTAddr()})
	status, v := svc.post(t, "/devices/claim", map[string]string{"X-Device-Token": "DHT11_DEMO_TOKEN", "Prefer": "wait=20"},
		`{"secretKey":"online-1","durationMs":600000}`)
	if status != 200 || v["status"] != "delivered" {
		t.Fatalf("claim for an online device: %d %v", status, v)
	}
	attempts := int32(v["attempts"].(float64))
	if attempts > 3 {
		t.Fatalf("%d attempts for an online device, want at most 3", attempts)
	}
	deadline := time.Now().Add(5 * time.Second)
	for emu.Sessions("DHT11 Demo Device") != 1 || !device.IsConnectionOpen() {
		if time.Now().After(deadline) {
			t.Fatalf("the device did not come back: %d sessions", emu.Sessions("DHT11 Demo Device"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := lost.Load(); n < 1 || n > attempts {
		t.Fatalf("the device was cut off %d times by %d attempts, want 1 to %d", n, attempts, attempts)
	}
	_, events := svc.get(t, "/claims/"+v["id"].(string)+"/events")
	if strings.Count(events, `"kind":"attempt"`) != int(attempts) || !strings.Contains(events, `"kind":"delivered"`) {
		t.Fatalf("events do not show the %d attempts: %s", attempts, events)
	}
	if attempts > 1 && !strings.Contains(events, "took over its one session") {
		t.Fatalf("a failed attempt does not say why: %s", events)
	}
	t.Logf("delivered in %d attempt(s); the device was cut off %d time(s) and reconnected", attempts, lost.Load())
	if code, body := customerClaim(t, emu, "DHT11 Demo Device", "online-1"); code != 200 || !strings.Contains(body, "SUCCESS") {
		t.Fatalf("customer claim: %d %s", code, body)
	}
}
