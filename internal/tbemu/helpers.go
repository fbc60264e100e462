package tbemu

import (
	"encoding/json"
	"errors"
)

// DeviceInfo describes a device for in-process callers.
type DeviceInfo struct {
	ID         string
	Name       string
	Token      string
	CustomerID string // "" when unassigned
	ProfileID  string
	Gateway    bool
}

func infoOf(d *device) DeviceInfo {
	c := d.CustomerID
	if c == nullUUID {
		c = ""
	}
	return DeviceInfo{ID: d.ID, Name: d.Name, Token: d.Token, CustomerID: c, ProfileID: d.ProfileID, Gateway: d.isGateway()}
}

// AddDevice creates an unassigned device in the tenant; token "" generates one.
func (e *Emulator) AddDevice(name, token string) (DeviceInfo, error) {
	return e.addDevice(name, token, false)
}

// AddGatewayDevice creates an unassigned gateway device (additionalInfo.gateway = true).
func (e *Emulator) AddGatewayDevice(name, token string) (DeviceInfo, error) {
	return e.addDevice(name, token, true)
}

func (e *Emulator) addDevice(name, token string, gateway bool) (DeviceInfo, error) {
	d := &device{TenantID: e.tenantID, Name: name, Token: token}
	if gateway {
		d.AdditionalInfo = json.RawMessage(`{"gateway":true}`)
	}
	return e.createDevice(d)
}

// createDevice stores a new device and saves the state.
func (e *Emulator) createDevice(d *device) (DeviceInfo, error) {
	e.st.mu.Lock()
	err := e.st.addDevice(d, e.cfg.Clock.Now().UnixMilli())
	info := infoOf(d)
	e.st.mu.Unlock()
	if err != nil {
		return DeviceInfo{}, err
	}
	e.saveIfDirty()
	return info, nil
}

// Device returns the device with that exact name.
func (e *Emulator) Device(name string) (DeviceInfo, bool) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.st.deviceByName(e.tenantID, name)
	if d == nil {
		return DeviceInfo{}, false
	}
	return infoOf(d), true
}

// AddCustomer creates a customer and returns its id.
func (e *Emulator) AddCustomer(title string) (string, error) {
	id, err := e.addCustomer(title)
	e.saveIfDirty()
	return id, err
}

func (e *Emulator) addCustomer(title string) (string, error) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if e.st.customerByTitle(e.tenantID, title) != nil {
		return "", errors.New("Customer with such title already exists!")
	}
	c := &customer{ID: newID(), CreatedTime: e.cfg.Clock.Now().UnixMilli(), TenantID: e.tenantID, Title: title}
	e.st.customers[c.ID] = c
	e.st.dirty = true
	return c.ID, nil
}

// AddCustomerUser creates a customer user who can log in with email and password.
func (e *Emulator) AddCustomerUser(customerID, email, password string) error {
	err := e.addCustomerUser(customerID, email, password)
	e.saveIfDirty()
	return err
}

func (e *Emulator) addCustomerUser(customerID, email, password string) error {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if e.st.customers[customerID] == nil {
		return errors.New("customer not found")
	}
	if e.st.userByEmail(email) != nil {
		return errors.New("user already exists")
	}
	u := &user{ID: newID(), CreatedTime: e.cfg.Clock.Now().UnixMilli(), TenantID: e.tenantID, CustomerID: customerID,
		Email: email, Password: password, Authority: authCustomerUser}
	e.st.users[u.ID] = u
	e.st.dirty = true
	return nil
}

// ClaimsReceived returns the device-side claims processed so far (the most recent 10,000), oldest
// first. Call Flush first to include claims that are still queued.
func (e *Emulator) ClaimsReceived() []ClaimEvent {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	return append([]ClaimEvent(nil), e.events...)
}

// PendingClaim reports whether the claim cache holds live data for the named device.
func (e *Emulator) PendingClaim(name string) bool {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.st.deviceByName(e.tenantID, name)
	if d == nil {
		return false
	}
	_, ok := e.st.cache.peek(d.ID, e.cfg.Clock.Now())
	return ok
}

// ClaimCacheLen returns the number of live entries in the claim cache.
func (e *Emulator) ClaimCacheLen() int {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	return e.st.cache.len(e.cfg.Clock.Now())
}

// Sessions returns the number of open MQTT sessions of the named device (a gateway's session for
// the device included), as the device actor counts them.
func (e *Emulator) Sessions(name string) int {
	d, ok := e.Device(name)
	if !ok {
		return 0
	}
	return e.mqtt.sessionCount(d.ID)
}
