package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/store/storetest"
)

func attrReq(token, secret, device string, dur int64) claim.Request {
	r := req(token, secret, dur)
	r.Delivery, r.DeviceName = claim.DeliveryAttribute, device
	return r
}

func eventKinds(t *testing.T, s *store.Store, id uuid.UUID) []string {
	t.Helper()
	evs, err := s.Events(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

// An attribute claim from intake to claimed: the lease carries its delivery
// and device, the receipt's device id and expiry are kept, the tracker's
// queue hands it out once per interval, and what the tracker saw lands once.
func TestAttributeClaimIsTrackedUntilClaimed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	c, err := s.Create(ctx, attrReq("TOKEN_TRACK_0001", "k", "Sensor 1", 7*24*3600*1000), hold)
	if err != nil || c.Claim.Delivery != claim.DeliveryAttribute || c.Claim.DeviceName != "Sensor 1" {
		t.Fatalf("create: %+v %v", c, err)
	}
	jobs, err := s.Lease(ctx, 1, time.Minute, nil)
	if err != nil || len(jobs) != 1 || jobs[0].Delivery != claim.DeliveryAttribute || jobs[0].DeviceName != "Sensor 1" {
		t.Fatalf("lease: %+v %v", jobs, err)
	}
	expires := time.Now().Add(7 * 24 * time.Hour).Truncate(time.Millisecond)
	devID := uuid.NewString()
	out := claim.OutcomeOf(jobs[0], claim.OutcomeDelivered, nil, 0)
	out.Receipt = claim.Receipt{DeviceID: devID, ExpiresAt: expires}
	if err := storetest.Report(t, s, out); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, c.Claim.ID)
	if got.Status != claim.StatusDelivered || got.ExpiresAt == nil || !got.ExpiresAt.Equal(expires) {
		t.Fatalf("delivered: %+v", got)
	}

	due, err := s.DueForLook(ctx, 10, time.Hour)
	if err != nil || len(due) != 1 || due[0].ID != c.Claim.ID || due[0].DeviceID != devID || !due[0].ExpiresAt.Equal(expires) {
		t.Fatalf("due: %+v %v", due, err)
	}
	if again, _ := s.DueForLook(ctx, 10, time.Hour); len(again) != 0 {
		t.Fatalf("looked at twice within the interval: %+v", again)
	}
	if again, _ := s.DueForLook(ctx, 10, 0); len(again) != 1 {
		t.Fatalf("not due again after the interval: %+v", again)
	}

	changed, err := s.Record(ctx, []claim.Observation{{Claim: c.Claim.ID, Seen: claim.SeenUnclaimed}})
	if err != nil || len(changed) != 0 {
		t.Fatalf("unclaimed: %v %v", changed, err)
	}
	cust := uuid.NewString()
	obs := []claim.Observation{{Claim: c.Claim.ID, Seen: claim.SeenClaimed, CustomerID: cust, Detail: "the device now belongs to customer " + cust}}
	if changed, err = s.Record(ctx, obs); err != nil || len(changed) != 1 {
		t.Fatalf("claimed: %v %v", changed, err)
	}
	if changed, _ = s.Record(ctx, obs); len(changed) != 0 {
		t.Fatal("a claimed claim changed again")
	}
	got, _ = s.Get(ctx, c.Claim.ID)
	if got.Status != claim.StatusClaimed || got.ClaimedAt == nil || got.CustomerID != cust {
		t.Fatalf("claimed: %+v", got)
	}
	if k := eventKinds(t, s, c.Claim.ID); len(k) != 4 || k[3] != "claimed" {
		t.Fatalf("events %v", k)
	}
	if due, _ := s.DueForLook(ctx, 10, 0); len(due) != 0 {
		t.Fatalf("a claimed claim is still tracked: %+v", due)
	}
}

// A device the tracker cannot find is noted once; the claim expires later.
func TestTrackingNotesAMissingDeviceOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	r := req("TOKEN_TRACK_0002", "k", 1000)
	r.DeviceName = "No Such Device"
	c, _ := s.Create(ctx, r, hold)
	jobs, _ := s.Lease(ctx, 1, time.Minute, nil)
	if err := deliver(t, s, jobs[0]); err != nil {
		t.Fatal(err)
	}
	miss := claim.Observation{Claim: c.Claim.ID, Seen: claim.SeenNoDevice, Detail: `ThingsBoard has no device named "No Such Device"`}
	for range 3 {
		if changed, err := s.Record(ctx, []claim.Observation{miss}); err != nil || len(changed) != 0 {
			t.Fatalf("no device: %v %v", changed, err)
		}
	}
	got, _ := s.Get(ctx, c.Claim.ID)
	if got.Status != claim.StatusDelivered || got.LastError != miss.Detail {
		t.Fatalf("after three misses: %+v", got)
	}
	if changed, _ := s.Record(ctx, []claim.Observation{{Claim: c.Claim.ID, Seen: claim.SeenExpired, Detail: "expired"}}); len(changed) != 1 {
		t.Fatal("not expired")
	}
	got, _ = s.Get(ctx, c.Claim.ID)
	if k := eventKinds(t, s, c.Claim.ID); got.Status != claim.StatusExpired || got.LastError != "" ||
		len(k) != 5 || k[3] != "tracking" || k[4] != "expired" {
		t.Fatalf("expired: %+v, events %v", got, k)
	}
}

// A newer attribute claim supersedes the device's earlier one, delivered or
// still pending; while the earlier one is being sent, the newer one waits
// for that lease to end, so that its claimingData is written last.
func TestAttributeClaimSupersedes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	a, _ := s.Create(ctx, attrReq("TOKEN_TRACK_0003", "a", "Sensor 3", 60000), hold)
	jobs, _ := s.Lease(ctx, 1, time.Minute, nil)
	if err := deliver(t, s, jobs[0]); err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, attrReq("TOKEN_TRACK_0003", "b", "Sensor 3", 60000), hold)
	if err != nil || b.Replayed {
		t.Fatalf("second attribute claim: %+v %v", b, err)
	}
	if got, _ := s.Get(ctx, a.Claim.ID); got.Status != claim.StatusSuperseded {
		t.Fatalf("the first: %+v", got)
	}
	if k := eventKinds(t, s, a.Claim.ID); k[len(k)-1] != "superseded" {
		t.Fatalf("events %v", k)
	}
	// b is being sent when c arrives.
	jobs, _ = s.Lease(ctx, 1, time.Minute, nil)
	if len(jobs) != 1 || jobs[0].ID != b.Claim.ID {
		t.Fatalf("lease b: %+v", jobs)
	}
	c, err := s.Create(ctx, attrReq("TOKEN_TRACK_0003", "c", "Sensor 3", 60000), hold)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, c.Claim.ID)
	if got.NextAttemptAt == nil || time.Until(*got.NextAttemptAt) < 50*time.Second {
		t.Fatalf("c is due at %v; want it after b's lease (a minute)", got.NextAttemptAt)
	}
	if err := deliver(t, s, jobs[0]); err == nil {
		t.Fatal("the superseded b's outcome was applied")
	}
	var tok []byte
	if err := s.Pool().QueryRow(ctx, `SELECT token FROM claims WHERE id = $1`, b.Claim.ID).Scan(&tok); err != nil || tok != nil {
		t.Fatalf("a superseded claim keeps its token: %v", err)
	}
	// A device-side claim does not replace the live attribute claim.
	if _, err := s.Create(ctx, req("TOKEN_TRACK_0003", "d", 0), hold); claim.ErrorCode(err) != claim.CodeConflict {
		t.Fatalf("device-side over a live attribute claim: %v", err)
	}
}

// DELETE of a delivered attribute claim: the store names the device to
// revoke it at, then records the revocation.
func TestRevokeAttributeClaim(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	c, _ := s.Create(ctx, attrReq("TOKEN_TRACK_0004", "k", "Sensor 4", 60000), hold)
	if _, ok, _ := s.RevokeTarget(ctx, c.Claim.ID); ok {
		t.Fatal("a pending claim is not revoked but cancelled")
	}
	jobs, _ := s.Lease(ctx, 1, time.Minute, nil)
	out := claim.OutcomeOf(jobs[0], claim.OutcomeDelivered, nil, 0)
	dev := uuid.NewString()
	out.Receipt.DeviceID = dev
	if err := storetest.Report(t, s, out); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.RevokeTarget(ctx, c.Claim.ID)
	if err != nil || !ok || got != dev {
		t.Fatalf("revoke target: %q %v %v", got, ok, err)
	}
	rc, err := s.Revoked(ctx, c.Claim.ID)
	if err != nil || rc.Status != claim.StatusCancelled {
		t.Fatalf("revoked: %+v %v", rc, err)
	}
	if _, err := s.Revoked(ctx, c.Claim.ID); claim.ErrorCode(err) != claim.CodeConflict {
		t.Fatalf("revoked twice: %v", err)
	}
}
