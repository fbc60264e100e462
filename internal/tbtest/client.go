package tbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rest is a small client for ThingsBoard's REST API.
type rest struct {
	t    testing.TB
	base string
	hc   *http.Client
}

// response is a REST reply.
type response struct {
	Status int
	Body   []byte
	Header http.Header
}

// JSON decodes the body into v or fails the test.
func (r response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
}

// tbError is ThingsBoard's error body.
type tbError struct {
	Status    int    `json:"status"`
	Message   string `json:"message"`
	ErrorCode int    `json:"errorCode"`
	Timestamp int64  `json:"timestamp"`
}

// entityID is {"entityType","id"}.
type entityID struct {
	EntityType string `json:"entityType"`
	ID         string `json:"id"`
}

// deviceJSON holds the Device fields the suite reads.
type deviceJSON struct {
	ID         entityID `json:"id"`
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	CustomerID entityID `json:"customerId"`
}

// nullUUID marks an unassigned device.
const nullUUID = "13814000-1dd2-11b2-8080-808080808080"

// do sends a request with an optional JWT and body. A string or []byte body is sent as is, anything
// else as JSON; nil sends no body. A body is sent as application/json.
func (c *rest) do(method, path, jwt string, body any) response {
	c.t.Helper()
	auth := ""
	if jwt != "" {
		auth = "Bearer " + jwt
	}
	var b []byte
	ct := ""
	switch v := body.(type) {
	case nil:
	case string:
		b, ct = []byte(v), "application/json"
	case []byte:
		b, ct = v, "application/json"
	default:
		j, err := json.Marshal(v)
		if err != nil {
			c.t.Fatalf("marshal: %v", err)
		}
		b, ct = j, "application/json"
	}
	return c.send(method, path, auth, ct, b)
}

// send sends a request with a raw X-Authorization value and Content-Type ("" sends neither) and a
// body (nil sends none).
func (c *rest) send(method, path, auth, contentType string, body []byte) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("X-Authorization", auth)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		c.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return response{Status: res.StatusCode, Body: b, Header: res.Header}
}

// must sends a request and fails the test unless the status is 200.
func (c *rest) must(method, path, jwt string, body any) response {
	c.t.Helper()
	r := c.do(method, path, jwt, body)
	if r.Status != http.StatusOK {
		c.t.Fatalf("%s %s: status %d, body %s", method, path, r.Status, r.Body)
	}
	return r
}

// jwtPair is the answer of login and refresh.
type jwtPair struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refreshToken"`
}

func (c *rest) login(user, password string) string {
	c.t.Helper()
	return c.loginPair(user, password).Token
}

func (c *rest) loginPair(user, password string) jwtPair {
	c.t.Helper()
	var pair jwtPair
	c.must("POST", "/api/auth/login", "", map[string]string{"username": user, "password": password}).JSON(c.t, &pair)
	if pair.Token == "" || pair.RefreshToken == "" {
		c.t.Fatalf("login %s: empty token", user)
	}
	return pair
}

func (c *rest) createCustomer(jwt, title string) string {
	c.t.Helper()
	var cu struct {
		ID entityID `json:"id"`
	}
	c.must("POST", "/api/customer", jwt, map[string]string{"title": title}).JSON(c.t, &cu)
	return cu.ID.ID
}

// customerUserJWT creates a customer user and returns a JWT for it (GET /api/user/{id}/token).
func (c *rest) customerUserJWT(jwt, customerID, email string) string {
	c.t.Helper()
	var u struct {
		ID entityID `json:"id"`
	}
	c.must("POST", "/api/user?sendActivationMail=false", jwt, map[string]any{
		"email": email, "authority": "CUSTOMER_USER", "firstName": "Suite", "lastName": "User",
		"customerId": entityID{"CUSTOMER", customerID},
	}).JSON(c.t, &u)
	var pair struct {
		Token string `json:"token"`
	}
	c.must("GET", "/api/user/"+u.ID.ID+"/token", jwt, nil).JSON(c.t, &pair)
	return pair.Token
}

// createDevice creates a device with the given access token; gateway sets additionalInfo.gateway.
func (c *rest) createDevice(jwt, name, token string, gateway bool) deviceJSON {
	c.t.Helper()
	body := map[string]any{"name": name, "type": "default"}
	if gateway {
		body["additionalInfo"] = map[string]any{"gateway": true}
	}
	var d deviceJSON
	c.must("POST", "/api/device?accessToken="+url.QueryEscape(token), jwt, body).JSON(c.t, &d)
	return d
}

// createDeviceWithProfile creates a device of a device profile.
func (c *rest) createDeviceWithProfile(jwt, name, token, profileID string) deviceJSON {
	c.t.Helper()
	var d deviceJSON
	c.must("POST", "/api/device?accessToken="+url.QueryEscape(token), jwt, map[string]any{"name": name,
		"deviceProfileId": entityID{"DEVICE_PROFILE", profileID}}).JSON(c.t, &d)
	return d
}

// createProfile creates a device profile and returns its id.
func (c *rest) createProfile(jwt string, profile map[string]any) string {
	c.t.Helper()
	var p struct {
		ID entityID `json:"id"`
	}
	c.must("POST", "/api/deviceProfile", jwt, profile).JSON(c.t, &p)
	return p.ID.ID
}

// deviceByName is GET /api/tenant/devices?deviceName= with any credentials header.
func (c *rest) deviceByName(auth, name string) response {
	c.t.Helper()
	return c.send("GET", "/api/tenant/devices?deviceName="+url.QueryEscape(name), auth, "", nil)
}

func (c *rest) device(jwt, id string) deviceJSON {
	c.t.Helper()
	var d deviceJSON
	c.must("GET", "/api/device/"+id, jwt, nil).JSON(c.t, &d)
	return d
}

func claimPath(name string) string {
	return "/api/customer/device/" + url.PathEscape(name) + "/claim"
}

// claim calls POST /api/customer/device/{name}/claim with {"secretKey": secret}.
func (c *rest) claim(jwt, name, secret string) response {
	c.t.Helper()
	return c.do("POST", claimPath(name), jwt, map[string]string{"secretKey": secret})
}

func (c *rest) setServerAttributes(jwt, deviceID string, attrs any) {
	c.t.Helper()
	c.must("POST", "/api/plugins/telemetry/DEVICE/"+deviceID+"/attributes/SERVER_SCOPE", jwt, attrs)
}

// deleteServerAttributes is DELETE /api/plugins/telemetry/DEVICE/{id}/SERVER_SCOPE?keys=….
func (c *rest) deleteServerAttributes(auth, deviceID string, keys ...string) response {
	c.t.Helper()
	q := ""
	if len(keys) > 0 {
		q = "?keys=" + url.QueryEscape(strings.Join(keys, ","))
	}
	return c.send("DELETE", "/api/plugins/telemetry/DEVICE/"+deviceID+"/SERVER_SCOPE"+q, auth, "", nil)
}

// serverAttributes returns the SERVER_SCOPE attribute keys of a device.
func (c *rest) serverAttributes(jwt, deviceID string) map[string]json.RawMessage {
	c.t.Helper()
	var list []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	c.must("GET", "/api/plugins/telemetry/DEVICE/"+deviceID+"/values/attributes/SERVER_SCOPE", jwt, nil).JSON(c.t, &list)
	out := map[string]json.RawMessage{}
	for _, a := range list {
		out[a.Key] = a.Value
	}
	return out
}

// httpDeviceClaim calls the HTTP device API POST /api/v1/{token}/claim.
func (c *rest) httpDeviceClaim(token string, body any) response {
	c.t.Helper()
	return c.do("POST", "/api/v1/"+url.PathEscape(token)+"/claim", "", body)
}

// wantClaim asserts a claim reply: SUCCESS (200 with the device) or the 400 JSON string FAILURE/CLAIMED.
func wantClaim(t testing.TB, r response, want string) {
	t.Helper()
	switch want {
	case "SUCCESS":
		var ok struct {
			Response string     `json:"response"`
			Device   deviceJSON `json:"device"`
		}
		if r.Status != http.StatusOK {
			t.Fatalf("claim: status %d body %s, want 200 SUCCESS", r.Status, r.Body)
		}
		r.JSON(t, &ok)
		if ok.Response != "SUCCESS" || ok.Device.ID.ID == "" {
			t.Fatalf("claim: body %s, want SUCCESS with the device", r.Body)
		}
	default:
		var s string
		if r.Status != http.StatusBadRequest || json.Unmarshal(r.Body, &s) != nil || s != want {
			t.Fatalf("claim: status %d body %s, want 400 %q", r.Status, r.Body, want)
		}
	}
}

// wantError asserts ThingsBoard's error JSON.
func wantError(t testing.TB, r response, status, code int, msg string) {
	t.Helper()
	var e tbError
	if r.Status != status {
		t.Fatalf("status %d body %s, want %d", r.Status, r.Body, status)
	}
	r.JSON(t, &e)
	if e.Status != status || e.ErrorCode != code || (msg != "" && e.Message != msg) || e.Timestamp == 0 {
		t.Fatalf("error body %s, want status %d errorCode %d message %q", r.Body, status, code, msg)
	}
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }
