package mqtt_test

// The publisher against the ThingsBoard emulator's MQTT transport, for what
// ThingsBoard answers that a plain broker does not (docs/thingsboard.md §9):
// per-IP blocking after wrong credentials, device profiles that refuse a
// claim with CONNACK 3 or by closing the connection.

import (
	"context"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/tbemu"
)

func emulator(t *testing.T, edit func(*tbemu.Config)) *tbemu.Emulator {
	t.Helper()
	cfg := tbemu.DefaultConfig()
	cfg.Demo, cfg.MQTTAddr, cfg.HTTPAddr = true, "127.0.0.1:0", "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	emu, err := tbemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	return emu
}

// The probe never logs in, so however often it runs it never counts as a
// wrong credential: with ThingsBoard's per-IP blocking on, claimsvc's
// address stays open. (Three CONNECTs with an unknown token do block it,
// which shows the limit is on.)
func TestProbeNeverCountsAsAWrongCredential(t *testing.T) {
	t.Parallel()
	emu := emulator(t, func(c *tbemu.Config) {
		c.IPLimitsEnabled, c.MaxWrongCredentialsPerIP, c.IPBlockTimeout = true, 3, time.Minute
	})
	p := newPublisher(t, "tcp://"+emu.MQTTAddr(), 2*time.Second)
	for range 10 {
		if err := p.Probe(t.Context()); err != nil {
			t.Fatalf("probe: %v", err)
		}
	}
	if err := p.Publish(t.Context(), "claimsvc-probe-test-1", "DHT11_DEMO_TOKEN", []byte(`{"secretKey":"k"}`)); err != nil {
		t.Fatalf("a claim after 10 probes: %v (the probes got claimsvc's address blocked)", err)
	}
	for range 3 {
		_ = p.Publish(t.Context(), "claimsvc-probe-test-2", "NO_SUCH_DEVICE_TOKEN", []byte(`{}`))
	}
	if err := p.Publish(t.Context(), "claimsvc-probe-test-3", "RASPBERRY_PI_DEMO_TOKEN", []byte(`{}`)); err == nil {
		t.Fatal("three wrong credentials did not block the address: the test proves nothing")
	}
}

// With a probe token, the probe logs in as that device; a wrong one is an
// answer (the broker is up) that says the setting is wrong.
func TestProbeWithAToken(t *testing.T) {
	t.Parallel()
	emu := emulator(t, nil)
	good, err := mqtt.New(mqtt.Config{URL: "tcp://" + emu.MQTTAddr(), ConnectTimeout: 2 * time.Second, ProbeToken: "T1_TEST_TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Probe(t.Context()); err != nil {
		t.Fatalf("probe with a device token: %v", err)
	}
	bad, _ := mqtt.New(mqtt.Config{URL: "tcp://" + emu.MQTTAddr(), ConnectTimeout: 2 * time.Second, ProbeToken: "NOT_A_PROBE_TOKEN"})
	if err := bad.Probe(t.Context()); err == nil || claim.KindOf(err) == claim.FailUnreachable {
		t.Fatalf("probe with a wrong token: %v, want an answer that is not 'unreachable'", err)
	}
}

// A device whose profile is not for MQTT gets CONNACK 3; a device whose
// profile wants PROTOBUF payloads has its JSON claim closed: both are
// refusals (FailRefused) with their reason, and the second is seen at once,
// not after the PUBACK timeout.
func TestProfilesThatRefuseAClaim(t *testing.T) {
	t.Parallel()
	emu := emulator(t, nil)
	coap, err := emu.AddDeviceProfile(tbemu.DeviceProfile{Name: "coap devices", TransportType: "COAP"})
	if err != nil {
		t.Fatal(err)
	}
	proto, err := emu.AddDeviceProfile(tbemu.DeviceProfile{Name: "protobuf devices", TransportType: "MQTT", PayloadType: "PROTOBUF"})
	if err != nil {
		t.Fatal(err)
	}
	for name, profile := range map[string]string{"coap-1": coap, "proto-1": proto} {
		if _, err := emu.AddDeviceWithProfile(name, "TOKEN_"+name, profile); err != nil {
			t.Fatal(err)
		}
	}
	p := newPublisher(t, "tcp://"+emu.MQTTAddr(), 5*time.Second)
	err = p.Publish(t.Context(), "claimsvc-coap", "TOKEN_coap-1", []byte(`{"secretKey":"k"}`))
	if claim.KindOf(err) != claim.FailRefused || claim.ReasonOf(err) != "connack_3" {
		t.Fatalf("a COAP device: %v (kind %s, reason %s), want a refusal with CONNACK 3", err, claim.KindOf(err), claim.ReasonOf(err))
	}
	start := time.Now()
	err = p.Publish(t.Context(), "claimsvc-proto", "TOKEN_proto-1", []byte(`{"secretKey":"k"}`))
	if claim.KindOf(err) != claim.FailRefused || claim.ReasonOf(err) != "closed_before_puback" || time.Since(start) > 2*time.Second {
		t.Fatalf("a PROTOBUF device: %v (kind %s, reason %s) after %s, want a refusal seen at once",
			err, claim.KindOf(err), claim.ReasonOf(err), time.Since(start))
	}
}
