package dispatch_test

import (
	"context"
	"errors"
	"fmt"
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
	run(t, s, dispatch.Senders{claim.DeliveryMQTT: publisher(t, "tcp://"+emu.MQTTAddr())}, cfg, m)

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

// stallSender times out claims of one token the first times they are sent,
// and delivers everything else: a stall of this machine, not of the broker.
type stallSender struct {
	token claim.Token
	fails int
	seen  chan int // attempts of the stalled claim
}

func (s *stallSender) Send(_ context.Context, j claim.Job) (claim.Receipt, error) {
	if j.Token == s.token {
		s.seen <- j.Attempt
		if j.Attempt <= s.fails {
			return claim.Receipt{}, claim.FailureFor(claim.FailTransient, "puback_timeout", errors.New("waiting for PUBACK: timed out after 10s"))
		}
	}
	return claim.Receipt{}, nil
}

// A claim that times out while other claims are delivered is retried soon,
// however many times it timed out (up to StallAttempts): a stall of the
// machine does not push it into a long backoff.
func TestTimeoutsWhileOthersDeliverAreRetriedSoon(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	cfg := fastConfig()
	cfg.BackoffMax, cfg.StallBackoff, cfg.StallAttempts = time.Hour, 100*time.Millisecond, 10
	snd := &stallSender{token: "STALLED_TOKEN_01", fails: 8, seen: make(chan int, 100)}
	start(t, s, snd, cfg)
	feedCtx, stopFeed := context.WithCancel(context.Background())
	fed := make(chan struct{})
	defer func() { stopFeed(); <-fed }()
	go func() { // other claims keep being delivered
		defer close(fed)
		for i := 0; feedCtx.Err() == nil; i++ {
			sk, dur := claim.Secret("k"), int64(1000)
			_, _ = s.Create(feedCtx, claim.Request{Token: claim.Token(fmt.Sprintf("OTHER_TOKEN_%06d", i)), SecretKey: &sk, DurationMs: &dur}, 24*time.Hour)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t0 := time.Now()
	c := create(t, s, "STALLED_TOKEN_01", "k", 1000)
	got := waitStatus(t, s, c.ID, claim.StatusDelivered, 5*time.Second)
	t.Logf("delivered after %d attempts in %s (without the cap, 8 timeouts back off up to %s)", got.Attempts, time.Since(t0).Round(time.Millisecond), 50*time.Millisecond*255)
	if got.Attempts != 9 {
		t.Fatalf("%d attempts, want 9", got.Attempts)
	}
}
