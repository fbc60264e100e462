package tbemu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// The MQTT wire format, as ThingsBoard's transport reads and writes it with Netty's MqttDecoder and
// MqttEncoder. A packet Netty cannot decode makes MqttTransportHandler close the connection
// (closeCtx MALFORMED_PACKET) without an answer; errMalformed marks those cases.

// MQTT control packet types.
const (
	pktConnect     = 1
	pktConnack     = 2
	pktPublish     = 3
	pktPuback      = 4
	pktSubscribe   = 8
	pktSuback      = 9
	pktUnsubscribe = 10
	pktUnsuback    = 11
	pktPingreq     = 12
	pktPingresp    = 13
	pktDisconnect  = 14
)

// maxPayloadSize is transport.mqtt.netty.max_payload_size (NETTY_MAX_PAYLOAD_SIZE, 65536): Netty's
// MqttDecoder refuses a packet whose remaining length exceeds it.
const maxPayloadSize = 65536

var errMalformed = errors.New("malformed MQTT packet")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// readPacket reads one packet: its type, the flags of the fixed header and the rest.
func readPacket(r *bufio.Reader) (typ, flags byte, body []byte, err error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, 0, nil, malformed("remaining length longer than 4 bytes")
		}
		b, err := r.ReadByte()
		if err != nil {
			return 0, 0, nil, err
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	if n > maxPayloadSize {
		return 0, 0, nil, malformed("too large message: %d bytes", n)
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, 0, nil, err
	}
	typ, flags = h>>4, h&0x0f
	// MqttDecoder.validateFixedHeader: SUBSCRIBE and UNSUBSCRIBE must carry QoS 1.
	if (typ == pktSubscribe || typ == pktUnsubscribe) && flags != 0x02 {
		return 0, 0, nil, malformed("packet type %d with flags %#x", typ, flags)
	}
	return typ, flags, body, nil
}

// reader decodes the fields of a packet body.
type reader struct {
	b   []byte
	off int
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) byte() (byte, error) {
	if r.left() < 1 {
		return 0, malformed("truncated packet")
	}
	r.off++
	return r.b[r.off-1], nil
}

func (r *reader) uint16() (uint16, error) {
	if r.left() < 2 {
		return 0, malformed("truncated packet")
	}
	r.off += 2
	return binary.BigEndian.Uint16(r.b[r.off-2:]), nil
}

func (r *reader) bytes() ([]byte, error) {
	n, err := r.uint16()
	if err != nil {
		return nil, err
	}
	if r.left() < int(n) {
		return nil, malformed("truncated packet")
	}
	r.off += int(n)
	return r.b[r.off-int(n) : r.off], nil
}

// string reads a length-prefixed string; Netty decodes it as UTF-8, replacing invalid bytes.
func (r *reader) string() (string, error) {
	b, err := r.bytes()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	}
	return string(b), nil
}

// skipProperties skips MQTT 5 properties (a variable byte integer length and that many bytes).
func (r *reader) skipProperties() error {
	n, mul := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return malformed("properties length longer than 4 bytes")
		}
		b, err := r.byte()
		if err != nil {
			return err
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	if r.left() < n {
		return malformed("truncated properties")
	}
	r.off += n
	return nil
}

// Protocol levels.
const (
	mqtt31  = 3
	mqtt311 = 4
	mqtt5   = 5
)

// connectPacket is a decoded CONNECT. Username and Password are nil when their flag is not set.
type connectPacket struct {
	Level       byte
	Clean       bool
	Keepalive   uint16
	ClientID    string
	Username    *string
	Password    []byte
	WillFlag    bool
	WillTopic   string
	WillPayload []byte
}

// decodeConnect decodes CONNECT as MqttDecoder does: the protocol name and level must be MQIsdp/3,
// MQTT/4 or MQTT/5, the reserved flag must be clear (3.1.1 and 5), and an MQTT 3.1 client id must
// have 1 to 23 characters (MqttCodecUtil.isValidClientId). Unlike many brokers it accepts a password
// flag with an empty password and does not check will messages (ThingsBoard ignores them).
func decodeConnect(body []byte) (connectPacket, error) {
	r := &reader{b: body}
	var c connectPacket
	name, err := r.string()
	if err != nil {
		return c, err
	}
	if c.Level, err = r.byte(); err != nil {
		return c, err
	}
	if !knownProtocol(name, c.Level) {
		return c, malformed("unknown protocol %q level %d", name, c.Level)
	}
	flags, err := r.byte()
	if err != nil {
		return c, err
	}
	if c.Level != mqtt31 && flags&0x01 != 0 {
		return c, malformed("non-zero reserved flag")
	}
	c.Clean = flags&0x02 != 0
	c.WillFlag = flags&0x04 != 0
	if c.Keepalive, err = r.uint16(); err != nil {
		return c, err
	}
	if c.Level == mqtt5 {
		if err := r.skipProperties(); err != nil {
			return c, err
		}
	}
	if c.ClientID, err = r.string(); err != nil {
		return c, err
	}
	if c.Level == mqtt31 && (len(c.ClientID) < 1 || len(c.ClientID) > 23) {
		return c, malformed("invalid MQTT 3.1 client id (%d characters)", len(c.ClientID))
	}
	if c.WillFlag {
		if c.Level == mqtt5 {
			if err := r.skipProperties(); err != nil {
				return c, err
			}
		}
		if c.WillTopic, err = r.string(); err != nil {
			return c, err
		}
		if c.WillPayload, err = r.bytes(); err != nil {
			return c, err
		}
	}
	if flags&0x80 != 0 {
		u, err := r.string()
		if err != nil {
			return c, err
		}
		c.Username = &u
	}
	if flags&0x40 != 0 {
		p, err := r.bytes()
		if err != nil {
			return c, err
		}
		c.Password = append([]byte{}, p...)
	}
	return c, nil
}

// knownProtocol is MqttVersion.fromProtocolNameAndLevel: MQIsdp/3, MQTT/4 or MQTT/5.
func knownProtocol(name string, level byte) bool {
	switch name {
	case "MQIsdp":
		return level == mqtt31
	case "MQTT":
		return level == mqtt311 || level == mqtt5
	}
	return false
}

// publishPacket is a decoded PUBLISH.
type publishPacket struct {
	Topic   string
	QoS     byte
	ID      uint16 // 0 for QoS 0
	Payload []byte
}

// decodePublish decodes PUBLISH. Netty refuses QoS 3, a QoS 1/2 packet id of 0 and a topic name
// with wildcards.
func decodePublish(flags byte, body []byte, level byte) (publishPacket, error) {
	r := &reader{b: body}
	var p publishPacket
	p.QoS = (flags >> 1) & 0x03
	if p.QoS == 3 {
		return p, malformed("invalid QoS 3")
	}
	var err error
	if p.Topic, err = r.string(); err != nil {
		return p, err
	}
	if strings.ContainsAny(p.Topic, "+#") {
		return p, malformed("invalid publish topic name %q", p.Topic)
	}
	if p.QoS > 0 {
		if p.ID, err = r.uint16(); err != nil {
			return p, err
		}
		if p.ID == 0 {
			return p, malformed("invalid message id 0")
		}
	}
	if level == mqtt5 {
		if err := r.skipProperties(); err != nil {
			return p, err
		}
	}
	p.Payload = r.b[r.off:]
	return p, nil
}

// subscription is one topic filter of a SUBSCRIBE.
type subscription struct {
	Filter string
	QoS    byte
}

// readIDAndProperties reads what SUBSCRIBE and UNSUBSCRIBE start with: the packet id and, on
// MQTT 5, the properties.
func readIDAndProperties(body []byte, level byte) (*reader, uint16, error) {
	r := &reader{b: body}
	id, err := r.uint16()
	if err == nil && level == mqtt5 {
		err = r.skipProperties()
	}
	return r, id, err
}

// decodeSubscribe decodes SUBSCRIBE: the packet id and the filters with their requested QoS.
func decodeSubscribe(body []byte, level byte) (uint16, []subscription, error) {
	r, id, err := readIDAndProperties(body, level)
	if err != nil {
		return 0, nil, err
	}
	var subs []subscription
	for r.left() > 0 {
		f, err := r.string()
		if err != nil {
			return 0, nil, err
		}
		o, err := r.byte()
		if err != nil {
			return 0, nil, err
		}
		if o&0x03 == 3 {
			return 0, nil, malformed("invalid QoS 3 in SUBSCRIBE")
		}
		subs = append(subs, subscription{Filter: f, QoS: o & 0x03})
	}
	if len(subs) == 0 {
		return 0, nil, malformed("SUBSCRIBE without topic filters")
	}
	return id, subs, nil
}

// decodeUnsubscribe decodes UNSUBSCRIBE: the packet id and the topic filters.
func decodeUnsubscribe(body []byte, level byte) (uint16, []string, error) {
	r, id, err := readIDAndProperties(body, level)
	if err != nil {
		return 0, nil, err
	}
	var topics []string
	for r.left() > 0 {
		f, err := r.string()
		if err != nil {
			return 0, nil, err
		}
		topics = append(topics, f)
	}
	return id, topics, nil
}

// Encoders. ThingsBoard builds every packet without MQTT 5 properties (MqttMessageBuilders with no
// properties), so on MQTT 5 each carries an empty property list.

// encodePacket adds the fixed header; MQTT's remaining length is an unsigned LEB128 varint.
func encodePacket(header byte, body []byte) []byte {
	return append(binary.AppendUvarint([]byte{header}, uint64(len(body))), body...)
}

// encodeConnack is CONNACK; ThingsBoard sets session present to !cleanSession whatever the code.
func encodeConnack(level byte, sessionPresent bool, code byte) []byte {
	var sp byte
	if sessionPresent {
		sp = 1
	}
	body := []byte{sp, code}
	if level == mqtt5 {
		body = append(body, 0)
	}
	return encodePacket(pktConnack<<4, body)
}

// encodePuback is PUBACK; on MQTT 5 it carries the reason code (omitted when it is 0, as Netty does).
func encodePuback(level byte, id uint16, reason byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if level == mqtt5 && reason != 0 {
		body = append(body, reason, 0)
	}
	return encodePacket(pktPuback<<4, body)
}

// encodeSuback is SUBACK with one return code per filter.
func encodeSuback(level byte, id uint16, codes []byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if level == mqtt5 {
		body = append(body, 0)
	}
	return encodePacket(pktSuback<<4, append(body, codes...))
}

// encodeUnsuback is UNSUBACK; only MQTT 5 carries reason codes.
func encodeUnsuback(level byte, id uint16, codes []byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if level == mqtt5 {
		body = append(body, 0)
		body = append(body, codes...)
	}
	return encodePacket(pktUnsuback<<4, body)
}

func encodePingresp() []byte { return []byte{pktPingresp << 4, 0} }

// encodeDisconnect is an MQTT 5 DISCONNECT with a reason code.
func encodeDisconnect(reason byte) []byte {
	return encodePacket(pktDisconnect<<4, []byte{reason, 0})
}
