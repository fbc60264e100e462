package tbemu

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/syncbuf"
	"github.com/claimsvc/claimsvc/internal/tbtest"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// start runs an emulator on free ports with a manual clock.
func start(t *testing.T, mod func(*Config)) (*Emulator, *ManualClock) {
	t.Helper()
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := DefaultConfig()
	cfg.MQTTAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Clock = clock
	if mod != nil {
		mod(&cfg)
	}
	e, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, clock
}

func flush(t *testing.T, e *Emulator) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// call sends a JSON REST request with an optional JWT and returns status and body.
func call(t *testing.T, method, url, jwt string, body string) (int, []byte) {
	t.Helper()
	auth := ""
	if jwt != "" {
		auth = "Bearer " + jwt
	}
	st, _, b := send(t, method, url, auth, "application/json", body)
	return st, b
}

func login(t *testing.T, e *Emulator, user, pass string) string {
	t.Helper()
	st, b := call(t, "POST", e.HTTPURL()+"/api/auth/login", "", `{"username":"`+user+`","password":"`+pass+`"}`)
	if st != 200 {
		t.Fatalf("login %s: %d %s", user, st, b)
	}
	var p struct{ Token string }
	_ = json.Unmarshal(b, &p)
	return p.Token
}

func httpClaim(t *testing.T, e *Emulator, token, body string) {
	t.Helper()
	if st, b := call(t, "POST", e.HTTPURL()+"/api/v1/"+token+"/claim", "", body); st != 200 {
		t.Fatalf("device claim: %d %s", st, b)
	}
}

func customerClaim(t *testing.T, e *Emulator, jwt, device, secret string) (int, string) {
	t.Helper()
	st, b := call(t, "POST", e.HTTPURL()+"/api/customer/device/"+strings.ReplaceAll(device, " ", "%20")+"/claim", jwt,
		`{"secretKey":"`+secret+`"}`)
	return st, strings.TrimSpace(string(b))
}

func TestCacheTTLWithClock(t *testing.T) {
	t.Parallel()
	e, clock := start(t, func(c *Config) { c.Demo = true })
	// durationMs 48 h, but the cache TTL (24 h) caps the lifetime (docs/thingsboard.md §3.1).
	httpClaim(t, e, "T1_TEST_TOKEN", `{"secretKey":"k","durationMs":172800000}`)
	flush(t, e)
	if !e.PendingClaim("Thermostat T1") {
		t.Fatal("claim not registered")
	}
	clock.Advance(24 * time.Hour)
	if e.PendingClaim("Thermostat T1") {
		t.Fatal("claim outlived the cache TTL")
	}
	jwt := login(t, e, "customerA@thingsboard.org", "customer") // after the clock moved: a JWT issued earlier would have expired
	if st, b := customerClaim(t, e, jwt, "Thermostat T1", "k"); st != 400 || b != `"FAILURE"` {
		t.Fatalf("got %d %s, want 400 FAILURE", st, b)
	}
}

func TestDefaultDuration(t *testing.T) {
	t.Parallel()
	e, clock := start(t, func(c *Config) { c.Demo = true; c.ClaimDuration = time.Minute })
	jwt := login(t, e, "customerA@thingsboard.org", "customer")
	httpClaim(t, e, "T2_TEST_TOKEN", `{"secretKey":"k","durationMs":-1}`) // <= 0: the default
	flush(t, e)
	clock.Advance(time.Minute + time.Millisecond)
	if st, b := customerClaim(t, e, jwt, "Thermostat T2", "k"); st != 400 || b != `"FAILURE"` {
		t.Fatalf("got %d %s, want 400 FAILURE after the default duration", st, b)
	}
}

func TestAllowClaimingByDefaultFalse(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true; c.AllowClaimingByDefault = false })
	tenant := login(t, e, "tenant@thingsboard.org", "tenant")
	jwt := login(t, e, "customerA@thingsboard.org", "customer")
	dev, _ := e.Device("DHT11 Demo Device")
	attrURL := e.HTTPURL() + "/api/plugins/telemetry/DEVICE/" + dev.ID + "/attributes/SERVER_SCOPE"

	httpClaim(t, e, dev.Token, `{"secretKey":"k"}`)
	flush(t, e)
	if e.PendingClaim(dev.Name) {
		t.Fatal("registered without claimingAllowed")
	}
	// A string "true" does not count.
	call(t, "POST", attrURL, tenant, `{"claimingAllowed":"true"}`)
	httpClaim(t, e, dev.Token, `{"secretKey":"k"}`)
	flush(t, e)
	if e.PendingClaim(dev.Name) {
		t.Fatal(`registered with claimingAllowed = "true" (a string)`)
	}
	call(t, "POST", attrURL, tenant, `{"claimingAllowed":true}`)
	httpClaim(t, e, dev.Token, `{"secretKey":"k"}`)
	flush(t, e)
	if st, b := customerClaim(t, e, jwt, dev.Name, "k"); st != 200 || !strings.Contains(b, `"SUCCESS"`) {
		t.Fatalf("got %d %s, want SUCCESS", st, b)
	}
	// SUCCESS deleted claimingAllowed; un-claim sets it back to true (docs/thingsboard.md §4.2).
	st, b := call(t, "GET", e.HTTPURL()+"/api/plugins/telemetry/DEVICE/"+dev.ID+"/values/attributes/SERVER_SCOPE", tenant, "")
	if st != 200 || strings.Contains(string(b), "claimingAllowed") {
		t.Fatalf("claimingAllowed not deleted: %d %s", st, b)
	}
	if st, _ := call(t, "DELETE", e.HTTPURL()+"/api/customer/device/DHT11%20Demo%20Device/claim", jwt, ""); st != 200 {
		t.Fatalf("un-claim: %d", st)
	}
	_, b = call(t, "GET", e.HTTPURL()+"/api/plugins/telemetry/DEVICE/"+dev.ID+"/values/attributes/SERVER_SCOPE", tenant, "")
	if !strings.Contains(string(b), `"claimingAllowed"`) || !strings.Contains(string(b), `"value":true`) {
		t.Fatalf("claimingAllowed not restored by un-claim: %s", b)
	}
}

func TestRegistrationIsAsynchronous(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.RegistrationDelay = 300 * time.Millisecond })
	d, err := e.AddDevice("slow", "SLOW_DEVICE_TOKEN")
	if err != nil {
		t.Fatal(err)
	}
	httpClaim(t, e, d.Token, `{"secretKey":"a"}`)
	httpClaim(t, e, d.Token, `{"secretKey":"b"}`)
	if e.PendingClaim("slow") {
		t.Fatal("registered before the delay: the 200 must come first")
	}
	flush(t, e)
	ev := e.ClaimsReceived()
	if len(ev) != 2 || ev[0].SecretKey != "a" || !ev[0].Registered || ev[1].SecretKey != "b" || ev[1].Registered {
		t.Fatalf("events = %+v, want a registered then b ignored (putIfAbsent)", ev)
	}
}

func TestClaimsReceivedOverMQTT(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var hooked []ClaimEvent
	e, _ := start(t, func(c *Config) {
		c.Demo = true
		c.OnClaim = func(ev ClaimEvent) { mu.Lock(); hooked = append(hooked, ev); mu.Unlock() }
	})
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + e.MQTTAddr()).
		SetUsername("DHT11_DEMO_TOKEN").SetClientID("dht11").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	payload := `{"secretKey":"abc","durationMs":60000}`
	if tok := c.Publish("v1/devices/me/claim", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	flush(t, e)
	ev := e.ClaimsReceived()
	if len(ev) != 1 {
		t.Fatalf("got %d events", len(ev))
	}
	got := ev[0]
	if got.Topic != "v1/devices/me/claim" || got.Username != "DHT11_DEMO_TOKEN" || string(got.Payload) != payload ||
		got.DeviceName != "DHT11 Demo Device" || !got.Registered || got.DurationMs != 60000 || got.Transport != "mqtt" {
		t.Fatalf("event = %+v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 1 || hooked[0].SecretKey != "abc" {
		t.Fatalf("OnClaim saw %+v", hooked)
	}
}

// TestPahoBadTokenNotAuthorized: paho with MQTT 3.1.1 sees CONNACK 5. (Without an explicit version
// paho retries a refused CONNECT as MQTT 3.1, whose empty client id Netty's decoder rejects: the
// connection is then closed without a CONNACK, as by ThingsBoard.)
func TestPahoBadTokenNotAuthorized(t *testing.T) {
	t.Parallel()
	e, _ := start(t, nil)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + e.MQTTAddr()).SetProtocolVersion(4).
		SetUsername("NOPE").SetAutoReconnect(false).SetConnectRetry(false))
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() == nil || !strings.Contains(tok.Error().Error(), "not Authorized") {
		t.Fatalf("connect error = %v, want not Authorized", tok.Error())
	}
}

func TestGatewayWithCustomerCreatesClaimedDevices(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true })
	tenant := login(t, e, "tenant@thingsboard.org", "tenant")
	jwt := login(t, e, "customerB@thingsboard.org", "customer")
	// Make a gateway owned by Customer B by claiming it.
	gw, _ := e.AddGatewayDevice("gw", "GATEWAY_TOKEN_1234")
	httpClaim(t, e, gw.Token, `{"secretKey":"g"}`)
	flush(t, e)
	if st, b := customerClaim(t, e, jwt, "gw", "g"); st != 200 {
		t.Fatalf("claim gateway: %d %s", st, b)
	}
	c := connectOK(t, e.MQTTAddr(), 4, gw.Token)
	c.publish(topicGatewayClaim, []byte(`{"child":{"secretKey":"c"}}`), 1, 1)
	c.expectPuback(1)
	flush(t, e)
	gw, _ = e.Device("gw")
	child, ok := e.Device("child")
	if !ok || child.CustomerID != gw.CustomerID || child.CustomerID == "" {
		t.Fatalf("child = %+v, want the gateway's customer", child)
	}
	if ev := e.ClaimsReceived(); ev[len(ev)-1].Registered {
		t.Fatal("claim for a device that already has a customer must not register")
	}
	if st, b := customerClaim(t, e, jwt, "child", "c"); st != 400 || b != `"CLAIMED"` {
		t.Fatalf("got %d %s, want CLAIMED", st, b)
	}
	_ = tenant
}

func TestJWTExpiryAndAuthorizationHeader(t *testing.T) {
	t.Parallel()
	e, clock := start(t, func(c *Config) { c.Demo = true })
	jwt := login(t, e, "tenant@thingsboard.org", "tenant")
	req, _ := http.NewRequest("GET", e.HTTPURL()+"/api/tenant/devices?deviceName=Thermostat%20T1", nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("Authorization: Bearer: %d", res.StatusCode)
	}
	clock.Advance(9000 * time.Second)
	st, b := call(t, "GET", e.HTTPURL()+"/api/tenant/devices?deviceName=Thermostat%20T1", jwt, "")
	if st != 401 || !strings.Contains(string(b), `"errorCode":11`) || !strings.Contains(string(b), "Token has expired") {
		t.Fatalf("expired JWT: %d %s", st, b)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	var buf syncbuf.Buffer
	e, _ := start(t, func(c *Config) {
		c.Demo = true
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	jwt := login(t, e, "customerA@thingsboard.org", "customer")
	httpClaim(t, e, "RASPBERRY_PI_DEMO_TOKEN", `{"secretKey":"very-secret-value"}`)
	call(t, "POST", e.HTTPURL()+"/api/v1/UNKNOWN_LONG_TOKEN_123/claim", "", `{}`)
	dialRaw(t, e.MQTTAddr(), tbtest.RawOptions{ClientID: "x", Username: tbtest.Str("ANOTHER_UNKNOWN_TOKEN")})
	// Rejected payloads carry the secret; they must not reach the log.
	for _, payload := range []string{`{"secretKey":"very-secret-value"} trailing`, `{"secretKey":"very-secret-value","durationMs":"x"}`} {
		c := connectOK(t, e.MQTTAddr(), 5, "T1_TEST_TOKEN")
		c.publish(topicDeviceClaim, []byte(payload), 1, 1)
		c.next(5 * time.Second)
	}
	flush(t, e)
	customerClaim(t, e, jwt, "Raspberry Pi Demo Device", "very-secret-value")
	_ = e.Close()
	out := buf.String()
	for _, secret := range []string{"RASPBERRY_PI_DEMO_TOKEN", "very-secret-value", "UNKNOWN_LONG_TOKEN_123", "ANOTHER_UNKNOWN_TOKEN", jwt} {
		asBytes := strings.Trim(fmt.Sprint([]byte(secret)), "[]") //nolint:staticcheck // QF1010: the point is how a logged []byte looks
		if strings.Contains(out, secret) || strings.Contains(out, asBytes) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "device claimed") {
		t.Errorf("log lacks the claim:\n%s", out)
	}
}

func TestCloseTwiceFreesPorts(t *testing.T) {
	t.Parallel()
	e, _ := start(t, nil)
	mqttAddr, httpURL := e.MQTTAddr(), e.HTTPURL()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, a := range []string{mqttAddr, strings.TrimPrefix(httpURL, "http://")} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("port %s not freed: %v", a, err)
		}
		ln.Close()
	}
}

func TestContextCancelCloses(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := DefaultConfig()
	cfg.MQTTAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	e, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := e.MQTTAddr()
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			_ = e.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("context cancel did not stop the emulator")
}

func TestStartFailsOnBusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, cfg := range []Config{
		{MQTTAddr: ln.Addr().String(), HTTPAddr: "127.0.0.1:0"},
		{MQTTAddr: "127.0.0.1:0", HTTPAddr: ln.Addr().String()},
	} {
		if e, err := Start(context.Background(), cfg); err == nil {
			_ = e.Close()
			t.Fatalf("Start(%+v) succeeded on a busy port", cfg)
		}
	}
}
