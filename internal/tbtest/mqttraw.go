package tbtest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// RawMQTT is a minimal MQTT 3.1, 3.1.1 and 5 client that shows what paho hides: the exact CONNACK,
// PUBACK and SUBACK bytes, MQTT 5 reason codes and DISCONNECTs, and a connection closed by the
// server. The emulator's own tests use it too.
type RawMQTT struct {
	conn    net.Conn
	r       *bufio.Reader
	version byte
}

// MQTT control packet types.
const (
	PktConnack    = 2
	PktPuback     = 4
	PktPubrec     = 5
	PktSuback     = 9
	PktDisconnect = 14
)

// ErrClosed is returned when the server closed the connection.
var ErrClosed = errors.New("connection closed by server")

// ErrNoPacket is returned when nothing arrived before the deadline.
var ErrNoPacket = errors.New("no packet before deadline")

// RawOptions is what a CONNECT carries.
type RawOptions struct {
	Version  byte // 3 (MQTT 3.1, "MQIsdp"), 4 (MQTT 3.1.1, the default) or 5
	ClientID string
	Username *string // nil: no user name flag
	Password []byte  // nil: no password flag; empty: the flag with an empty password
	NotClean bool    // clear the clean session / clean start flag
	// WillTopic, if set, adds a QoS 1 will with WillMessage.
	WillTopic, WillMessage string
}

// Str returns a pointer to s, for RawOptions.Username.
func Str(s string) *string { return &s }

// DialRaw connects, sends CONNECT and reads the answer: the CONNACK's body (session present,
// return code, MQTT 5 properties), or nil when the server closed the connection without one.
func DialRaw(addr string, o RawOptions) (*RawMQTT, []byte, error) {
	if o.Version == 0 {
		o.Version = 4
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	c := &RawMQTT{conn: conn, r: bufio.NewReader(conn), version: o.Version}
	name := "MQTT"
	if o.Version == 3 {
		name = "MQIsdp"
	}
	var vh []byte
	vh = appendString(vh, name)
	var flags byte
	if !o.NotClean {
		flags |= 0x02
	}
	if o.WillTopic != "" {
		flags |= 0x04 | 0x08
	}
	if o.Username != nil {
		flags |= 0x80
	}
	if o.Password != nil {
		flags |= 0x40
	}
	vh = append(vh, o.Version, flags, 0, 60)
	if o.Version == 5 {
		vh = append(vh, 0) // no properties
	}
	vh = appendString(vh, o.ClientID)
	if o.WillTopic != "" {
		if o.Version == 5 {
			vh = append(vh, 0)
		}
		vh = appendString(vh, o.WillTopic)
		vh = appendString(vh, o.WillMessage)
	}
	if o.Username != nil {
		vh = appendString(vh, *o.Username)
	}
	if o.Password != nil {
		vh = appendString(vh, string(o.Password))
	}
	if err := c.write(0x10, vh); err != nil {
		conn.Close()
		return nil, nil, err
	}
	typ, body, err := c.Read(10 * time.Second)
	if errors.Is(err, ErrClosed) {
		return c, nil, nil
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if typ != PktConnack || len(body) < 2 {
		conn.Close()
		return nil, nil, fmt.Errorf("expected CONNACK, got packet type %d", typ)
	}
	return c, body, nil
}

// dialRaw connects with MQTT 3.1.1 and a user name ("" omits it) and returns the CONNACK code.
func dialRaw(addr, clientID, username string) (*RawMQTT, byte, error) {
	o := RawOptions{ClientID: clientID}
	if username != "" {
		o.Username = &username
	}
	c, ack, err := DialRaw(addr, o)
	if err != nil {
		return nil, 0, err
	}
	if ack == nil {
		c.Close()
		return nil, 0, errors.New("connection closed without CONNACK")
	}
	return c, ack[1], nil
}

// Publish sends PUBLISH with the given QoS and packet id (MQTT 5: no properties).
func (c *RawMQTT) Publish(topic string, payload []byte, qos byte, id uint16) error {
	var b []byte
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	if c.version == 5 {
		b = append(b, 0)
	}
	b = append(b, payload...)
	return c.write(0x30|qos<<1, b)
}

// Subscribe sends SUBSCRIBE for the filters, each at QoS 1.
func (c *RawMQTT) Subscribe(id uint16, filters ...string) error {
	b := binary.BigEndian.AppendUint16(nil, id)
	if c.version == 5 {
		b = append(b, 0)
	}
	for _, f := range filters {
		b = append(appendString(b, f), 1)
	}
	return c.write(0x82, b)
}

// Read returns the next packet's type and body, ErrClosed on EOF, ErrNoPacket on timeout.
func (c *RawMQTT) Read(wait time.Duration) (byte, []byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, classify(err)
	}
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, classify(err)
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, classify(err)
	}
	return h >> 4, body, nil
}

// Quiet reports whether nothing arrives, and the connection stays open, for d.
func (c *RawMQTT) Quiet(d time.Duration) bool {
	_, _, err := c.Read(d)
	return errors.Is(err, ErrNoPacket)
}

// ExpectPuback waits for a PUBACK for id and returns its MQTT 5 reason code (0 when absent).
func (c *RawMQTT) ExpectPuback(id uint16, wait time.Duration) (byte, error) {
	typ, body, err := c.Read(wait)
	if err != nil {
		return 0, fmt.Errorf("want PUBACK %d: %w", id, err)
	}
	if typ != PktPuback || len(body) < 2 || binary.BigEndian.Uint16(body) != id {
		return 0, fmt.Errorf("want PUBACK %d, got packet %d %x", id, typ, body)
	}
	if len(body) > 2 {
		return body[2], nil
	}
	return 0, nil
}

// ExpectClosed waits for the server to close the connection. On MQTT 5 with reason != 0 it first
// expects a DISCONNECT with that reason code.
func (c *RawMQTT) ExpectClosed(wait time.Duration, reason byte) error {
	typ, body, err := c.Read(wait)
	if c.version == 5 && reason != 0 {
		if err != nil || typ != PktDisconnect || len(body) < 1 || body[0] != reason {
			return fmt.Errorf("want DISCONNECT %#x, got packet %d %x: %w", reason, typ, body, err)
		}
		typ, body, err = c.Read(wait)
	}
	if errors.Is(err, ErrClosed) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("got packet type %d %x, want the connection closed", typ, body)
}

// CloseAbruptly drops the TCP connection without DISCONNECT (a broker would publish the will).
func (c *RawMQTT) CloseAbruptly() { _ = c.conn.Close() }

// Close closes the connection.
func (c *RawMQTT) Close() { _ = c.conn.Close() }

func classify(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrNoPacket
	}
	return ErrClosed // EOF, connection reset and similar
}

// Write sends a raw packet: the header byte and the body (the remaining length is added).
func (c *RawMQTT) Write(header byte, body []byte) error { return c.write(header, body) }

func (c *RawMQTT) write(header byte, body []byte) error {
	// The remaining length is an unsigned LEB128 varint.
	pkt := append(binary.AppendUvarint([]byte{header}, uint64(len(body))), body...)
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(pkt)
	return err
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}
