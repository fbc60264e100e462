// Package tbemu emulates the parts of ThingsBoard CE that device claiming touches: the MQTT device
// transport with access-token authentication, v1/devices/me/claim and v1/gateway/claim, the HTTP
// device API, and a REST subset (login, devices, customers, users, claiming, server attributes).
//
// It follows docs/thingsboard.md; doc comments cite its
// sections. docs/tbemu.md lists what is modelled and what is not.
package tbemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

var errClosed = errors.New("tbemu: emulator closed")

// Emulator is a running ThingsBoard emulator.
type Emulator struct {
	cfg    Config
	log    *slog.Logger
	st     *state
	jwt    *jwtSigner
	broker *mqtt.Server
	httpLn net.Listener
	http   *http.Server
	mqttAt string

	tenantID string
	events   []ClaimEvent // guarded by st.mu

	queue      chan registration
	stop       chan struct{}
	workerDone chan struct{}
	serveDone  chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// Start creates an emulator, binds both listeners and serves in the background until Close or
// until ctx is done.
func Start(ctx context.Context, cfg Config) (*Emulator, error) {
	cfg = cfg.withDefaults()
	e := &Emulator{
		cfg:        cfg,
		log:        cfg.Logger,
		st:         newState(newClaimCache(cfg.CacheTTL, cfg.CacheSize)),
		jwt:        newJWTSigner(),
		queue:      make(chan registration, 4096),
		stop:       make(chan struct{}),
		workerDone: make(chan struct{}),
		serveDone:  make(chan struct{}),
	}
	e.seedTenant()
	if cfg.Demo {
		if err := e.loadDemo(); err != nil {
			return nil, err
		}
	}

	broker, err := newBroker(e, cfg.Logger.With("component", "mqtt"))
	if err != nil {
		return nil, err
	}
	e.broker = broker
	tcp := listeners.NewTCP(listeners.Config{ID: "tb-mqtt", Address: cfg.MQTTAddr})
	if err := broker.AddListener(tcp); err != nil {
		_ = broker.Close()
		return nil, fmt.Errorf("tbemu: mqtt listen %s: %w", cfg.MQTTAddr, err)
	}
	e.mqttAt = tcp.Address()

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		_ = broker.Close()
		return nil, fmt.Errorf("tbemu: http listen %s: %w", cfg.HTTPAddr, err)
	}
	e.httpLn = ln
	e.http = &http.Server{Handler: e.routes(), ReadHeaderTimeout: 10 * time.Second}

	go e.runRegistrations()
	if err := broker.Serve(); err != nil {
		_ = ln.Close()
		close(e.stop)
		return nil, fmt.Errorf("tbemu: mqtt serve: %w", err)
	}
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
	e.log.Info("thingsboard emulator started", "mqtt", e.mqttAt, "http", e.HTTPURL(), "demo", cfg.Demo,
		"allowClaimingByDefault", cfg.AllowClaimingByDefault, "claimDuration", cfg.ClaimDuration, "cacheTTL", cfg.CacheTTL,
		"cacheSize", cfg.CacheSize)
	return e, nil
}

// MQTTAddr returns the host:port the MQTT listener is bound to.
func (e *Emulator) MQTTAddr() string { return e.mqttAt }

// HTTPURL returns the base URL of the REST and HTTP device API, "http://host:port".
func (e *Emulator) HTTPURL() string { return "http://" + e.httpLn.Addr().String() }

// Close stops both listeners, disconnects clients and stops the registration worker. It is safe
// to call more than once.
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
		errB := e.broker.Close()
		<-e.workerDone
		e.closeErr = errors.Join(err, errB)
		e.log.Info("thingsboard emulator stopped")
	})
	return e.closeErr
}

// seedTenant creates the system administrator, the tenant and its administrator, which every
// ThingsBoard installation has (docs/thingsboard.md §5).
func (e *Emulator) seedTenant() {
	now := e.cfg.Clock.Now().UnixMilli()
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	t := &tenant{ID: newID(), CreatedTime: now, Title: "Tenant"}
	e.st.tenants[t.ID] = t
	e.tenantID = t.ID
	for _, u := range []*user{
		{Email: "sysadmin@thingsboard.org", Password: "sysadmin", Authority: authSysAdmin, TenantID: nullUUID},
		{Email: "tenant@thingsboard.org", Password: "tenant", Authority: authTenantAdmin, TenantID: t.ID},
	} {
		u.ID, u.CreatedTime, u.CustomerID = newID(), now, nullUUID
		e.st.users[u.ID] = u
	}
}

// findOrCreateDevice is DefaultTransportApiService.findOrCreateDevice for gateways (docs/thingsboard.md §1.5):
// a device of the gateway's tenant by exact name, or a new "default" device with the gateway's
// customer.
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
