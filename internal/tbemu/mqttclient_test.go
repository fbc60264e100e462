package tbemu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A raw MQTT client for tests: it shows exactly what the emulator writes.

type rawOpts struct {
	version   byte // 3, 4 or 5; 0 means 4
	clientID  string
	username  *string
	password  []byte // nil: no password flag
	unclean   bool
	willTopic string // "": no will
	willMsg   string
}

func strp(s string) *string { return &s }

type rawConn struct {
	t       *testing.T
	c       net.Conn
	r       *bufio.Reader
	version byte
}

// dialRaw connects and sends CONNECT; it returns the CONNACK body, or nil if the connection was
// closed without one.
func dialRaw(t *testing.T, addr string, o rawOpts) (*rawConn, []byte) {
	t.Helper()
	if o.version == 0 {
		o.version = 4
	}
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawConn{t: t, c: nc, r: bufio.NewReader(nc), version: o.version}
	name := "MQTT"
	if o.version == 3 {
		name = "MQIsdp"
	}
	var vh []byte
	vh = appendStr(vh, name)
	var flags byte
	if !o.unclean {
		flags |= 0x02
	}
	if o.willTopic != "" {
		flags |= 0x04 | 0x08 // will, QoS 1
	}
	if o.username != nil {
		flags |= 0x80
	}
	if o.password != nil {
		flags |= 0x40
	}
	vh = append(vh, o.version, flags, 0, 60)
	if o.version == 5 {
		vh = append(vh, 0)
	}
	vh = appendStr(vh, o.clientID)
	if o.willTopic != "" {
		if o.version == 5 {
			vh = append(vh, 0)
		}
		vh = appendStr(vh, o.willTopic)
		vh = appendStr(vh, o.willMsg)
	}
	if o.username != nil {
		vh = appendStr(vh, *o.username)
	}
	if o.password != nil {
		vh = appendStr(vh, string(o.password))
	}
	c.send(0x10, vh)
	typ, body, ok := c.next(5 * time.Second)
	if !ok {
		return c, nil
	}
	if typ != pktConnack {
		t.Fatalf("want CONNACK, got packet type %d", typ)
	}
	return c, body
}

// connectOK dials with a token and fails unless CONNACK 0 comes back.
func connectOK(t *testing.T, addr string, version byte, token string) *rawConn {
	t.Helper()
	c, ack := dialRaw(t, addr, rawOpts{version: version, clientID: "c-" + token, username: strp(token)})
	if ack == nil || ack[1] != 0 {
		t.Fatalf("connect %s: CONNACK %x", token, ack)
	}
	return c
}

func appendStr(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

func (c *rawConn) send(header byte, body []byte) {
	c.t.Helper()
	_, _ = c.c.Write(encodePacket(header, body)) // a closed connection shows in next()
}

func (c *rawConn) publish(topic string, payload []byte, qos byte, id uint16) {
	c.t.Helper()
	b := appendStr(nil, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	if c.version == 5 {
		b = append(b, 0)
	}
	c.send(0x30|qos<<1, append(b, payload...))
}

func (c *rawConn) subscribe(id uint16, filters ...string) {
	c.t.Helper()
	b := binary.BigEndian.AppendUint16(nil, id)
	if c.version == 5 {
		b = append(b, 0)
	}
	for _, f := range filters {
		b = append(appendStr(b, f), 1)
	}
	c.send(0x82, b)
}

// next reads one packet; ok is false if the connection was closed. It fails the test on timeout.
func (c *rawConn) next(wait time.Duration) (typ byte, body []byte, ok bool) {
	c.t.Helper()
	typ, body, err := c.read(wait)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatal("timeout waiting for a packet")
	}
	return typ, body, err == nil
}

// quiet reports whether nothing arrives (and the connection stays open) for d.
func (c *rawConn) quiet(d time.Duration) bool {
	c.t.Helper()
	_, _, err := c.read(d)
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *rawConn) read(wait time.Duration) (byte, []byte, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(wait))
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return h >> 4, body, nil
}

// expectClosed fails unless the server closes the connection; on MQTT 5 it first expects a
// DISCONNECT with the reason code (0 skips that check).
func (c *rawConn) expectClosed(reason byte) {
	c.t.Helper()
	typ, body, ok := c.next(5 * time.Second)
	if c.version == 5 && reason != 0 {
		if !ok || typ != pktDisconnect || len(body) < 1 || body[0] != reason {
			c.t.Fatalf("want DISCONNECT %#x, got packet %d %x (open=%v)", reason, typ, body, ok)
		}
		typ, body, ok = c.next(5 * time.Second)
	}
	if ok {
		c.t.Fatalf("want the connection closed, got packet %d %x", typ, body)
	}
}

// expectPuback fails unless a PUBACK for id comes; it returns the MQTT 5 reason code (0 if absent).
func (c *rawConn) expectPuback(id uint16) byte {
	c.t.Helper()
	typ, body, ok := c.next(5 * time.Second)
	if !ok || typ != pktPuback || len(body) < 2 || binary.BigEndian.Uint16(body) != id {
		c.t.Fatalf("want PUBACK %d, got packet %d %x (open=%v)", id, typ, body, ok)
	}
	if len(body) > 2 {
		return body[2]
	}
	return 0
}
