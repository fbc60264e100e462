package tbemu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// ClaimEvent records one device-side claim after the emulator has processed it. It carries the
// device token and the secret for tests; the emulator never logs them.
type ClaimEvent struct {
	Transport  string // "mqtt", "http" or "gateway"
	Topic      string // MQTT topic, or the HTTP route pattern
	Username   string // the MQTT username / HTTP path token of the sender (the gateway's for "gateway")
	ClientID   string
	DeviceName string
	Payload    []byte // the payload as received (for "gateway", the whole message)
	SecretKey  string
	DurationMs int64     // as sent; <= 0 means the system default was used
	Registered bool      // true if the claim data was stored in the cache
	Reason     string    // why it was not stored (ThingsBoard only logs this)
	At         time.Time // when the registration ran, by the emulator's clock
}

// registration is a device-side claim waiting for the registration worker.
type registration struct {
	event    ClaimEvent
	deviceID string
	req      claimRequest
	acked    <-chan struct{} // closed once the transport has acknowledged (PUBACK / HTTP 200)
	barrier  chan struct{}   // non-nil: a Flush marker, closed when reached
}

// ackWaitLimit bounds how long the worker waits for an acknowledgement that never comes (the write
// failed); ThingsBoard would still register, and so does the emulator.
const ackWaitLimit = 2 * time.Second

// runRegistrations is the registration worker: one goroutine, FIFO, so claims of one device are
// applied in the order they arrived, as in ThingsBoard's device actor (docs/thingsboard.md §7.2).
func (e *Emulator) runRegistrations() {
	defer close(e.workerDone)
	for {
		select {
		case <-e.stop:
			return
		case r := <-e.queue:
			if r.barrier != nil {
				close(r.barrier)
				continue
			}
			if r.acked != nil {
				t := time.NewTimer(ackWaitLimit)
				select {
				case <-r.acked:
				case <-t.C:
				case <-e.stop:
					t.Stop()
					return
				}
				t.Stop()
			}
			if d := e.cfg.RegistrationDelay; d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-e.stop:
					t.Stop()
					return
				}
			}
			e.register(r)
		}
	}
}

// enqueue hands a registration to the worker. It never blocks for long: the queue is large and a
// full queue drops the claim, which ThingsBoard would also only log.
func (e *Emulator) enqueue(r registration) {
	select {
	case e.queue <- r:
	case <-e.stop:
	case <-time.After(time.Second):
		e.log.Warn("claim queue full, dropping registration", "device", r.event.DeviceName)
	}
}

// Flush waits until every claim acknowledged before the call has been registered (or dropped).
func (e *Emulator) Flush(ctx context.Context) error {
	b := registration{barrier: make(chan struct{})}
	select {
	case e.queue <- b:
	case <-ctx.Done():
		return ctx.Err()
	case <-e.stop:
		return errClosed
	}
	select {
	case <-b.barrier:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.stop:
		return errClosed
	}
}

// register applies CDSI.registerClaimingInfo (docs/thingsboard.md §3.1 "Registration rules"): with
// allowClaimingByDefault only an unassigned device may register; without it, the SERVER attribute
// claimingAllowed must also be boolean true. The data goes into the cache with putIfAbsent, its
// expiry computed now, when the core processes the message (docs/thingsboard.md §1.1).
func (e *Emulator) register(r registration) {
	now := e.cfg.Clock.Now()
	ev := r.event
	ev.At = now
	ev.SecretKey = r.req.SecretKey
	ev.DurationMs = r.req.DurationMs

	e.st.mu.Lock()
	d := e.st.devices[r.deviceID]
	switch {
	case d == nil:
		ev.Reason = "device not found"
	case d.CustomerID != nullUUID && e.cfg.AllowClaimingByDefault:
		ev.Reason = fmt.Sprintf("Device [%s] has been already claimed!", d.Name)
	case !e.cfg.AllowClaimingByDefault && (d.CustomerID != nullUUID || !e.claimingAllowed(d.ID)):
		ev.Reason = fmt.Sprintf("Failed to find claimingAllowed attribute for device %s or it is already claimed!", d.Name)
	default:
		secret := r.req.SecretKey
		data := claimData{SecretKey: &secret, ExpirationTime: now.UnixMilli() + e.durationMs(r.req.DurationMs)}
		if e.st.cache.putIfAbsent(d.ID, data, now) {
			ev.Registered = true
		} else if e.cfg.CacheSize < 0 {
			ev.Reason = "claim cache disabled"
		} else {
			ev.Reason = "claim data already cached: ignored (putIfAbsent)"
		}
	}
	e.events = append(e.events, ev)
	if len(e.events) > maxEvents {
		e.events = e.events[len(e.events)-maxEvents:]
	}
	e.st.mu.Unlock()

	if ev.Registered {
		e.log.Info("claim registered", "device", ev.DeviceName, "transport", ev.Transport, "hasSecret", ev.SecretKey != "")
	} else {
		e.log.Warn("claim not registered", "device", ev.DeviceName, "transport", ev.Transport, "reason", ev.Reason)
	}
	if e.cfg.OnClaim != nil {
		e.cfg.OnClaim(ev)
	}
}

// maxEvents bounds the ClaimsReceived history.
const maxEvents = 10000

// durationMs is CDSI.validateDurationMs: only a positive duration is used.
func (e *Emulator) durationMs(d int64) int64 {
	if d > 0 {
		return d
	}
	return e.cfg.ClaimDuration.Milliseconds()
}

// claimingAllowed reports whether the SERVER attribute claimingAllowed is a boolean true; a string
// "true" does not count (docs/thingsboard.md §3.1). The caller holds the state lock.
func (e *Emulator) claimingAllowed(deviceID string) bool {
	a, ok := e.st.serverAttr(deviceID, "claimingAllowed")
	return ok && bytes.Equal(bytes.TrimSpace(a.Value), []byte("true"))
}

// claimResult is ThingsBoard's ClaimResponse.
type claimResult string

const (
	claimSuccess claimResult = "SUCCESS"
	claimFailure claimResult = "FAILURE"
	claimClaimed claimResult = "CLAIMED"
)

// errClaimDataUnparseable is a claimingData attribute Jackson cannot read (docs/thingsboard.md §4.1, last row).
type errClaimDataUnparseable struct{ raw string }

func (e *errClaimDataUnparseable) Error() string {
	return "The given string value cannot be transformed to Json object: " + e.raw
}

// claim applies CDSI.claimDevice (docs/thingsboard.md §4.1 rows 6-10 and §3.3). The caller holds the state lock.
func (e *Emulator) claim(d *device, customerID, secretKey string) (claimResult, error) {
	now := e.cfg.Clock.Now()
	data, fromCache := e.st.cache.get(d.ID, now)
	found := fromCache
	if !fromCache {
		var err error
		data, found, err = e.claimDataAttribute(d.ID)
		if err != nil {
			return "", err
		}
	}
	if !found {
		if d.CustomerID == nullUUID {
			return claimFailure, nil // row 6
		}
		return claimClaimed, nil // row 7
	}
	if now.UnixMilli() > data.ExpirationTime || !secretKeyIsEmptyOrEqual(secretKey, data.SecretKey) {
		if fromCache {
			e.st.cache.evict(d.ID) // row 8: one wrong key discards the registration
		}
		return claimFailure, nil
	}
	// removeClaimingSavedData: consume the data (rows 9 and 10).
	if fromCache {
		e.st.cache.evict(d.ID)
	}
	e.st.deleteServerAttr(d.ID, "claimingAllowed", "claimingData")
	if d.CustomerID != nullUUID {
		return claimClaimed, nil // row 10
	}
	d.CustomerID = customerID
	d.Version++
	e.log.Info("device claimed", "device", d.Name, "customerId", customerID)
	return claimSuccess, nil // row 9
}

// secretKeyIsEmptyOrEqual is CDSI line 167: (isEmpty(req) && isEmpty(stored)) || req.equals(stored).
func secretKeyIsEmptyOrEqual(req string, stored *string) bool {
	if req == "" && (stored == nil || *stored == "") {
		return true
	}
	return stored != nil && req == *stored
}

// claimDataAttribute reads the SERVER attribute claimingData as JacksonUtil.fromString(value,
// ClaimData.class) does (docs/thingsboard.md §3.2): a JSON object or a string holding one, unknown fields
// rejected, a string expirationTime coerced, a missing one 0, a missing secretKey null.
func (e *Emulator) claimDataAttribute(deviceID string) (claimData, bool, error) {
	a, ok := e.st.serverAttr(deviceID, "claimingData")
	if !ok {
		return claimData{}, false, nil
	}
	raw := a.Value
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s) // a string attribute holding the JSON text
	}
	d, err := decodeClaimData(raw)
	if err != nil {
		return claimData{}, false, &errClaimDataUnparseable{raw: string(raw)}
	}
	return d, true, nil
}

// decodeClaimData decodes ClaimData with Jackson's default coercions.
func decodeClaimData(raw []byte) (claimData, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return claimData{}, fmt.Errorf("not a JSON object")
	}
	var d claimData
	for k, v := range m {
		switch k {
		case "secretKey":
			switch x := v.(type) {
			case nil:
			case string:
				d.SecretKey = &x
			case json.Number:
				s := x.String()
				d.SecretKey = &s
			case bool:
				s := strconv.FormatBool(x)
				d.SecretKey = &s
			default:
				return claimData{}, fmt.Errorf("secretKey: cannot deserialize")
			}
		case "expirationTime":
			switch x := v.(type) {
			case nil:
			case json.Number:
				n, err := x.Int64()
				if err != nil {
					f, ferr := x.Float64()
					if ferr != nil {
						return claimData{}, ferr
					}
					n = int64(f) // ACCEPT_FLOAT_AS_INT truncates
				}
				d.ExpirationTime = n
			case string:
				n, err := strconv.ParseInt(x, 10, 64)
				if err != nil {
					return claimData{}, err
				}
				d.ExpirationTime = n
			default:
				return claimData{}, fmt.Errorf("expirationTime: cannot deserialize")
			}
		default:
			return claimData{}, fmt.Errorf("unrecognized field %q", k) // FAIL_ON_UNKNOWN_PROPERTIES
		}
	}
	return d, nil
}

// reclaim applies CDSI.reClaimDevice (docs/thingsboard.md §4.2). The caller holds the state lock.
func (e *Emulator) reclaim(d *device) {
	e.st.cache.evict(d.ID)
	if d.CustomerID == nullUUID {
		return
	}
	d.CustomerID = nullUUID
	d.Version++
	if !e.cfg.AllowClaimingByDefault {
		e.st.setServerAttr(d.ID, "claimingAllowed", json.RawMessage("true"), e.cfg.Clock.Now().UnixMilli())
	}
	e.log.Info("device unclaimed", "device", d.Name)
}
