package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/store"
)

// TestRetention: failed claims lose their token and secret after their
// retention (and cannot be retried then), final claims are deleted after
// theirs, except each device's newest and delivered claims ThingsBoard may
// still hold, pending claims never, and old Idempotency-Keys are forgotten.
func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, randomKey(t))
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := s.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	create := func(tok, secret, key string) uuid.UUID {
		t.Helper()
		r := req(tok, secret, 60000)
		r.IdempotencyKey, r.Force = key, true
		a, err := s.Create(ctx, r, hold)
		if err != nil {
			t.Fatal(err)
		}
		return a.Claim.ID
	}
	// finish leases every due claim and reports each with the outcome its
	// token asks for.
	finish := func(outcomes map[uuid.UUID]string) {
		t.Helper()
		jobs, err := s.Lease(ctx, 100, time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			switch outcomes[j.ID] {
			case "failed":
				err = fail(t, s, j, "gave up")
			case "rejected":
				err = reject(t, s, j, "CONNACK 5")
			case "delivered":
				err = deliver(t, s, j)
			default:
				err = s.Release(ctx, []claim.Job{j})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	failedOld := create("RETAIN_FAILED_OLD1", "s", "")
	failedNew := create("RETAIN_FAILED_NEW1", "s", "")
	xOld := create("RETAIN_DEVICE_X_01", "old", "key-old")
	yOnly := create("RETAIN_DEVICE_Y_01", "s", "")
	zHeld := create("RETAIN_DEVICE_Z_01", "held", "")
	finish(map[uuid.UUID]string{failedOld: "failed", failedNew: "failed", xOld: "delivered", yOnly: "rejected", zHeld: "delivered"})
	xNew := create("RETAIN_DEVICE_X_01", "new", "key-new")
	zNew := create("RETAIN_DEVICE_Z_01", "newer", "")
	pendingOld := create("RETAIN_PENDING_01", "s", "")

	exec(`UPDATE claims SET updated_at = now() - interval '40 days' WHERE id = $1`, failedOld)
	exec(`UPDATE claims SET updated_at = now() - interval '10 days' WHERE id = $1`, failedNew)
	exec(`UPDATE claims SET updated_at = now() - interval '100 days', delivered_at = now() - interval '100 days' WHERE id = $1`, xOld)
	exec(`UPDATE claims SET updated_at = now() - interval '100 days' WHERE id IN ($1, $2)`, yOnly, pendingOld)
	// Delivered long ago by its last change, but ThingsBoard's window is open.
	exec(`UPDATE claims SET updated_at = now() - interval '100 days', delivered_at = now() - interval '1 day',
		duration_ms = 2592000000 WHERE id = $1`, zHeld)
	exec(`UPDATE idempotency_keys SET created_at = now() - interval '10 days' WHERE key = 'key-old'`)

	res, err := s.Sweep(ctx, store.Retention{FailedSecrets: 30 * 24 * time.Hour, Claims: 90 * 24 * time.Hour, IdempotencyKeys: 7 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// key-old went with its claim (xOld), before the key step ran.
	if res.ErasedSecrets != 1 || res.PurgedClaims != 1 || res.PurgedIdemKeys != 0 || res.Skipped {
		t.Fatalf("sweep: %+v", res)
	}
	var tokens int
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM claims WHERE id = $1 AND token IS NULL AND secret IS NULL AND status = 'failed'`, failedOld).Scan(&tokens)
	if tokens != 1 {
		t.Fatal("the old failed claim still holds its token or secret")
	}
	if _, err := s.Retry(ctx, failedOld, hold, true); claim.ErrorCode(err) != claim.CodeConflict {
		t.Fatalf("retry of an erased claim: %v", err)
	}
	if c, err := s.Retry(ctx, failedNew, hold, true); err != nil || c.Status != claim.StatusPending {
		t.Fatalf("retry of a recent failed claim: %+v %v", c, err)
	}
	for id, want := range map[uuid.UUID]bool{xOld: false, xNew: true, yOnly: true, zHeld: true, zNew: true, pendingOld: true, failedOld: true} {
		_, err := s.Get(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("claim %s kept = %t, want %t (%v)", id, got, want, err)
		}
	}
	var events int
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM claim_events WHERE claim_id = $1`, xOld).Scan(&events)
	if events != 0 {
		t.Fatalf("%d events of a purged claim left", events)
	}

	// An old key of a claim that stays is forgotten on its own.
	exec(`UPDATE idempotency_keys SET created_at = now() - interval '10 days' WHERE key = 'key-new'`)
	res, err = s.Sweep(ctx, store.Retention{IdempotencyKeys: 7 * 24 * time.Hour})
	if err != nil || res.PurgedIdemKeys != 1 || res.PurgedClaims != 0 {
		t.Fatalf("keys: %+v %v", res, err)
	}

	// One replica sweeps at a time.
	conn, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(0x636c61696d737770)); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Sweep(ctx, store.Retention{Claims: time.Hour}); err != nil || !res.Skipped {
		t.Fatalf("while another sweeps: %+v %v", res, err)
	}
	_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(0x636c61696d737770))
}
