// Package mqtttest runs a real MQTT broker (mochi-mqtt) inside a test, so a
// test can see the MQTT username each client used and refuse tokens the way
// ThingsBoard does (CONNACK 5). It listens on 127.0.0.1 only.
package mqtttest

import (
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Message is one PUBLISH the broker received.
type Message struct {
	Username string
	ClientID string
	Topic    string
	Payload  []byte
	QoS      byte
}

// Broker is a running test broker.
type Broker struct {
	srv  *mochi.Server
	addr string

	mu       sync.Mutex
	allow    func(username string) bool
	msgs     []Message
	connects int
	refused  int
}

// Start runs a broker on addr ("127.0.0.1:0" for any free port) that lets in
// the usernames allow accepts (nil: everyone). It stops when the test ends.
func Start(tb testing.TB, addr string, allow func(username string) bool) *Broker {
	tb.Helper()
	b := &Broker{allow: allow}
	b.srv = mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		tb.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: addr})
	if err := b.srv.AddListener(l); err != nil {
		tb.Fatalf("mqtttest: listen on %s: %v", addr, err)
	}
	b.addr = l.Address()
	go func() { _ = b.srv.Serve() }()
	tb.Cleanup(b.Stop)
	return b
}

// Addr is host:port.
func (b *Broker) Addr() string { return b.addr }

// URL is tcp://host:port.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Stop closes the broker and its port; safe to call twice.
func (b *Broker) Stop() { _ = b.srv.Close() }

// Messages returns a copy of every message received so far.
func (b *Broker) Messages() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.msgs...)
}

// Connects counts CONNECTs accepted and refused.
func (b *Broker) Connects() (accepted, refused int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connects, b.refused
}

// WaitFor waits up to timeout for n messages in all and returns them.
func (b *Broker) WaitFor(tb testing.TB, n int, timeout time.Duration) []Message {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := b.Messages()
		if len(m) >= n {
			return m
		}
		if time.Now().After(deadline) {
			tb.Fatalf("mqtttest: got %d messages, want %d within %s", len(m), n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type hook struct {
	mochi.HookBase
	b *Broker
}

func (h *hook) ID() string { return "mqtttest" }

func (h *hook) Provides(x byte) bool {
	return slices.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish}, x)
}

func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	ok := h.b.allow == nil || h.b.allow(string(pk.Connect.Username))
	h.b.mu.Lock()
	if ok {
		h.b.connects++
	} else {
		h.b.refused++
	}
	h.b.mu.Unlock()
	return ok
}

func (h *hook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	m := Message{
		Username: string(cl.Properties.Username),
		ClientID: cl.ID,
		Topic:    pk.TopicName,
		Payload:  append([]byte(nil), pk.Payload...),
		QoS:      pk.FixedHeader.Qos,
	}
	h.b.mu.Lock()
	h.b.msgs = append(h.b.msgs, m)
	h.b.mu.Unlock()
	return pk, nil
}
