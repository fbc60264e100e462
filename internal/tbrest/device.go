package tbrest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// nullCustomerID is the id ThingsBoard stores for "no customer" (docs/thingsboard.md §3.1).
const nullCustomerID = "13814000-1dd2-11b2-8080-808080808080"

// Device is what claimsvc needs of a ThingsBoard device.
type Device struct {
	ID         string // the device's UUID
	Name       string
	CustomerID string // the owning customer's UUID; "" when unassigned
}

// Claimed reports whether a customer owns the device.
func (d Device) Claimed() bool { return d.CustomerID != "" }

// DeviceByName returns the tenant's device with exactly that name (GET /api/tenant/devices,
// docs/thingsboard.md §5, §9). A missing device is ErrNotFound.
func (c *Client) DeviceByName(ctx context.Context, name string) (Device, error) {
	if name == "" {
		return Device{}, invalid(OpDeviceByName, "empty device name")
	}
	// %20 rather than "+" for spaces: every server decodes it the same way.
	q := strings.ReplaceAll(url.QueryEscape(name), "+", "%20")
	ans, err := c.do(ctx, request{op: OpDeviceByName, method: http.MethodGet, path: "/api/tenant/devices?deviceName=" + q,
		auth: true, notFound: true})
	if err != nil {
		return Device{}, err
	}
	return decodeDevice(OpDeviceByName, ans)
}

// Device returns the device with that id (GET /api/device/{id}). A missing device is ErrNotFound.
func (c *Client) Device(ctx context.Context, id string) (Device, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Device{}, invalid(OpDevice, "the device id is not a UUID")
	}
	ans, err := c.do(ctx, request{op: OpDevice, method: http.MethodGet, path: "/api/device/" + uid.String(),
		auth: true, notFound: true})
	if err != nil {
		return Device{}, err
	}
	return decodeDevice(OpDevice, ans)
}

// decodeDevice reads the fields of ThingsBoard's Device JSON that claimsvc uses
// (docs/thingsboard.md §4.1): {"id":{"id":…},"name":…,"customerId":{"id":…}}.
func decodeDevice(op string, ans *answer) (Device, error) {
	var v struct {
		ID *struct {
			ID string `json:"id"`
		} `json:"id"`
		Name       string `json:"name"`
		CustomerID *struct {
			ID string `json:"id"`
		} `json:"customerId"`
	}
	if err := decodeJSON(op, ans, &v); err != nil {
		return Device{}, err
	}
	if v.ID == nil || v.ID.ID == "" {
		return Device{}, &Error{Op: op, Kind: KindBadResponse, Status: ans.status, Err: errors.New("the device has no id")}
	}
	d := Device{ID: v.ID.ID, Name: v.Name}
	if v.CustomerID != nil && v.CustomerID.ID != nullCustomerID {
		d.CustomerID = v.CustomerID.ID
	}
	return d, nil
}

// SetClaimingData writes the server-side claim data of a device, the SERVER_SCOPE attribute
// {"claimingData":{"secretKey":…,"expirationTime":<epoch ms>}} (docs/thingsboard.md §3.2). A customer
// may then claim the device with that secret key until expiresAt; the attribute survives restarts
// and wrong keys, and ThingsBoard deletes it when the device is claimed (docs/thingsboard.md §3.3).
// A missing device is ErrNotFound.
func (c *Client) SetClaimingData(ctx context.Context, deviceID, secretKey string, expiresAt time.Time) error {
	uid, err := uuid.Parse(deviceID)
	if err != nil {
		return invalid(OpSetClaimingData, "the device id is not a UUID")
	}
	if expiresAt.IsZero() {
		return invalid(OpSetClaimingData, "no expiry")
	}
	type claimingData struct {
		SecretKey      string `json:"secretKey"`
		ExpirationTime int64  `json:"expirationTime"`
	}
	body := mustJSON(struct {
		ClaimingData claimingData `json:"claimingData"`
	}{claimingData{SecretKey: secretKey, ExpirationTime: expiresAt.UnixMilli()}})
	_, err = c.do(ctx, request{op: OpSetClaimingData, method: http.MethodPost,
		path: "/api/plugins/telemetry/DEVICE/" + uid.String() + "/attributes/SERVER_SCOPE",
		body: body, auth: true, notFound: true, secrets: []string{secretKey}})
	return err
}

// DeleteClaimingData deletes a device's claimingData attribute (TelemetryController's
// DELETE /api/plugins/telemetry/{entityType}/{entityId}/{scope}?keys=), so that its secret key no
// longer claims it. Deleting an attribute that does not exist succeeds. A missing device is
// ErrNotFound.
func (c *Client) DeleteClaimingData(ctx context.Context, deviceID string) error {
	uid, err := uuid.Parse(deviceID)
	if err != nil {
		return invalid(OpDeleteClaimingData, "the device id is not a UUID")
	}
	_, err = c.do(ctx, request{op: OpDeleteClaimingData, method: http.MethodDelete,
		path: "/api/plugins/telemetry/DEVICE/" + uid.String() + "/SERVER_SCOPE?keys=claimingData",
		auth: true, notFound: true})
	return err
}

// Check makes a cheap authenticated call (GET /api/auth/user) for readiness: nil when ThingsBoard
// answers and accepts the credentials.
func (c *Client) Check(ctx context.Context) error {
	_, err := c.do(ctx, request{op: OpCheck, method: http.MethodGet, path: "/api/auth/user", auth: true})
	return err
}
