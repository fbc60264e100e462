package tbemu

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// send is call with a chosen Content-Type ("" sends none) and raw auth header.
func send(t *testing.T, method, url, auth, contentType, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("X-Authorization", auth)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

func wantTBError(t *testing.T, st int, b []byte, status, code int, msgPart string) {
	t.Helper()
	var e tbError
	if st != status || json.Unmarshal(b, &e) != nil || e.Status != status || e.ErrorCode != code || !strings.Contains(e.Message, msgPart) {
		t.Fatalf("got %d %s, want %d errorCode %d with %q", st, b, status, code, msgPart)
	}
}

// TestRESTForClaimsvc walks the calls claimsvc's attribute delivery makes (docs/thingsboard.md §3.2,
// §5): find the device by name, write claimingData (object or string), poll the device for its
// customer, delete the attribute.
func TestRESTForClaimsvc(t *testing.T) {
	t.Parallel()
	e, clock := start(t, func(c *Config) { c.Demo = true })
	tenant := login(t, e, "tenant@thingsboard.org", "tenant")
	jwt := login(t, e, "customerA@thingsboard.org", "customer")
	base := e.HTTPURL()

	st, b := call(t, "GET", base+"/api/tenant/devices?deviceName=No%20Such%20Device", tenant, "")
	wantTBError(t, st, b, 404, 32, "Requested item wasn't found!")
	if strings.HasSuffix(string(b), "\n") {
		t.Fatal("JSON body ends with a newline; Jackson writes none")
	}
	st, b = call(t, "GET", base+"/api/tenant/devices?deviceName=Thermostat%20T1", tenant, "")
	var dev struct {
		ID         entityID `json:"id"`
		CustomerID entityID `json:"customerId"`
	}
	mustJSON(t, b, &dev)
	if st != 200 || dev.CustomerID.ID != nullUUID {
		t.Fatalf("device lookup: %d %s", st, b)
	}
	st, b = call(t, "GET", base+"/api/device/13814000-1dd2-11b2-8080-808080808081", tenant, "")
	wantTBError(t, st, b, 404, 32, "Device with id [13814000-1dd2-11b2-8080-808080808081] is not found")

	attrs := base + "/api/plugins/telemetry/DEVICE/" + dev.ID.ID + "/attributes/SERVER_SCOPE"
	exp := clock.Now().Add(time.Hour).UnixMilli()
	claimingData := `{"secretKey":"attr-key","expirationTime":` + itoa(exp) + `}`
	if st, b := call(t, "POST", attrs, tenant, `{"claimingData":`+claimingData+`}`); st != 200 || len(b) != 0 {
		t.Fatalf("write claimingData: %d %q", st, b)
	}
	// Deleting it: DELETE …/SERVER_SCOPE?keys=claimingData, 200 with an empty body.
	del := base + "/api/plugins/telemetry/DEVICE/" + dev.ID.ID + "/SERVER_SCOPE?keys=claimingData"
	if st, b := call(t, "DELETE", del, tenant, ""); st != 200 || len(b) != 0 {
		t.Fatalf("delete claimingData: %d %q", st, b)
	}
	if st, b := customerClaim(t, e, jwt, "Thermostat T1", "attr-key"); st != 400 || b != `"FAILURE"` {
		t.Fatalf("claim after delete: %d %s, want FAILURE", st, b)
	}
	if st, _ := call(t, "DELETE", del, tenant, ""); st != 200 {
		t.Fatalf("deleting a missing key: %d, want 200", st)
	}
	st, _, b = send(t, "DELETE", base+"/api/plugins/telemetry/DEVICE/"+dev.ID.ID+"/SERVER_SCOPE", "Bearer "+tenant, "", "")
	if st != 400 || string(b) != "Empty keys: []" {
		t.Fatalf("delete without keys: %d %q", st, b)
	}

	// The same data as a JSON string works too.
	strBody, _ := json.Marshal(map[string]string{"claimingData": claimingData})
	if st, b := call(t, "POST", attrs, tenant, string(strBody)); st != 200 {
		t.Fatalf("write claimingData as a string: %d %s", st, b)
	}
	if st, b := customerClaim(t, e, jwt, "Thermostat T1", "attr-key"); st != 200 {
		t.Fatalf("claim with the string attribute: %d %s", st, b)
	}
	st, b = call(t, "GET", base+"/api/device/"+dev.ID.ID, tenant, "")
	mustJSON(t, b, &dev)
	if st != 200 || dev.CustomerID.ID == nullUUID {
		t.Fatalf("device after the claim: %d %s, want a customer", st, b)
	}

	// Bad bodies and unknown devices, as TelemetryController answers them (plain text).
	for body, want := range map[string]string{`[1]`: "Request is not a JSON object", `{}`: "No attributes data found in request body!", `{"a":`: "Invalid JSON"} {
		if st, _, b := send(t, "POST", attrs, "Bearer "+tenant, "application/json", body); st != 400 || string(b) != want {
			t.Errorf("attributes %s: %d %q, want 400 %q", body, st, b, want)
		}
	}
	st, _, b = send(t, "POST", base+"/api/plugins/telemetry/DEVICE/13814000-1dd2-11b2-8080-808080808081/attributes/SERVER_SCOPE",
		"Bearer "+tenant, "application/json", `{"a":1}`)
	if st != 404 || string(b) != "Device with requested id wasn't found!" {
		t.Fatalf("attributes of a missing device: %d %q", st, b)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestJWTRefresh: an expired access token is 401 errorCode 11, the refresh token gets a new pair.
func TestJWTRefresh(t *testing.T) {
	t.Parallel()
	e, clock := start(t, nil)
	st, b := call(t, "POST", e.HTTPURL()+"/api/auth/login", "", `{"username":"tenant@thingsboard.org","password":"tenant"}`)
	var pair jwtPair
	mustJSON(t, b, &pair)
	if st != 200 || pair.RefreshToken == "" {
		t.Fatalf("login: %d %s", st, b)
	}
	clock.Advance(DefaultJWTExpiration)
	st, b = call(t, "GET", e.HTTPURL()+"/api/auth/user", pair.Token, "")
	wantTBError(t, st, b, 401, 11, "Token has expired")
	st, b = call(t, "POST", e.HTTPURL()+"/api/auth/token", "", `{"refreshToken":"`+pair.RefreshToken+`"}`)
	var fresh jwtPair
	mustJSON(t, b, &fresh)
	if st != 200 {
		t.Fatalf("refresh: %d %s", st, b)
	}
	if st, b := call(t, "GET", e.HTTPURL()+"/api/auth/user", fresh.Token, ""); st != 200 {
		t.Fatalf("refreshed token: %d %s", st, b)
	}
	clock.Advance(7 * 24 * time.Hour)
	st, b = call(t, "POST", e.HTTPURL()+"/api/auth/token", "", `{"refreshToken":"`+pair.RefreshToken+`"}`)
	wantTBError(t, st, b, 401, 11, "Token has expired")
}

// TestClaimBodyMustBeJSON: the customer claim's @RequestBody is read by Jackson only; other bodies
// are refused before the claim runs (500 errorCode 2 through BaseController), never a SUCCESS.
func TestClaimBodyMustBeJSON(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true })
	tenant := login(t, e, "tenant@thingsboard.org", "tenant")
	jwt := login(t, e, "customerA@thingsboard.org", "customer")
	httpClaim(t, e, "DHT11_DEMO_TOKEN", `{"secretKey":"k"}`)
	flush(t, e)
	url := e.HTTPURL() + "/api/customer/device/DHT11%20Demo%20Device/claim"
	for _, tc := range []struct{ ct, body, want string }{
		{"text/plain", `{"secretKey":"k"}`, "Content-Type 'text/plain' is not supported"},
		{"text/plain; charset=utf-8", `{"secretKey":"k"}`, "Content-Type 'text/plain;charset=utf-8' is not supported"},
		{"application/x-www-form-urlencoded", `secretKey=k`, "is not supported"},
		{"", `{"secretKey":"k"}`, "Content-Type 'application/octet-stream' is not supported"},
		{"application/json", `{"secretKey":`, "JSON parse error"},
		{"application/json", `{"secretKey":{}}`, "JSON parse error"},
	} {
		st, _, b := send(t, "POST", url, "Bearer "+jwt, tc.ct, tc.body)
		wantTBError(t, st, b, 500, 2, tc.want)
	}
	// The body is resolved before @PreAuthorize: a tenant administrator sees the same 500.
	st, _, b := send(t, "POST", url, "Bearer "+tenant, "text/plain", `{"secretKey":"k"}`)
	wantTBError(t, st, b, 500, 2, "is not supported")
	// No Content-Type and no body: a null request, refused after the authority check (row 5).
	st, _, b = send(t, "POST", url, "Bearer "+tenant, "", "")
	wantTBError(t, st, b, 403, 20, "permission")
	st, _, b = send(t, "POST", url, "Bearer "+jwt, "", "")
	wantTBError(t, st, b, 500, 2, "claimRequest")
	// None of the refusals consumed the registration; JSON succeeds, and bodies carry no newline.
	st, hdr, b := send(t, "POST", url, "Bearer "+jwt, "application/json; charset=UTF-8", `{"secretKey":"k"}`)
	if st != 200 || !strings.Contains(string(b), `"response":"SUCCESS"`) || strings.HasSuffix(string(b), "\n") || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON claim: %d %q %s", st, b, hdr.Get("Content-Type"))
	}
	st, _, b = send(t, "POST", url, "Bearer "+jwt, "application/json", `{"secretKey":"k"}`)
	if st != 400 || string(b) != `"CLAIMED"` {
		t.Fatalf("second claim: %d %q, want exactly \"CLAIMED\"", st, b)
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	e, clock := start(t, func(c *Config) { c.Demo = true })
	base := e.HTTPURL()
	tenant := login(t, e, "tenant@thingsboard.org", "tenant")
	_, b := call(t, "GET", base+"/api/auth/user", tenant, "")
	var me struct {
		ID entityID `json:"id"`
	}
	mustJSON(t, b, &me)

	// POST /api/apiKey as the tenant administrator; the value comes back once.
	st, b := call(t, "POST", base+"/api/apiKey", tenant, `{"userId":{"entityType":"USER","id":"`+me.ID.ID+`"},"description":"claimsvc","enabled":true}`)
	var key struct {
		ID    entityID `json:"id"`
		Value string   `json:"value"`
	}
	mustJSON(t, b, &key)
	if st != 200 || !strings.HasPrefix(key.Value, "tb_") || len(key.Value) != 3+86 {
		t.Fatalf("create key: %d %s", st, b)
	}
	auth := "ApiKey " + key.Value
	if st, _, b := send(t, "GET", base+"/api/tenant/devices?deviceName=Thermostat%20T1", auth, "", ""); st != 200 {
		t.Fatalf("ApiKey auth: %d %s", st, b)
	}
	// Authorization: ApiKey works too (4.3+).
	req, _ := http.NewRequest("GET", base+"/api/auth/user", nil)
	req.Header.Set("Authorization", auth)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("Authorization: ApiKey: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	st, _, b = send(t, "GET", base+"/api/auth/user", "ApiKey tb_wrong", "", "")
	wantTBError(t, st, b, 401, 10, "Invalid username or password")

	st, b = call(t, "GET", base+"/api/apiKeys/"+me.ID.ID+"?pageSize=10&page=0", tenant, "")
	if st != 200 || !strings.Contains(string(b), `"description":"claimsvc"`) || strings.Contains(string(b), key.Value) {
		t.Fatalf("list keys: %d %s (values must not be listed)", st, b)
	}
	if st, b := call(t, "PUT", base+"/api/apiKey/"+key.ID.ID+"/enabled/false", tenant, ""); st != 200 || strings.Contains(string(b), key.Value) {
		t.Fatalf("disable: %d %s", st, b)
	}
	st, _, b = send(t, "GET", base+"/api/auth/user", auth, "", "")
	wantTBError(t, st, b, 401, 10, "User account is not active")
	call(t, "PUT", base+"/api/apiKey/"+key.ID.ID+"/enabled/true", tenant, "")

	// An expiring key from the in-process helper.
	v, err := e.AddAPIKey("tenant@thingsboard.org", APIKeyOptions{ExpiresAt: clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if st, _, b := send(t, "GET", base+"/api/auth/user", "ApiKey "+v, "", ""); st != 200 {
		t.Fatalf("helper key: %d %s", st, b)
	}
	clock.Advance(time.Hour + time.Millisecond)
	st, _, b = send(t, "GET", base+"/api/auth/user", "ApiKey "+v, "", "")
	wantTBError(t, st, b, 401, 10, "API key is expired")

	// The demo key belongs to the tenant administrator; a customer user's key acts as that user.
	if st, _, b := send(t, "GET", base+"/api/tenant/devices?deviceName=Thermostat%20T1", "ApiKey "+e.DemoAPIKey(), "", ""); st != 200 {
		t.Fatalf("demo key: %d %s", st, b)
	}
	cv, _ := e.AddAPIKey("customerA@thingsboard.org", APIKeyOptions{})
	st, _, b = send(t, "GET", base+"/api/tenant/devices?deviceName=Thermostat%20T1", "ApiKey "+cv, "", "")
	wantTBError(t, st, b, 403, 20, "permission")
	if _, err := e.AddAPIKey("nobody@example.com", APIKeyOptions{}); err == nil {
		t.Fatal("a key for an unknown user")
	}
	if st, _ := call(t, "DELETE", base+"/api/apiKey/"+key.ID.ID, tenant, ""); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	st, _, b = send(t, "GET", base+"/api/auth/user", auth, "", "")
	wantTBError(t, st, b, 401, 10, "Invalid username or password")
}
