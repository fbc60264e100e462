package tbrest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/tbemu"
)

// These tests run the Client against the ThingsBoard emulator (internal/tbemu) with its demo data
// (docs/thingsboard.md §5).

const demoDevice = "DHT11 Demo Device" // unassigned in the demo data; token DHT11_DEMO_TOKEN

func tenantClient(t *testing.T, emu *tbemu.Emulator, reqs *requests) *Client {
	return newClient(t, Config{BaseURL: emu.HTTPURL(), Username: tbemu.DemoTenantAdmin, Password: tbemu.DemoTenantAdminPassword,
		OnRequest: reqs.hook})
}

// clockedTenant starts an emulator on a manual clock and a tenant administrator's Client for it.
func clockedTenant(t *testing.T) (*tbemu.ManualClock, *Client, *requests) {
	clock := tbemu.NewManualClock(time.Now())
	reqs := newRequests()
	return clock, tenantClient(t, startEmulator(t, clock), reqs), reqs
}

func TestEmulatorDevices(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, nil)
	reqs := newRequests()
	c := tenantClient(t, emu, reqs)
	ctx := ctxT(t)

	d, err := c.DeviceByName(ctx, demoDevice)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := emu.Device(demoDevice)
	if d.ID != want.ID || d.Name != demoDevice || d.CustomerID != "" || d.Claimed() {
		t.Fatalf("DeviceByName = %+v, want id %s, no customer", d, want.ID)
	}
	byID, err := c.Device(ctx, d.ID)
	if err != nil || byID != d {
		t.Fatalf("Device(id) = %+v, %v; want %+v", byID, err, d)
	}

	// A device of Customer A in the demo data.
	a1, err := c.DeviceByName(ctx, "Test Device A1")
	if err != nil || !a1.Claimed() || a1.CustomerID == nullCustomerID {
		t.Fatalf("Test Device A1 = %+v, %v; want a customer", a1, err)
	}

	// Names are sent URL-encoded and matched exactly.
	odd := "odd name & co+1?x=#/%"
	if _, err := emu.AddDevice(odd, ""); err != nil {
		t.Fatal(err)
	}
	if got, err := c.DeviceByName(ctx, odd); err != nil || got.Name != odd {
		t.Fatalf("DeviceByName(%q) = %+v, %v", odd, got, err)
	}

	for name, err := range map[string]error{
		"DeviceByName missing": func() error { _, err := c.DeviceByName(ctx, "No Such Device"); return err }(),
		"DeviceByName case":    func() error { _, err := c.DeviceByName(ctx, strings.ToLower(demoDevice)); return err }(),
		"Device missing":       func() error { _, err := c.Device(ctx, uuid.NewString()); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) || KindOf(err) != KindNotFound || IsUnreachable(err) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := c.Device(ctx, "not-a-uuid"); KindOf(err) != KindInvalid {
		t.Errorf("Device(not-a-uuid) = %v, want invalid_argument", err)
	}
	if got := reqs.get("login/ok"); got != 1 {
		t.Errorf("logins: %d, want 1 (%s)", got, reqs)
	}
	if got := reqs.get("device_by_name/not_found"); got != 2 {
		t.Errorf("404s of device_by_name: %d, want 2, not retried (%s)", got, reqs)
	}
}

// TestEmulatorClaimingData writes claimingData, then a customer claims the device with that
// secret (docs/thingsboard.md §3.2, §4.1), and the Client sees the new owner.
func TestEmulatorClaimingData(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, nil)
	c := tenantClient(t, emu, newRequests())
	ctx := ctxT(t)
	base := emu.HTTPURL()

	d, err := c.DeviceByName(ctx, demoDevice)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetClaimingData(ctx, d.ID, "attr-secret", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A wrong key fails and leaves the attribute (docs/thingsboard.md §3.3)…
	if st, body, _ := customerClaim(t, base, demoDevice, "wrong"); st != http.StatusBadRequest || body != `"FAILURE"` {
		t.Fatalf("claim with a wrong key: %d %s", st, body)
	}
	// …and the right one claims it.
	st, body, customer := customerClaim(t, base, demoDevice, "attr-secret")
	if st != http.StatusOK || customer == "" {
		t.Fatalf("claim with the key: %d %s", st, body)
	}
	got, err := c.Device(ctx, d.ID)
	if err != nil || !got.Claimed() || got.CustomerID != customer {
		t.Fatalf("after the claim Device = %+v, %v; want customer %s", got, err, customer)
	}
	if got, err := c.DeviceByName(ctx, demoDevice); err != nil || got.CustomerID != customer {
		t.Fatalf("after the claim DeviceByName = %+v, %v", got, err)
	}

	// An expired attribute does not claim (epoch ms, docs/thingsboard.md §3.2).
	t1, _ := emu.Device("Thermostat T1")
	if err := c.SetClaimingData(ctx, t1.ID, "late", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if st, body, _ := customerClaim(t, base, "Thermostat T1", "late"); st != http.StatusBadRequest || body != `"FAILURE"` {
		t.Fatalf("claim with expired data: %d %s", st, body)
	}

	if err := c.SetClaimingData(ctx, uuid.NewString(), "x", time.Now().Add(time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetClaimingData on a missing device: %v, want ErrNotFound", err)
	}
}

// TestEmulatorRefreshBeforeExpiry moves the emulator's clock (which the Client shares) to just
// before the JWT's exp: the Client refreshes instead of logging in again, and the new JWT outlives
// the old one.
func TestEmulatorRefreshBeforeExpiry(t *testing.T) {
	t.Parallel()
	clock, c, reqs := clockedTenant(t)
	c.now = clock.Now
	ctx := ctxT(t)

	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(9000*time.Second - 30*time.Second) // the JWT lives 9000 s (docs/thingsboard.md §5)
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute) // past the first JWT's exp
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if reqs.get("login/ok") != 1 || reqs.get("refresh/ok") != 1 || reqs.get("check/ok") != 3 || reqs.get("check/unauthorized") != 0 {
		t.Fatalf("want 1 login, 1 refresh, 3 checks and no 401: %s", reqs)
	}
}

// TestEmulatorReloginOnExpiredJWT: the emulator's clock runs ahead of the Client's, so the JWT
// expires while the Client still trusts it. The 401 makes the Client log in again, once, and the
// call succeeds.
func TestEmulatorReloginOnExpiredJWT(t *testing.T) {
	t.Parallel()
	clock, c, reqs := clockedTenant(t) // the Client keeps real time
	ctx := ctxT(t)

	if _, err := c.DeviceByName(ctx, demoDevice); err != nil {
		t.Fatal(err)
	}
	clock.Advance(9001 * time.Second)
	d, err := c.DeviceByName(ctx, demoDevice)
	if err != nil || d.Name != demoDevice {
		t.Fatalf("after expiry: %+v, %v", d, err)
	}
	if reqs.get("device_by_name/unauthorized") != 1 || reqs.get("login/ok") != 2 || reqs.get("device_by_name/ok") != 2 {
		t.Fatalf("want one 401, two logins, two answers: %s", reqs)
	}
}

func TestEmulatorWrongPassword(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, nil)
	reqs := newRequests()
	c := newClient(t, Config{BaseURL: emu.HTTPURL(), Username: tbemu.DemoTenantAdmin, Password: "pw-not-it-6813",
		OnRequest: reqs.hook})
	err := c.Check(ctxT(t))
	var e *Error
	if !IsUnauthorized(err) || !errors.As(err, &e) || e.Op != OpLogin || e.Status != http.StatusUnauthorized || e.Code != 10 {
		t.Fatalf("Check with a wrong password: %v", err)
	}
	if strings.Contains(err.Error(), "pw-not-it-6813") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if reqs.total(OpLogin) != 1 || reqs.total(OpCheck) != 0 {
		t.Fatalf("a refused login is not retried: %s", reqs)
	}
}

// TestEmulatorConcurrentCallsLogInOnce: callers that need a JWT at the same time share one login.
func TestEmulatorConcurrentCallsLogInOnce(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, nil)
	reqs := newRequests()
	c := tenantClient(t, emu, reqs)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() { errs <- c.Check(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if reqs.total(OpLogin) != 1 || reqs.get("check/ok") != 16 {
		t.Fatalf("want 1 login for 16 checks: %s", reqs)
	}
}

// TestEmulatorClaimAsDevice registers a claim through the HTTP device API (docs/thingsboard.md
// §1.3), then a customer claims the device with its secret.
func TestEmulatorClaimAsDevice(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, nil)
	reqs := newRequests()
	c := newClient(t, Config{BaseURL: emu.HTTPURL(), OnRequest: reqs.hook}) // the device API needs no credentials
	ctx := ctxT(t)

	if err := c.ClaimAsDevice(ctx, "DHT11_DEMO_TOKEN", []byte(`{"secretKey":"dev-secret","durationMs":60000}`)); err != nil {
		t.Fatal(err)
	}
	if err := emu.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !emu.PendingClaim(demoDevice) {
		t.Fatal("the emulator holds no claim for the device")
	}
	if st, body, _ := customerClaim(t, emu.HTTPURL(), demoDevice, "dev-secret"); st != http.StatusOK {
		t.Fatalf("customer claim after ClaimAsDevice: %d %s", st, body)
	}

	// No body: ThingsBoard's defaults (docs/thingsboard.md §1.1).
	if err := c.ClaimAsDevice(ctx, "T2_TEST_TOKEN", nil); err != nil {
		t.Fatal(err)
	}

	for _, token := range []string{"NO_SUCH_TOKEN_5150", "a/b?c#d e", "%2e%2e"} {
		err := c.ClaimAsDevice(ctx, token, []byte(`{"secretKey":"k"}`))
		if !IsUnknownToken(err) || IsUnreachable(err) {
			t.Errorf("ClaimAsDevice(%q) = %v, want unknown token (the token is path-escaped)", token, err)
		} else if strings.Contains(err.Error(), token) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
	if err := c.ClaimAsDevice(ctx, "", nil); KindOf(err) != KindInvalid {
		t.Errorf("ClaimAsDevice with no token = %v", err)
	}
	if got := reqs.get("device_claim/unknown_token"); got != 3 {
		t.Errorf("401s: %d, want 3, not retried (%s)", got, reqs)
	}

	// Without credentials the REST calls refuse before sending anything.
	if _, err := c.DeviceByName(ctx, demoDevice); !errors.Is(err, ErrNoCredentials) || !IsUnauthorized(err) {
		t.Errorf("DeviceByName without credentials = %v", err)
	}
	if c.HasCredentials() || reqs.total(OpDeviceByName) != 0 || reqs.total(OpLogin) != 0 {
		t.Errorf("a Client without credentials sent REST requests: %s", reqs)
	}
}

// TestEmulatorAPIKey authenticates with an API key created through ThingsBoard's REST API
// (POST /api/apiKey, ThingsBoard 4.3+), and with the demo key the emulator creates. The exact
// header is also checked by TestAPIKeyHeader.
func TestEmulatorAPIKey(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, nil)
	base := emu.HTTPURL()
	jwt := loginJWT(t, base, tbemu.DemoTenantAdmin, tbemu.DemoTenantAdminPassword)
	_, me := tbCall(t, http.MethodGet, base+"/api/auth/user", jwt, nil)
	var user struct {
		ID struct {
			ID string `json:"id"`
		} `json:"id"`
	}
	if err := json.Unmarshal(me, &user); err != nil || user.ID.ID == "" {
		t.Fatalf("/api/auth/user: %s", me)
	}
	st, b := tbCall(t, http.MethodPost, base+"/api/apiKey", jwt, map[string]any{
		"userId": map[string]string{"entityType": "USER", "id": user.ID.ID}, "description": "tbrest test", "enabled": true})
	var key struct {
		Value string `json:"value"`
	}
	if st != http.StatusOK || json.Unmarshal(b, &key) != nil || key.Value == "" {
		t.Fatalf("POST /api/apiKey: %d %s", st, b)
	}

	reqs := newRequests()
	c := newClient(t, Config{BaseURL: base, APIKey: key.Value, OnRequest: reqs.hook})
	ctx := ctxT(t)
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := c.DeviceByName(ctx, demoDevice)
	if err != nil || d.Name != demoDevice {
		t.Fatalf("DeviceByName with an API key: %+v, %v", d, err)
	}
	if err := c.SetClaimingData(ctx, d.ID, "key-secret", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	demo := newClient(t, Config{BaseURL: base, APIKey: emu.DemoAPIKey(), OnRequest: reqs.hook})
	if err := demo.DeleteClaimingData(ctx, d.ID); err != nil {
		t.Fatalf("DeleteClaimingData with the demo API key: %v", err)
	}
	if reqs.total(OpLogin) != 0 {
		t.Fatalf("an API key Client logged in: %s", reqs)
	}

	bad := newClient(t, Config{BaseURL: base, APIKey: "tb_not-a-key-4242", OnRequest: reqs.hook})
	if err := bad.Check(ctx); !IsUnauthorized(err) || strings.Contains(err.Error(), "tb_not-a-key-4242") {
		t.Fatalf("Check with a wrong API key: %v", err)
	}
	if reqs.get("check/unauthorized") != 1 {
		t.Fatalf("a refused API key is sent once: %s", reqs)
	}
}

// TestEmulatorDeleteClaimingData revokes server-side claim data: the secret no longer claims the
// device. TestDeleteClaimingDataRequest checks the exact request.
func TestEmulatorDeleteClaimingData(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, nil)
	c := tenantClient(t, emu, newRequests())
	ctx := ctxT(t)
	d, err := c.DeviceByName(ctx, "Thermostat T1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetClaimingData(ctx, d.ID, "revoked", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteClaimingData(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if st, body, _ := customerClaim(t, emu.HTTPURL(), "Thermostat T1", "revoked"); st != http.StatusBadRequest || body != `"FAILURE"` {
		t.Fatalf("claim after DeleteClaimingData: %d %s, want 400 \"FAILURE\"", st, body)
	}
	if err := c.DeleteClaimingData(ctx, d.ID); err != nil {
		t.Fatalf("deleting again: %v, want nil (ThingsBoard ignores missing keys)", err)
	}
}
