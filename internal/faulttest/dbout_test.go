package faulttest

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/pgtest"
)

// TestDatabaseOutage cuts PostgreSQL off (a TCP proxy in front of it resets
// every connection and refuses new ones) under load, with deliveries under
// way, then restores it. While it is cut: intake answers 503 with
// Retry-After and /readyz fails. After: the service recovers on its own,
// every claim answered 2xx is delivered exactly once (the outcomes of
// attempts that finished during the outage are recorded when the database
// returns: no lease lost, nothing sent twice), and the table holds exactly
// the accepted claims, each with its audit trail.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	u, _ := url.Parse(dbURL)
	px := startProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = px.addr
	rec := startRecorder(t)
	env := baseEnv(viaProxy.String(), rec.url())
	env["CLAIMSVC_LEASE_DURATION"] = pick("20s", "60s") // longer than the outage
	svc := startService(t, env)

	ld := newLoad(t, "DBOUT", func() []string { return []string{svc.url()} })
	ctx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() { ld.run(ctx, 4, 25*time.Millisecond, 2*time.Minute); close(loadDone) }()

	outage := pick(5*time.Second, 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	rec.setAckDelay(500 * time.Millisecond) // attempts are under way when the cut comes
	time.Sleep(500 * time.Millisecond)
	px.cut()
	cutAt := time.Now()
	if err := eventually(5*time.Second, func() bool { return status(svc.url()+"/readyz") == 503 }); err != nil {
		t.Error("/readyz still answers 200 with the database cut off")
	}
	_, before := ld.snapshot()
	time.Sleep(time.Until(cutAt.Add(outage)))
	_, during := ld.snapshot()
	if during[503] == before[503] {
		t.Errorf("no 503 during the outage: %v", during)
	}
	rec.setAckDelay(0)
	px.restore()
	back := time.Now()
	// PUBLISHes from just before the cut on were acknowledged while the
	// database was away: their outcomes had to wait for it.
	inFlight := rec.publishedBetween(cutAt.Add(-500*time.Millisecond), back)
	if err := eventually(30*time.Second, func() bool { return status(svc.url()+"/readyz") == 200 }); err != nil {
		t.Fatalf("not ready 30 s after the database returned:\n%s", tail(svc.out.String(), 3000))
	}
	readyAfter := time.Since(back)
	time.Sleep(2 * time.Second)
	stopLoad()
	<-loadDone
	ld.check()
	accepted, statuses := ld.snapshot()
	missing := waitDelivered(accepted, rec.deliveries, 30*time.Second)
	deliveredAfter := time.Since(back)
	dups := duplicates(accepted, rec.deliveries())

	// The table holds exactly the accepted claims, all delivered, each
	// with its 'accepted' event, and no lease ran out.
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, delivered, withoutEvent, leaseExpired int
	count := func() error {
		return conn.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE status = 'delivered'),
		count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM claim_events e WHERE e.claim_id = c.id AND e.kind = 'accepted')),
		(SELECT count(*) FROM claim_events WHERE kind = 'lease_expired')
		FROM claims c`).Scan(&rows, &delivered, &withoutEvent, &leaseExpired)
	}
	// The last outcomes land a moment after their PUBACK.
	_ = eventually(10*time.Second, func() bool { return count() == nil && delivered == rows })
	if err := count(); err != nil {
		t.Fatal(err)
	}
	t.Logf("figures: outage=%s attempts_across_the_cut=%d accepted=%d lost=%d duplicates=%d ready_after=%s all_delivered_after=%s rows=%d lease_expired=%d statuses=%v",
		outage, inFlight, len(accepted), len(missing), dups, readyAfter.Round(time.Millisecond), deliveredAfter.Round(time.Millisecond),
		rows, leaseExpired, statuses)
	if len(missing) > 0 {
		t.Errorf("%d accepted claims never delivered, e.g. %s", len(missing), missing[0])
	}
	if rows != len(accepted) || delivered != rows || withoutEvent != 0 {
		t.Errorf("table: %d rows (%d delivered, %d without their accepted event) for %d accepted claims", rows, delivered, withoutEvent, len(accepted))
	}
	if inFlight == 0 {
		t.Error("no attempt was under way when the database went away: the test proved nothing about leases")
	}
	if leaseExpired != 0 || dups != 0 {
		t.Errorf("leases lost in the outage: %d expired, %d claims sent twice", leaseExpired, dups)
	}
}
