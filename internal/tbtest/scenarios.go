package tbtest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// testLogin: docs/thingsboard.md §5. Wrong credentials give 401 "Invalid username or password", errorCode 10.
func (s *suite) testLogin(t *testing.T) {
	r := s.api.do("POST", "/api/auth/login", "", map[string]string{"username": s.target.TenantUser, "password": "wrong-password"})
	wantError(t, r, http.StatusUnauthorized, 10, "Invalid username or password")
	parts := strings.Split(s.tenant, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %d parts", len(parts))
	}
}

// testClaimOverMQTT is the basic flow: create a customer, a customer user and a device, register
// a claim over MQTT (docs/thingsboard.md §1.2), claim it as the customer (§4.1 row 9), check the owner.
func (s *suite) testClaimOverMQTT(t *testing.T) {
	jwt, customerID := s.newCustomer(t)
	name, token, id := s.newDevice(t)
	if d := s.api.device(s.tenant, id); d.CustomerID.ID != nullUUID {
		t.Fatalf("new device customerId = %s, want NULL_UUID", d.CustomerID.ID)
	}
	s.publishClaim(t, token, `{"secretKey":"s3cret","durationMs":60000}`)
	r := s.claimEventually(t, jwt, name, "s3cret")
	wantClaim(t, r, "SUCCESS")
	var ok struct {
		Device deviceJSON `json:"device"`
	}
	r.JSON(t, &ok)
	if ok.Device.CustomerID.ID != customerID || ok.Device.Name != name {
		t.Fatalf("SUCCESS device = %+v, want name %s customer %s", ok.Device, name, customerID)
	}
	if d := s.api.device(s.tenant, id); d.CustomerID.ID != customerID {
		t.Fatalf("GET device customerId = %s, want %s", d.CustomerID.ID, customerID)
	}
	// The customer user can read its device now.
	if d := s.api.device(jwt, id); d.Name != name {
		t.Fatalf("customer GET device name = %s", d.Name)
	}
	// Claim data is single use, and the device is now assigned: CLAIMED (row 7).
	wantClaim(t, s.api.claim(jwt, name, "s3cret"), "CLAIMED")
}

// testClaimOverHTTP: the HTTP device API, docs/thingsboard.md §1.3 — 200 with an empty body, an empty body
// is a valid claim with secret "".
func (s *suite) testClaimOverHTTP(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	name, token, _ := s.newDevice(t)
	r := s.api.httpDeviceClaim(token, map[string]any{"secretKey": "http-key", "durationMs": 60000})
	if r.Status != http.StatusOK || len(r.Body) != 0 {
		t.Fatalf("HTTP device claim: %s, want 200 with an empty body", r)
	}
	s.settle(t)
	wantClaim(t, s.claimEventually(t, jwt, name, "http-key"), "SUCCESS")

	// No body at all: secret "" and the default duration.
	name2, token2, _ := s.newDevice(t)
	if r := s.api.httpDeviceClaim(token2, nil); r.Status != http.StatusOK {
		t.Fatalf("HTTP device claim without body: %s", r)
	}
	s.settle(t)
	wantClaim(t, s.claimEventually(t, jwt, name2, ""), "SUCCESS")
}

// testDecisionTable walks docs/thingsboard.md §4.1 rows 1-10.
func (s *suite) testDecisionTable(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	other, _ := s.newCustomer(t)
	name, token, _ := s.newDevice(t)

	t.Run("1_NoAuthHeader", func(t *testing.T) {
		wantError(t, s.api.do("POST", claimPath(name), "", map[string]string{"secretKey": "k"}),
			http.StatusUnauthorized, 10, "Authentication failed")
	})
	t.Run("1a_MalformedJWT", func(t *testing.T) {
		wantError(t, s.api.do("POST", claimPath(name), "not-a-jwt", map[string]string{"secretKey": "k"}),
			http.StatusUnauthorized, 10, "Invalid username or password")
	})
	t.Run("1b_BadSignature", func(t *testing.T) {
		parts := strings.Split(jwt, ".")
		sig := []byte(parts[2])
		if sig[0] == 'A' {
			sig[0] = 'B'
		} else {
			sig[0] = 'A'
		}
		bad := parts[0] + "." + parts[1] + "." + string(sig)
		wantError(t, s.api.do("POST", claimPath(name), bad, map[string]string{"secretKey": "k"}),
			http.StatusUnauthorized, 11, "Token has expired")
	})
	t.Run("2_TenantAdminForbidden", func(t *testing.T) {
		wantError(t, s.api.claim(s.tenant, name, "k"), http.StatusForbidden, 20,
			"You don't have permission to perform this operation!")
	})
	t.Run("3_UnknownDevice", func(t *testing.T) {
		wantError(t, s.api.claim(jwt, name+"-missing", "k"), http.StatusNotFound, 32, "Requested item wasn't found!")
		// Names match exactly, case included.
		wantError(t, s.api.claim(jwt, strings.ToUpper(name), "k"), http.StatusNotFound, 32, "Requested item wasn't found!")
	})
	t.Run("5_NoBody", func(t *testing.T) {
		r := s.api.do("POST", claimPath(name), jwt, nil)
		if r.Status != http.StatusInternalServerError {
			t.Fatalf("claim without a body: %s, want 500", r)
		}
	})
	t.Run("6_NoClaimDataUnassigned", func(t *testing.T) {
		wantClaim(t, s.api.claim(jwt, name, "k"), "FAILURE")
	})
	t.Run("9_Success", func(t *testing.T) {
		s.publishClaim(t, token, `{"secretKey":"row9","durationMs":60000}`)
		wantClaim(t, s.claimEventually(t, jwt, name, "row9"), "SUCCESS")
	})
	t.Run("7_NoClaimDataAssigned", func(t *testing.T) {
		wantClaim(t, s.api.claim(jwt, name, "row9"), "CLAIMED")   // the caller's own customer
		wantClaim(t, s.api.claim(other, name, "row9"), "CLAIMED") // another customer: the same answer
	})
	t.Run("8_WrongKeyOrExpired", func(t *testing.T) {
		n, tok, _ := s.newDevice(t)
		s.publishClaim(t, tok, `{"secretKey":"right","durationMs":60000}`)
		wantClaim(t, s.api.claim(jwt, n, "wrong"), "FAILURE")
		wantClaim(t, s.api.claim(jwt, n, "Right"), "FAILURE") // case-sensitive; the entry is gone anyway
		// An empty request key against a non-empty stored key fails.
		n2, tok2, _ := s.newDevice(t)
		s.publishClaim(t, tok2, `{"secretKey":"right","durationMs":60000}`)
		wantClaim(t, s.api.do("POST", claimPath(n2), jwt, map[string]any{}), "FAILURE")
	})
	t.Run("8_WrongKeyOnAssignedDevice", func(t *testing.T) {
		// Claim data exists (server-side attribute) and the key is wrong: FAILURE, whoever owns the device.
		_, _, id := s.deviceClaimedBy(t, jwt)
		s.api.setServerAttributes(s.tenant, id, map[string]any{
			"claimingData": map[string]any{"secretKey": "attr", "expirationTime": farFuture()}})
		n := s.api.device(s.tenant, id).Name
		wantClaim(t, s.api.claim(other, n, "nope"), "FAILURE")
		// 10: valid data, device already assigned: CLAIMED, and the data is consumed.
		wantClaim(t, s.api.claim(other, n, "attr"), "CLAIMED")
		if attrs := s.api.serverAttributes(s.tenant, id); attrs["claimingData"] != nil {
			t.Fatalf("claimingData survived a CLAIMED outcome with valid data: %s", attrs["claimingData"])
		}
	})
	t.Run("EmptySecretBothSides", func(t *testing.T) {
		n, tok, _ := s.newDevice(t)
		s.publishClaim(t, tok, `{"durationMs":60000}`)
		// {"secretKey":null} is "" (ClaimRequest.getSecretKey).
		r := s.api.do("POST", claimPath(n), jwt, `{"secretKey":null}`)
		if r.Status == http.StatusBadRequest && strings.Contains(string(r.Body), "FAILURE") {
			s.settle(t)
			r = s.api.do("POST", claimPath(n), jwt, `{"secretKey":null}`)
		}
		wantClaim(t, r, "SUCCESS")
	})
}

// deviceClaimedBy creates a device and claims it for the customer of jwt.
func (s *suite) deviceClaimedBy(t *testing.T, jwt string) (name, token, id string) {
	t.Helper()
	name, token, id = s.newDevice(t)
	s.publishClaim(t, token, `{"secretKey":"owner","durationMs":60000}`)
	wantClaim(t, s.claimEventually(t, jwt, name, "owner"), "SUCCESS")
	return name, token, id
}

func farFuture() int64 { return time.Now().Add(365 * 24 * time.Hour).UnixMilli() }

// testPutIfAbsent: docs/thingsboard.md §3.1 — while claim data is cached, a new registration is ignored.
func (s *suite) testPutIfAbsent(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	t.Run("SecondSecretIgnored", func(t *testing.T) {
		name, token, _ := s.newDevice(t)
		s.publishClaim(t, token, `{"secretKey":"first","durationMs":60000}`)
		s.publishClaim(t, token, `{"secretKey":"second","durationMs":60000}`)
		wantClaim(t, s.claimEventually(t, jwt, name, "first"), "SUCCESS")
	})
	t.Run("ClaimingWithTheSecondSecretDiscardsBoth", func(t *testing.T) {
		name, token, _ := s.newDevice(t)
		s.publishClaim(t, token, `{"secretKey":"first","durationMs":60000}`)
		s.publishClaim(t, token, `{"secretKey":"second","durationMs":60000}`)
		wantClaim(t, s.api.claim(jwt, name, "second"), "FAILURE")
		wantClaim(t, s.api.claim(jwt, name, "first"), "FAILURE")
	})
}

// testWrongKeyEvicts: docs/thingsboard.md §3.3 — one wrong key throws the registration away; registering
// again works.
func (s *suite) testWrongKeyEvicts(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	name, token, _ := s.newDevice(t)
	s.publishClaim(t, token, `{"secretKey":"k1","durationMs":60000}`)
	wantClaim(t, s.api.claim(jwt, name, "bad"), "FAILURE")
	wantClaim(t, s.api.claim(jwt, name, "k1"), "FAILURE")
	s.publishClaim(t, token, `{"secretKey":"k2","durationMs":60000}`)
	wantClaim(t, s.claimEventually(t, jwt, name, "k2"), "SUCCESS")
}

// testExpiry: docs/thingsboard.md §3.1 "Expiry" — expired claim data gives FAILURE (and is evicted). On the
// emulator the clock moves; on a real ThingsBoard the duration is short and the test waits.
func (s *suite) testExpiry(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	name, token, _ := s.newDevice(t)
	if s.target.AdvanceClock != nil {
		s.publishClaim(t, token, `{"secretKey":"k","durationMs":60000}`)
		s.wait(60001 * time.Millisecond)
	} else {
		s.publishClaim(t, token, `{"secretKey":"k","durationMs":1000}`)
		s.wait(2500 * time.Millisecond)
	}
	wantClaim(t, s.api.claim(jwt, name, "k"), "FAILURE")

	if s.target.AdvanceClock != nil {
		t.Run("ExactExpiryStillValid", func(t *testing.T) {
			// currTs > expirationTime means expired, so equal still counts as valid.
			n, tok, _ := s.newDevice(t)
			s.publishClaim(t, tok, `{"secretKey":"k","durationMs":60000}`)
			s.wait(60 * time.Second)
			wantClaim(t, s.api.claim(jwt, n, "k"), "SUCCESS")
		})
	}
	t.Run("ExpiredDataIsEvicted", func(t *testing.T) {
		// After the FAILURE above the entry is gone, so a new registration is stored.
		s.publishClaim(t, token, `{"secretKey":"fresh","durationMs":60000}`)
		wantClaim(t, s.claimEventually(t, jwt, name, "fresh"), "SUCCESS")
	})
}

// testUnclaim: docs/thingsboard.md §4.2 — DELETE …/claim unassigns, evicts, 200 with an empty body; any
// customer user of the tenant may do it.
func (s *suite) testUnclaim(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	other, otherID := s.newCustomer(t)
	name, token, id := s.deviceClaimedBy(t, jwt)

	r := s.api.do("DELETE", claimPath(name), other, nil)
	if r.Status != http.StatusOK || len(r.Body) != 0 {
		t.Fatalf("un-claim by another customer: %s, want 200 with an empty body", r)
	}
	if d := s.api.device(s.tenant, id); d.CustomerID.ID != nullUUID {
		t.Fatalf("after un-claim customerId = %s, want NULL_UUID", d.CustomerID.ID)
	}
	// The device can be claimed again, here by the other customer.
	s.publishClaim(t, token, `{"secretKey":"again","durationMs":60000}`)
	wantClaim(t, s.claimEventually(t, other, name, "again"), "SUCCESS")
	if d := s.api.device(s.tenant, id); d.CustomerID.ID != otherID {
		t.Fatalf("after re-claim customerId = %s, want %s", d.CustomerID.ID, otherID)
	}

	t.Run("TenantAdmin", func(t *testing.T) {
		if r := s.api.do("DELETE", claimPath(name), s.tenant, nil); r.Status != http.StatusOK {
			t.Fatalf("un-claim by the tenant admin: %s", r)
		}
	})
	t.Run("UnknownDevice", func(t *testing.T) {
		wantError(t, s.api.do("DELETE", claimPath(name+"-missing"), jwt, nil), http.StatusNotFound, 32, "")
	})
	t.Run("EvictsPendingClaim", func(t *testing.T) {
		n, tok, _ := s.newDevice(t)
		s.publishClaim(t, tok, `{"secretKey":"pending","durationMs":60000}`)
		if r := s.api.do("DELETE", claimPath(n), jwt, nil); r.Status != http.StatusOK {
			t.Fatalf("un-claim of an unassigned device: %s", r)
		}
		wantClaim(t, s.api.claim(jwt, n, "pending"), "FAILURE")
	})
}

// testServerSideKey: docs/thingsboard.md §3.2 — the claimingData SERVER attribute, read when the cache has no
// entry; a wrong key does not remove it; success deletes it.
func (s *suite) testServerSideKey(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	name, _, id := s.newDevice(t)
	s.api.setServerAttributes(s.tenant, id, map[string]any{
		"claimingData": map[string]any{"secretKey": "server-key", "expirationTime": farFuture()}})
	wantClaim(t, s.api.claim(jwt, name, "wrong"), "FAILURE")
	wantClaim(t, s.api.claim(jwt, name, "server-key"), "SUCCESS")
	if attrs := s.api.serverAttributes(s.tenant, id); attrs["claimingData"] != nil {
		t.Fatalf("claimingData not deleted after SUCCESS: %s", attrs["claimingData"])
	}

	t.Run("Expired", func(t *testing.T) {
		n, _, i := s.newDevice(t)
		s.api.setServerAttributes(s.tenant, i, map[string]any{
			"claimingData": map[string]any{"secretKey": "k", "expirationTime": 1000}})
		wantClaim(t, s.api.claim(jwt, n, "k"), "FAILURE")
	})
	t.Run("StringValue", func(t *testing.T) {
		n, _, i := s.newDevice(t)
		s.api.setServerAttributes(s.tenant, i, map[string]any{
			"claimingData": `{"secretKey":"k","expirationTime":"` + itoa(farFuture()) + `"}`})
		wantClaim(t, s.api.claim(jwt, n, "k"), "SUCCESS")
	})
	t.Run("SeparateAttributesDoNotWork", func(t *testing.T) {
		n, _, i := s.newDevice(t)
		s.api.setServerAttributes(s.tenant, i, map[string]any{"secretKey": "k", "expirationTime": farFuture()})
		wantClaim(t, s.api.claim(jwt, n, "k"), "FAILURE")
	})
	t.Run("Unparseable", func(t *testing.T) {
		n, _, i := s.newDevice(t)
		s.api.setServerAttributes(s.tenant, i, map[string]any{
			"claimingData": map[string]any{"secretKey": "k", "expirationTime": farFuture(), "extra": 1}})
		wantError(t, s.api.claim(jwt, n, "k"), http.StatusBadRequest, 31, "")
	})
	t.Run("CacheTakesPrecedence", func(t *testing.T) {
		n, tok, i := s.newDevice(t)
		s.publishClaim(t, tok, `{"secretKey":"device-key","durationMs":60000}`)
		s.api.setServerAttributes(s.tenant, i, map[string]any{
			"claimingData": map[string]any{"secretKey": "server-key", "expirationTime": farFuture()}})
		wantClaim(t, s.api.claim(jwt, n, "server-key"), "FAILURE") // compared with the cached key, which is evicted
		wantClaim(t, s.api.claim(jwt, n, "server-key"), "SUCCESS") // now the attribute is read
	})
}

func itoa(n int64) string {
	const digits = "0123456789"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{digits[n%10]}, b...)
	}
	return string(b)
}

// testBadToken: docs/thingsboard.md §2 and §1.3 — CONNACK 5 on MQTT 3.1.1, 401 on the HTTP device API.
func (s *suite) testBadToken(t *testing.T) {
	c, rc, err := dialRaw(s.target.MQTTAddr, s.name("raw"), s.run+"_NO_SUCH_TOKEN")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.close()
	if rc != 5 {
		t.Fatalf("CONNACK return code %d, want 5 (not authorised)", rc)
	}
	if err := c.expectClosed(10 * time.Second); err != nil {
		t.Fatalf("after CONNACK 5: %v", err)
	}
	r := s.api.httpDeviceClaim(s.run+"_NO_SUCH_TOKEN", map[string]any{"secretKey": "k"})
	if r.Status != http.StatusUnauthorized || len(r.Body) != 0 {
		t.Fatalf("HTTP device claim with an unknown token: %s, want 401 with an empty body", r)
	}
}
