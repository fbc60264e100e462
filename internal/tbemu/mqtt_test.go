package tbemu

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/tbtest"
)

func claimTopicPayload(secret string) []byte {
	return []byte(`{"secretKey":"` + secret + `","durationMs":60000}`)
}

// TestOneSessionPerDevice: actors.session.max_concurrent_sessions_per_device (default 1) — a new
// session of a device closes its oldest one (DeviceActorMessageProcessor).
func TestOneSessionPerDevice(t *testing.T) {
	t.Parallel()
	e, _ := start(t, nil)
	d, _ := e.AddDevice("sess", "SESSION_DEVICE_TOKEN")

	a := connectOK(t, e.MQTTAddr(), 4, d.Token)
	b := connectOK(t, e.MQTTAddr(), 4, d.Token)
	a.expectClosed(0)
	b.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 1)
	b.expectPuback(1)
	if n := e.Sessions("sess"); n != 1 {
		t.Fatalf("sessions = %d, want 1", n)
	}

	// MQTT 5: the closed session gets DISCONNECT 0x8E (session taken over).
	a5 := connectOK(t, e.MQTTAddr(), 5, d.Token)
	b.expectClosed(0)
	_ = connectOK(t, e.MQTTAddr(), 4, d.Token)
	a5.expectClosed(rcSessionTakenOver)

	// The HTTP device API opens no session.
	c := connectOK(t, e.MQTTAddr(), 4, d.Token)
	httpClaim(t, e, d.Token, `{"secretKey":"h"}`)
	if !c.quiet(300 * time.Millisecond) {
		t.Fatal("an HTTP device API claim closed the device's MQTT session")
	}

	// Different devices, and even the same client id, do not disturb each other: sessions are per
	// device, not per client id.
	o, _ := e.AddDevice("other", "OTHER_DEVICE_TOKEN")
	x, _ := dialRaw(t, e.MQTTAddr(), tbtest.RawOptions{ClientID: "same-id", Username: tbtest.Str(o.Token)})
	y, _ := dialRaw(t, e.MQTTAddr(), tbtest.RawOptions{ClientID: "same-id", Username: tbtest.Str("SESSION_DEVICE_TOKEN")})
	if !x.quiet(200*time.Millisecond) || !y.quiet(10*time.Millisecond) {
		t.Fatal("two devices with one client id disturbed each other")
	}
	c.expectClosed(0) // y took over the device's session
}

func TestMaxSessionsSetting(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.MaxSessionsPerDevice = 2 })
	d, _ := e.AddDevice("two", "TWO_SESSIONS_TOKEN")
	a := connectOK(t, e.MQTTAddr(), 4, d.Token)
	b := connectOK(t, e.MQTTAddr(), 4, d.Token)
	if !a.quiet(200 * time.Millisecond) {
		t.Fatal("the second session closed the first with a limit of 2")
	}
	_ = connectOK(t, e.MQTTAddr(), 4, d.Token)
	a.expectClosed(0)
	if !b.quiet(100 * time.Millisecond) {
		t.Fatal("the limit closed more than the oldest session")
	}

	u, _ := start(t, func(c *Config) { c.MaxSessionsPerDevice = -1 })
	ud, _ := u.AddDevice("many", "MANY_SESSIONS_TOKEN")
	var conns []*rawConn
	for range 5 {
		conns = append(conns, connectOK(t, u.MQTTAddr(), 4, ud.Token))
	}
	if !conns[0].quiet(200*time.Millisecond) || u.Sessions("many") != 5 {
		t.Fatal("MaxSessionsPerDevice < 0 must not limit sessions")
	}
}

// TestGatewaySessionTakesOverDevice: a gateway opens a session for each device it speaks for
// (AbstractGatewaySessionHandler), so with the default limit its claim closes the device's own
// connection.
func TestGatewaySessionTakesOverDevice(t *testing.T) {
	t.Parallel()
	e, _ := start(t, nil)
	gw, _ := e.AddGatewayDevice("gw", "GATEWAY_SESSION_TOKEN")
	d, _ := e.AddDevice("child", "CHILD_SESSION_TOKEN")
	direct := connectOK(t, e.MQTTAddr(), 4, d.Token)
	g := connectOK(t, e.MQTTAddr(), 4, gw.Token)
	g.publish(topicGatewayClaim, []byte(`{"child":{"secretKey":"c"}}`), 1, 1)
	g.expectPuback(1)
	direct.expectClosed(0)
	if !g.quiet(100 * time.Millisecond) {
		t.Fatal("the gateway's connection was closed")
	}
}

// TestConnackCodes: every CONNACK is legal for the client's version, with ThingsBoard's choice of
// code (MqttTransportHandler.onValidateDeviceResponse, ReturnCodeResolver); a CONNECT Netty cannot
// decode is closed without a CONNACK.
func TestConnackCodes(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true })
	addr := e.MQTTAddr()
	cases := []struct {
		name string
		o    tbtest.RawOptions
		code int // -1: closed without CONNACK
	}{
		{"UnknownToken", tbtest.RawOptions{ClientID: "c", Username: tbtest.Str("UNKNOWN_TOKEN")}, 5},
		{"UnknownTokenWithPassword", tbtest.RawOptions{ClientID: "c", Username: tbtest.Str("UNKNOWN_TOKEN"), Password: []byte("p")}, 5},
		{"TokenWithPassword", tbtest.RawOptions{ClientID: "c", Username: tbtest.Str("DHT11_DEMO_TOKEN"), Password: []byte("ignored")}, 0},
		{"TokenWithEmptyPassword", tbtest.RawOptions{ClientID: "c", Username: tbtest.Str("DHT11_DEMO_TOKEN"), Password: []byte{}}, 0},
		{"EmptyClientID", tbtest.RawOptions{Username: tbtest.Str("DHT11_DEMO_TOKEN")}, 0},
		{"EmptyClientIDNotClean", tbtest.RawOptions{Username: tbtest.Str("DHT11_DEMO_TOKEN"), NotClean: true}, 0},
		{"NoCredentialsWithClientID", tbtest.RawOptions{ClientID: "probe"}, 2},
		{"NoCredentialsBlankClientID", tbtest.RawOptions{ClientID: " "}, 5},
		{"PasswordOnly", tbtest.RawOptions{ClientID: "c", Password: []byte("p")}, 5},
		{"EmptyUserName", tbtest.RawOptions{ClientID: "c", Username: tbtest.Str("")}, 5},
		{"MQTT31", tbtest.RawOptions{Version: 3, ClientID: "c31", Username: tbtest.Str("DHT11_DEMO_TOKEN")}, 0},
		{"MQTT31LongClientID", tbtest.RawOptions{Version: 3, ClientID: strings.Repeat("x", 24), Username: tbtest.Str("DHT11_DEMO_TOKEN")}, -1},
		{"MQTT31EmptyClientID", tbtest.RawOptions{Version: 3, Username: tbtest.Str("DHT11_DEMO_TOKEN")}, -1},
		{"V5UnknownToken", tbtest.RawOptions{Version: 5, ClientID: "c", Username: tbtest.Str("UNKNOWN_TOKEN")}, 0x86},
		{"V5NoCredentials", tbtest.RawOptions{Version: 5, ClientID: "probe"}, 0x85},
		{"V5NoCredentialsNoClientID", tbtest.RawOptions{Version: 5}, 0x87},
		{"V5Token", tbtest.RawOptions{Version: 5, ClientID: "c", Username: tbtest.Str("DHT11_DEMO_TOKEN")}, 0},
		{"WillIgnored", tbtest.RawOptions{ClientID: "w", Username: tbtest.Str("T1_TEST_TOKEN"), WillTopic: "v1/devices/me/attributes", WillMessage: "{}"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ack := dialRaw(t, addr, tc.o)
			if tc.code < 0 {
				if ack != nil {
					t.Fatalf("got CONNACK %x, want the connection closed without one", ack)
				}
				return
			}
			if ack == nil {
				t.Fatal("closed without CONNACK")
			}
			if int(ack[1]) != tc.code {
				t.Fatalf("CONNACK %#x, want %#x", ack[1], tc.code)
			}
			if v := tc.o.Version; v != 5 && ack[1] > 5 {
				t.Fatalf("CONNACK %#x is not a MQTT 3.x return code", ack[1])
			}
			if wantSP := tc.o.NotClean; (ack[0] == 1) != wantSP {
				t.Fatalf("session present %d, want %v (ThingsBoard sends !cleanSession)", ack[0], wantSP)
			}
			if tc.o.Version == 5 && (len(ack) != 3 || ack[2] != 0) {
				t.Fatalf("MQTT 5 CONNACK %x carries properties; ThingsBoard sends none", ack)
			}
			if tc.code != 0 {
				// MQTT 5 refusals are followed by DISCONNECT with the same code (closeCtx).
				c.expectClosed(byte(tc.code))
			}
		})
	}
	t.Run("BadProtocolLevel", func(t *testing.T) {
		if _, ack := dialRaw(t, addr, tbtest.RawOptions{Version: 6, ClientID: "c", Username: tbtest.Str("DHT11_DEMO_TOKEN")}); ack != nil {
			t.Fatalf("protocol level 6: CONNACK %x, want the connection closed", ack)
		}
	})
	t.Run("PublishBeforeConnect", func(t *testing.T) {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_, _ = nc.Write(encodePacket(0x32, append(binary.BigEndian.AppendUint16([]byte{0, 1, 'x'}, 1), '{', '}')))
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := nc.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatal("a PUBLISH before CONNECT was answered")
		}
	})
}

// TestSubscribe: only ThingsBoard's downlink topics are granted; "#" and the claim topic are refused
// (MqttTransportHandler.processSubscribe).
func TestSubscribe(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true })
	c := connectOK(t, e.MQTTAddr(), 4, "DHT11_DEMO_TOKEN")
	c.subscribe(7, "#", topicDeviceClaim, "v1/devices/me/attributes", "v1/devices/me/rpc/request/+")
	typ, body, ok := c.next(5 * time.Second)
	if !ok || typ != pktSuback || string(body) != "\x00\x07\x80\x80\x01\x01" {
		t.Fatalf("SUBACK %d %x, want 80 80 01 01", typ, body)
	}
	c5 := connectOK(t, e.MQTTAddr(), 5, "T1_TEST_TOKEN")
	c5.subscribe(8, "#", "v1/devices/me/attributes")
	typ, body, ok = c5.next(5 * time.Second)
	if !ok || typ != pktSuback || string(body) != "\x00\x08\x00\x8f\x01" {
		t.Fatalf("MQTT 5 SUBACK %d %x, want 8f 01 without properties", typ, body)
	}
}

// TestNothingIsRelayed: ThingsBoard is not a broker. A device's publishes and its will reach no
// other client, even one subscribed to the same topic.
func TestNothingIsRelayed(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true })
	listener := connectOK(t, e.MQTTAddr(), 4, "DHT11_DEMO_TOKEN")
	listener.subscribe(1, topicAttributes)
	if typ, _, _ := listener.next(5 * time.Second); typ != pktSuback {
		t.Fatalf("want SUBACK, got %d", typ)
	}
	talker, ack := dialRaw(t, e.MQTTAddr(), tbtest.RawOptions{ClientID: "w", Username: tbtest.Str("T1_TEST_TOKEN"),
		WillTopic: topicAttributes, WillMessage: `{"will":1}`})
	if ack == nil || ack[1] != 0 {
		t.Fatalf("CONNACK %x", ack)
	}
	talker.publish(topicAttributes, []byte(`{"a":1}`), 1, 2)
	talker.expectPuback(2)
	talker.CloseAbruptly() // an abnormal end: a broker would publish the will now
	if !listener.quiet(500 * time.Millisecond) {
		t.Fatal("a message or a will reached another client")
	}
}

// TestMQTT5Answers: unknown topic → PUBACK 0x90; a bad QoS 0 claim → DISCONNECT 0x99; a syntax
// error at QoS 1 → PUBACK 0x99; a runtime error → DISCONNECT 0x8B; no properties anywhere.
func TestMQTT5Answers(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true })
	c := connectOK(t, e.MQTTAddr(), 5, "DHT11_DEMO_TOKEN")
	c.publish("v2/c", claimTopicPayload("k"), 1, 1)
	if rc := c.expectPuback(1); rc != rcTopicNameInvalid {
		t.Fatalf("unknown topic: PUBACK %#x, want 0x90", rc)
	}
	c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 2)
	typ, body, _ := c.next(5 * time.Second)
	if typ != pktPuback || len(body) != 2 {
		t.Fatalf("accepted claim: packet %d %x, want a 2-byte PUBACK", typ, body)
	}
	c.publish(topicDeviceClaim, []byte("[]"), 1, 3)
	if rc := c.expectPuback(3); rc != rcPayloadFormatInvalid {
		t.Fatalf("syntax error: PUBACK %#x, want 0x99", rc)
	}
	c.publish(topicDeviceClaim, []byte("[]"), 0, 0)
	c.expectClosed(rcPayloadFormatInvalid)

	r := connectOK(t, e.MQTTAddr(), 5, "T1_TEST_TOKEN")
	r.publish(topicDeviceClaim, []byte(`{"durationMs":"abc"}`), 1, 4)
	r.expectClosed(rcServerShuttingDown)

	// MQTT 3.1.1 sees a plain PUBACK for an unknown topic and a closed connection for a bad QoS 0 claim.
	v3 := connectOK(t, e.MQTTAddr(), 4, "T2_TEST_TOKEN")
	v3.publish("v2/c", nil, 1, 5)
	typ, body, _ = v3.next(5 * time.Second)
	if typ != pktPuback || len(body) != 2 {
		t.Fatalf("MQTT 3.1.1 unknown topic: %d %x, want a plain PUBACK", typ, body)
	}
	v3.publish(topicDeviceClaim, []byte("[]"), 0, 0)
	v3.expectClosed(0)
}

// TestGatewayTopicPrefix: MqttTransportHandler matches "v1/gateway" with startsWith, without a
// slash.
func TestGatewayTopicPrefix(t *testing.T) {
	t.Parallel()
	e, _ := start(t, func(c *Config) { c.Demo = true })
	c := connectOK(t, e.MQTTAddr(), 4, "DHT11_DEMO_TOKEN")
	c.publish("v1/gatewayclaim", []byte(`{}`), 1, 1)
	if !c.quiet(300 * time.Millisecond) {
		t.Fatal("a non-gateway device's publish to v1/gateway* was answered")
	}
	gw, _ := e.AddGatewayDevice("gw", "GATEWAY_PREFIX_TOKEN")
	g := connectOK(t, e.MQTTAddr(), 5, gw.Token)
	g.publish("v1/gateway/unknown", []byte(`{}`), 1, 2)
	if rc := g.expectPuback(2); rc != rcTopicNameInvalid {
		t.Fatalf("gateway unknown topic: PUBACK %#x, want 0x90", rc)
	}
	g.publish("v1/gateway/telemetry", []byte(`{}`), 1, 3)
	if rc := g.expectPuback(3); rc != 0 {
		t.Fatalf("gateway telemetry: PUBACK %#x, want 0", rc)
	}
}

func TestDeviceProfiles(t *testing.T) {
	t.Parallel()
	e, _ := start(t, nil)
	addr := e.MQTTAddr()
	mk := func(p DeviceProfile, token string) DeviceInfo {
		t.Helper()
		id, err := e.AddDeviceProfile(p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.AddDeviceWithProfile(p.Name+"-dev", token, id)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	t.Run("Protobuf", func(t *testing.T) {
		d := mk(DeviceProfile{Name: "proto", TransportType: "MQTT", PayloadType: "PROTOBUF"}, "PROTO_DEVICE_TOKEN")
		c := connectOK(t, addr, 4, d.Token)
		c.publish(topicDeviceClaim, claimTopicPayload("json"), 1, 1)
		c.expectClosed(0) // ProtoMqttAdaptor cannot read JSON
		c = connectOK(t, addr, 4, d.Token)
		c.publish(topicDeviceClaim, tbtest.ProtoClaim("proto-secret", 60000), 1, 2)
		c.expectPuback(2)
		flush(t, e)
		ev := e.ClaimsReceived()
		if last := ev[len(ev)-1]; !last.Registered || last.SecretKey != "proto-secret" || last.DurationMs != 60000 {
			t.Fatalf("protobuf claim: %+v", last)
		}
		c5 := connectOK(t, addr, 5, d.Token)
		c5.publish(topicDeviceClaim, claimTopicPayload("json"), 1, 3)
		if rc := c5.expectPuback(3); rc != rcPayloadFormatInvalid {
			t.Fatalf("MQTT 5 JSON claim on a PROTOBUF profile: PUBACK %#x, want 0x99", rc)
		}
	})
	t.Run("ProtobufWithJSONCompatibility", func(t *testing.T) {
		d := mk(DeviceProfile{Name: "compat", TransportType: "MQTT", PayloadType: "PROTOBUF", JSONCompatibility: true}, "COMPAT_DEVICE_TOKEN")
		c := connectOK(t, addr, 4, d.Token)
		c.publish(topicDeviceClaim, claimTopicPayload("json"), 1, 1)
		c.expectPuback(1)
	})
	t.Run("SendAckOnValidationException", func(t *testing.T) {
		d := mk(DeviceProfile{Name: "ack", TransportType: "MQTT", SendAckOnValidationException: true}, "ACK_DEVICE_TOKEN")
		c := connectOK(t, addr, 4, d.Token)
		flush(t, e) // the claims of earlier subtests are registered: n counts them all
		n := len(e.ClaimsReceived())
		c.publish(topicDeviceClaim, []byte("[]"), 1, 1)
		c.expectPuback(1) // acknowledged, not registered
		if !c.quiet(100 * time.Millisecond) {
			t.Fatal("connection closed")
		}
		flush(t, e)
		if len(e.ClaimsReceived()) != n || e.PendingClaim(d.Name) {
			t.Fatal("an acknowledged invalid claim was registered")
		}
		// A QoS 0 publish has no packet id to acknowledge: closed anyway.
		c.publish(topicDeviceClaim, []byte("[]"), 0, 0)
		c.expectClosed(0)
	})
	t.Run("OtherTransport", func(t *testing.T) {
		d := mk(DeviceProfile{Name: "coap", TransportType: "COAP"}, "COAP_DEVICE_TOKEN")
		if _, ack := dialRaw(t, addr, tbtest.RawOptions{ClientID: "c", Username: tbtest.Str(d.Token)}); ack == nil || ack[1] != 3 {
			t.Fatalf("CONNACK %x, want 3 (server unavailable)", ack)
		}
		c, ack := dialRaw(t, addr, tbtest.RawOptions{Version: 5, ClientID: "c", Username: tbtest.Str(d.Token)})
		if ack == nil || ack[1] != rcServerUnavailable {
			t.Fatalf("MQTT 5 CONNACK %x, want 0x88", ack)
		}
		c.expectClosed(rcServerBusy)
		// The HTTP device API is another transport: it still takes the claim.
		httpClaim(t, e, d.Token, `{"secretKey":"x"}`)
	})
	t.Run("TelemetryFilterMatchesClaimTopic", func(t *testing.T) {
		d := mk(DeviceProfile{Name: "wide", TransportType: "MQTT", TelemetryTopic: "v1/devices/me/+"}, "WIDE_DEVICE_TOKEN")
		c := connectOK(t, addr, 4, d.Token)
		flush(t, e)
		n := len(e.ClaimsReceived())
		c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 1)
		c.expectPuback(1) // taken as telemetry
		flush(t, e)
		if len(e.ClaimsReceived()) != n || e.PendingClaim(d.Name) {
			t.Fatal("the claim topic was handled as a claim although the telemetry filter matches it")
		}
	})
	t.Run("ProfileChangeReachesOpenSession", func(t *testing.T) {
		d, _ := e.AddDevice("mover", "MOVER_DEVICE_TOKEN")
		c := connectOK(t, addr, 4, d.Token)
		id, _ := e.AddDeviceProfile(DeviceProfile{Name: "mover-proto", TransportType: "MQTT", PayloadType: "PROTOBUF"})
		if err := e.SetDeviceProfile("mover", id); err != nil {
			t.Fatal(err)
		}
		c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 1)
		c.expectClosed(0)
	})
}

func TestDeviceProfileREST(t *testing.T) {
	t.Parallel()
	e, _ := start(t, nil)
	tenant := login(t, e, "tenant@thingsboard.org", "tenant")
	body := `{"name":"rest-proto","type":"DEFAULT","transportType":"MQTT","provisionType":"DISABLED",
	  "profileData":{"configuration":{"type":"DEFAULT"},"transportConfiguration":{"type":"MQTT",
	  "sendAckOnValidationException":true,"transportPayloadTypeConfiguration":{"transportPayloadType":"PROTOBUF",
	  "deviceTelemetryProtoSchema":"syntax =\"proto3\"; message T { optional string a = 1; }",
	  "deviceAttributesProtoSchema":"syntax =\"proto3\"; message A { optional string a = 1; }",
	  "deviceRpcRequestProtoSchema":"syntax =\"proto3\"; message R { optional string method = 1; optional int32 requestId = 2; optional string params = 3; }",
	  "deviceRpcResponseProtoSchema":"syntax =\"proto3\"; message S { optional string payload = 1; }"}}}}`
	st, b := call(t, "POST", e.HTTPURL()+"/api/deviceProfile", tenant, body)
	if st != 200 {
		t.Fatalf("create profile: %d %s", st, b)
	}
	var p struct {
		ID            entityID `json:"id"`
		TransportType string   `json:"transportType"`
	}
	mustJSON(t, b, &p)
	if st, b := call(t, "POST", e.HTTPURL()+"/api/deviceProfile", tenant, body); st != 400 || !strings.Contains(string(b), "already exists") {
		t.Fatalf("duplicate name: %d %s", st, b)
	}
	if st, b := call(t, "POST", e.HTTPURL()+"/api/deviceProfile", tenant,
		`{"name":"bad-proto","type":"DEFAULT","transportType":"MQTT","profileData":{"transportConfiguration":{"type":"MQTT","transportPayloadTypeConfiguration":{"transportPayloadType":"PROTOBUF"}}}}`); st != 400 {
		t.Fatalf("PROTOBUF without schemas: %d %s, want 400", st, b)
	}
	st, b = call(t, "POST", e.HTTPURL()+"/api/device?accessToken=REST_PROTO_TOKEN", tenant,
		`{"name":"rest-proto-dev","deviceProfileId":{"entityType":"DEVICE_PROFILE","id":"`+p.ID.ID+`"}}`)
	if st != 200 || !strings.Contains(string(b), `"type":"rest-proto"`) || !strings.Contains(string(b), p.ID.ID) {
		t.Fatalf("create device with the profile: %d %s", st, b)
	}
	c := connectOK(t, e.MQTTAddr(), 4, "REST_PROTO_TOKEN")
	c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 1)
	c.expectPuback(1) // sendAckOnValidationException
	if st, b := call(t, "GET", e.HTTPURL()+"/api/deviceProfile/"+p.ID.ID, tenant, ""); st != 200 || !strings.Contains(string(b), `"PROTOBUF"`) {
		t.Fatalf("get profile: %d %s", st, b)
	}
	// A device type names a profile, created if missing (findOrCreateDeviceProfile).
	if st, b := call(t, "POST", e.HTTPURL()+"/api/device", tenant, `{"name":"typed","type":"thermometer"}`); st != 200 || !strings.Contains(string(b), `"type":"thermometer"`) {
		t.Fatalf("device with a new type: %d %s", st, b)
	}
}

// TestIPBlocking: transport.rate_limits (DefaultTransportRateLimitService, IpFilter).
func TestIPBlocking(t *testing.T) {
	t.Parallel()
	e, clock := start(t, func(c *Config) {
		c.Demo = true
		c.IPLimitsEnabled = true
		c.MaxWrongCredentialsPerIP = 3
	})
	addr := e.MQTTAddr()
	bad := func() {
		t.Helper()
		if _, ack := dialRaw(t, addr, tbtest.RawOptions{ClientID: "claimsvc-probe-1", Username: tbtest.Str("claimsvc-probe")}); ack == nil || ack[1] != 5 {
			t.Fatalf("bad credentials: CONNACK %x, want 5", ack)
		}
	}
	blocked := func() bool {
		t.Helper()
		_, ack := dialRaw(t, addr, tbtest.RawOptions{ClientID: "c", Username: tbtest.Str("DHT11_DEMO_TOKEN")})
		return ack == nil
	}
	bad()
	bad()
	if blocked() {
		t.Fatal("blocked after 2 of 3 wrong connects")
	}
	// The good connect reset the count: three more failures are needed.
	bad()
	bad()
	if blocked() {
		t.Fatal("a successful connect did not reset the count")
	}
	bad()
	bad()
	bad()
	if !blocked() {
		t.Fatal("not blocked after 3 wrong connects")
	}
	// The HTTP API is not filtered.
	httpClaim(t, e, "T1_TEST_TOKEN", `{}`)
	clock.Advance(DefaultIPBlockTimeout + time.Second)
	if blocked() {
		t.Fatal("still blocked after ip_block_timeout")
	}

	// A CONNECT without user name and password is a wrong credential too (CONNACK 2).
	for range 3 {
		if _, ack := dialRaw(t, addr, tbtest.RawOptions{ClientID: "anon"}); ack == nil || ack[1] != 2 {
			t.Fatalf("no credentials: CONNACK %x, want 2", ack)
		}
	}
	if !blocked() {
		t.Fatal("CONNECTs without credentials did not count")
	}
	clock.Advance(DefaultIPBlockTimeout + time.Second)
	// After the block the count is not reset: one more failure blocks again.
	bad()
	if !blocked() {
		t.Fatal("one failure after a block timeout did not block again")
	}

	off, _ := start(t, func(c *Config) { c.Demo = true })
	for range 15 {
		if _, ack := dialRaw(t, off.MQTTAddr(), tbtest.RawOptions{ClientID: "c", Username: tbtest.Str("NOPE")}); ack == nil {
			t.Fatal("blocked although ip_limits_enabled is false (the default)")
		}
	}
}

// TestDeviceRateLimit: the tenant profile's transportDeviceMsgRateLimit (DefaultTransportService
// .checkLimits): a message over the limit closes the connection without PUBACK; the session's open
// and close count too; the HTTP device API answers 500.
func TestDeviceRateLimit(t *testing.T) {
	t.Parallel()
	e, clock := start(t, func(c *Config) { c.Demo = true; c.DeviceRateLimit = "4:60" })
	c := connectOK(t, e.MQTTAddr(), 4, "DHT11_DEMO_TOKEN") // 1
	for i := uint16(1); i <= 3; i++ {                      // 2, 3, 4
		c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, i)
		c.expectPuback(i)
	}
	c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 9)
	c.expectClosed(0)
	if st, b := call(t, "POST", e.HTTPURL()+"/api/v1/DHT11_DEMO_TOKEN/claim", "", `{}`); st != 500 || len(b) != 0 {
		t.Fatalf("HTTP claim over the limit: %d %q, want 500 with an empty body", st, b)
	}
	if _, ack := dialRaw(t, e.MQTTAddr(), tbtest.RawOptions{ClientID: "c", Username: tbtest.Str("DHT11_DEMO_TOKEN")}); ack == nil || ack[1] != 3 {
		t.Fatalf("CONNECT over the limit: CONNACK %x, want 3", ack)
	}
	c5, ack := dialRaw(t, e.MQTTAddr(), tbtest.RawOptions{Version: 5, ClientID: "c", Username: tbtest.Str("DHT11_DEMO_TOKEN")})
	if ack == nil || ack[1] != rcConnectionRateExceeded {
		t.Fatalf("MQTT 5 CONNECT over the limit: CONNACK %x, want 0x9F", ack)
	}
	c5.expectClosed(rcMessageRateTooHigh)
	// Other devices have their own budget; the bucket refills with time.
	connectOK(t, e.MQTTAddr(), 4, "T1_TEST_TOKEN")
	// A closed session takes a token too (SESSION_EVENT_MSG_CLOSED), when
	// its connection is finished: let those land before the refill.
	for deadline := time.Now().Add(5 * time.Second); e.Sessions("DHT11 Demo Device") > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the device's sessions did not close")
		}
	}
	clock.Advance(time.Minute)
	c = connectOK(t, e.MQTTAddr(), 5, "DHT11_DEMO_TOKEN")
	c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 1)
	c.expectPuback(1)
	c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 2)
	c.expectPuback(2)
	c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 3)
	c.expectPuback(3)
	c.publish(topicDeviceClaim, claimTopicPayload("k"), 1, 4)
	c.expectClosed(rcImplementationSpecific)
}

func TestRateLimitSyntax(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"x", "10", "10:0", "-1:5", ":", ","} {
		if _, err := parseRateLimit(bad); err == nil {
			t.Errorf("rate limit %q accepted", bad)
		}
	}
	for _, good := range []string{"20:1,600:60", "10:1,"} {
		if _, err := parseRateLimit(good); err != nil {
			t.Errorf("rate limit %q: %v", good, err)
		}
	}
	if _, err := Start(context.Background(), Config{DeviceRateLimit: "10"}); err == nil {
		t.Fatal("a bad DeviceRateLimit was accepted")
	}
	if _, err := Start(context.Background(), Config{CachePolicy: "lru"}); err == nil {
		t.Fatal("an unknown cache policy was accepted")
	}
}

func TestBucketRefillsGreedily(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(0, 0)
	l, _ := parseRateLimit("2:10")
	b := newTokenBucket(l, t0)
	for i, want := range []bool{true, true, false} {
		if got := b.tryConsume(t0); got != want {
			t.Fatalf("token %d: %v, want %v (capacity 2)", i+1, got, want)
		}
	}
	if b.tryConsume(t0.Add(4*time.Second)) || !b.tryConsume(t0.Add(5*time.Second)) {
		t.Fatal("one token must come back after 5 s (2 per 10 s)")
	}
}
