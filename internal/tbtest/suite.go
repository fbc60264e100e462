// Package tbtest is a scenario suite for ThingsBoard device claiming, written only against
// ThingsBoard's public surface: the REST API, the MQTT device API (paho and a raw client) and the
// HTTP device API. The same scenarios run against the emulator (internal/tbemu) in every `go test`
// and against a real ThingsBoard (TestRealThingsBoard), so the emulator's fidelity can be checked.
//
// Each scenario cites the section of docs/thingsboard.md it checks.
package tbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Target is a ThingsBoard (or emulator) to run the suite against.
type Target struct {
	// RESTURL is the base URL of the REST and HTTP device API, e.g. "http://127.0.0.1:9090".
	RESTURL string
	// MQTTAddr is the MQTT host:port.
	MQTTAddr string
	// TenantUser and TenantPassword log in a tenant administrator; empty means the demo
	// tenant@thingsboard.org / tenant.
	TenantUser, TenantPassword string
	// DemoData is true when the tb-postgres demo data is loaded (customerA@thingsboard.org, the
	// DHT11 Demo Device, …). The demo scenario leaves it as it found it.
	DemoData bool

	// AdvanceClock moves the target's clock forward (the emulator). nil for a real ThingsBoard:
	// the expiry scenarios then use short durations and real waits.
	AdvanceClock func(time.Duration)
	// Settle waits until every claim acknowledged so far has been registered (the emulator's
	// Flush). nil: sleep SettleDelay, since ThingsBoard registers asynchronously after the ack.
	Settle func(ctx context.Context) error
	// SettleDelay is the sleep used when Settle is nil; 0 means 1 s.
	SettleDelay time.Duration
}

// suite carries what every scenario needs.
type suite struct {
	t      *testing.T
	target Target
	api    *rest
	run    string // unique prefix of this run's entities
	tenant string // tenant admin JWT
	seq    int
}

// Run runs every scenario against target. Scenarios create their own devices, customers and users
// under a unique prefix, so they can run against a long-lived ThingsBoard repeatedly.
func Run(t *testing.T, target Target) {
	if target.TenantUser == "" { // ThingsBoard's public demo tenant admin (install --loadDemo)
		target.TenantUser, target.TenantPassword = "tenant@thingsboard.org", "tenant"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	s := &suite{t: t, target: target, run: "tbtest-" + hex.EncodeToString(b),
		api: &rest{t: t, base: strings.TrimRight(target.RESTURL, "/"), hc: &http.Client{Timeout: 30 * time.Second}}}
	s.tenant = s.api.login(target.TenantUser, target.TenantPassword)

	t.Run("Login", s.testLogin)
	t.Run("ClaimOverMQTT", s.testClaimOverMQTT)
	t.Run("ClaimOverHTTPDeviceAPI", s.testClaimOverHTTP)
	t.Run("DecisionTable", s.testDecisionTable)
	t.Run("PutIfAbsentTrap", s.testPutIfAbsent)
	t.Run("WrongKeyEvicts", s.testWrongKeyEvicts)
	t.Run("Expiry", s.testExpiry)
	t.Run("Unclaim", s.testUnclaim)
	t.Run("ServerSideKey", s.testServerSideKey)
	t.Run("BadToken", s.testBadToken)
	t.Run("BadPayloadsMQTT", s.testBadPayloadsMQTT)
	t.Run("BadPayloadsHTTP", s.testBadPayloadsHTTP)
	t.Run("Gateway", s.testGateway)
	if target.DemoData {
		t.Run("DemoData", s.testDemoData)
	}
}

// name returns a fresh entity name for this run.
func (s *suite) name(kind string) string {
	s.seq++
	return fmt.Sprintf("%s-%s-%d", s.run, kind, s.seq)
}

// newDevice creates an unassigned device with a fresh name and token.
func (s *suite) newDevice(t *testing.T) (name, token, id string) {
	t.Helper()
	name = s.name("dev")
	token = strings.ReplaceAll(name, "-", "_") + "_TOKEN"
	d := s.api.createDevice(s.tenant, name, token, false)
	return name, token, d.ID.ID
}

// newCustomer creates a customer and a customer user, and returns the user's JWT and the customer id.
func (s *suite) newCustomer(t *testing.T) (jwt, customerID string) {
	t.Helper()
	title := s.name("customer")
	customerID = s.api.createCustomer(s.tenant, title)
	jwt = s.api.customerUserJWT(s.tenant, customerID, strings.ToLower(title)+"@example.com")
	return jwt, customerID
}

// settle waits until acknowledged claims are registered.
func (s *suite) settle(t *testing.T) {
	t.Helper()
	if s.target.Settle != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.target.Settle(ctx); err != nil {
			t.Fatalf("settle: %v", err)
		}
		return
	}
	d := s.target.SettleDelay
	if d <= 0 {
		d = time.Second
	}
	time.Sleep(d)
}

// publishClaim sends a device claim with paho at QoS 1 and waits for the PUBACK, then settles.
func (s *suite) publishClaim(t *testing.T, token, payload string) {
	t.Helper()
	s.publish(t, token, "v1/devices/me/claim", payload)
	s.settle(t)
}

// publish connects as token with paho (MQTT 3.1.1), publishes at QoS 1 and waits for the PUBACK.
func (s *suite) publish(t *testing.T, token, topic, payload string) {
	t.Helper()
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + s.target.MQTTAddr).
		SetClientID(s.name("client")).
		SetUsername(token).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt publish to %s: no PUBACK: %v", topic, tok.Error())
	}
}

// claimEventually retries a claim that should succeed while the registration may still be in
// flight (ThingsBoard's own tests use 20 × 100 ms). A FAILURE without claim data evicts nothing.
func (s *suite) claimEventually(t *testing.T, jwt, name, secret string) response {
	t.Helper()
	var r response
	for i := 0; i < 20; i++ {
		r = s.api.claim(jwt, name, secret)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "FAILURE") {
			return r
		}
		time.Sleep(250 * time.Millisecond)
	}
	return r
}

// wait lets time pass on the target: the emulator's clock, or real time.
func (s *suite) wait(d time.Duration) {
	if s.target.AdvanceClock != nil {
		s.target.AdvanceClock(d)
		return
	}
	time.Sleep(d)
}
