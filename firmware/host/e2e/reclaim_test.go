package e2e

// Claiming again when a claim lapses (claim_core's claim_check/claim_decide),
// end to end: claim-sim --check asks the real claimsvc for the device's newest
// claim, exactly as the firmware does at start-up, and claims only when that
// claim is missing, expired or failed; never after claimed; and falls back to
// the old first-boot rule when claimsvc cannot answer.
//
// The statuses "expired" and "claimed" are set by claimsvc itself once it
// polls ThingsBoard's REST API; this test does not configure that (the
// emulator's REST API is not the point here), so it writes the status of the
// newest claim into its own test database. The firmware only ever sees the
// HTTP answer. Until a migration adds the new statuses, the CHECK constraint
// on claims.status rejects them: the test drops that one constraint in its own
// database only (allowStatuses), and does nothing once the constraint allows
// them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const exitNotClaimed = 7 // claim-sim --check decided not to claim

// allowStatuses lets the test database hold "expired" and "claimed": it drops
// the CHECK constraint on claims.status if that constraint does not list
// "expired" yet (migration 0001's five statuses). Only this test's database.
func allowStatuses(t *testing.T, db *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = 'claims'::regclass AND contype = 'c'`)
	if err != nil {
		t.Fatalf("constraints: %v", err)
	}
	var drop []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		// the status list: names 'delivered' among the allowed values
		if strings.Contains(def, "'delivered'") && !strings.Contains(def, "'expired'") {
			drop = append(drop, name)
		}
	}
	rows.Close()
	for _, name := range drop {
		if _, err := db.Exec(ctx, "ALTER TABLE claims DROP CONSTRAINT "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatalf("drop %s: %v", name, err)
		}
		t.Logf("test database: dropped CHECK constraint %s (it does not allow 'expired' yet)", name)
	}
}

// setNewestStatus sets the status of the newest claim in the test database.
func setNewestStatus(t *testing.T, db *pgx.Conn, status string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tag, err := db.Exec(ctx, `UPDATE claims SET status = $1, updated_at = now()
		WHERE id = (SELECT id FROM claims ORDER BY created_at DESC, id DESC LIMIT 1)`, status)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("set newest claim to %s: %v (%d rows)", status, err, tag.RowsAffected())
	}
}

// deviceClaims is what claimsvc answers the device: its claims, newest first.
func deviceClaims(t *testing.T, svc, token string) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, svc+"/devices/claims", nil)
	req.Header.Set("X-Device-Token", token)
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatalf("GET /devices/claims: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Claims []struct {
			Status string `json:"status"`
		} `json:"claims"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil {
		t.Fatalf("GET /devices/claims: %d %s", resp.StatusCode, b)
	}
	statuses := make([]string, len(out.Claims))
	for i, c := range out.Claims {
		statuses[i] = c.Status
	}
	return statuses
}

func TestSimClaimsAgainWhenClaimLapses(t *testing.T) {
	t.Parallel()
	// ThingsBoard keeps a device's claim data in a cache with putIfAbsent for
	// the cache's whole TTL (24 h by default), longer than the claim window:
	// a new request is ignored until then (docs/thingsboard.md §3.1; claimsvc
	// deals with that on its side). Here the emulator's cache lives 2 s, so
	// that the claim after "expired" reaches the customer.
	sim, st := startStack(t, "--cache-ttl", "2s")
	const token, device = "DHT11_DEMO_TOKEN", "DHT11 Demo Device"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	db, err := pgx.Connect(ctx, st.dbURL)
	cancel()
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer db.Close(context.Background())
	allowStatuses(t, db)

	// runCheck is the device at start-up; doneBefore is its local "a request
	// was delivered" flag.
	runCheck := func(t *testing.T, secret string, doneBefore bool, durationMs int) simResult {
		t.Helper()
		args := []string{"--service", st.svcURL, "--mqtt", "mqtt://" + st.tbMQTT,
			"--duration-ms", fmt.Sprint(durationMs), "--wait", "5", "--deadline-ms", "30000", "--check"}
		if doneBefore {
			args = append(args, "--done-before")
		}
		return runSim(t, sim, token, secret, args...)
	}
	wantClaimed := func(t *testing.T, res simResult, last, path string) {
		t.Helper()
		if res.code != exitClaimed || res.fields["decision"] != "claim" || res.fields["last"] != last ||
			res.fields["path"] != path {
			t.Fatalf("want a claim (decision=claim last=%s path=%s), got exit %d %q\nstderr:\n%s",
				last, path, res.code, res.stdout, res.stderr)
		}
	}
	wantNotClaimed := func(t *testing.T, res simResult, decision, last string) {
		t.Helper()
		if res.code != exitNotClaimed || res.fields["decision"] != decision || res.fields["last"] != last {
			t.Fatalf("want no claim (decision=%s last=%s, exit %d), got exit %d %q\nstderr:\n%s",
				decision, last, exitNotClaimed, res.code, res.stdout, res.stderr)
		}
	}
	count := func(t *testing.T, want int) []string {
		t.Helper()
		got := deviceClaims(t, st.svcURL, token)
		if len(got) != want {
			t.Fatalf("claimsvc holds %d claims for the device, want %d: %v", len(got), want, got)
		}
		return got
	}

	// The first claim gets a short window, so that it really lapses before
	// the test calls it expired.
	const shortWindowMs = 2000
	var firstDelivered time.Time
	t.Run("no claim yet: claims", func(t *testing.T) {
		res := runCheck(t, fmt.Sprintf("first-%d", time.Now().UnixNano()), false, shortWindowMs)
		wantClaimed(t, res, "none", "service")
		waitDelivered(t, st.svcURL, token)
		firstDelivered = time.Now()
		count(t, 1)
	})

	t.Run("delivered: waits, sends nothing", func(t *testing.T) {
		wantNotClaimed(t, runCheck(t, "unused-secret", true, 600000), "wait", "delivered")
		count(t, 1)
	})

	t.Run("expired: claims again, and the customer can claim", func(t *testing.T) {
		// what claimsvc does once expiresAt passed without a customer
		time.Sleep(time.Until(firstDelivered.Add(shortWindowMs*time.Millisecond + 500*time.Millisecond)))
		setNewestStatus(t, db, "expired")
		secret := fmt.Sprintf("again-%d", time.Now().UnixNano())
		res := runCheck(t, secret, true, 600000) // the local flag says "done": the status overrides it
		wantClaimed(t, res, "expired", "service")
		waitDelivered(t, st.svcURL, token)
		if got := count(t, 2); got[1] != "expired" {
			t.Errorf("older claim = %s, want expired", got[1])
		}
		customerClaim(t, st.tbHTTP, device, secret) // the new window works end to end
	})

	t.Run("failed: claims again", func(t *testing.T) {
		setNewestStatus(t, db, "failed")
		wantClaimed(t, runCheck(t, fmt.Sprintf("failed-%d", time.Now().UnixNano()), true, 600000), "failed", "service")
		waitDelivered(t, st.svcURL, token)
		count(t, 3)
	})

	t.Run("cancelled: an operator decided, no claim", func(t *testing.T) {
		setNewestStatus(t, db, "cancelled")
		wantNotClaimed(t, runCheck(t, "unused-secret", false, 600000), "stop", "cancelled")
		count(t, 3)
	})

	t.Run("claimed: never again, whatever the local flag says", func(t *testing.T) {
		setNewestStatus(t, db, "claimed")
		wantNotClaimed(t, runCheck(t, "unused-secret", false, 600000), "done", "claimed")
		wantNotClaimed(t, runCheck(t, "unused-secret", true, 600000), "done", "claimed")
		count(t, 3)
	})

	st.svc.stop()

	t.Run("claimsvc unreachable, request delivered before: the old rule, no claim", func(t *testing.T) {
		wantNotClaimed(t, runCheck(t, "unused-secret", true, 600000), "wait", "unknown")
	})

	t.Run("claimsvc unreachable, nothing delivered yet: claims over MQTT", func(t *testing.T) {
		const token2 = "RASPBERRY_PI_DEMO_TOKEN"
		secret := fmt.Sprintf("fallback \"%d\"", time.Now().UnixNano())
		res := runSim(t, sim, token2, secret, "--service", st.svcURL, "--mqtt", "mqtt://"+st.tbMQTT,
			"--duration-ms", "600000", "--deadline-ms", "30000", "--check")
		wantClaimed(t, res, "unknown", "mqtt")
		customerClaim(t, st.tbHTTP, "Raspberry Pi Demo Device", secret)
	})
}
