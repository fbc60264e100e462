package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/mqtt/mosquittotest"
	"github.com/claimsvc/claimsvc/internal/pgtest"
)

// subscriber counts the claims Mosquitto forwards, per device (the payload's
// secretKey is the token in these tests), and when each first arrived. Its
// session is persistent (clean session off, QoS 1), so claims published while
// it reconnects after a broker restart are queued for it, not lost.
type subscriber struct {
	mu    sync.Mutex
	count map[string]int
	first map[string]time.Time
}

func subscribe(t *testing.T, addr string) *subscriber {
	t.Helper()
	s := &subscriber{count: map[string]int{}, first: map[string]time.Time{}}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("faulttest-subscriber").
		SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(250 * time.Millisecond).
		SetConnectRetry(true).SetConnectRetryInterval(250 * time.Millisecond).SetOrderMatters(false)
	opts.SetDefaultPublishHandler(s.receive)
	opts.SetOnConnectHandler(func(c paho.Client) { c.Subscribe(mqtt.ClaimTopic, 1, s.receive) })
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	if err := eventually(5*time.Second, func() bool { return c.IsConnectionOpen() }); err != nil {
		t.Fatal("subscriber not connected")
	}
	time.Sleep(200 * time.Millisecond) // the SUBACK
	return s
}

func (s *subscriber) receive(_ paho.Client, m paho.Message) {
	var p struct{ SecretKey string }
	if json.Unmarshal(m.Payload(), &p) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count[p.SecretKey] == 0 {
		s.first[p.SecretKey] = time.Now()
	}
	s.count[p.SecretKey]++
}

func (s *subscriber) deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.count))
	for k, v := range s.count {
		out[k] = v
	}
	return out
}

// TestBrokerOutage stops the test's own Mosquitto for 20 s under load.
// Intake keeps answering 2xx at the capacity it has with a healthy broker
// (within 15 %, measured in the same run), the backlog gauges rise, and the
// outage costs nothing per claim: the dispatcher's breaker holds the claims
// (no lease, no attempt, at most one attempt event per claim) and only its
// probe touches the broker. Once the broker is back every claim reaches it
// within 10 s (trial claims first, then everything held at once);
// goroutines and open files stay bounded by the worker count.
func TestBrokerOutage(t *testing.T) {
	t.Parallel()
	b := mosquittotest.Start(t, mosquittotest.Options{Persistence: true})
	sub := subscribe(t, b.Addr())
	env := baseEnv(pgtest.NewDatabase(t), "tcp://"+b.Addr())
	env["CLAIMSVC_WORKERS"] = "32" // the default: how fast a backlog drains
	svc := startService(t, env)

	ld := newLoad(t, "BROKER", func() []string { return []string{svc.url()} })
	ctx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() { ld.run(ctx, 4, 25*time.Millisecond, time.Minute); close(loadDone) }()

	time.Sleep(2 * time.Second)
	// Intake capacity, healthy and in the outage: the best of a few bursts,
	// since other tests share the machine's two cores.
	healthy := max(ld.burst(8, 1500*time.Millisecond, "HEALTHY1"), ld.burst(8, 1500*time.Millisecond, "HEALTHY2"))
	baseGoroutines, baseFDs := svc.metric("go_goroutines"), svc.metric("process_open_fds")
	outage := pick(20*time.Second, 60*time.Second)
	b.Terminate()
	down := time.Now()
	if err := eventually(5*time.Second, func() bool { return svc.metric("claimsvc_broker_up") == 0 }); err != nil {
		t.Errorf("claimsvc_broker_up did not drop to 0: %v", err)
	}
	time.Sleep(time.Second) // the attempts in flight when the broker went away are over
	attemptsAtTrip := svc.sum(t, env["CLAIMSVC_DATABASE_URL"], `SELECT coalesce(sum(attempts), 0) FROM claims`)
	ready := svc.body("/readyz")
	var maxPending, maxAge, maxGoroutines, maxFDs, inOutage float64
	bursts := 0
	for time.Since(down) < outage {
		maxPending = max(maxPending, svc.metric("claimsvc_pending_claims"))
		maxAge = max(maxAge, svc.metric("claimsvc_oldest_pending_age_seconds"))
		maxGoroutines = max(maxGoroutines, svc.metric("go_goroutines"))
		maxFDs = max(maxFDs, svc.metric("process_open_fds"))
		if elapsed := time.Since(down); (elapsed > outage/4 && inOutage == 0) || (elapsed > outage/2 && bursts < 2) {
			inOutage = max(inOutage, ld.burst(8, 1500*time.Millisecond, fmt.Sprintf("OUTAGE%d", bursts)))
			bursts++
		}
		time.Sleep(250 * time.Millisecond)
	}
	attemptsAtReturn := svc.sum(t, env["CLAIMSVC_DATABASE_URL"], `SELECT coalesce(sum(attempts), 0) FROM claims`)
	maxAttemptEvents := svc.sum(t, env["CLAIMSVC_DATABASE_URL"], `SELECT coalesce(max(n), 0) FROM (
		SELECT count(*) AS n FROM claim_events WHERE kind = 'attempt' AND at > $1 GROUP BY claim_id) e`, down)
	acceptedDuring, statusesDuring := ld.snapshot()
	b.Restart()
	back := time.Now()
	time.Sleep(2 * time.Second)
	stopLoad()
	<-loadDone
	ld.check()
	accepted, statuses := ld.snapshot()

	missing := waitDelivered(accepted, sub.deliveries, 30*time.Second)
	// How long after the broker's return did the last claim accepted before
	// it arrive?
	var lastBacklog time.Duration
	sub.mu.Lock()
	for tok, at := range acceptedDuring {
		if at.Before(back) {
			if f, ok := sub.first[tok]; ok {
				lastBacklog = max(lastBacklog, f.Sub(back))
			}
		}
	}
	sub.mu.Unlock()
	time.Sleep(3 * time.Second) // settle: attempts over, idle connections closed
	afterGoroutines, afterFDs := svc.metric("go_goroutines"), svc.metric("process_open_fds")
	t.Logf("figures: outage=%s accepted=%d accepted_before_return=%d lost=%d duplicates=%d backlog_delivered_within=%s max_pending=%.0f max_oldest_age=%.1fs goroutines=%.0f/%.0f/%.0f fds=%.0f/%.0f/%.0f statuses=%v intake_healthy=%.0f/s intake_in_outage=%.0f/s attempts_during_outage=%.0f max_attempt_events_per_claim=%.0f",
		outage, len(accepted), len(acceptedDuring), len(missing), duplicates(accepted, sub.deliveries()), lastBacklog.Round(time.Millisecond),
		maxPending, maxAge, baseGoroutines, maxGoroutines, afterGoroutines, baseFDs, maxFDs, afterFDs, statuses,
		healthy, inOutage, attemptsAtReturn-attemptsAtTrip, maxAttemptEvents)

	if attemptsAtReturn-attemptsAtTrip > 3 {
		t.Errorf("%.0f attempts during the outage: the breaker should hold every claim (only the probe touches the broker)", attemptsAtReturn-attemptsAtTrip)
	}
	if maxAttemptEvents > 1 {
		t.Errorf("a claim got %.0f attempt events during the outage, want at most 1", maxAttemptEvents)
	}
	if inOutage < 0.85*healthy {
		t.Errorf("intake capacity fell from %.0f/s (healthy broker) to %.0f/s during the outage, more than 15 %%", healthy, inOutage)
	}
	if !strings.Contains(ready, `"mqtt":{"up":false`) {
		t.Errorf("/readyz does not show the broker down during the outage: %s", ready)
	}
	if up := svc.metric("claimsvc_broker_up"); up != 1 {
		t.Errorf("claimsvc_broker_up = %v after the broker returned", up)
	}
	log := svc.out.String()
	if !strings.Contains(log, "ThingsBoard does not answer: holding its claims") || !strings.Contains(log, "held_claims=") {
		t.Errorf("the log does not say when the outage began and ended, with the claims held:\n%s", tail(log, 3000))
	}

	if statusesDuring[503] > 0 || statuses[503] > 0 || statuses[0] > 0 {
		t.Errorf("intake did not keep answering 2xx during the broker outage: %v", statuses)
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d accepted claims never reached the broker, e.g. %s\n%s", len(missing), len(accepted), missing[0], tail(svc.out.String(), 3000))
	}
	if lastBacklog > 10*time.Second {
		t.Errorf("the backlog took %s after the broker returned, want ≤ 10 s", lastBacklog)
	}
	if maxPending < 10 || maxAge < outage.Seconds()/2 {
		t.Errorf("backlog gauges did not rise: pending %.0f, oldest %.1fs", maxPending, maxAge)
	}
	// 32 workers: a bounded number of goroutines and sockets, whatever the backlog.
	if maxGoroutines > baseGoroutines+300 || afterGoroutines > baseGoroutines+30 || maxFDs > baseFDs+100 || afterFDs > baseFDs+10 {
		t.Errorf("pile-up: goroutines %.0f → %.0f → %.0f, open files %.0f → %.0f → %.0f", baseGoroutines, maxGoroutines, afterGoroutines, baseFDs, maxFDs, afterFDs)
	}
}
