package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// claimTopic is where ThingsBoard devices (and claimsvc) publish claims.
const claimTopic = "v1/devices/me/claim"

// tally counts the distinct claims of one run as they arrive where they were
// delivered. Each run marks its claims with its own secretKey prefix, so
// other traffic is ignored.
type tally struct {
	mu     sync.Mutex
	prefix string
	seen   map[int64]bool
	want   int
	last   time.Time
	done   chan struct{}
}

// expect starts counting the claims whose secretKey is prefix + number.
func (w *tally) expect(prefix string, n int) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prefix, w.want, w.seen, w.done = prefix, n, make(map[int64]bool, n), make(chan struct{})
	return w.done
}

// see counts a claim with this secret, when it is one of the run's.
func (w *tally) see(secret string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rest, ok := strings.CutPrefix(secret, w.prefix)
	if !ok || w.prefix == "" {
		return
	}
	i, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || w.seen[i] {
		return
	}
	w.seen[i] = true
	w.last = time.Now()
	if len(w.seen) == w.want {
		close(w.done)
	}
}

func (w *tally) count() (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen), w.last
}

// watcher subscribes to the claim topic on the broker and tallies the
// claims published there.
type watcher struct {
	tally
	client paho.Client
}

func newWatcher(broker string) (*watcher, error) {
	w := &watcher{}
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("claimload-watch-%d", time.Now().UnixNano())).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetOrderMatters(false)
	w.client = paho.NewClient(opts)
	if t := w.client.Connect(); !t.WaitTimeout(6*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("connect to %s: %w", broker, t.Error())
	}
	// QoS 0 to the watcher: at QoS 1 Mosquitto holds at most 20 messages in
	// flight and 1,000 queued per subscriber and drops the rest ("Outgoing
	// messages are being dropped"), so a watcher that fell behind on a busy
	// machine lost claims that had been delivered (1,024 of a 10,000-claim
	// backlog once). At QoS 0 the broker writes each message to the loopback
	// connection as it comes. claimsvc's own publishes stay QoS 1.
	t := w.client.Subscribe(claimTopic, 0, w.onMessage)
	if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		w.client.Disconnect(100)
		return nil, fmt.Errorf("subscribe: %w", t.Error())
	}
	return w, nil
}

func (w *watcher) onMessage(_ paho.Client, m paho.Message) {
	var p struct {
		SecretKey string `json:"secretKey"`
	}
	if json.Unmarshal(m.Payload(), &p) == nil {
		w.see(p.SecretKey)
	}
}

func (w *watcher) close() { w.client.Disconnect(100) }

// e2eClaimsvc posts n claims from clients HTTP clients and measures from the
// first request until the broker has seen every one of them (each is
// published by claimsvc at QoS 1, so the broker's PUBACK precedes it).
func (b *bench) e2eClaimsvc(ctx context.Context, svc *service, w *tally, clients, n int, prefix string) (measured, error) {
	done := w.expect(prefix, n)
	var next atomic.Int64
	var errs atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range clients {
		wg.Go(func() {
			c := newRawClient(svc.base)
			defer c.close()
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				body := []byte(fmt.Sprintf(`{"secretKey":"%s%d","durationMs":60000}`, prefix, i))
				if st, _, err := c.post(ctx, "/devices/"+token(prefix, i)+"/claim", "application/json", body, nil); err != nil || st != http.StatusAccepted {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	intake := time.Since(t0)
	select {
	case <-done:
	case <-time.After(b.plan.e2eTimeout):
	case <-ctx.Done():
	}
	got, last := w.count()
	r := measured{n: got, errs: int(errs.Load()) + n - got, elapsed: last.Sub(t0)}
	if got < n { // a figure, not a broken benchmark: the row shows it
		b.progress("end to end: only %d of %d claims were delivered within %s (intake took %s, %d intake errors)",
			got, n, b.plan.e2eTimeout, intake.Round(time.Millisecond), errs.Load())
	}
	return r, nil
}

// pahoOnce is the raw paho baseline's unit of work, the same steps as
// claimsvc's publisher: connect as the device, publish QoS 1, wait for
// PUBACK, disconnect.
func pahoOnce(broker, clientID, username string, payload []byte) error {
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(clientID).SetUsername(username).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).
		SetOrderMatters(false)
	c := paho.NewClient(opts)
	t := c.Connect()
	if !t.WaitTimeout(11 * time.Second) {
		go c.Disconnect(0)
		return errors.New("connect timed out")
	}
	if t.Error() != nil {
		return t.Error()
	}
	defer c.Disconnect(250)
	pt := c.Publish(claimTopic, 1, false, payload)
	if !pt.WaitTimeout(10 * time.Second) {
		return errors.New("no PUBACK")
	}
	return pt.Error()
}

// e2ePaho: n claims through the raw paho loop from clients goroutines.
func (b *bench) e2ePaho(ctx context.Context, clients, n int, prefix string) measured {
	broker := "tcp://" + b.opts.mqttAddr
	return load(ctx, clients, b.plan.e2eTimeout, int64(n), func(ctx context.Context, seq int64) int {
		payload := []byte(fmt.Sprintf(`{"secretKey":"%s%d","durationMs":60000}`, prefix, seq))
		tok := token(prefix, seq)
		if pahoOnce(broker, "claimload-"+tok, tok, payload) != nil {
			return 0
		}
		return 1
	})
}

// e2eMosquittoPub: n claims, one mosquitto_pub process each, eight at a time
// (what an operator would script).
func (b *bench) e2eMosquittoPub(ctx context.Context, n int, prefix string) (measured, error) {
	path, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		return measured{}, errors.New("mosquitto_pub is not installed (apt-get install mosquitto-clients)")
	}
	host, port := splitHostPort(b.opts.mqttAddr)
	return load(ctx, 8, b.plan.e2eTimeout, int64(n), func(ctx context.Context, seq int64) int {
		tok := token(prefix, seq)
		cmd := exec.CommandContext(ctx, path, "-h", host, "-p", port, "-V", "mqttv311", "-q", "1",
			"-i", "claimload-"+tok, "-u", tok, "-t", claimTopic,
			"-m", fmt.Sprintf(`{"secretKey":"%s%d","durationMs":60000}`, prefix, seq))
		if cmd.Run() != nil {
			return 0
		}
		return 1
	}), nil
}
