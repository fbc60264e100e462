package tbemu

import (
	"errors"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/tbtest"
)

// rawConn wraps the scenario suite's raw MQTT client with test failures.
type rawConn struct {
	*tbtest.RawMQTT
	t *testing.T
}

const packetWait = 5 * time.Second

// dialRaw connects and sends CONNECT; it returns the CONNACK body, or nil if the connection was
// closed without one.
func dialRaw(t *testing.T, addr string, o tbtest.RawOptions) (*rawConn, []byte) {
	t.Helper()
	c, ack, err := tbtest.DialRaw(addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &rawConn{RawMQTT: c, t: t}, ack
}

// connectOK dials with a token and fails unless CONNACK 0 comes back.
func connectOK(t *testing.T, addr string, version byte, token string) *rawConn {
	t.Helper()
	c, ack := dialRaw(t, addr, tbtest.RawOptions{Version: version, ClientID: "c-" + token, Username: &token})
	if ack == nil || ack[1] != 0 {
		t.Fatalf("connect %s: CONNACK %x", token, ack)
	}
	return c
}

func (c *rawConn) publish(topic string, payload []byte, qos byte, id uint16) {
	_ = c.Publish(topic, payload, qos, id) // a closed connection shows in the next read
}

func (c *rawConn) subscribe(id uint16, filters ...string) { _ = c.Subscribe(id, filters...) }

// next reads one packet; ok is false if the connection was closed. It fails the test on timeout.
func (c *rawConn) next(wait time.Duration) (typ byte, body []byte, ok bool) {
	c.t.Helper()
	typ, body, err := c.Read(wait)
	if errors.Is(err, tbtest.ErrNoPacket) {
		c.t.Fatal("timeout waiting for a packet")
	}
	return typ, body, err == nil
}

func (c *rawConn) quiet(d time.Duration) bool { return c.Quiet(d) }

func (c *rawConn) expectClosed(reason byte) {
	c.t.Helper()
	if err := c.ExpectClosed(packetWait, reason); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) expectPuback(id uint16) byte {
	c.t.Helper()
	rc, err := c.ExpectPuback(id, packetWait)
	if err != nil {
		c.t.Fatal(err)
	}
	return rc
}
