package tbtest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The calls claimsvc makes for its three deliveries, mqtt, http and attribute (docs/design.md §3),
// and what ThingsBoard answers to them.

// customerOf reads a device's customer id with GET /api/device/{id}, as claimsvc polls it.
func (s *suite) customerOf(t *testing.T, auth, deviceID string) string {
	t.Helper()
	r := s.api.send("GET", "/api/device/"+deviceID, auth, "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /api/device/%s: %s", deviceID, r)
	}
	var d deviceJSON
	r.JSON(t, &d)
	return d.CustomerID.ID
}

// testDeliveryMQTT: a claim published on the device's behalf (docs/thingsboard.md §1.2), and the
// owner seen by polling GET /api/device/{id}.
func (s *suite) testDeliveryMQTT(t *testing.T) {
	s.deliverAndClaim(t, func(token string) {
		c := s.connect(t, 4, token)
		defer c.Close()
		if err := c.Publish("v1/devices/me/claim", []byte(`{"secretKey":"key","durationMs":600000}`), 1, 1); err != nil {
			t.Fatal(err)
		}
		if rc, err := c.ExpectPuback(1, 10*time.Second); err != nil || rc != 0 {
			t.Fatalf("PUBACK: %#x %v", rc, err)
		}
	})
}

// testDeliveryHTTP: POST /api/v1/{token}/claim (docs/thingsboard.md §1.3): 200 with an empty body.
func (s *suite) testDeliveryHTTP(t *testing.T) {
	s.deliverAndClaim(t, func(token string) {
		r := s.api.httpDeviceClaim(token, map[string]any{"secretKey": "key", "durationMs": 600000})
		if r.Status != http.StatusOK || len(r.Body) != 0 {
			t.Fatalf("HTTP device claim: %s, want 200 with an empty body", r)
		}
	})
}

// deliverAndClaim registers a claim with secret "key" through deliver, then claims the device as a
// customer and checks its owner before and after with GET /api/device/{id}, as claimsvc polls it.
func (s *suite) deliverAndClaim(t *testing.T, deliver func(token string)) {
	t.Helper()
	jwt, customerID := s.newCustomer(t)
	name, token, id := s.newDevice(t)
	deliver(token)
	s.settle(t)
	if got := s.customerOf(t, "Bearer "+s.tenant, id); got != nullUUID {
		t.Fatalf("customerId before the claim = %s, want NULL_UUID", got)
	}
	wantClaim(t, s.claimEventually(t, jwt, name, "key"), "SUCCESS")
	if got := s.customerOf(t, "Bearer "+s.tenant, id); got != customerID {
		t.Fatalf("customerId after the claim = %s, want %s", got, customerID)
	}
}

// testDeliveryAttribute is claimsvc's attribute delivery (docs/thingsboard.md §3.2): find the device
// by name, write the SERVER_SCOPE attribute claimingData, poll the device until a customer owns it;
// a revoked claim (attribute deleted) can no longer be claimed.
func (s *suite) testDeliveryAttribute(t *testing.T) {
	jwt, customerID := s.newCustomer(t)
	name, _, _ := s.newDevice(t)
	auth := "Bearer " + s.tenant
	r := s.api.deviceByName(auth, name)
	if r.Status != http.StatusOK {
		t.Fatalf("device by name: %s", r)
	}
	var d deviceJSON
	r.JSON(t, &d)
	claimingData := map[string]any{"secretKey": "attr-key", "expirationTime": farFuture()}
	if r := s.api.do("POST", "/api/plugins/telemetry/DEVICE/"+d.ID.ID+"/attributes/SERVER_SCOPE", s.tenant,
		map[string]any{"claimingData": claimingData}); r.Status != http.StatusOK || len(r.Body) != 0 {
		t.Fatalf("write claimingData: %s, want 200 with an empty body", r)
	}
	if got := s.customerOf(t, auth, d.ID.ID); got != nullUUID {
		t.Fatalf("customerId before the claim = %s", got)
	}
	wantClaim(t, s.api.claim(jwt, name, "attr-key"), "SUCCESS")
	if got := s.customerOf(t, auth, d.ID.ID); got != customerID {
		t.Fatalf("customerId after the claim = %s, want %s", got, customerID)
	}
	if attrs := s.api.serverAttributes(s.tenant, d.ID.ID); attrs["claimingData"] != nil {
		t.Fatal("claimingData survived the SUCCESS")
	}

	t.Run("Revoked", func(t *testing.T) {
		n, _, id := s.newDevice(t)
		s.api.setServerAttributes(s.tenant, id, map[string]any{"claimingData": claimingData})
		if r := s.api.deleteServerAttributes(auth, id, "claimingData"); r.Status != http.StatusOK || len(r.Body) != 0 {
			t.Fatalf("delete claimingData: %s, want 200 with an empty body", r)
		}
		wantClaim(t, s.api.claim(jwt, n, "attr-key"), "FAILURE")
		// Deleting a key that is not there is no error.
		if r := s.api.deleteServerAttributes(auth, id, "claimingData"); r.Status != http.StatusOK {
			t.Fatalf("delete a missing attribute: %s", r)
		}
	})
	t.Run("Superseded", func(t *testing.T) {
		// A newer attribute replaces the older one: only the newest secret works.
		n, _, id := s.newDevice(t)
		s.api.setServerAttributes(s.tenant, id, map[string]any{"claimingData": claimingData})
		s.api.setServerAttributes(s.tenant, id, map[string]any{"claimingData": map[string]any{"secretKey": "newer", "expirationTime": farFuture()}})
		wantClaim(t, s.api.claim(jwt, n, "attr-key"), "FAILURE")
		wantClaim(t, s.api.claim(jwt, n, "newer"), "SUCCESS")
	})
}

// testRESTForClaimsvc checks the answers claimsvc's REST client depends on (docs/thingsboard.md §4.1,
// §5): ThingsBoard's error bodies, the refresh flow, and JSON without a trailing newline.
func (s *suite) testRESTForClaimsvc(t *testing.T) {
	auth := "Bearer " + s.tenant
	r := s.api.deviceByName(auth, s.name("missing"))
	wantError(t, r, http.StatusNotFound, 32, "Requested item wasn't found!")
	if strings.HasSuffix(string(r.Body), "\n") {
		t.Fatalf("error body ends with a newline: %q", r.Body)
	}
	r = s.api.send("GET", "/api/device/6d2f7a6e-0c47-4b8e-9a4c-7d1b1f0a9e21", auth, "", nil)
	wantError(t, r, http.StatusNotFound, 32, "Device with id [6d2f7a6e-0c47-4b8e-9a4c-7d1b1f0a9e21] is not found")
	r = s.api.send("GET", "/api/device/not-a-uuid", auth, "", nil)
	wantError(t, r, http.StatusBadRequest, 31, "")

	_, _, id := s.newDevice(t)
	r = s.api.deleteServerAttributes(auth, id)
	if r.Status != http.StatusBadRequest || string(r.Body) != "Empty keys: []" {
		t.Fatalf("delete without keys: %s, want 400 \"Empty keys: []\"", r)
	}
	r = s.api.send("POST", "/api/plugins/telemetry/DEVICE/"+id+"/attributes/SERVER_SCOPE", auth, "application/json", []byte(`[1]`))
	if r.Status != http.StatusBadRequest || string(r.Body) != "Request is not a JSON object" {
		t.Fatalf("attributes [1]: %s", r)
	}
	// A bad signature is "Token has expired" (errorCode 11), which tells a client to refresh.
	parts := strings.Split(s.tenant, ".")
	r = s.api.send("GET", "/api/auth/user", "Bearer "+parts[0]+"."+parts[1]+".AAAA", "", nil)
	wantError(t, r, http.StatusUnauthorized, 11, "Token has expired")
	// Refresh: POST /api/auth/token with the refresh token gives a new pair that works.
	pair := s.api.loginPair(s.target.TenantUser, s.target.TenantPassword)
	r = s.api.do("POST", "/api/auth/token", "", map[string]string{"refreshToken": pair.RefreshToken})
	var fresh jwtPair
	if r.Status != http.StatusOK {
		t.Fatalf("refresh: %s", r)
	}
	r.JSON(t, &fresh)
	if r := s.api.send("GET", "/api/auth/user", "Bearer "+fresh.Token, "", nil); r.Status != http.StatusOK {
		t.Fatalf("refreshed token: %s", r)
	}
	// An access token is no refresh token.
	r = s.api.do("POST", "/api/auth/token", "", map[string]string{"refreshToken": pair.Token})
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("refresh with an access token: %s, want 401", r)
	}
}

// testAPIKeys: ThingsBoard 4.3+ API keys (ApiKeyController; docs/thingsboard.md §9 "REST"). A key
// is created for the tenant administrator, used as "X-Authorization: ApiKey <value>", and deleted.
func (s *suite) testAPIKeys(t *testing.T) {
	var me struct {
		ID entityID `json:"id"`
	}
	s.api.must("GET", "/api/auth/user", s.tenant, nil).JSON(t, &me)
	r := s.api.do("POST", "/api/apiKey", s.tenant, map[string]any{
		"userId": entityID{"USER", me.ID.ID}, "description": s.name("key"), "enabled": true})
	if r.Status == http.StatusNotFound || r.Status == http.StatusMethodNotAllowed {
		t.Skipf("POST /api/apiKey: %d; API keys need ThingsBoard 4.3 or later", r.Status)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("create API key: %s", r)
	}
	var key struct {
		ID    entityID `json:"id"`
		Value string   `json:"value"`
	}
	r.JSON(t, &key)
	if key.Value == "" {
		t.Fatalf("no value in %s", r.Body)
	}
	t.Cleanup(func() { s.api.do("DELETE", "/api/apiKey/"+key.ID.ID, s.tenant, nil) })
	auth := "ApiKey " + key.Value

	name, _, id := s.newDevice(t)
	if r := s.api.deviceByName(auth, name); r.Status != http.StatusOK {
		t.Fatalf("device by name with the API key: %s", r)
	}
	// The attribute delivery works with the key alone.
	if r := s.api.send("POST", "/api/plugins/telemetry/DEVICE/"+id+"/attributes/SERVER_SCOPE", auth, "application/json",
		[]byte(`{"claimingData":{"secretKey":"k","expirationTime":`+itoa(farFuture())+`}}`)); r.Status != http.StatusOK {
		t.Fatalf("write claimingData with the API key: %s", r)
	}
	if r := s.api.deleteServerAttributes(auth, id, "claimingData"); r.Status != http.StatusOK {
		t.Fatalf("delete claimingData with the API key: %s", r)
	}
	wantError(t, s.api.send("GET", "/api/auth/user", "ApiKey tb_"+strings.Repeat("x", 86), "", nil),
		http.StatusUnauthorized, 10, "Invalid username or password")
	// A listed key never shows its value.
	r = s.api.do("GET", "/api/apiKeys/"+me.ID.ID+"?pageSize=100&page=0", s.tenant, nil)
	if r.Status != http.StatusOK || strings.Contains(string(r.Body), key.Value) {
		t.Fatalf("list API keys: %s", r)
	}
	if r := s.api.do("PUT", "/api/apiKey/"+key.ID.ID+"/enabled/false", s.tenant, nil); r.Status != http.StatusOK {
		t.Fatalf("disable: %s", r)
	}
	wantError(t, s.api.send("GET", "/api/auth/user", auth, "", nil), http.StatusUnauthorized, 10, "User account is not active")
	if r := s.api.do("DELETE", "/api/apiKey/"+key.ID.ID, s.tenant, nil); r.Status != http.StatusOK {
		t.Fatalf("delete: %s", r)
	}
	wantError(t, s.api.send("GET", "/api/auth/user", auth, "", nil), http.StatusUnauthorized, 10, "Invalid username or password")
}

// testRestart: "ThingsBoard restarts before the customer claims" (docs/thingsboard.md §3.1, §3.2). The
// cache is memory only, so claims registered over MQTT or HTTP are gone; the claimingData attribute
// is in the database and survives, as do devices, tokens and the JWT signing key. A device that
// registers again can be claimed.
func (s *suite) testRestart(t *testing.T) {
	if s.target.Restart == nil {
		t.Skip("the target has no restart hook; for a real ThingsBoard set CLAIMSVC_TB_RESTART_CMD")
	}
	jwt, customerID := s.newCustomer(t)
	mqttName, mqttToken, _ := s.newDevice(t)
	httpName, httpToken, _ := s.newDevice(t)
	attrName, _, attrID := s.newDevice(t)
	s.publishClaim(t, mqttToken, `{"secretKey":"before","durationMs":600000}`)
	if r := s.api.httpDeviceClaim(httpToken, map[string]any{"secretKey": "before", "durationMs": 600000}); r.Status != http.StatusOK {
		t.Fatalf("HTTP device claim: %s", r)
	}
	s.api.setServerAttributes(s.tenant, attrID, map[string]any{"claimingData": map[string]any{"secretKey": "before", "expirationTime": farFuture()}})
	s.settle(t)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := s.target.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	s.api.hc.CloseIdleConnections() // the old server's keep-alive connections are gone

	// JWTs issued before the restart are still valid (the signing key is in the database).
	wantClaim(t, s.api.claim(jwt, mqttName, "before"), "FAILURE")
	wantClaim(t, s.api.claim(jwt, httpName, "before"), "FAILURE")
	wantClaim(t, s.api.claim(jwt, attrName, "before"), "SUCCESS")
	if got := s.customerOf(t, "Bearer "+s.tenant, s.api.device(s.tenant, attrID).ID.ID); got != customerID {
		t.Fatalf("attribute-claimed device: customer %s, want %s", got, customerID)
	}
	// Registering again after the restart works: the token survived.
	s.publishClaim(t, mqttToken, `{"secretKey":"after","durationMs":600000}`)
	wantClaim(t, s.claimEventually(t, jwt, mqttName, "after"), "SUCCESS")
	if r := s.api.httpDeviceClaim(httpToken, map[string]any{"secretKey": "after", "durationMs": 600000}); r.Status != http.StatusOK {
		t.Fatalf("HTTP device claim after the restart: %s", r)
	}
	s.settle(t)
	wantClaim(t, s.claimEventually(t, jwt, httpName, "after"), "SUCCESS")
}
