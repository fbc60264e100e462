package faulttest

import (
	"context"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/claimsvc/claimsvc/internal/pgtest"
)

// TestReplicas runs three `claimsvc serve` processes on one database under
// load spread over all three: every claim answered 2xx is delivered, and the
// broker never sees two connections for the same claim at once (client id
// claimsvc-{claim id}), i.e. no claim is sent by two replicas at the same
// moment. Halfway through, one replica is SIGKILLed and restarted.
func TestReplicas(t *testing.T) {
	t.Parallel()
	rec := startRecorder(t)
	rec.setAckDelay(20 * time.Millisecond) // attempts overlap in time across replicas
	env := baseEnv(pgtest.NewDatabase(t), rec.url())
	replicas := []*service{startService(t, env)} // the first one migrates
	for range 2 {
		replicas = append(replicas, startService(t, env))
	}
	urls := func() []string { return []string{replicas[0].url(), replicas[1].url(), replicas[2].url()} }
	ld := newLoad(t, "REPLICA", urls)
	ctx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() { ld.run(ctx, 6, 15*time.Millisecond, time.Minute); close(loadDone) }()
	run := pick(6*time.Second, 60*time.Second)
	time.Sleep(run / 2)
	replicas[1].kill()
	replicas[1].start()
	time.Sleep(run / 2)
	stopLoad()
	<-loadDone
	ld.check()
	accepted, statuses := ld.snapshot()
	missing := waitDelivered(accepted, rec.deliveries, 60*time.Second)
	t.Logf("figures: replicas=3 accepted=%d lost=%d duplicates=%d concurrent_sends=%d statuses=%v",
		len(accepted), len(missing), duplicates(accepted, rec.deliveries()), rec.overlapCount(), statuses)
	if len(missing) > 0 {
		t.Errorf("%d of %d accepted claims never delivered, e.g. %s", len(missing), len(accepted), missing[0])
	}
	// The detector itself: two connections with one claim's client id are seen.
	before := rec.overlapCount()
	for range 2 {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(rec.url()).SetClientID("claimsvc-detector-check").SetUsername("x").SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("detector check: %v", tok.Error())
		}
		defer c.Disconnect(0)
	}
	if rec.overlapCount() != before+1 {
		t.Errorf("the overlap detector missed two connections with one client id")
	}
	if n := before; n > 0 {
		t.Errorf("%d times a claim was being sent by two connections at once", n)
	}
}
