package tbtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Scenarios for the places where the emulator once answered differently from ThingsBoard
// (docs/thingsboard.md §9). Each reads ThingsBoard's source for what to expect.

// ProtoClaim encodes transport.proto's ClaimDevice {string secretKey = 1; int64 durationMs = 2;},
// the claim payload of a device whose profile uses the PROTOBUF payload type.
func ProtoClaim(secret string, durationMs int64) []byte {
	var b []byte
	if secret != "" {
		b = append(binary.AppendUvarint(append(b, 0x0a), uint64(len(secret))), secret...) // field 1, length-delimited
	}
	if durationMs != 0 {
		b = binary.AppendUvarint(append(b, 0x10), uint64(durationMs)) // field 2, varint
	}
	return b
}

// testOneSessionPerDevice: actors.session.max_concurrent_sessions_per_device (default 1) — a new
// session closes the device's oldest one, with DISCONNECT 0x8E (session taken over) on MQTT 5
// (DeviceActorMessageProcessor, MqttTransportHandler.onRemoteSessionCloseCommand). The HTTP device
// API opens no session.
func (s *suite) testOneSessionPerDevice(t *testing.T) {
	max := s.target.MaxSessionsPerDevice
	if max <= 0 {
		max = 1
	}
	_, token, _ := s.newDevice(t)
	oldest := s.connect(t, 5, token)
	for i := 1; i < max; i++ {
		s.connect(t, 4, token)
	}
	newest := s.connect(t, 4, token)
	if err := oldest.ExpectClosed(10*time.Second, 0x8E); err != nil {
		t.Fatalf("the oldest session: %v", err)
	}
	if err := newest.Publish("v1/devices/me/claim", []byte(`{"secretKey":"k","durationMs":60000}`), 1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := newest.ExpectPuback(1, 10*time.Second); err != nil {
		t.Fatalf("the newest session: %v", err)
	}
	if r := s.api.httpDeviceClaim(token, map[string]any{}); r.Status != http.StatusOK {
		t.Fatalf("HTTP device claim: %s", r)
	}
	if !newest.Quiet(s.quietFor()) {
		t.Fatal("an HTTP device API claim closed the device's MQTT session")
	}
}

// mqttProfile is a DeviceProfile body with an MQTT transport configuration; tc overrides its fields.
func mqttProfile(name string, tc map[string]any) map[string]any {
	conf := map[string]any{"type": "MQTT", "deviceTelemetryTopic": "v1/devices/me/telemetry",
		"deviceAttributesTopic": "v1/devices/me/attributes", "sendAckOnValidationException": false,
		"transportPayloadTypeConfiguration": map[string]any{"transportPayloadType": "JSON"}}
	for k, v := range tc {
		conf[k] = v
	}
	return profileBody(name, "MQTT", conf)
}

func profileBody(name, transport string, tc map[string]any) map[string]any {
	return map[string]any{"name": name, "type": "DEFAULT", "transportType": transport, "provisionType": "DISABLED",
		"profileData": map[string]any{"configuration": map[string]any{"type": "DEFAULT"}, "transportConfiguration": tc,
			"provisionConfiguration": map[string]any{"type": "DISABLED"}}}
}

// protoSchemas are minimal proto3 schemas DeviceProfileDataValidator accepts.
var protoSchemas = map[string]any{
	"transportPayloadType":                         "PROTOBUF",
	"deviceTelemetryProtoSchema":                   "syntax =\"proto3\";\npackage telemetry;\nmessage Telemetry {\n  optional double temperature = 1;\n}",
	"deviceAttributesProtoSchema":                  "syntax =\"proto3\";\npackage attributes;\nmessage Attributes {\n  optional string version = 1;\n}",
	"deviceRpcRequestProtoSchema":                  "syntax =\"proto3\";\npackage rpc;\nmessage RpcRequestMsg {\n  optional string method = 1;\n  optional int32 requestId = 2;\n  optional string params = 3;\n}",
	"deviceRpcResponseProtoSchema":                 "syntax =\"proto3\";\npackage rpc;\nmessage RpcResponseMsg {\n  optional string payload = 1;\n}",
	"enableCompatibilityWithJsonPayloadFormat":     false,
	"useJsonPayloadFormatForDefaultDownlinkTopics": false,
}

// testDeviceProfiles: the device profile changes the outcome of an MQTT claim (docs/thingsboard.md
// §9 "Device profiles").
func (s *suite) testDeviceProfiles(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	device := func(t *testing.T, profile map[string]any) (name, token string) {
		t.Helper()
		id := s.api.createProfile(s.tenant, profile)
		name = s.name("dev")
		token = strings.ReplaceAll(name, "-", "_") + "_TOKEN"
		s.api.createDeviceWithProfile(s.tenant, name, token, id)
		return name, token
	}
	t.Run("Protobuf", func(t *testing.T) {
		// ProtoMqttAdaptor reads the claim as protobuf: JSON is a payload error (MQTT 3.x: closed).
		name, token := device(t, mqttProfile(s.name("proto"), map[string]any{"transportPayloadTypeConfiguration": protoSchemas}))
		c := s.connect(t, 4, token)
		_ = c.Publish("v1/devices/me/claim", []byte(`{"secretKey":"json","durationMs":600000}`), 1, 1)
		if err := c.ExpectClosed(10*time.Second, 0); err != nil {
			t.Fatalf("JSON claim on a PROTOBUF profile: %v", err)
		}
		c = s.connect(t, 4, token)
		_ = c.Publish("v1/devices/me/claim", ProtoClaim("proto-key", 600000), 1, 2)
		if _, err := c.ExpectPuback(2, 10*time.Second); err != nil {
			t.Fatalf("protobuf claim: %v", err)
		}
		s.settle(t)
		wantClaim(t, s.claimEventually(t, jwt, name, "proto-key"), "SUCCESS")
	})
	t.Run("SendAckOnValidationException", func(t *testing.T) {
		// The profile acknowledges a payload it cannot read, registers nothing, and keeps the
		// connection.
		name, token := device(t, mqttProfile(s.name("ack"), map[string]any{"sendAckOnValidationException": true}))
		c := s.connect(t, 4, token)
		_ = c.Publish("v1/devices/me/claim", []byte(`[]`), 1, 1)
		if _, err := c.ExpectPuback(1, 10*time.Second); err != nil {
			t.Fatalf("invalid claim: %v", err)
		}
		if !c.Quiet(s.quietFor()) {
			t.Fatal("connection closed")
		}
		s.settle(t)
		wantClaim(t, s.api.claim(jwt, name, ""), "FAILURE")
	})
	t.Run("OtherTransportType", func(t *testing.T) {
		// DefaultTransportService refuses a device whose profile is for another transport: CONNACK 3.
		_, token := device(t, profileBody(s.name("coap"), "COAP", map[string]any{"type": "COAP",
			"coapDeviceTypeConfiguration": map[string]any{"coapDeviceType": "DEFAULT",
				"transportPayloadTypeConfiguration": map[string]any{"transportPayloadType": "JSON"}},
			"clientSettings": map[string]any{"powerMode": "DRX"}}))
		_, ack := s.mqtt(t, RawOptions{Username: Str(token)})
		if ack == nil || ack[1] != 3 {
			t.Fatalf("CONNACK %x, want 3 (server unavailable)", ack)
		}
	})
	t.Run("TelemetryFilterBeforeClaimTopic", func(t *testing.T) {
		// MqttTransportHandler tries the profile's telemetry filter first: a filter that matches
		// v1/devices/me/claim turns the claim into telemetry (acknowledged, not registered).
		name, token := device(t, mqttProfile(s.name("wide"), map[string]any{"deviceTelemetryTopic": "v1/devices/me/+"}))
		c := s.connect(t, 4, token)
		_ = c.Publish("v1/devices/me/claim", []byte(`{"secretKey":"k","durationMs":600000}`), 1, 1)
		if _, err := c.ExpectPuback(1, 10*time.Second); err != nil {
			t.Fatalf("claim as telemetry: %v", err)
		}
		s.settle(t)
		wantClaim(t, s.api.claim(jwt, name, "k"), "FAILURE")
	})
}

// testMQTTSurface: SUBSCRIBE, relaying, passwords, CONNACK codes, MQTT 5 answers and the gateway
// prefix, as MqttTransportHandler answers them.
func (s *suite) testMQTTSurface(t *testing.T) {
	t.Run("SubscribeRefused", func(t *testing.T) {
		_, token, _ := s.newDevice(t)
		c := s.connect(t, 4, token)
		_ = c.Subscribe(1, "#", "v1/devices/me/claim", "v1/devices/me/attributes")
		typ, body, err := c.Read(10 * time.Second)
		if err != nil || typ != PktSuback || string(body) != "\x00\x01\x80\x80\x01" {
			t.Fatalf("SUBACK %d %x %v, want 80 80 01", typ, body, err)
		}
		c5 := s.connect(t, 5, token)
		_ = c5.Subscribe(2, "#")
		typ, body, err = c5.Read(10 * time.Second)
		if err != nil || typ != PktSuback || string(body) != "\x00\x02\x00\x8f" {
			t.Fatalf("MQTT 5 SUBACK %d %x %v, want 8f (topic filter invalid), no properties", typ, body, err)
		}
	})
	t.Run("NothingRelayed", func(t *testing.T) {
		// Not a broker: neither a publish nor a will reaches another client on the same topic.
		_, listenerToken, _ := s.newDevice(t)
		_, talkerToken, _ := s.newDevice(t)
		listener := s.connect(t, 4, listenerToken)
		_ = listener.Subscribe(1, "v1/devices/me/attributes")
		if typ, _, err := listener.Read(10 * time.Second); err != nil || typ != PktSuback {
			t.Fatalf("SUBACK: %d %v", typ, err)
		}
		talker, ack := s.mqtt(t, RawOptions{Username: Str(talkerToken), WillTopic: "v1/devices/me/attributes", WillMessage: `{"will":true}`})
		if ack == nil || ack[1] != 0 {
			t.Fatalf("CONNACK %x", ack)
		}
		_ = talker.Publish("v1/devices/me/attributes", []byte(`{"relayed":true}`), 1, 1)
		if _, err := talker.ExpectPuback(1, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		talker.CloseAbruptly()
		if !listener.Quiet(s.quietFor()) {
			t.Fatal("a message or a will reached another client")
		}
	})
	t.Run("EmptyPasswordAccepted", func(t *testing.T) {
		_, token, _ := s.newDevice(t)
		if _, ack := s.mqtt(t, RawOptions{Username: Str(token), Password: []byte{}}); ack == nil || ack[1] != 0 {
			t.Fatalf("token with an empty password: CONNACK %x, want 0", ack)
		}
	})
	t.Run("ConnackCodes", func(t *testing.T) {
		_, token, _ := s.newDevice(t)
		// claimsvc's broker probe: a user name that is no token (CONNACK 5) and no credentials with a
		// client id (CONNACK 2, CLIENT_IDENTIFIER_NOT_VALID).
		if _, ack := s.mqtt(t, RawOptions{ClientID: s.name("probe"), Username: Str("claimsvc-probe")}); ack == nil || ack[1] != 5 {
			t.Fatalf("unknown user name: CONNACK %x, want 5", ack)
		}
		if _, ack := s.mqtt(t, RawOptions{ClientID: s.name("anonymous")}); ack == nil || ack[1] != 2 {
			t.Fatalf("no credentials: CONNACK %x, want 2", ack)
		}
		// Netty rejects an MQTT 3.1 client id longer than 23 characters: closed, no CONNACK.
		if _, ack := s.mqtt(t, RawOptions{Version: 3, ClientID: strings.Repeat("x", 24), Username: Str(token)}); ack != nil {
			t.Fatalf("MQTT 3.1 with a 24-character client id: CONNACK %x, want the connection closed", ack)
		}
		// MQTT 3.1.1 allows an empty client id, also without a clean session; session present is
		// !cleanSession.
		if _, ack := s.mqtt(t, RawOptions{ClientID: "", Username: Str(token), NotClean: true}); ack == nil || ack[0] != 1 || ack[1] != 0 {
			t.Fatalf("empty client id, not clean: CONNACK %x, want 01 00", ack)
		}
		c, ack := s.mqtt(t, RawOptions{Version: 5, Username: Str(s.run + "_NO_SUCH_TOKEN")})
		if ack == nil || ack[1] != 0x86 {
			t.Fatalf("MQTT 5 unknown token: CONNACK %x, want 0x86", ack)
		}
		if err := c.ExpectClosed(10*time.Second, 0x86); err != nil {
			t.Fatalf("after the MQTT 5 refusal: %v", err)
		}
	})
	t.Run("MQTT5", func(t *testing.T) {
		_, token, _ := s.newDevice(t)
		c, ack := s.mqtt(t, RawOptions{Version: 5, Username: Str(token)})
		if ack == nil || len(ack) != 3 || ack[1] != 0 || ack[2] != 0 {
			t.Fatalf("CONNACK %x, want 00 00 with an empty property list", ack)
		}
		_ = c.Publish("v2/c", []byte(`{"secretKey":"k"}`), 1, 1)
		if rc, err := c.ExpectPuback(1, 10*time.Second); err != nil || rc != 0x90 {
			t.Fatalf("unknown topic: PUBACK %#x %v, want 0x90 (topic name invalid)", rc, err)
		}
		_ = c.Publish("v1/devices/me/claim", []byte(`[]`), 0, 0)
		if err := c.ExpectClosed(10*time.Second, 0x99); err != nil {
			t.Fatalf("bad QoS 0 claim: %v, want DISCONNECT 0x99", err)
		}
	})
	t.Run("GatewayPrefix", func(t *testing.T) {
		// "v1/gateway" is matched as a prefix: from a device that is no gateway, no PUBACK.
		_, token, _ := s.newDevice(t)
		c := s.connect(t, 4, token)
		_ = c.Publish("v1/gatewayclaim", []byte(`{}`), 1, 1)
		if !c.Quiet(s.quietFor()) {
			t.Fatal("a publish to v1/gateway* from a device that is no gateway was answered")
		}
	})
}

// testCustomerClaimBody: the customer claim reads its body with Jackson only; a body that is not
// JSON by its Content-Type is refused before the claim runs (never a SUCCESS) and leaves the
// registration in place. JSON answers carry no trailing newline.
func (s *suite) testCustomerClaimBody(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	name, token, _ := s.newDevice(t)
	s.publishClaim(t, token, `{"secretKey":"k","durationMs":600000}`)
	auth := "Bearer " + jwt
	for _, tc := range []struct{ ct, body string }{
		{"text/plain", `{"secretKey":"k"}`},
		{"application/x-www-form-urlencoded", `secretKey=k`},
		{"", `{"secretKey":"k"}`},
	} {
		r := s.api.send("POST", claimPath(name), auth, tc.ct, []byte(tc.body))
		if r.Status == http.StatusOK {
			t.Fatalf("Content-Type %q: %s, a non-JSON body must not claim", tc.ct, r)
		}
		// BaseController's @ExceptionHandler turns Spring's HttpMediaTypeNotSupportedException into
		// 500 errorCode 2 (read from the source).
		wantError(t, r, http.StatusInternalServerError, 2, "")
	}
	r := s.claimEventually(t, jwt, name, "k")
	wantClaim(t, r, "SUCCESS")
	if strings.HasSuffix(string(r.Body), "\n") {
		t.Fatalf("SUCCESS body ends with a newline: %q", r.Body)
	}
	r = s.api.claim(jwt, name, "k")
	if r.Status != http.StatusBadRequest || string(r.Body) != `"CLAIMED"` {
		t.Fatalf("second claim: %s, want exactly \"CLAIMED\"", r)
	}
}

// testDeviceRateLimit: the tenant profile's transportDeviceMsgRateLimit (DefaultTransportService
// .checkLimits): past the limit a claim gets no PUBACK and the connection is closed; the HTTP
// device API answers 500. Opening the session counts as a message.
func (s *suite) testDeviceRateLimit(t *testing.T) {
	spec := s.target.DeviceRateLimit
	if spec == "" {
		t.Skip("no device rate limit configured (ThingsBoard's default tenant profile has none); set CLAIMSVC_TB_DEVICE_RATE_LIMIT to the tenant profile's transportDeviceMsgRateLimit")
	}
	capacity, refillPerSec := smallestBandwidth(t, spec)
	_, token, _ := s.newDevice(t)
	c := s.connect(t, 4, token)
	acks := 0
	closed := false
	for i := 1; i <= capacity+5 && !closed; i++ {
		if err := c.Publish("v1/devices/me/claim", []byte(`{"secretKey":"k","durationMs":60000}`), 1, uint16(i)); err != nil {
			closed = true
			break
		}
		typ, _, err := c.Read(10 * time.Second)
		switch {
		case err == nil && typ == PktPuback:
			acks++
		case errors.Is(err, ErrClosed):
			closed = true
		default:
			t.Fatalf("publish %d: packet %d %v", i, typ, err)
		}
	}
	if !closed || acks < capacity-1 {
		t.Fatalf("%d PUBACKs then closed=%v; want at least %d, then the connection closed without PUBACK", acks, closed, capacity-1)
	}
	if refillPerSec < 0.5 {
		if r := s.api.httpDeviceClaim(token, map[string]any{}); r.Status != http.StatusInternalServerError {
			t.Fatalf("HTTP claim over the limit: %s, want 500", r)
		}
	}
}

// smallestBandwidth returns the smallest capacity of a "capacity:seconds,…" rate limit and the
// fastest refill rate.
func smallestBandwidth(t *testing.T, spec string) (int, float64) {
	t.Helper()
	capacity, rate := 0, 0.0
	for _, part := range strings.Split(spec, ",") {
		var c, secs int
		if _, err := fmt.Sscanf(strings.TrimSpace(part), "%d:%d", &c, &secs); err != nil || c <= 0 || secs <= 0 {
			t.Fatalf("rate limit %q: %q is not capacity:seconds", spec, part)
		}
		if capacity == 0 || c < capacity {
			capacity = c
		}
		rate = max(rate, float64(c)/float64(secs))
	}
	return capacity, rate
}

// testCacheAdmission: the claim cache holds at most maxSize entries (docs/thingsboard.md §3.1, §9):
// of more registrations than that, not all can be claimed, while none is refused at registration.
// Which ones are lost depends on Caffeine's W-TinyLFU; the scenario logs it.
func (s *suite) testCacheAdmission(t *testing.T) {
	size := s.target.ClaimCacheSize
	if size < 0 {
		t.Skip("cache admission scenario disabled for this target")
	}
	if size == 0 {
		size = 1000
	}
	n := size + size/10 + 10
	jwt, _ := s.newCustomer(t)
	names := make([]string, n)
	for i := range names {
		name, token, _ := s.newDevice(t)
		names[i] = name
		if r := s.api.httpDeviceClaim(token, map[string]any{"secretKey": "cache", "durationMs": 3600000}); r.Status != http.StatusOK {
			t.Fatalf("registration %d: %s", i, r)
		}
	}
	s.settle(t)
	var lost []int
	for i, name := range names {
		r := s.api.claim(jwt, name, "cache")
		switch {
		case r.Status == http.StatusOK:
		case r.Status == http.StatusBadRequest && string(r.Body) == `"FAILURE"`:
			lost = append(lost, i)
		default:
			t.Fatalf("claim %d: %s", i, r)
		}
	}
	claimed := n - len(lost)
	t.Logf("%d registrations into a cache of %d: %d claimable, %d lost (%s)", n, size, claimed, len(lost), describe(lost))
	if claimed > size || len(lost) == 0 {
		t.Fatalf("%d of %d claimable with a cache of %d", claimed, n, size)
	}
}

// describe summarises which registrations were lost.
func describe(idx []int) string {
	if len(idx) == 0 {
		return "none"
	}
	if len(idx) <= 6 {
		return fmt.Sprint(idx)
	}
	return fmt.Sprintf("first %v … last %v", idx[:3], idx[len(idx)-3:])
}

// testIPBlocking: transport.rate_limits with ip_limits_enabled (DefaultTransportRateLimitService,
// IpFilter). CONNECTs with bad credentials — an unknown user name (claimsvc's probe) and no
// credentials at all — count; at the limit the address is blocked: connections are closed before
// CONNACK, even with a good token, until ip_block_timeout has passed since the last failure. The
// HTTP device API is not filtered.
func (s *suite) testIPBlocking(t *testing.T) {
	l := s.target.IPLimits
	if l == nil {
		t.Skip("ip_limits_enabled is false (ThingsBoard's default); set CLAIMSVC_TB_IP_LIMITS=max:timeout for a ThingsBoard started with it")
	}
	_, token, _ := s.newDevice(t)
	for i := 0; i < l.MaxWrongCredentials; i++ {
		o := RawOptions{ClientID: s.name("probe"), Username: Str("claimsvc-probe")}
		want := byte(5)
		if i%2 == 1 {
			o.Username, want = nil, 2 // no user name and no password
		}
		if _, ack := s.mqtt(t, o); ack == nil || ack[1] != want {
			t.Fatalf("wrong connect %d: CONNACK %x, want %d", i+1, ack, want)
		}
	}
	if _, ack := s.mqtt(t, RawOptions{Username: Str(token)}); ack != nil {
		t.Fatalf("blocked address: CONNACK %x, want the connection closed", ack)
	}
	if r := s.api.httpDeviceClaim(token, map[string]any{}); r.Status != http.StatusOK {
		t.Fatalf("HTTP device API from a blocked address: %s", r)
	}
	s.wait(l.BlockTimeout + 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, ack := s.mqtt(t, RawOptions{Username: Str(token)})
		if ack != nil && ack[1] == 0 {
			return // a good connect also resets the count
		}
		if ctx.Err() != nil {
			t.Fatalf("still blocked after ip_block_timeout: CONNACK %x", ack)
		}
		s.wait(time.Second)
	}
}
