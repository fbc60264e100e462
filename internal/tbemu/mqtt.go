package tbemu

import (
	"errors"
	"log/slog"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// MQTT topics handled by the emulator (docs/thingsboard.md §1.2, §1.5).
const (
	topicDeviceClaim  = "v1/devices/me/claim"
	topicGatewayClaim = "v1/gateway/claim"
	gatewayPrefix     = "v1/gateway/"
)

// mqttSession is what the emulator remembers about an authenticated MQTT connection. Like
// ThingsBoard, it decides at CONNECT time whether the session is a gateway session.
type mqttSession struct {
	deviceID   string
	deviceName string
	token      string
	gateway    bool
	acked      chan struct{} // the pending registration of the publish being processed
}

// tbHook is the mochi-mqtt hook that turns the broker into ThingsBoard's MQTT transport:
// access-token authentication (docs/thingsboard.md §2) and claim handling (docs/thingsboard.md §1.2, §1.5). Messages
// published by devices are never forwarded to other subscribers.
type tbHook struct {
	mqtt.HookBase
	e        *Emulator
	mu       sync.Mutex
	sessions map[*mqtt.Client]*mqttSession
}

func (h *tbHook) ID() string { return "thingsboard" }

func (h *tbHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect,
		mqtt.OnPublish, mqtt.OnPublished:
		return true
	}
	return false
}

func (h *tbHook) session(cl *mqtt.Client) *mqttSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[cl]
}

// OnConnect answers CONNACK 2 (identifier rejected) when a client sends neither user name nor
// password but a client id: ThingsBoard's CLIENT_IDENTIFIER_NOT_VALID case (docs/thingsboard.md §2).
func (h *tbHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	c := pk.Connect
	if !c.UsernameFlag && !c.PasswordFlag && strings.TrimSpace(c.ClientIdentifier) != "" {
		_ = h.e.broker.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		h.e.log.Info("mqtt connect refused: no access token", "remote", cl.Net.Remote)
		return packets.ErrClientIdentifierNotValid
	}
	return nil
}

// OnConnectAuthenticate accepts a client whose MQTT user name is a device access token; the
// password is ignored. A refusal is CONNACK 5 on MQTT 3.1.1 and 0x86 on MQTT 5 (docs/thingsboard.md §2).
func (h *tbHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	token := string(pk.Connect.Username)
	h.e.st.mu.Lock()
	d := h.e.st.byToken[token]
	var s *mqttSession
	if d != nil {
		s = &mqttSession{deviceID: d.ID, deviceName: d.Name, token: token, gateway: d.isGateway()}
	}
	h.e.st.mu.Unlock()
	if s == nil {
		h.e.log.Info("mqtt connect refused: unknown access token", "token", tokenHint(token), "remote", cl.Net.Remote)
		return false
	}
	h.mu.Lock()
	h.sessions[cl] = s
	h.mu.Unlock()
	h.e.log.Debug("mqtt device connected", "device", s.deviceName, "gateway", s.gateway)
	return true
}

// OnACLCheck allows every topic: ThingsBoard acknowledges publishes to topics it does not know
// (docs/thingsboard.md §1.2, "v2/c").
func (h *tbHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *tbHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.sessions[cl]; s != nil && s.acked != nil {
		close(s.acked)
		s.acked = nil
	}
	delete(h.sessions, cl)
}

// OnPublished runs after mochi has written the PUBACK (or, for QoS 0, right away): it releases the
// registration queued by OnPublish, so registration happens after the acknowledgement.
func (h *tbHook) OnPublished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.sessions[cl]; s != nil && s.acked != nil {
		close(s.acked)
		s.acked = nil
	}
}

// OnPublish handles device publishes. The returned error steers mochi: CodeSuccessIgnore acks
// without forwarding, ErrRejectPacket sends nothing, a packets.Code is an MQTT 5 PUBACK reason.
func (h *tbHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	s := h.session(cl)
	if s == nil || cl.Net.Inline {
		return pk, nil
	}
	switch {
	case pk.TopicName == topicDeviceClaim:
		return pk, h.deviceClaim(cl, s, pk)
	case strings.HasPrefix(pk.TopicName, gatewayPrefix):
		if !s.gateway {
			// MTH line 422: "[gatewaySessionHandler] is null"; no PUBACK, the message is dropped.
			h.e.log.Warn("gateway topic from a non-gateway device: dropped", "device", s.deviceName, "topic", pk.TopicName)
			return pk, packets.ErrRejectPacket
		}
		if pk.TopicName == topicGatewayClaim {
			return pk, h.gatewayClaim(cl, s, pk)
		}
	}
	return pk, packets.CodeSuccessIgnore
}

// deviceClaim handles v1/devices/me/claim (docs/thingsboard.md §1.2): parse now, register after the ack.
func (h *tbHook) deviceClaim(cl *mqtt.Client, s *mqttSession, pk packets.Packet) error {
	req, err := parseClaimPayload(pk.Payload)
	if err != nil {
		return h.payloadFailure(cl, s, pk, err)
	}
	h.queue(cl, s, registration{
		deviceID: s.deviceID,
		req:      req,
		event: ClaimEvent{Transport: "mqtt", Topic: pk.TopicName, Username: s.token, ClientID: cl.ID,
			DeviceName: s.deviceName, Payload: append([]byte(nil), pk.Payload...)},
	})
	return packets.CodeSuccessIgnore
}

// queue hands r to the registration worker, released by OnPublished.
func (h *tbHook) queue(cl *mqtt.Client, s *mqttSession, rs ...registration) {
	acked := make(chan struct{})
	h.mu.Lock()
	if s.acked != nil {
		close(s.acked)
	}
	s.acked = acked
	h.mu.Unlock()
	for _, r := range rs {
		r.acked = acked
		h.e.enqueue(r)
	}
}

// payloadFailure applies docs/thingsboard.md §1.2 "Errors": a syntax error (or Gson IllegalStateException)
// is PUBACK 0x99 on MQTT 5 and a closed connection on MQTT 3; a runtime error closes the connection,
// with DISCONNECT 0x8B first on MQTT 5. No registration happens.
func (h *tbHook) payloadFailure(cl *mqtt.Client, s *mqttSession, pk packets.Packet, err error) error {
	kind := errorKind(err)
	h.e.log.Warn("invalid claim payload", "device", s.deviceName, "topic", pk.TopicName, "error", err.Error())
	v5 := cl.Properties.ProtocolVersion == 5
	switch {
	case v5 && kind != kindRuntime:
		if pk.FixedHeader.Qos == 0 {
			return packets.ErrRejectPacket
		}
		return packets.ErrPayloadFormatInvalid
	case v5:
		_ = h.e.broker.DisconnectClient(cl, packets.ErrServerShuttingDown)
	default:
		cl.Stop(err)
	}
	return packets.ErrRejectPacket
}

// gatewayClaim handles v1/gateway/claim as ThingsBoard 4.x does (docs/thingsboard.md §1.5).
func (h *tbHook) gatewayClaim(cl *mqtt.Client, s *mqttSession, pk packets.Packet) error {
	if len(pk.Payload) == 0 {
		return h.payloadFailure(cl, s, pk, &payloadError{kind: kindSyntax, msg: "Payload is empty!"})
	}
	root, err := parseGsonLenient(string(pk.Payload))
	if err != nil {
		return h.payloadFailure(cl, s, pk, &payloadError{kind: kindSyntax, msg: err.Error()})
	}
	if root.kind != jsonObject {
		return h.ackThenClose(cl, s, pk, "Can't parse value: "+root.String())
	}
	type entry struct {
		name  string
		value *jsonValue
	}
	var entries []entry
	seen := map[string]bool{}
	for _, m := range root.members {
		if seen[m.name] {
			continue
		}
		seen[m.name] = true
		v := root.get(m.name)
		if v.kind != jsonObject {
			h.e.log.Warn("gateway claim entry is not an object: skipped", "gateway", s.deviceName, "device", m.name)
			continue
		}
		if m.name == "" {
			return h.ackThenClose(cl, s, pk, "Device name is empty!")
		}
		entries = append(entries, entry{m.name, v})
	}
	if len(entries) == 0 {
		return h.ackThenClose(cl, s, pk, "Devices claim message is empty")
	}
	var regs []registration
	var convErr error
	for _, en := range entries {
		d, err := h.e.findOrCreateDevice(s.deviceID, en.name)
		if err != nil {
			convErr = err
			continue
		}
		req, err := claimFromElement(en.value)
		if err != nil {
			convErr = err
			continue
		}
		regs = append(regs, registration{
			deviceID: d.ID,
			req:      req,
			event: ClaimEvent{Transport: "gateway", Topic: pk.TopicName, Username: s.token, ClientID: cl.ID,
				DeviceName: en.name, Payload: append([]byte(nil), pk.Payload...)},
		})
	}
	if convErr != nil {
		// The valid entries are still registered: ThingsBoard queues each device on its own.
		for _, r := range regs {
			h.e.enqueue(r)
		}
		return h.payloadFailure(cl, s, pk, convErr)
	}
	h.queue(cl, s, regs...)
	return packets.CodeSuccessIgnore
}

// ackThenClose is handleGatewayPublishMsg's catch (RuntimeException): PUBACK (reason 0x83 on MQTT 5),
// then close the connection.
func (h *tbHook) ackThenClose(cl *mqtt.Client, s *mqttSession, pk packets.Packet, msg string) error {
	h.e.log.Warn("invalid gateway claim", "gateway", s.deviceName, "error", msg)
	if pk.FixedHeader.Qos > 0 {
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
		if cl.Properties.ProtocolVersion == 5 {
			ack.ReasonCode = packets.ErrImplementationSpecificError.Code
		}
		_ = cl.WritePacket(ack)
	}
	cl.Stop(errors.New(msg))
	return packets.ErrRejectPacket
}

// newBroker builds the mochi server with the ThingsBoard hook.
func newBroker(e *Emulator, log *slog.Logger) (*mqtt.Server, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1                // QoS 2 is not supported: PUBLISH QoS 2 is answered with PUBACK (docs/thingsboard.md §1.2)
	caps.MaximumPacketSize = 65536 + 5 // transport.mqtt.netty.max_payload_size (docs/thingsboard.md §2)
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(redactHandler{log.Handler()})})
	hook := &tbHook{e: e, sessions: map[*mqtt.Client]*mqttSession{}}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, err
	}
	return srv, nil
}
