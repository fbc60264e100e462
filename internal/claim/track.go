package claim

import (
	"time"

	"github.com/google/uuid"
)

// After delivery (docs/design.md §9): when claimsvc can read ThingsBoard's
// REST API and a delivered claim names its device, a tracker looks at the
// device until a customer has it (claimed) or the claim expires (expired).

// Watch is a delivered claim the tracker follows.
type Watch struct {
	ID         uuid.UUID
	Delivery   Delivery
	DeviceName string
	DeviceID   string // ThingsBoard's id; "" until resolved by name
	ExpiresAt  time.Time
}

// Seen is what the tracker found of a watched claim's device.
type Seen string

// What the tracker can find.
const (
	// SeenUnclaimed: the device has no customer and the claim has not
	// expired: look again later.
	SeenUnclaimed Seen = "unclaimed"
	// SeenClaimed: the device belongs to a customer: the claim is claimed.
	SeenClaimed Seen = "claimed"
	// SeenExpired: the claim expired and no customer has the device (an
	// attribute claim's claimingData was deleted first).
	SeenExpired Seen = "expired"
	// SeenNoDevice: ThingsBoard has no device of that name (any more).
	SeenNoDevice Seen = "no-device"
)

// Observation is one look at a watched claim's device.
type Observation struct {
	Claim      uuid.UUID
	Seen       Seen
	DeviceID   string // learnt by name, when it was not known
	CustomerID string // with SeenClaimed
	Detail     string // for the audit trail
}
