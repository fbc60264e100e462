package tbrest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// The two deliveries that go through ThingsBoard's HTTP APIs
// (docs/design.md §9). Their errors carry a claim.FailureKind.

// HTTPSender delivers device-side claims through the HTTP device API
// (delivery http): the same claim as over MQTT, without opening a device
// session (docs/thingsboard.md §1.3, §9).
type HTTPSender struct{ Client *Client }

// Send posts j's payload as its device. 200: delivered; 401: ThingsBoard does
// not know the token (rejected).
func (s HTTPSender) Send(ctx context.Context, j claim.Job) (claim.Receipt, error) {
	return claim.Receipt{}, failure(s.Client.ClaimAsDevice(ctx, string(j.Token), j.Payload()))
}

// AttributeSender delivers server-side claims (delivery attribute): it finds
// the device by name and writes its claimingData SERVER_SCOPE attribute,
// which ThingsBoard keeps in its database (docs/thingsboard.md §3.2).
type AttributeSender struct {
	Client *Client
	Now    func() time.Time // nil: time.Now
}

// Send writes j's claim. A device that does not exist, or already belongs to
// a customer on a first attempt, rejects the claim for good. On a later
// attempt a device that has a customer is this claim's success: an earlier
// attempt may have written claimingData and lost its answer, and the
// customer used it meanwhile; the claim is delivered, and the tracker then
// records it claimed.
func (s AttributeSender) Send(ctx context.Context, j claim.Job) (claim.Receipt, error) {
	d, err := s.Client.DeviceByName(ctx, j.DeviceName)
	switch {
	case errors.Is(err, ErrNotFound):
		return claim.Receipt{}, claim.Failure(claim.FailRejected, fmt.Errorf("ThingsBoard has no device named %q", j.DeviceName))
	case err != nil:
		return claim.Receipt{}, failure(err)
	case d.Claimed() && j.Attempt > 1:
		return claim.Receipt{DeviceID: d.ID}, nil
	case d.Claimed():
		return claim.Receipt{}, claim.Failure(claim.FailRejected,
			fmt.Errorf("the device %q already belongs to a customer (already claimed)", j.DeviceName))
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	// ThingsBoard compares expirationTime in whole milliseconds.
	expires := claim.ExpiryAfter(now(), j.DurationMs).Truncate(time.Millisecond)
	secret := ""
	if j.SecretKey != nil {
		secret = string(*j.SecretKey)
	}
	if err := s.Client.SetClaimingData(ctx, d.ID, secret, expires); err != nil {
		if errors.Is(err, ErrNotFound) { // deleted meanwhile
			return claim.Receipt{}, claim.Failure(claim.FailRejected, fmt.Errorf("ThingsBoard has no device named %q", j.DeviceName))
		}
		return claim.Receipt{}, failure(err)
	}
	return claim.Receipt{DeviceID: d.ID, ExpiresAt: expires}, nil
}

// failure gives err its claim.FailureKind.
func failure(err error) error {
	if err == nil {
		return nil
	}
	switch KindOf(err) {
	case KindUnreachable:
		return claim.Failure(claim.FailUnreachable, err)
	case KindUnauthorized:
		return claim.Failure(claim.FailUnauthorized, err)
	case KindUnknownToken:
		return claim.Failure(claim.FailRejected, fmt.Errorf("ThingsBoard does not know this device token: %w", err))
	}
	return claim.Failure(claim.FailTransient, err)
}
