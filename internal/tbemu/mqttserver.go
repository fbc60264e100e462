package tbemu

import (
	"bufio"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// The MQTT listener: ThingsBoard's MqttTransportService pipeline (IpFilter, MqttDecoder,
// MqttTransportHandler) and the device actor's session bookkeeping (DeviceActorMessageProcessor).
// It is not a broker: nothing a client publishes, wills included, is ever sent to another client.

// maxConnections bounds the open MQTT connections; more are accepted and closed at once.
const maxConnections = 10000

// writeTimeout bounds every write to a client.
const writeTimeout = 10 * time.Second

// MQTT 5 reason codes used by ThingsBoard's transport (MqttReasonCodes).
const (
	rcImplementationSpecific = 0x83
	rcBadUsernameOrPassword  = 0x86
	rcNotAuthorized          = 0x87
	rcClientIDNotValid       = 0x85
	rcServerUnavailable      = 0x88
	rcServerBusy             = 0x89
	rcServerShuttingDown     = 0x8B
	rcSessionTakenOver       = 0x8E
	rcTopicFilterInvalid     = 0x8F
	rcTopicNameInvalid       = 0x90
	rcMessageRateTooHigh     = 0x96
	rcPayloadFormatInvalid   = 0x99
	rcConnectionRateExceeded = 0x9F
	rcMaximumConnectTime     = 0xA0
	rcNoSubscriptionExisted  = 0x11
)

// MQTT 3.x CONNACK return codes and the SUBACK failure code.
const (
	connackAccepted           = 0
	connackIdentifierRejected = 2
	connackServerUnavailable  = 3
	connackNotAuthorized      = 5
	subackFailure             = 0x80
)

// mqttServer accepts connections and keeps the sessions of each device.
type mqttServer struct {
	e  *Emulator
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	conns    map[*mqttConn]struct{}
	sessions map[string][]*devSession // device id → open sessions, oldest first
	closed   bool
}

// devSession is one session of a device in the device actor: an MQTT connection authenticated
// with the device's token, or a gateway's session for one of its devices (gateway != nil).
type devSession struct {
	deviceID string
	conn     *mqttConn // the connection that owns the session
	gateway  bool      // a gateway's session for a sub-device
}

func newMQTTServer(e *Emulator, ln net.Listener) *mqttServer {
	return &mqttServer{e: e, ln: ln, conns: map[*mqttConn]struct{}{}, sessions: map[string][]*devSession{}}
}

func (s *mqttServer) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure (too many open files): keep serving after a pause.
			s.e.log.Warn("mqtt accept failed", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		ip := remoteIP(nc)
		// IpFilter: a blocked address is closed before anything is read.
		if !s.e.ips.allow(ip) {
			s.e.log.Info("mqtt connection refused: address blocked after wrong credentials", "remote", ip)
			_ = nc.Close()
			continue
		}
		c := &mqttConn{srv: s, nc: nc, r: bufio.NewReader(nc), ip: ip, done: make(chan struct{})}
		s.mu.Lock()
		if s.closed || len(s.conns) >= maxConnections {
			s.mu.Unlock()
			_ = nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.run()
		}()
	}
}

// close stops accepting, closes every connection and waits for their goroutines.
func (s *mqttServer) close() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*mqttConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	_ = s.ln.Close()
	for _, c := range conns {
		c.closeWith(rcServerShuttingDown)
	}
	s.wg.Wait()
}

func remoteIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return nc.RemoteAddr().String()
	}
	return host
}

// openSession registers a session, as SESSION_EVENT_MSG_OPEN reaches the device actor, and returns
// the device's oldest sessions beyond the limit (LinkedHashMapRemoveEldest), which the caller closes
// with closeEvicted. ok is false if the server is shutting down.
func (s *mqttServer) openSession(ds *devSession) (evicted []*devSession, ok bool) {
	limit := s.e.cfg.MaxSessionsPerDevice
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	list := append(slices.Clip(s.sessions[ds.deviceID]), ds)
	if limit > 0 && len(list) > limit {
		evicted = append(evicted, list[:len(list)-limit]...)
		list = append([]*devSession(nil), list[len(list)-limit:]...)
	}
	s.sessions[ds.deviceID] = list
	return evicted, true
}

// closeEvicted closes sessions the device actor dropped (MAX_CONCURRENT_SESSIONS_LIMIT_REACHED): an
// MQTT connection is closed, with DISCONNECT 0x8E (session taken over) on MQTT 5; a gateway's
// sub-device session is forgotten by the gateway.
func (s *mqttServer) closeEvicted(evicted []*devSession) {
	for _, old := range evicted {
		s.e.log.Info("mqtt session closed: a newer session of the device opened (max_concurrent_sessions_per_device)",
			"device", old.conn.deviceName(old.deviceID), "gatewaySession", old.gateway)
		if old.gateway {
			old.conn.dropGatewaySession(old.deviceID, old)
		} else {
			old.conn.closeWith(rcSessionTakenOver)
		}
	}
}

// closeSession removes a session; it is a no-op if it was already removed.
func (s *mqttServer) closeSession(ds *devSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.sessions[ds.deviceID]
	for i, x := range list {
		if x == ds {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.sessions, ds.deviceID)
	} else {
		s.sessions[ds.deviceID] = list
	}
}

// sessionCount returns the number of open sessions of a device.
func (s *mqttServer) sessionCount(deviceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions[deviceID])
}

// mqttConn is one client connection.
type mqttConn struct {
	srv  *mqttServer
	nc   net.Conn
	r    *bufio.Reader
	ip   string
	done chan struct{}

	wmu       sync.Mutex // serialises writes
	closeOnce sync.Once

	// Set by CONNECT, read by the connection's goroutine; guarded by mu where shared.
	mu      sync.Mutex
	level   byte
	session *devSession
	dev     connDevice
	gwSubs  map[string]*devSession // device id → the gateway's session for that device
	subs    map[string]bool        // granted topic filters
}

// connDevice is the device a connection authenticated as.
type connDevice struct {
	id, name, token string
	gateway         bool
}

func (c *mqttConn) deviceName(deviceID string) string {
	if deviceID == c.dev.id {
		return c.dev.name
	}
	return "(gateway sub-device)"
}

// write sends raw packet bytes; it reports whether they were written.
func (c *mqttConn) write(b []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.done:
		return false
	default:
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write(b)
	return err == nil
}

// closeWith is MqttTransportHandler.closeCtx: on MQTT 5 a DISCONNECT with the reason code first,
// then the connection is closed. It is safe to call more than once and from any goroutine.
func (c *mqttConn) closeWith(reason byte) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		v5 := c.level == mqtt5
		c.mu.Unlock()
		if v5 {
			c.write(encodeDisconnect(reason))
		}
		c.wmu.Lock()
		close(c.done)
		_ = c.nc.Close()
		c.wmu.Unlock()
	})
}

// closeSilently closes without a DISCONNECT (what ThingsBoard does before a session has a version).
func (c *mqttConn) closeSilently() {
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		close(c.done)
		_ = c.nc.Close()
		c.wmu.Unlock()
	})
}

// run reads and handles packets until the connection ends, then releases its sessions (doDisconnect).
func (c *mqttConn) run() {
	defer c.finish()
	inactivity := c.srv.e.cfg.SessionInactivityTimeout
	first := true
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(inactivity))
		typ, flags, body, err := readPacket(c.r)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				// transport.sessions.inactivity_timeout: the device actor closes idle sessions.
				c.closeWith(rcMaximumConnectTime)
			case errors.Is(err, errMalformed):
				c.srv.e.log.Info("mqtt connection closed: malformed packet", "remote", c.ip, "error", err.Error())
				c.closeWith(0x81) // MALFORMED_PACKET
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			default:
			}
			return
		}
		if first {
			first = false
			if typ != pktConnect {
				// The transport queues messages until CONNECT; the emulator requires CONNECT first.
				c.closeSilently()
				return
			}
			if !c.srv.e.handleConnect(c, body) {
				return
			}
			continue
		}
		if !c.srv.e.handlePacket(c, typ, flags, body) {
			return
		}
	}
}

// finish closes the connection and its sessions: the device's and the gateway's sub-device
// sessions (SESSION_EVENT_MSG_CLOSED, which also consumes the device's rate limit).
func (c *mqttConn) finish() {
	c.closeSilently()
	c.mu.Lock()
	sess := c.session
	subs := c.gwSubs
	c.gwSubs = nil
	gateway := c.dev.gateway
	c.mu.Unlock()
	if sess != nil {
		if !gateway { // before the session is gone, so that a caller who sees it gone sees the token taken
			c.srv.e.limits.allow(sess.deviceID)
		}
		c.srv.closeSession(sess)
		c.srv.e.log.Debug("mqtt device disconnected", "device", c.dev.name)
	}
	for _, ds := range subs {
		c.srv.closeSession(ds)
	}
	c.srv.mu.Lock()
	delete(c.srv.conns, c)
	c.srv.mu.Unlock()
}

// gatewaySession returns (opening it on first use) the gateway's session for a sub-device, as
// AbstractGatewaySessionHandler does before it forwards anything for that device.
func (c *mqttConn) gatewaySession(deviceID string) {
	c.mu.Lock()
	if c.gwSubs == nil {
		c.gwSubs = map[string]*devSession{}
	}
	if _, ok := c.gwSubs[deviceID]; ok {
		c.mu.Unlock()
		return
	}
	ds := &devSession{deviceID: deviceID, conn: c, gateway: true}
	c.gwSubs[deviceID] = ds
	c.mu.Unlock()
	if evicted, ok := c.srv.openSession(ds); ok {
		c.srv.closeEvicted(evicted)
	}
}

// dropGatewaySession forgets a sub-device session closed by the device actor; the gateway opens a
// new one with its next message for that device.
func (c *mqttConn) dropGatewaySession(deviceID string, ds *devSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gwSubs[deviceID] == ds {
		delete(c.gwSubs, deviceID)
	}
}
