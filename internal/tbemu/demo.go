package tbemu

import "fmt"

// DemoData names the demo entities, as loaded by ThingsBoard's DefaultSystemDataLoaderService
// (docs/thingsboard.md §5) and the thingsboard/tb-postgres image.
var demoCustomers = []struct {
	title string
	users []string
	devs  [][2]string // name, token
}{
	{"Customer A", []string{"customer@thingsboard.org", "customerA@thingsboard.org"},
		[][2]string{{"Test Device A1", "A1_TEST_TOKEN"}, {"Test Device A2", "A2_TEST_TOKEN"}, {"Test Device A3", "A3_TEST_TOKEN"}}},
	{"Customer B", []string{"customerB@thingsboard.org"}, [][2]string{{"Test Device B1", "B1_TEST_TOKEN"}}},
	{"Customer C", []string{"customerC@thingsboard.org"}, [][2]string{{"Test Device C1", "C1_TEST_TOKEN"}}},
}

// demoUnassigned are the demo devices without a customer, which can be claimed.
var demoUnassigned = [][2]string{
	{"DHT11 Demo Device", "DHT11_DEMO_TOKEN"},
	{"Raspberry Pi Demo Device", "RASPBERRY_PI_DEMO_TOKEN"},
	{"Thermostat T1", "T1_TEST_TOKEN"},
	{"Thermostat T2", "T2_TEST_TOKEN"},
}

// DemoDevice is a demo device: its name and its access token (public demo
// data, like ThingsBoard's own).
type DemoDevice struct {
	Name, Token string
}

// DemoClaimable lists the demo devices that no customer owns, which a
// customer can claim: what `serve --demo` tells its user to try.
func DemoClaimable() []DemoDevice {
	out := make([]DemoDevice, len(demoUnassigned))
	for i, d := range demoUnassigned {
		out[i] = DemoDevice{Name: d[0], Token: d[1]}
	}
	return out
}

// Demo credentials. Like all of ThingsBoard's demo data they are public, documented defaults, not
// secrets (docs/thingsboard.md §5). The tenant administrator exists in every installation; with
// Config.Demo it also has an API key (DemoAPIKey).
const (
	DemoTenantAdmin         = "tenant@thingsboard.org"
	DemoTenantAdminPassword = "tenant"
	// DemoCustomerPassword is the password of every demo customer user (CUSTOMER_CRED).
	DemoCustomerPassword = "customer"
)

// loadDemo loads the demo data.
func (e *Emulator) loadDemo() error {
	for _, c := range demoCustomers {
		id, err := e.addCustomer(c.title)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		for _, u := range c.users {
			if err := e.addCustomerUser(id, u, DemoCustomerPassword); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
		}
		for _, d := range c.devs {
			if err := e.addOwnedDevice(d[0], d[1], id); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
		}
	}
	for _, d := range demoUnassigned {
		if err := e.addOwnedDevice(d[0], d[1], ""); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

func (e *Emulator) addOwnedDevice(name, token, customerID string) error {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	return e.st.addDevice(&device{TenantID: e.tenantID, Name: name, Token: token, CustomerID: customerID},
		e.cfg.Clock.Now().UnixMilli())
}
