package tbemu

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync"

	"github.com/google/uuid"
)

// nullUUID is ThingsBoard's NULL_UUID: a device whose customerId is this is unassigned
// (docs/thingsboard.md §3.1).
const nullUUID = "13814000-1dd2-11b2-8080-808080808080"

// Authorities (ThingsBoard's Authority enum).
const (
	authSysAdmin     = "SYS_ADMIN"
	authTenantAdmin  = "TENANT_ADMIN"
	authCustomerUser = "CUSTOMER_USER"
)

type tenant struct {
	ID          string
	CreatedTime int64
	Title       string
}

type customer struct {
	ID          string
	CreatedTime int64
	TenantID    string
	Title       string
}

type user struct {
	ID          string
	CreatedTime int64
	TenantID    string // nullUUID for the system administrator
	CustomerID  string // nullUUID unless a customer user
	Email       string
	Authority   string
	FirstName   string
	LastName    string
	Password    string // empty: the user cannot log in with a password
}

type device struct {
	ID             string
	CreatedTime    int64
	TenantID       string
	CustomerID     string // nullUUID: unassigned
	Name           string
	Type           string
	Label          string
	AdditionalInfo json.RawMessage // null or a JSON object
	Token          string
	CredentialsID  string // the id of the DeviceCredentials entity
	Version        int64
}

// isGateway applies MqttTransportHandler.checkGatewaySession: additionalInfo.gateway read with
// Jackson's asBoolean (docs/thingsboard.md §1.5).
func (d *device) isGateway() bool {
	var info map[string]any
	if json.Unmarshal(d.AdditionalInfo, &info) != nil {
		return false
	}
	switch g := info["gateway"].(type) {
	case bool:
		return g
	case string:
		return g == "true"
	case float64:
		return g != 0
	}
	return false
}

// attribute is one SERVER_SCOPE attribute. Value is kept as the JSON the client sent.
type attribute struct {
	Value      json.RawMessage
	LastUpdate int64
}

// state is the emulator's in-memory database (docs/thingsboard.md §7.1). All fields are guarded by mu.
type state struct {
	mu        sync.Mutex
	tenants   map[string]*tenant
	customers map[string]*customer
	users     map[string]*user
	devices   map[string]*device
	byToken   map[string]*device
	attrs     map[string]map[string]attribute // device id → key → value
	cache     *claimCache
}

func newState(cache *claimCache) *state {
	return &state{
		tenants:   map[string]*tenant{},
		customers: map[string]*customer{},
		users:     map[string]*user{},
		devices:   map[string]*device{},
		byToken:   map[string]*device{},
		attrs:     map[string]map[string]attribute{},
		cache:     cache,
	}
}

func newID() string { return uuid.NewString() }

var (
	errDuplicateName  = errors.New("Device with such name already exists!")
	errDuplicateToken = errors.New("Device credentials are already assigned to another device!")
	errEmptyName      = errors.New("Device name should be specified!")
)

// deviceByName finds a device by its exact, case-sensitive name within a tenant.
func (s *state) deviceByName(tenantID, name string) *device {
	for _, d := range s.devices {
		if d.TenantID == tenantID && d.Name == name {
			return d
		}
	}
	return nil
}

// addDevice creates a device; token "" means a random 20-character token, as DeviceServiceImpl does.
func (s *state) addDevice(d *device, now int64) error {
	if d.Name == "" {
		return errEmptyName
	}
	if s.deviceByName(d.TenantID, d.Name) != nil {
		return errDuplicateName
	}
	if d.Token == "" {
		d.Token = randomAlphanumeric(20)
	}
	if _, taken := s.byToken[d.Token]; taken {
		return errDuplicateToken
	}
	if d.ID == "" {
		d.ID = newID()
	}
	if d.CustomerID == "" {
		d.CustomerID = nullUUID
	}
	if d.Type == "" {
		d.Type = "default"
	}
	d.CredentialsID = newID()
	d.CreatedTime = now
	d.Version = 1
	s.devices[d.ID] = d
	s.byToken[d.Token] = d
	return nil
}

func (s *state) userByEmail(email string) *user {
	for _, u := range s.users {
		if strings.EqualFold(u.Email, email) {
			return u
		}
	}
	return nil
}

func (s *state) customerByTitle(tenantID, title string) *customer {
	for _, c := range s.customers {
		if c.TenantID == tenantID && c.Title == title {
			return c
		}
	}
	return nil
}

// serverAttr returns a SERVER_SCOPE attribute.
func (s *state) serverAttr(deviceID, key string) (attribute, bool) {
	a, ok := s.attrs[deviceID][key]
	return a, ok
}

func (s *state) setServerAttr(deviceID, key string, value json.RawMessage, now int64) {
	m := s.attrs[deviceID]
	if m == nil {
		m = map[string]attribute{}
		s.attrs[deviceID] = m
	}
	m[key] = attribute{Value: value, LastUpdate: now}
}

func (s *state) deleteServerAttr(deviceID string, keys ...string) {
	for _, k := range keys {
		delete(s.attrs[deviceID], k)
	}
}

const alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomAlphanumeric is Apache Commons' RandomStringUtils.randomAlphanumeric, used for generated tokens.
func randomAlphanumeric(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphanumerics))))
		if err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		b[i] = alphanumerics[k.Int64()]
	}
	return string(b)
}

// tokenHint is a loggable stand-in for a device token: its first 4 and last 2 characters when it
// has at least 12, else "…" (docs/design.md §2, tokenHint).
func tokenHint(token string) string {
	if len(token) < 12 {
		return "…"
	}
	return token[:4] + "…" + token[len(token)-2:]
}
