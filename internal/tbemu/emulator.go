// Package tbemu emulates the parts of ThingsBoard CE that device claiming touches: the MQTT device
// transport with access-token authentication, v1/devices/me/claim and v1/gateway/claim, the HTTP
// device API, and a REST subset (login and API keys, devices, device profiles, customers, users,
// claiming, server attributes).
//
// It follows docs/thingsboard.md, whose sections the doc comments cite, and ThingsBoard's own source
// (the classes named in the comments). docs/tbemu.md lists what is modelled and what is not.
package tbemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

var errClosed = errors.New("tbemu: emulator closed")

// Emulator is a running ThingsBoard emulator.
type Emulator struct {
	cfg    Config
	log    *slog.Logger
	st     *state
	jwt    *jwtSigner
	ips    *ipLimiter
	limits *deviceLimiter
	mqtt   *mqttServer
	httpLn net.Listener
	http   *http.Server
	saveMu sync.Mutex // serialises saveIfDirty

	tenantID string
	events   []ClaimEvent // guarded by st.mu

	queue      chan registration
	stop       chan struct{}
	workerDone chan struct{}
	serveDone  chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// Start creates an emulator, loads or creates its state, binds both listeners and serves in the
// background until Close or until ctx is done.
func Start(ctx context.Context, cfg Config) (*Emulator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		cfg:        cfg,
		log:        cfg.Logger,
		st:         newState(newClaimCache(cfg.CacheTTL, cfg.CacheSize, cfg.CachePolicy)),
		ips:        newIPLimiter(cfg),
		limits:     newDeviceLimiter(cfg.DeviceRateLimit, cfg.Clock),
		queue:      make(chan registration, 4096),
		stop:       make(chan struct{}),
		workerDone: make(chan struct{}),
		serveDone:  make(chan struct{}),
	}
	if err := e.initState(); err != nil {
		return nil, err
	}

	var lc net.ListenConfig
	mqttLn, err := lc.Listen(ctx, "tcp", cfg.MQTTAddr)
	if err != nil {
		return nil, fmt.Errorf("tbemu: mqtt listen %s: %w", cfg.MQTTAddr, err)
	}
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		_ = mqttLn.Close()
		return nil, fmt.Errorf("tbemu: http listen %s: %w", cfg.HTTPAddr, err)
	}
	e.mqtt = newMQTTServer(e, mqttLn)
	e.httpLn = ln
	e.http = &http.Server{Handler: e.routes(), ReadHeaderTimeout: 10 * time.Second}

	go e.runRegistrations()
	e.mqtt.wg.Add(1)
	go e.mqtt.serve()
	go func() {
		defer close(e.serveDone)
		if err := e.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("http server stopped", "error", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = e.Close()
		case <-e.stop:
		}
	}()
	e.log.Info("thingsboard emulator started", "mqtt", e.MQTTAddr(), "http", e.HTTPURL(), "demo", cfg.Demo,
		"dataDir", cfg.DataDir, "allowClaimingByDefault", cfg.AllowClaimingByDefault, "claimDuration", cfg.ClaimDuration,
		"cacheTTL", cfg.CacheTTL, "cacheSize", cfg.CacheSize, "cachePolicy", cfg.CachePolicy,
		"maxSessionsPerDevice", cfg.MaxSessionsPerDevice, "ipLimits", cfg.IPLimitsEnabled, "deviceRateLimit", cfg.DeviceRateLimit)
	return e, nil
}

// initState loads the data directory's state, or creates a fresh installation (the system
// administrator, one tenant, its administrator and its default device profile), then the demo
// data and the demo API key when asked for, and saves the result.
func (e *Emulator) initState() error {
	loaded := false
	if e.cfg.DataDir != "" {
		if err := os.MkdirAll(e.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("tbemu: data dir: %w", err)
		}
		var err error
		if loaded, err = e.loadState(); err != nil {
			return err
		}
	}
	if !loaded {
		e.st.jwtKey = newJWTKey()
		e.seedTenant()
	}
	e.jwt = &jwtSigner{key: e.st.jwtKey}
	if e.cfg.Demo {
		e.st.mu.Lock()
		haveDemo := e.st.customerByTitle(e.tenantID, demoCustomers[0].title) != nil
		e.st.mu.Unlock()
		if !haveDemo {
			if err := e.loadDemo(); err != nil {
				return err
			}
		}
		e.st.mu.Lock()
		if e.st.apiKeys[e.st.demoKeyID] == nil {
			if u := e.st.userByEmail(DemoTenantAdmin); u != nil {
				e.st.demoKeyID = e.addAPIKeyLocked(u, APIKeyOptions{Description: "tbemu demo"}).ID
			}
		}
		e.st.mu.Unlock()
	}
	e.st.mu.Lock()
	e.st.dirty = e.st.dirty || !loaded
	e.st.mu.Unlock()
	e.saveIfDirty()
	e.st.mu.Lock()
	failed := e.st.dirty && e.cfg.DataDir != ""
	e.st.mu.Unlock()
	if failed {
		return fmt.Errorf("tbemu: cannot write the state to %s", e.cfg.DataDir)
	}
	if loaded {
		e.log.Info("state loaded; the claim cache starts empty", "dataDir", e.cfg.DataDir)
	}
	return nil
}

// MQTTAddr returns the host:port the MQTT listener is bound to.
func (e *Emulator) MQTTAddr() string { return e.mqtt.ln.Addr().String() }

// HTTPURL returns the base URL of the REST and HTTP device API, "http://host:port".
func (e *Emulator) HTTPURL() string { return "http://" + e.httpLn.Addr().String() }

// Close stops both listeners, disconnects clients, stops the registration worker and saves the
// state. It is safe to call more than once.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() {
		close(e.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := e.http.Shutdown(ctx)
		if err != nil {
			_ = e.http.Close()
		}
		<-e.serveDone
		e.mqtt.close()
		<-e.workerDone
		e.saveIfDirty()
		e.closeErr = err
		e.log.Info("thingsboard emulator stopped")
	})
	return e.closeErr
}

// seedTenant creates the system administrator, the tenant, its administrator and its default
// device profile, which every ThingsBoard installation has (docs/thingsboard.md §5).
func (e *Emulator) seedTenant() {
	now := e.cfg.Clock.Now().UnixMilli()
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	t := &tenant{ID: newID(), CreatedTime: now, Title: "Tenant"}
	e.st.tenants[t.ID] = t
	e.tenantID = t.ID
	for _, u := range []*user{
		{Email: "sysadmin@thingsboard.org", Password: "sysadmin", Authority: authSysAdmin, TenantID: nullUUID},
		{Email: DemoTenantAdmin, Password: DemoTenantAdminPassword, Authority: authTenantAdmin, TenantID: t.ID},
	} {
		u.ID, u.CreatedTime, u.CustomerID = newID(), now, nullUUID
		e.st.users[u.ID] = u
	}
	p := &deviceProfile{ID: newID(), CreatedTime: now, TenantID: t.ID, Name: "default", Default: true, TransportType: transportDefault}
	e.st.profiles[p.ID] = p
	e.st.dirty = true
}

// findOrCreateDevice is DefaultTransportApiService.findOrCreateDevice for gateways
// (docs/thingsboard.md §1.5): a device of the gateway's tenant by exact name, or a new "default"
// device with the gateway's customer. The caller saves the state afterwards.
func (e *Emulator) findOrCreateDevice(gatewayID, name string) (*device, error) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	gw := e.st.devices[gatewayID]
	if gw == nil {
		return nil, errors.New("gateway device not found")
	}
	if d := e.st.deviceByName(gw.TenantID, name); d != nil {
		return d, nil
	}
	d := &device{TenantID: gw.TenantID, CustomerID: gw.CustomerID, Name: name, Type: "default",
		AdditionalInfo: []byte(fmt.Sprintf(`{"lastConnectedGateway":%q}`, gw.ID))}
	if err := e.st.addDevice(d, e.cfg.Clock.Now().UnixMilli()); err != nil {
		return nil, err
	}
	e.log.Info("device created by gateway", "device", name, "gateway", gw.Name)
	return d, nil
}
