package claim

import (
	"bytes"
	"slices"
	"time"

	"github.com/google/uuid"
)

// The intake rules (docs/design.md §2 and docs/design.md §10): what to do
// with a claim request, given what the store read under its locks. They are pure functions: the
// store takes the locks, reads, calls DecideIntake, and writes what the
// verdicts say; tests drive the rules without a database.

// Prior is a claim the rules weigh a request against: one already stored, or
// one that an earlier request of the same intake inserts.
type Prior struct {
	ID          uuid.UUID
	Status      Status
	Delivery    Delivery
	DeliveredAt *time.Time
	ExpiresAt   *time.Time
	// TokenHash and Fingerprint identify the request: for a device's claim,
	// the claim's own; for an Idempotency-Key, the request that used the key.
	TokenHash   []byte
	Fingerprint []byte
}

// Live reports whether p still stands in the way of a different claim for
// its device: it is pending (it will be sent); or it is a device-side claim
// delivered less than hold before now (ThingsBoard keeps the first claim and
// silently ignores a new one while it is cached, docs/thingsboard.md §3.1);
// or it is an attribute claim delivered and not yet expired (ThingsBoard
// reads a cached device-side claim before the attribute:
// docs/thingsboard.md §3.2, so the two would compete).
func (p Prior) Live(now time.Time, hold time.Duration) bool {
	switch p.Status {
	case StatusPending:
		return true
	case StatusDelivered:
		if p.Delivery == DeliveryAttribute {
			return p.ExpiresAt == nil || p.ExpiresAt.After(now)
		}
		return p.DeliveredAt != nil && p.DeliveredAt.After(now.Add(-hold))
	}
	return false
}

// IntakeView is what the store read, under the intake locks, for one group of
// requests.
type IntakeView struct {
	Now  time.Time     // the database's clock, read in the same transaction
	Hold time.Duration // CLAIMSVC_TB_CLAIM_HOLD
	// Keys maps each Idempotency-Key the requests carry, that was used
	// before, to the claim that answered it.
	Keys map[string]Prior
	// Devices maps a device (string of its token hash) to its newest pending
	// claim and its newest delivered claim, whichever exist, newest first.
	Devices map[string][]Prior
}

// Verdict is what to do with one request.
type Verdict struct {
	// Insert: store a new claim with id Claim. Replay: Claim (stored, or
	// inserted by an earlier request of the group) answers the request.
	// Refuse: Err says why.
	Kind  VerdictKind
	Claim uuid.UUID
	Err   *Error
	// RecordKey: remember the request's Idempotency-Key as answered by Claim.
	RecordKey bool
	// Supersede (with Insert): earlier attribute claims of the device that
	// the new attribute claim replaces (ThingsBoard keeps the last write).
	Supersede []uuid.UUID
}

// VerdictKind is the kind of a Verdict.
type VerdictKind int

// The verdicts.
const (
	Insert VerdictKind = iota
	Replay
	Refuse
)

// Incoming is one request of an intake group: the validated request, its
// device's token hash and fingerprint, and the id a new claim for it gets.
type Incoming struct {
	Req         Request
	TokenHash   []byte
	Fingerprint []byte
	NewID       uuid.UUID
}

// NewIncoming prepares req for DecideIntake.
func NewIncoming(req Request, newID uuid.UUID) Incoming {
	return Incoming{Req: req, TokenHash: req.Token.Hash(), Fingerprint: req.Fingerprint(), NewID: newID}
}

// DecideIntake applies the intake rules to each request in order, as if they
// had arrived one after another: a later request sees the claims that earlier
// ones insert and the keys they record.
//
//   - An Idempotency-Key used before answers with its claim when the request
//     is the same (device and fingerprint), and is refused otherwise.
//   - A live claim of the device (see Prior.Live) answers when it is the same
//     request. Otherwise, an attribute claim whose device's live claims are
//     all attribute claims replaces them (they become superseded); any other
//     request is blocked (409) unless it forces. A forced attribute claim
//     also supersedes the live attribute claims.
//   - Otherwise the request inserts a new pending claim.
//
// A key is recorded for every request answered by a new claim or a replay
// under the hold rule, so that reusing it with another request is refused.
func DecideIntake(in []Incoming, view IntakeView) []Verdict {
	keys := make(map[string]Prior, len(view.Keys))
	for k, p := range view.Keys {
		keys[k] = p
	}
	devices := make(map[string][]Prior, len(view.Devices))
	for d, ps := range view.Devices {
		devices[d] = ps
	}
	out := make([]Verdict, len(in))
	for i, r := range in {
		key := r.Req.IdempotencyKey
		if p, ok := keys[key]; key != "" && ok {
			if !bytes.Equal(p.TokenHash, r.TokenHash) || !bytes.Equal(p.Fingerprint, r.Fingerprint) {
				out[i] = Verdict{Kind: Refuse, Err: IdempotencyKeyReused(p.ID)}
			} else {
				out[i] = Verdict{Kind: Replay, Claim: p.ID}
			}
			continue
		}
		v := Verdict{Kind: Insert, Claim: r.NewID}
		dev := devices[string(r.TokenHash)]
		if b := Blocking(dev, uuid.Nil, view.Now, view.Hold); b != nil {
			live, allAttribute := liveClaims(dev, view.Now, view.Hold)
			switch {
			case bytes.Equal(b.Fingerprint, r.Fingerprint):
				v = Verdict{Kind: Replay, Claim: b.ID}
			case r.Req.Delivery == DeliveryAttribute && (allAttribute || r.Req.Force):
				for _, p := range live {
					if p.Delivery == DeliveryAttribute {
						v.Supersede = append(v.Supersede, p.ID)
					}
				}
			case !r.Req.Force:
				out[i] = Verdict{Kind: Refuse, Err: HoldConflict(*b)}
				continue
			}
		}
		if v.Kind == Insert {
			// The new claim is now the device's newest; those it replaces
			// are no longer live.
			kept := []Prior{{ID: r.NewID, Status: StatusPending, Delivery: r.Req.Delivery,
				TokenHash: r.TokenHash, Fingerprint: r.Fingerprint}}
			for _, p := range dev {
				if !slices.Contains(v.Supersede, p.ID) {
					kept = append(kept, p)
				}
			}
			devices[string(r.TokenHash)] = kept
		}
		if key != "" {
			v.RecordKey = true
			keys[key] = Prior{ID: v.Claim, TokenHash: r.TokenHash, Fingerprint: r.Fingerprint}
		}
		out[i] = v
	}
	return out
}

// liveClaims returns the device's live claims and whether they are all
// attribute claims.
func liveClaims(claims []Prior, now time.Time, hold time.Duration) (live []Prior, allAttribute bool) {
	allAttribute = true
	for _, p := range claims {
		if p.Live(now, hold) {
			live = append(live, p)
			allAttribute = allAttribute && p.Delivery == DeliveryAttribute
		}
	}
	return live, allAttribute
}

// Blocking returns the first of a device's claims (given newest first) that
// is live at now, other than the claim except (a claim being retried does not
// block itself), or nil.
func Blocking(claims []Prior, except uuid.UUID, now time.Time, hold time.Duration) *Prior {
	for i := range claims {
		if p := &claims[i]; p.ID != except && p.Live(now, hold) {
			return p
		}
	}
	return nil
}

// HoldConflict is the refusal of a different claim while b is live. It is the
// one message for intake and retry alike, and it says what to do next
// (README "What a factory tool does with each answer").
func HoldConflict(b Prior) *Error {
	msg := "a different claim for this device is pending: it will be sent, and ThingsBoard would ignore this one " +
		"while it holds that one; wait for its outcome (GET /claims/{blockingClaimId}), cancel it (DELETE), " +
		"or add ?force=true to send this one anyway"
	switch {
	case b.Status == StatusDelivered && b.Delivery == DeliveryAttribute:
		msg = "an attribute claim for this device is live until it expires or a customer uses it; " +
			"ThingsBoard reads a device-side claim before the attribute, so the two would compete: " +
			"revoke the attribute claim first (DELETE /claims/{id}), or send this one as an attribute claim too, which replaces it " +
			"(or add ?force=true to send this one anyway)"
	case b.Status == StatusDelivered:
		msg = "a different claim for this device was delivered within the hold window, and ThingsBoard ignores a new claim " +
			"while it still holds that one. If a customer typed a wrong secret, ThingsBoard has dropped that claim and this one " +
			"is needed: send it with ?force=true, better as delivery \"attribute\" with deviceName, which a wrong secret " +
			"does not drop. Otherwise the customer can still use the delivered claim's secret"
	}
	id := b.ID
	return &Error{Code: CodeConflict, Message: msg, Blocking: &id}
}

// IdempotencyKeyReused is the refusal of a request that reuses a key with a
// different request; original is the claim the key answered first.
func IdempotencyKeyReused(original uuid.UUID) *Error {
	id := original
	return &Error{Code: CodeIdemReuse, Message: "this Idempotency-Key was already used with a different request", Original: &id}
}
