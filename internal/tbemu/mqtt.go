package tbemu

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// MQTT topics of ThingsBoard's device API (MqttTopics; docs/thingsboard.md §1.2, §1.5).
const (
	topicDeviceClaim  = "v1/devices/me/claim"
	topicTelemetry    = "v1/devices/me/telemetry"
	topicAttributes   = "v1/devices/me/attributes"
	topicGatewayClaim = "v1/gateway/claim"
	gatewayPrefix     = "v1/gateway" // BASE_GATEWAY_API_TOPIC: matched with startsWith, no slash
)

// gatewayTopics are the gateway topics MqttTransportHandler dispatches; others get TOPIC_NAME_INVALID.
var gatewayTopics = map[string]bool{
	"v1/gateway/telemetry": true, topicGatewayClaim: true, "v1/gateway/attributes": true,
	"v1/gateway/attributes/request": true, "v1/gateway/rpc": true, "v1/gateway/connect": true,
	"v1/gateway/disconnect": true,
}

// subscribable are the topic filters MqttTransportHandler.processSubscribe grants (besides the
// profile's attribute subscription filter); every other filter, "#" and the claim topic included,
// gets SUBACK failure (0x80; 0x8F TOPIC_FILTER_INVALID on MQTT 5).
var subscribable = map[string]bool{
	topicAttributes: true, "v2/a": true, "v2/a/j": true, "v2/a/p": true,
	"v1/devices/me/rpc/request/+": true, "v2/r/req/+": true, "v2/r/req/j/+": true, "v2/r/req/p/+": true,
	"v1/devices/me/rpc/response/+": true, "v2/r/res/+": true, "v2/r/res/j/+": true, "v2/r/res/p/+": true,
	"v1/devices/me/attributes/response/+": true, "v2/a/res/+": true, "v2/a/res/j/+": true, "v2/a/res/p/+": true,
	"v1/gateway/attributes": true, "v1/gateway/rpc": true, "v1/gateway/attributes/response": true,
	"v2/fw/response/+/chunk/+": true, "v2/fw/error": true, "v2/sw/response/+/chunk/+": true, "v2/sw/error": true,
}

// Device API topics the emulator acknowledges without modelling them (attribute requests, RPC,
// firmware): MqttTransportHandler hands them to the core and sends PUBACK once queued.
var (
	unmodelledPrefixes = []string{"v1/devices/me/attributes/request/", "v1/devices/me/rpc/response/",
		"v1/devices/me/rpc/request/", "v2/r/res/", "v2/r/req/", "v2/a/req/"}
	otaTopic = regexp.MustCompile(`^v2/(fw|sw)/request/\d+/chunk/\d+`)
)

// shortTelemetry maps the v2 telemetry and attribute topics to the adaptor they force ("" = the
// profile's).
var shortTopics = map[string]string{"v2/t": "", "v2/t/j": payloadJSON, "v2/t/p": payloadProtobuf,
	"v2/a": "", "v2/a/j": payloadJSON, "v2/a/p": payloadProtobuf}

// handleConnect authenticates a CONNECT as MqttTransportHandler.processAuthTokenConnect and
// onValidateDeviceResponse do (docs/thingsboard.md §2, §9). It reports whether the connection
// stays open.
func (e *Emulator) handleConnect(c *mqttConn, body []byte) bool {
	cp, err := decodeConnect(body)
	if err != nil {
		// MqttDecoder failed: closeCtx before any version is known, so no CONNACK and no DISCONNECT.
		e.log.Info("mqtt connection closed: bad CONNECT", "remote", c.ip, "error", err.Error())
		c.closeSilently()
		return false
	}
	c.mu.Lock()
	c.level = cp.Level
	c.mu.Unlock()
	refuse := func(v3, v5, disconnect byte) bool {
		code := v3
		if cp.Level == mqtt5 {
			code = v5
		}
		c.write(encodeConnack(cp.Level, !cp.Clean, code))
		c.closeWith(disconnect)
		return false
	}

	// DefaultTransportApiService.validateCredentials: a user name is looked up as an access token
	// (the password is ignored); without one ThingsBoard tries MQTT basic credentials by client id,
	// which the emulator does not have.
	var d *device
	var p *deviceProfile
	e.st.mu.Lock()
	if cp.Username != nil && *cp.Username != "" {
		if d = e.st.byToken[*cp.Username]; d != nil {
			p = e.st.profiles[d.ProfileID]
			c.dev = connDevice{id: d.ID, name: d.Name, token: d.Token, gateway: d.isGateway()}
		}
	}
	e.st.mu.Unlock()

	if d == nil {
		blocked := e.ips.onFailure(c.ip)
		// The return code: BAD_USERNAME_OR_PASSWORD when user name and password are both given or
		// only one of them; CLIENT_IDENTIFIER_NOT_VALID when neither is and the client id is not
		// blank; NOT_AUTHORIZED otherwise. ReturnCodeResolver maps them for MQTT 3.x.
		hasUser, hasPass := cp.Username != nil, cp.Password != nil
		tok := ""
		if hasUser {
			tok = tokenHint(*cp.Username)
		}
		e.log.Info("mqtt connect refused: unknown access token", "token", tok, "remote", c.ip, "addressBlocked", blocked)
		switch {
		case (hasUser && hasPass) || hasUser != hasPass:
			return refuse(connackNotAuthorized, rcBadUsernameOrPassword, rcBadUsernameOrPassword)
		case strings.TrimSpace(cp.ClientID) != "":
			return refuse(connackIdentifierRejected, rcClientIDNotValid, rcClientIDNotValid)
		default:
			return refuse(connackNotAuthorized, rcNotAuthorized, rcNotAuthorized)
		}
	}
	// DefaultTransportService.doProcess: a profile for another transport fails the validation
	// callback (CONNACK server unavailable, then closeCtx SERVER_BUSY); no IP accounting happens.
	if p != nil && p.TransportType != transportDefault && p.TransportType != transportMQTT {
		e.log.Info("mqtt connect refused: the device profile's transport type is not MQTT", "device", d.Name, "transportType", p.TransportType)
		return refuse(connackServerUnavailable, rcServerUnavailable, rcServerBusy)
	}
	e.ips.onSuccess(c.ip)
	// SESSION_EVENT_MSG_OPEN goes through the device's rate limit (checkLimits).
	if !c.dev.gateway && !e.limits.allow(d.ID) {
		e.log.Info("mqtt connect refused: device rate limit", "device", d.Name)
		return refuse(connackServerUnavailable, rcConnectionRateExceeded, rcMessageRateTooHigh)
	}
	// The session is opened before the CONNACK (ThingsBoard queues SESSION_EVENT_MSG_OPEN first), so
	// sessions of a device are ordered as their CONNACKs; the older ones close after it.
	ds := &devSession{deviceID: d.ID, conn: c}
	c.mu.Lock()
	c.session = ds
	c.mu.Unlock()
	evicted, ok := c.srv.openSession(ds)
	if !ok {
		c.closeWith(rcServerShuttingDown)
		return false
	}
	if !c.write(encodeConnack(cp.Level, !cp.Clean, connackAccepted)) {
		return false
	}
	c.srv.closeEvicted(evicted)
	e.log.Debug("mqtt device connected", "device", d.Name, "gateway", c.dev.gateway, "mqttLevel", cp.Level)
	return true
}

// handlePacket handles a packet after CONNECT (processRegularSessionMsg). It reports whether the
// connection stays open.
func (e *Emulator) handlePacket(c *mqttConn, typ, flags byte, body []byte) bool {
	switch typ {
	case pktPublish:
		pk, err := decodePublish(flags, body, c.level)
		if err != nil {
			e.log.Info("mqtt connection closed: bad PUBLISH", "device", c.dev.name, "error", err.Error())
			c.closeWith(0x81)
			return false
		}
		return e.handlePublish(c, pk)
	case pktSubscribe:
		id, subs, err := decodeSubscribe(body, c.level)
		if err != nil {
			c.closeWith(0x81)
			return false
		}
		e.handleSubscribe(c, id, subs)
	case pktUnsubscribe:
		id, topics, err := decodeUnsubscribe(body, c.level)
		if err != nil {
			c.closeWith(0x81)
			return false
		}
		e.handleUnsubscribe(c, id, topics)
	case pktPingreq:
		c.write(encodePingresp())
	case pktDisconnect:
		c.closeWith(0) // NORMAL_DISCONNECT
		return false
	case pktConnect:
		// A second CONNECT; ThingsBoard would authenticate again. Not modelled: protocol error.
		c.closeWith(0x82)
		return false
	}
	// PUBACK, PUBREC, PUBREL, PUBCOMP and AUTH are ignored, as MqttTransportHandler does.
	return true
}

// ack is MqttTransportHandler.ack: a PUBACK for a QoS 1 or 2 publish (msgId > 0); the reason code
// reaches MQTT 5 clients only.
func (c *mqttConn) ack(pk publishPacket, reason byte) {
	if pk.ID > 0 {
		c.write(encodePuback(c.level, pk.ID, reason))
	}
}

// adaptorError is sendResponseForAdaptorErrorOrCloseContext: a payload the adaptor cannot read
// gets PUBACK 0x99 when the profile asks for acks on validation errors or the client speaks MQTT 5
// (and the publish has a packet id); otherwise the connection is closed (MQTT 5: DISCONNECT 0x99).
func (e *Emulator) adaptorError(c *mqttConn, pk publishPacket, sendAck bool, err error) bool {
	e.log.Warn("invalid payload", "device", c.dev.name, "topic", pk.Topic, "error", err.Error())
	if (sendAck || c.level == mqtt5) && pk.ID > 0 {
		c.ack(pk, rcPayloadFormatInvalid)
		return true
	}
	c.closeWith(rcPayloadFormatInvalid)
	return false
}

// runtimeError is a conversion exception the handler does not catch: Netty's exceptionCaught closes
// the connection (closeCtx SERVER_SHUTTING_DOWN; MQTT 5: DISCONNECT 0x8B), no PUBACK.
func (e *Emulator) runtimeError(c *mqttConn, pk publishPacket, err error) bool {
	e.log.Warn("invalid payload: connection closed", "device", c.dev.name, "topic", pk.Topic, "error", err.Error())
	c.closeWith(rcServerShuttingDown)
	return false
}

// rateLimited is the transport callback's onError after checkLimits refused a message: no PUBACK,
// closeCtx IMPLEMENTATION_SPECIFIC_ERROR.
func (e *Emulator) rateLimited(c *mqttConn, pk publishPacket) bool {
	e.log.Info("mqtt publish refused: device rate limit; connection closed", "device", c.dev.name, "topic", pk.Topic)
	c.closeWith(rcImplementationSpecific)
	return false
}

// sessionProfile is what a session applies from its device's profile (DeviceSessionCtx), read at
// every publish, so a profile change reaches open sessions as in ThingsBoard.
type sessionProfile struct {
	payloadType    string // JSON or PROTOBUF
	jsonCompat     bool
	sendAck        bool
	telemetry      topicFilter
	attributes     topicFilter
	attributesSubs topicFilter
}

var (
	defaultTelemetryFilter  = topicFilter{exact: topicTelemetry}
	defaultAttributesFilter = topicFilter{exact: topicAttributes}
)

func (e *Emulator) sessionProfile(deviceID string) sessionProfile {
	sp := sessionProfile{payloadType: payloadJSON, telemetry: defaultTelemetryFilter, attributes: defaultAttributesFilter,
		attributesSubs: defaultAttributesFilter}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.st.devices[deviceID]
	if d == nil {
		return sp
	}
	p := e.st.profiles[d.ProfileID]
	if p == nil || p.MQTT == nil {
		return sp
	}
	m := p.MQTT
	sp.payloadType, sp.jsonCompat, sp.sendAck = m.PayloadType, m.JSONCompatibility, m.SendAckOnValidationException
	if m.TelemetryTopic != "" {
		sp.telemetry, _ = compileTopicFilter(m.TelemetryTopic)
	}
	if m.AttributesTopic != "" {
		sp.attributes, _ = compileTopicFilter(m.AttributesTopic)
	}
	if m.AttributesSubscribeTopic != "" {
		sp.attributesSubs, _ = compileTopicFilter(m.AttributesSubscribeTopic)
	}
	return sp
}

// handlePublish is MqttTransportHandler.processPublish.
func (e *Emulator) handlePublish(c *mqttConn, pk publishPacket) bool {
	if strings.HasPrefix(pk.Topic, gatewayPrefix) {
		if !c.dev.gateway {
			// "[gatewaySessionHandler] is null": logged, no PUBACK, the message is dropped.
			e.log.Warn("gateway topic from a non-gateway device: dropped", "device", c.dev.name, "topic", pk.Topic)
			return true
		}
		return e.gatewayPublish(c, pk)
	}
	sp := e.sessionProfile(c.dev.id)
	switch {
	case sp.attributes.match(pk.Topic), sp.telemetry.match(pk.Topic):
		// The profile's attribute and telemetry filters are tried before any other topic, the claim
		// topic included.
		return e.dataPublish(c, pk, sp, sp.payloadType)
	case pk.Topic == topicDeviceClaim:
		return e.deviceClaim(c, pk, sp)
	}
	if forced, ok := shortTopics[pk.Topic]; ok {
		if forced == "" {
			forced = sp.payloadType
		}
		return e.dataPublish(c, pk, sp, forced)
	}
	for _, prefix := range unmodelledPrefixes {
		if strings.HasPrefix(pk.Topic, prefix) {
			return e.acceptUnmodelled(c, pk)
		}
	}
	if otaTopic.MatchString(pk.Topic) {
		return e.acceptUnmodelled(c, pk)
	}
	// Any other topic, the documented-but-nonexistent v2/c included: TOPIC_NAME_INVALID, which an
	// MQTT 3.x client sees as a plain PUBACK (docs/thingsboard.md §1.2).
	c.ack(pk, rcTopicNameInvalid)
	return true
}

// acceptUnmodelled acknowledges a device API message the emulator does not model.
func (e *Emulator) acceptUnmodelled(c *mqttConn, pk publishPacket) bool {
	if !c.dev.gateway && !e.limits.allow(c.dev.id) {
		return e.rateLimited(c, pk)
	}
	c.ack(pk, 0)
	return true
}

// dataPublish handles telemetry and attribute messages: the payload must be readable by the
// adaptor (JSON: an object or an array; PROTOBUF: the protobuf wire format), which is all the
// emulator checks; nothing is stored.
func (e *Emulator) dataPublish(c *mqttConn, pk publishPacket, sp sessionProfile, payloadType string) bool {
	var err error
	if payloadType == payloadProtobuf {
		err = checkProtoWire(pk.Payload)
	} else {
		err = checkJSONData(pk.Payload)
	}
	if err != nil {
		return e.adaptorError(c, pk, sp.sendAck, err)
	}
	if !c.dev.gateway && !e.limits.allow(c.dev.id) {
		return e.rateLimited(c, pk)
	}
	c.ack(pk, 0)
	return true
}

// checkJSONData is what JsonMqttAdaptor needs of telemetry and attributes: a non-empty payload that
// parses to an object or an array.
func checkJSONData(payload []byte) error {
	if len(payload) == 0 {
		return errors.New("Payload is empty!")
	}
	v, err := parseGsonLenient(string(payload))
	if err != nil {
		return err
	}
	if v.kind != jsonObject && v.kind != jsonArray {
		return fmt.Errorf("Can't parse value: %s", v)
	}
	return nil
}

// deviceClaim handles v1/devices/me/claim (docs/thingsboard.md §1.2): convert with the session's
// adaptor, check the rate limit, PUBACK, then register asynchronously.
func (e *Emulator) deviceClaim(c *mqttConn, pk publishPacket, sp sessionProfile) bool {
	var req claimRequest
	var err error
	switch sp.payloadType {
	case payloadProtobuf:
		req, err = parseProtoClaim(pk.Payload)
		if err != nil && sp.jsonCompat {
			// BackwardCompatibilityAdaptor: PROTOBUF first, then JSON.
			req, err = parseClaimPayload(pk.Payload)
		}
	default:
		req, err = parseClaimPayload(pk.Payload)
	}
	if err != nil {
		if errorKind(err) == kindRuntime {
			return e.runtimeError(c, pk, err)
		}
		return e.adaptorError(c, pk, sp.sendAck, err)
	}
	if !c.dev.gateway && !e.limits.allow(c.dev.id) {
		return e.rateLimited(c, pk)
	}
	// Registration is queued before the PUBACK (so Flush after a PUBACK covers it) but runs only
	// after the PUBACK has been written (docs/thingsboard.md §7.2).
	e.ackAndRegister(c, pk, 0, registration{
		deviceID: c.dev.id,
		req:      req,
		event: ClaimEvent{Transport: "mqtt", Topic: pk.Topic, Username: c.dev.token, DeviceName: c.dev.name,
			Payload: append([]byte(nil), pk.Payload...)},
	})
	return true
}

// ackAndRegister queues registrations gated on the acknowledgement, then acknowledges.
func (e *Emulator) ackAndRegister(c *mqttConn, pk publishPacket, reason byte, regs ...registration) {
	acked := make(chan struct{})
	for _, r := range regs {
		r.acked = acked
		e.enqueue(r)
	}
	c.ack(pk, reason)
	close(acked)
}

// handleSubscribe is processSubscribe: known topics are granted at most QoS 1, others refused.
func (e *Emulator) handleSubscribe(c *mqttConn, id uint16, subs []subscription) {
	sp := e.sessionProfile(c.dev.id)
	codes := make([]byte, len(subs))
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[string]bool{}
	}
	for i, s := range subs {
		if sp.attributesSubs.match(s.Filter) || subscribable[s.Filter] {
			codes[i] = min(s.QoS, 1)
			c.subs[s.Filter] = true
			continue
		}
		e.log.Warn("mqtt subscription refused: topic not supported", "device", c.dev.name, "topic", s.Filter)
		codes[i] = subackFailure
		if c.level == mqtt5 {
			codes[i] = rcTopicFilterInvalid
		}
	}
	c.mu.Unlock()
	c.write(encodeSuback(c.level, id, codes))
}

// handleUnsubscribe is processUnsubscribe.
func (e *Emulator) handleUnsubscribe(c *mqttConn, id uint16, topics []string) {
	codes := make([]byte, len(topics))
	c.mu.Lock()
	for i, t := range topics {
		if c.subs[t] {
			delete(c.subs, t)
		} else {
			codes[i] = rcNoSubscriptionExisted
		}
	}
	c.mu.Unlock()
	c.write(encodeUnsuback(c.level, id, codes))
}

// gatewayPublish is handleGatewayPublishMsg.
func (e *Emulator) gatewayPublish(c *mqttConn, pk publishPacket) bool {
	switch {
	case pk.Topic == topicGatewayClaim:
		return e.gatewayClaim(c, pk)
	case gatewayTopics[pk.Topic]:
		c.ack(pk, 0) // telemetry, attributes, RPC, connect, disconnect: not modelled
		return true
	}
	c.ack(pk, rcTopicNameInvalid)
	return true
}

// gatewayClaim handles v1/gateway/claim as ThingsBoard 4.x does (docs/thingsboard.md §1.5).
func (e *Emulator) gatewayClaim(c *mqttConn, pk publishPacket) bool {
	sp := e.sessionProfile(c.dev.id)
	type entry struct {
		name string
		req  claimRequest
		err  error
	}
	var entries []entry
	if sp.payloadType == payloadProtobuf {
		msgs, err := parseProtoGatewayClaim(pk.Payload)
		if err != nil {
			return e.adaptorError(c, pk, sp.sendAck, err)
		}
		if len(msgs) == 0 {
			return e.ackThenClose(c, pk, "Devices claim messages is empty")
		}
		for _, m := range msgs {
			if m.deviceName == "" {
				return e.ackThenClose(c, pk, "Device name is empty!")
			}
			entries = append(entries, entry{name: m.deviceName, req: m.req, err: m.err})
		}
	} else {
		if len(pk.Payload) == 0 {
			return e.adaptorError(c, pk, sp.sendAck, errors.New("Payload is empty!"))
		}
		root, err := parseGsonLenient(string(pk.Payload))
		if err != nil {
			return e.adaptorError(c, pk, sp.sendAck, err)
		}
		if root.kind != jsonObject {
			return e.ackThenClose(c, pk, "Can't parse value: "+root.String())
		}
		for _, m := range root.entries() {
			v := m.value
			if v.kind != jsonObject {
				e.log.Warn("gateway claim entry is not an object: skipped", "gateway", c.dev.name, "device", m.name)
				continue
			}
			if m.name == "" {
				return e.ackThenClose(c, pk, "Device name is empty!")
			}
			req, err := claimFromElement(v)
			entries = append(entries, entry{name: m.name, req: req, err: err})
		}
		if len(entries) == 0 {
			return e.ackThenClose(c, pk, "Devices claim message is empty")
		}
	}
	var regs []registration
	failed := false
	for _, en := range entries {
		d, err := e.findOrCreateDevice(c.dev.id, en.name)
		if err == nil {
			err = en.err
		}
		if err != nil {
			failed = true
			e.log.Warn("gateway claim entry failed", "gateway", c.dev.name, "device", en.name, "error", err.Error())
			continue
		}
		c.gatewaySession(d.ID)
		regs = append(regs, registration{
			deviceID: d.ID,
			req:      en.req,
			event: ClaimEvent{Transport: "gateway", Topic: pk.Topic, Username: c.dev.token, DeviceName: en.name,
				Payload: append([]byte(nil), pk.Payload...)},
		})
	}
	e.saveIfDirty() // findOrCreateDevice may have created devices
	if failed {
		// ackOrClose: MQTT 5 gets one PUBACK 0x99 and stays connected; MQTT 3.x is closed. The
		// valid entries are still registered: ThingsBoard queues each device on its own.
		if c.level == mqtt5 {
			e.ackAndRegister(c, pk, rcPayloadFormatInvalid, regs...)
			return true
		}
		for _, r := range regs {
			e.enqueue(r)
		}
		c.closeSilently()
		return false
	}
	e.ackAndRegister(c, pk, 0, regs...)
	return true
}

// ackThenClose is handleGatewayPublishMsg's catch (RuntimeException): PUBACK (reason 0x83 on
// MQTT 5), then closeCtx IMPLEMENTATION_SPECIFIC_ERROR.
func (e *Emulator) ackThenClose(c *mqttConn, pk publishPacket, msg string) bool {
	e.log.Warn("invalid gateway claim", "gateway", c.dev.name, "error", msg)
	c.ack(pk, rcImplementationSpecific)
	c.closeWith(rcImplementationSpecific)
	return false
}

// topicFilter is MqttTopicFilterFactory's filter: "#" matches everything, a filter with "+" or "#"
// becomes a regular expression ("+" one level of at least one character, "/#" the rest), any other
// filter must equal the topic.
type topicFilter struct {
	exact string
	re    *regexp.Regexp
	all   bool
}

func (f topicFilter) match(topic string) bool {
	switch {
	case f.all:
		return true
	case f.re != nil:
		return f.re.MatchString(topic)
	}
	return topic == f.exact
}

var filterCache sync.Map // filter text → topicFilter

// compileTopicFilter builds a topicFilter as MqttTopicFilterFactory.toFilter does.
func compileTopicFilter(filter string) (topicFilter, error) {
	if filter == "" {
		return topicFilter{}, errors.New("Topic filter can't be empty!")
	}
	if f, ok := filterCache.Load(filter); ok {
		return f.(topicFilter), nil
	}
	var f topicFilter
	switch {
	case filter == "#":
		f.all = true
	case strings.ContainsAny(filter, "+#"):
		expr := strings.ReplaceAll(filter, `\`, `\\`)
		expr = strings.ReplaceAll(expr, "+", "[^/]+")
		expr = strings.ReplaceAll(expr, "/#", "($|/.*)")
		re, err := regexp.Compile("^(?:" + expr + ")$")
		if err != nil {
			return topicFilter{}, fmt.Errorf("invalid topic filter %q: %w", filter, err)
		}
		f.re = re
	default:
		f.exact = filter
	}
	filterCache.Store(filter, f)
	return f, nil
}
