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

// rawMQTT is a minimal MQTT 3.1.1 client that exposes what paho hides: the CONNACK return code,
// the exact acknowledgement packet, and a connection closed by the server.
type rawMQTT struct {
	conn net.Conn
	r    *bufio.Reader
}

// MQTT control packet types.
const (
	pktConnack = 2
	pktPuback  = 4
	pktPubrec  = 5
)

// errClosed is returned when the server closed the connection.
var errClosed = errors.New("connection closed by server")

// errNoPacket is returned when nothing arrived before the deadline.
var errNoPacket = errors.New("no packet before deadline")

// dialRaw connects and sends CONNECT (clean session, keepalive 60 s); username "" omits the flag.
// It returns the CONNACK return code.
func dialRaw(addr, clientID, username string) (*rawMQTT, byte, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	c := &rawMQTT{conn: conn, r: bufio.NewReader(conn)}
	var vh []byte
	vh = appendString(vh, "MQTT")
	flags := byte(0x02)
	if username != "" {
		flags |= 0x80
	}
	vh = append(vh, 4, flags, 0, 60)
	vh = appendString(vh, clientID)
	if username != "" {
		vh = appendString(vh, username)
	}
	if err := c.write(0x10, vh); err != nil {
		conn.Close()
		return nil, 0, err
	}
	typ, body, err := c.read(10 * time.Second)
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	if typ != pktConnack || len(body) != 2 {
		conn.Close()
		return nil, 0, fmt.Errorf("expected CONNACK, got packet type %d", typ)
	}
	return c, body[1], nil
}

// publish sends PUBLISH with the given QoS and packet id.
func (c *rawMQTT) publish(topic string, payload []byte, qos byte, id uint16) error {
	var b []byte
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	b = append(b, payload...)
	return c.write(0x30|qos<<1, b)
}

// read returns the next packet's type and body, errClosed on EOF, errNoPacket on timeout.
func (c *rawMQTT) read(wait time.Duration) (byte, []byte, error) {
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

// expectClosed waits for the server to close the connection, failing if a packet arrives first.
func (c *rawMQTT) expectClosed(wait time.Duration) error {
	typ, _, err := c.read(wait)
	if errors.Is(err, errClosed) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("got packet type %d, want the connection closed", typ)
}

func classify(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errNoPacket
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errClosed
	}
	return errClosed // connection reset and similar
}

func (c *rawMQTT) write(header byte, body []byte) error {
	pkt := []byte{header}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		pkt = append(pkt, b)
		if n == 0 {
			break
		}
	}
	pkt = append(pkt, body...)
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(pkt)
	return err
}

func (c *rawMQTT) close() { _ = c.conn.Close() }

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}
