package dispatch_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/dispatch"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/tbemu"
)

// emulatorWithProfiles is the ThingsBoard emulator with a device whose
// profile is not for MQTT (CONNACK 3) and one whose profile wants PROTOBUF
// payloads (its JSON claim is closed without PUBACK).
func emulatorWithProfiles(t *testing.T) *tbemu.Emulator {
	t.Helper()
	cfg := tbemu.DefaultConfig()
	cfg.Demo, cfg.MQTTAddr, cfg.HTTPAddr = true, "127.0.0.1:0", "127.0.0.1:0"
	emu, err := tbemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	coap, _ := emu.AddDeviceProfile(tbemu.DeviceProfile{Name: "coap devices", TransportType: "COAP"})
	proto, _ := emu.AddDeviceProfile(tbemu.DeviceProfile{Name: "protobuf devices", TransportType: "MQTT", PayloadType: "PROTOBUF"})
	for name, profile := range map[string]string{"coap-device": coap, "proto-device": proto} {
		if _, err := emu.AddDeviceWithProfile(name, "TOKEN_"+strings.ToUpper(name), profile); err != nil {
			t.Fatal(err)
		}
	}
	return emu
}

// A claim that ThingsBoard refuses the same way attempt after attempt while
// it takes other devices' claims ends failed early, with a reason a person
// can act on; every refusal is counted by reason.
func TestRefusedForAProfileReasonFailsEarly(t *testing.T) {
	t.Parallel()
	emu := emulatorWithProfiles(t)
	s := newStore(t)
	cfg := fastConfig()
	cfg.MaxRefusals = 3
	m := metrics.New()
	ctx, cancel := context.WithCancel(context.Background())
	d := dispatch.New(s, dispatch.Senders{claim.DeliveryMQTT: publisher(t, "tcp://"+emu.MQTTAddr())}, cfg,
		slog.New(slog.NewTextHandler(io.Discard, nil)), m, nil)
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	feedCtx, stopFeed := context.WithCancel(context.Background())
	fed := make(chan struct{})
	defer func() { stopFeed(); <-fed }()
	go func() { // other devices' claims keep getting through meanwhile
		defer close(fed)
		for i := 0; ; i++ {
			select {
			case <-feedCtx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			token := fmt.Sprintf("TOKEN_GOOD_%d", i)
			if _, err := emu.AddDevice(fmt.Sprintf("good-%d", i), token); err == nil {
				sk, dur := claim.Secret("k"), int64(1000)
				_, _ = s.Create(feedCtx, claim.Request{Token: claim.Token(token), SecretKey: &sk, DurationMs: &dur}, 24*time.Hour)
			}
		}
	}()

	for token, want := range map[string]string{"TOKEN_COAP-DEVICE": "transport type is not MQTT", "TOKEN_PROTO-DEVICE": "PROTOBUF"} {
		c := create(t, s, token, "k", 1000)
		got := waitStatus(t, s, c.ID, claim.StatusFailed, 15*time.Second)
		if got.Attempts != cfg.MaxRefusals || !strings.Contains(got.LastError, want) || !strings.Contains(got.LastError, "delivery http or attribute") {
			t.Fatalf("%s: %d attempts, lastError %q; want %d and a reason naming %q", token, got.Attempts, got.LastError, cfg.MaxRefusals, want)
		}
	}
	for reason, n := range map[string]int{"connack_3": cfg.MaxRefusals, "closed_before_puback": cfg.MaxRefusals} {
		if got := testutil.ToFloat64(m.DeliveryFailures.WithLabelValues("mqtt", reason)); int(got) != n {
			t.Fatalf("claimsvc_delivery_failures_total{reason=%q} = %v, want %d", reason, got, n)
		}
	}
}

// When nothing else gets through, refusals may be ThingsBoard being
// overloaded: the claim is retried, not failed, and says why it waits.
func TestRefusalsAloneAreRetried(t *testing.T) {
	t.Parallel()
	emu := emulatorWithProfiles(t)
	s := newStore(t)
	cfg := fastConfig()
	cfg.MaxRefusals = 2
	start(t, s, publisher(t, "tcp://"+emu.MQTTAddr()), cfg)
	c := create(t, s, "TOKEN_COAP-DEVICE", "k", 1000)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := s.Get(t.Context(), c.ID)
		if got.Status != claim.StatusPending {
			t.Fatalf("status %s, want pending while no other claim gets through", got.Status)
		}
		if got.Attempts > 2*cfg.MaxRefusals {
			if !strings.Contains(got.LastError, "CONNACK 3") {
				t.Fatalf("lastError %q", got.LastError)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d attempts", got.Attempts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
