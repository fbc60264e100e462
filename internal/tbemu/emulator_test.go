package tbemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/syncbuf"
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

// call sends a REST request and returns status and body.
func call(t *testing.T, method, url, jwt string, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if jwt != "" {
		req.Header.Set("X-Authorization", "Bearer "+jwt)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
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

func TestPahoBadTokenNotAuthorized(t *testing.T) {
	t.Parallel()
	e, _ := start(t, nil)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + e.MQTTAddr()).
		SetUsername("NOPE").SetAutoReconnect(false).SetConnectRetry(false))
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() == nil || !strings.Contains(tok.Error().Error(), "not Authorized") {
		t.Fatalf("connect error = %v, want not Authorized", tok.Error())
	}
}

// rawConnect sends CONNECT (MQTT 3.1.1 or 5) and returns the connection and the CONNACK code.
func rawConnect(t *testing.T, addr string, version byte, clientID, username string) (net.Conn, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	str := func(b []byte, s string) []byte { return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...) }
	var vh []byte
	vh = str(vh, "MQTT")
	flags := byte(0x02)
	if username != "" {
		flags |= 0x80
	}
	vh = append(vh, version, flags, 0, 30)
	if version == 5 {
		vh = append(vh, 0) // no properties
	}
	vh = str(vh, clientID)
	if username != "" {
		vh = str(vh, username)
	}
	writePacket(t, conn, 0x10, vh)
	typ, body := readPacket(t, conn)
	if typ != 2 || len(body) < 2 {
		t.Fatalf("want CONNACK, got %d %x", typ, body)
	}
	return conn, body[1]
}

func writePacket(t *testing.T, conn net.Conn, h byte, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(h)
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		buf.WriteByte(b)
		if n == 0 {
			break
		}
	}
	buf.Write(body)
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// readPacket reads one packet; type 0 means the connection was closed.
func readPacket(t *testing.T, conn net.Conn) (byte, []byte) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h := make([]byte, 1)
	if _, err := io.ReadFull(conn, h); err != nil {
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("timeout waiting for a packet")
		}
		return 0, nil
	}
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		b := make([]byte, 1)
		if _, err := io.ReadFull(conn, b); err != nil {
			return 0, nil
		}
		n += int(b[0]&0x7f) * mul
		mul *= 128
		if b[0]&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		return 0, nil
	}
	return h[0] >> 4, body
}

func TestConnackCodes(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true })
	if _, rc := rawConnect(t, e.MQTTAddr(), 4, "c1", "UNKNOWN_TOKEN"); rc != 5 {
		t.Errorf("unknown token: CONNACK %d, want 5", rc)
	}
	if _, rc := rawConnect(t, e.MQTTAddr(), 4, "c2", ""); rc != 2 {
		t.Errorf("no user name, client id set: CONNACK %d, want 2 (CLIENT_IDENTIFIER_NOT_VALID)", rc)
	}
	if _, rc := rawConnect(t, e.MQTTAddr(), 4, "", "DHT11_DEMO_TOKEN"); rc != 0 {
		t.Errorf("valid token, empty client id: CONNACK %d, want 0", rc)
	}
	if _, rc := rawConnect(t, e.MQTTAddr(), 5, "c3", "UNKNOWN_TOKEN"); rc != 0x86 {
		t.Errorf("MQTT 5 unknown token: CONNACK %#x, want 0x86", rc)
	}
}

func TestMQTT5PayloadErrors(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true })
	publish5 := func(conn net.Conn, payload string, id uint16) {
		var b []byte
		b = append(binary.BigEndian.AppendUint16(b, uint16(len("v1/devices/me/claim"))), "v1/devices/me/claim"...)
		b = binary.BigEndian.AppendUint16(b, id)
		b = append(b, 0) // no properties
		b = append(b, payload...)
		writePacket(t, conn, 0x32, b)
	}
	conn, rc := rawConnect(t, e.MQTTAddr(), 5, "v5", "DHT11_DEMO_TOKEN")
	if rc != 0 {
		t.Fatalf("CONNACK %d", rc)
	}
	// Syntax error: PUBACK 0x99, the connection stays open.
	publish5(conn, "[]", 1)
	typ, body := readPacket(t, conn)
	if typ != 4 || len(body) < 3 || body[2] != 0x99 {
		t.Fatalf("syntax error: got %d %x, want PUBACK 0x99", typ, body)
	}
	// Runtime error: DISCONNECT 0x8B, then the connection is closed.
	publish5(conn, `{"durationMs":"abc"}`, 2)
	typ, body = readPacket(t, conn)
	if typ != 14 || len(body) < 1 || body[0] != 0x8B {
		t.Fatalf("runtime error: got %d %x, want DISCONNECT 0x8B", typ, body)
	}
	if typ, _ := readPacket(t, conn); typ != 0 {
		t.Fatalf("connection not closed after DISCONNECT: packet %d", typ)
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
	conn, rc := rawConnect(t, e.MQTTAddr(), 4, "gw", gw.Token)
	if rc != 0 {
		t.Fatalf("CONNACK %d", rc)
	}
	var b []byte
	b = append(binary.BigEndian.AppendUint16(b, uint16(len("v1/gateway/claim"))), "v1/gateway/claim"...)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, `{"child":{"secretKey":"c"}}`...)
	writePacket(t, conn, 0x32, b)
	if typ, _ := readPacket(t, conn); typ != 4 {
		t.Fatalf("want PUBACK, got %d", typ)
	}
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
	rawConnect(t, e.MQTTAddr(), 4, "x", "ANOTHER_UNKNOWN_TOKEN")
	// mochi logs rejected packets whole; the payloads carry the secret.
	for _, payload := range []string{`{"secretKey":"very-secret-value"} trailing`, `{"secretKey":"very-secret-value","durationMs":"x"}`} {
		conn, rc := rawConnect(t, e.MQTTAddr(), 5, "v5", "T1_TEST_TOKEN")
		if rc != 0 {
			t.Fatalf("CONNACK %d", rc)
		}
		var b []byte
		b = append(binary.BigEndian.AppendUint16(b, uint16(len("v1/devices/me/claim"))), "v1/devices/me/claim"...)
		b = append(binary.BigEndian.AppendUint16(b, 1), 0)
		writePacket(t, conn, 0x32, append(b, payload...))
		readPacket(t, conn)
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
