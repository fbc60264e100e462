package mqtt_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/mqtt/mqtttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newPublisher(t *testing.T, url string, timeout time.Duration) *mqtt.Publisher {
	t.Helper()
	p, err := mqtt.New(mqtt.Config{URL: url, ConnectTimeout: timeout, AckTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublishAsTheDevice(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, "127.0.0.1:0", func(u string) bool { return u == "DEVICE_TOKEN_123" })
	p := newPublisher(t, b.URL(), 5*time.Second)
	payload := []byte(`{"secretKey":"abc","durationMs":60000}`)
	if err := p.Publish(t.Context(), "claimsvc-1", "DEVICE_TOKEN_123", payload); err != nil {
		t.Fatal(err)
	}
	got := b.WaitFor(t, 1, time.Second)[0]
	if got.Topic != "v1/devices/me/claim" || got.Username != "DEVICE_TOKEN_123" || got.ClientID != "claimsvc-1" ||
		string(got.Payload) != string(payload) || got.QoS != 1 {
		t.Fatalf("got %+v", got)
	}
}

func TestUnknownTokenIsRejected(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, "127.0.0.1:0", func(string) bool { return false })
	p := newPublisher(t, b.URL(), 5*time.Second)
	err := p.Publish(t.Context(), "claimsvc-2", "UNKNOWN_TOKEN_XYZ", []byte(`{}`))
	var rej *mqtt.ConnackError
	if !errors.As(err, &rej) || rej.ReturnCode != 5 || claim.KindOf(err) != claim.FailRejected {
		t.Fatalf("want CONNACK 5 rejection, got %v", err)
	}
	if strings.Contains(err.Error(), "UNKNOWN_TOKEN_XYZ") {
		t.Fatal("error leaks the token")
	}
	if n := len(b.Messages()); n != 0 {
		t.Fatalf("%d messages published", n)
	}
}

func TestBrokerDownIsTransient(t *testing.T) {
	t.Parallel()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	p := newPublisher(t, "tcp://"+addr, 2*time.Second)
	err := p.Publish(t.Context(), "claimsvc-3", "T", []byte(`{}`))
	if err == nil || claim.KindOf(err) != claim.FailUnreachable {
		t.Fatalf("want an unreachable broker, got %v", err)
	}
}

func TestSilentBrokerTimesOut(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn // accept, never answer
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	defer func() { l.Close(); <-done }()
	p := newPublisher(t, "tcp://"+l.Addr().String(), 300*time.Millisecond)
	start := time.Now()
	err = p.Publish(t.Context(), "claimsvc-4", "T", []byte(`{}`))
	if err == nil || claim.KindOf(err) == claim.FailRejected || time.Since(start) > 3*time.Second {
		t.Fatalf("want a timeout within bounds, got %v after %s", err, time.Since(start))
	}
	time.Sleep(500 * time.Millisecond) // let paho's connect goroutine end before goleak looks
}

func TestContextCancelStopsTheAttempt(t *testing.T) {
	t.Parallel()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			time.Sleep(time.Second)
			c.Close()
		}
	}()
	p := newPublisher(t, "tcp://"+l.Addr().String(), 500*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Publish(ctx, "claimsvc-5", "T", []byte(`{}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want context deadline, got %v", err)
	}
	if time.Since(start) > 400*time.Millisecond {
		t.Fatal("cancel did not cut the wait short")
	}
	time.Sleep(1200 * time.Millisecond)
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "localhost:1883", "http://x:1", "tcp://user@x:1", "ws://x:1"} {
		if _, err := mqtt.New(mqtt.Config{URL: bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for in, want := range map[string]string{
		"tcp://127.0.0.1:1883": "tcp://127.0.0.1:1883",
		"mqtt://broker":        "tcp://broker:1883",
		"mqtts://broker":       "ssl://broker:8883",
		"ssl://broker:8884":    "ssl://broker:8884",
	} {
		p, err := mqtt.New(mqtt.Config{URL: in})
		if err != nil || p.Broker() != want {
			t.Errorf("%s: %v %v", in, p, err)
		}
	}
	if _, err := mqtt.New(mqtt.Config{URL: "ssl://x:1", CAFile: "/nonexistent"}); err == nil {
		t.Error("missing CA file accepted")
	}
	if _, err := mqtt.New(mqtt.Config{URL: "tcp://x:1", CAFile: "/etc/hostname"}); err == nil {
		t.Error("CA file with tcp:// accepted")
	}
}

var _ = claim.Token("")
