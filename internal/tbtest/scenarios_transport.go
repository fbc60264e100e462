package tbtest

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testBadPayloadsMQTT: docs/thingsboard.md §1.1 and §1.2 on MQTT 3.1.1 — a syntax or runtime error closes the
// connection without a PUBACK and registers nothing; lenient payloads are accepted.
func (s *suite) testBadPayloadsMQTT(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	closes := []struct{ name, payload string }{
		{"NotAnObject", `[]`},
		{"String", `"str"`},
		{"Malformed", `{"secretKey":`},
		{"Trailing", `{"secretKey":"k"} trailing`},
		{"WhitespaceOnly", `   `},
		{"DurationNotANumber", `{"secretKey":"k","durationMs":"abc"}`},
		{"DurationBoolean", `{"secretKey":"k","durationMs":true}`},
		{"NullSecret", `{"secretKey":null}`},
		{"ObjectSecret", `{"secretKey":{}}`},
	}
	for _, tc := range closes {
		t.Run(tc.name, func(t *testing.T) {
			name, token, _ := s.newDevice(t)
			c, rc, err := dialRaw(s.target.MQTTAddr, s.name("raw"), token)
			if err != nil || rc != 0 {
				t.Fatalf("connect: rc %d err %v", rc, err)
			}
			defer c.close()
			if err := c.publish("v1/devices/me/claim", []byte(tc.payload), 1, 7); err != nil {
				t.Fatalf("publish: %v", err)
			}
			if err := c.expectClosed(10 * time.Second); err != nil {
				t.Fatalf("payload %q: %v", tc.payload, err)
			}
			s.settle(t)
			wantClaim(t, s.api.claim(jwt, name, "k"), "FAILURE")
		})
	}

	accepted := []struct{ name, payload, secret string }{
		{"Lenient", `{secretKey:'k1'}`, "k1"},
		{"StringDuration", `{"secretKey":"k2","durationMs":"60000"}`, "k2"},
		{"FloatDuration", `{"secretKey":"k3","durationMs":60000.9}`, "k3"},
		{"NumberSecret", `{"secretKey":123}`, "123"},
		{"UnknownKeys", `{"secretKey":"k4","x":1}`, "k4"},
		{"Empty", ``, ""},
		{"EmptyObject", `{}`, ""},
		{"ZeroDuration", `{"secretKey":"k5","durationMs":0}`, "k5"},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			name, token, _ := s.newDevice(t)
			c, rc, err := dialRaw(s.target.MQTTAddr, s.name("raw"), token)
			if err != nil || rc != 0 {
				t.Fatalf("connect: rc %d err %v", rc, err)
			}
			defer c.close()
			if err := c.publish("v1/devices/me/claim", []byte(tc.payload), 1, 9); err != nil {
				t.Fatalf("publish: %v", err)
			}
			typ, body, err := c.read(10 * time.Second)
			if err != nil || typ != pktPuback || len(body) < 2 || body[0] != 0 || body[1] != 9 {
				t.Fatalf("payload %q: got packet %d %x err %v, want PUBACK for id 9", tc.payload, typ, body, err)
			}
			s.settle(t)
			wantClaim(t, s.claimEventually(t, jwt, name, tc.secret), "SUCCESS")
		})
	}

	t.Run("UnknownTopicAcked", func(t *testing.T) {
		// The documented short topic v2/c does not exist: a plain PUBACK, nothing registered.
		name, token, _ := s.newDevice(t)
		s.publish(t, token, "v2/c", `{"secretKey":"k","durationMs":60000}`)
		s.settle(t)
		wantClaim(t, s.api.claim(jwt, name, "k"), "FAILURE")
	})
	t.Run("QoS0", func(t *testing.T) {
		name, token, _ := s.newDevice(t)
		c, rc, err := dialRaw(s.target.MQTTAddr, s.name("raw"), token)
		if err != nil || rc != 0 {
			t.Fatalf("connect: rc %d err %v", rc, err)
		}
		defer c.close()
		if err := c.publish("v1/devices/me/claim", []byte(`{"secretKey":"q0","durationMs":60000}`), 0, 0); err != nil {
			t.Fatalf("publish: %v", err)
		}
		if typ, _, err := c.read(time.Second); !errors.Is(err, errNoPacket) {
			t.Fatalf("QoS 0 publish answered with packet %d (err %v), want nothing", typ, err)
		}
		s.settle(t)
		wantClaim(t, s.claimEventually(t, jwt, name, "q0"), "SUCCESS")
	})
	t.Run("QoS2NeverGetsPubrec", func(t *testing.T) {
		_, token, _ := s.newDevice(t)
		c, rc, err := dialRaw(s.target.MQTTAddr, s.name("raw"), token)
		if err != nil || rc != 0 {
			t.Fatalf("connect: rc %d err %v", rc, err)
		}
		defer c.close()
		if err := c.publish("v1/devices/me/claim", []byte(`{"secretKey":"q2"}`), 2, 11); err != nil {
			t.Fatalf("publish: %v", err)
		}
		typ, _, err := c.read(3 * time.Second)
		if err == nil && typ == pktPubrec {
			t.Fatalf("QoS 2 publish answered with PUBREC; ThingsBoard never sends PUBREC")
		}
	})
}

// testBadPayloadsHTTP: docs/thingsboard.md §1.3 — 500 for bad payloads, with Gson's message for a syntax error.
func (s *suite) testBadPayloadsHTTP(t *testing.T) {
	_, token, _ := s.newDevice(t)
	r := s.api.httpDeviceClaim(token, `[]`)
	if r.Status != http.StatusInternalServerError || !strings.Contains(string(r.Body), "Can't parse value") {
		t.Fatalf("HTTP claim []: %s, want 500 \"Can't parse value: []\"", r)
	}
	r = s.api.httpDeviceClaim(token, `{"a":1} trailing`)
	if r.Status != http.StatusInternalServerError || !strings.Contains(string(r.Body), "Did not consume the entire document") {
		t.Fatalf("HTTP claim with trailing text: %s, want 500 with Gson's message", r)
	}
	r = s.api.httpDeviceClaim(token, `{"durationMs":"abc"}`)
	if r.Status != http.StatusInternalServerError || len(r.Body) != 0 {
		t.Fatalf("HTTP claim durationMs abc: %s, want 500 with an empty body", r)
	}
	r = s.api.httpDeviceClaim(token, `{"secretKey":null}`)
	if r.Status != http.StatusInternalServerError || len(r.Body) != 0 {
		t.Fatalf("HTTP claim null secretKey: %s, want 500 with an empty body", r)
	}
}

// testGateway: docs/thingsboard.md §1.5 — v1/gateway/claim from a gateway device registers claims for named
// devices, creating missing ones; a non-gateway device gets no PUBACK.
func (s *suite) testGateway(t *testing.T) {
	jwt, _ := s.newCustomer(t)
	gwName := s.name("gateway")
	gwToken := strings.ReplaceAll(gwName, "-", "_") + "_TOKEN"
	s.api.createDevice(s.tenant, gwName, gwToken, true)
	existing, _, _ := s.newDevice(t)
	created := s.name("gw-child")

	s.publish(t, gwToken, "v1/gateway/claim",
		`{"`+existing+`":{"secretKey":"ge","durationMs":60000},"`+created+`":{"secretKey":"gc","durationMs":60000},"skipped":1}`)
	s.settle(t)
	wantClaim(t, s.claimEventually(t, jwt, existing, "ge"), "SUCCESS")
	r := s.api.must("GET", "/api/tenant/devices?deviceName="+created, s.tenant, nil)
	var d deviceJSON
	r.JSON(t, &d)
	if d.Name != created || d.CustomerID.ID != nullUUID {
		t.Fatalf("auto-created device = %+v", d)
	}
	wantClaim(t, s.claimEventually(t, jwt, created, "gc"), "SUCCESS")

	t.Run("NonGatewayGetsNoAck", func(t *testing.T) {
		name, token, _ := s.newDevice(t)
		c, rc, err := dialRaw(s.target.MQTTAddr, s.name("raw"), token)
		if err != nil || rc != 0 {
			t.Fatalf("connect: rc %d err %v", rc, err)
		}
		defer c.close()
		if err := c.publish("v1/gateway/claim", []byte(`{"`+name+`":{"secretKey":"x"}}`), 1, 3); err != nil {
			t.Fatalf("publish: %v", err)
		}
		if typ, _, err := c.read(2 * time.Second); err == nil {
			t.Fatalf("non-gateway publish to v1/gateway/claim answered with packet type %d, want nothing", typ)
		}
		s.settle(t)
		wantClaim(t, s.api.claim(jwt, name, "x"), "FAILURE")
	})
	t.Run("NothingToClaimClosesAfterPuback", func(t *testing.T) {
		c, rc, err := dialRaw(s.target.MQTTAddr, s.name("raw"), gwToken)
		if err != nil || rc != 0 {
			t.Fatalf("connect: rc %d err %v", rc, err)
		}
		defer c.close()
		if err := c.publish("v1/gateway/claim", []byte(`{"a":1}`), 1, 5); err != nil {
			t.Fatalf("publish: %v", err)
		}
		typ, _, err := c.read(10 * time.Second)
		if err != nil || typ != pktPuback {
			t.Fatalf("got packet %d err %v, want PUBACK", typ, err)
		}
		if err := c.expectClosed(10 * time.Second); err != nil {
			t.Fatalf("after PUBACK: %v", err)
		}
	})
}

// testDemoData uses the tb-postgres demo data (docs/thingsboard.md §5) and leaves it as it found it.
func (s *suite) testDemoData(t *testing.T) {
	const dev = "DHT11 Demo Device"
	a := s.api.login("customerA@thingsboard.org", "customer")
	b := s.api.login("customerB@thingsboard.org", "customer")
	// Un-claim first, in case an earlier run was interrupted; any customer user may do it.
	s.api.must("DELETE", claimPath(dev), a, nil)
	t.Cleanup(func() { s.api.do("DELETE", claimPath(dev), a, nil) })

	s.publishClaim(t, "DHT11_DEMO_TOKEN", `{"secretKey":"abc","durationMs":60000}`)
	wantClaim(t, s.claimEventually(t, a, dev, "abc"), "SUCCESS")
	wantClaim(t, s.api.claim(b, dev, "abc"), "CLAIMED")
	// Test Device A1 belongs to Customer A.
	wantClaim(t, s.api.claim(b, "Test Device A1", "x"), "CLAIMED")
}
