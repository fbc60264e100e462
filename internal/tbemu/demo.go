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

// DemoCustomerPassword is the password of every demo customer user (CUSTOMER_CRED). Like
// all demo credentials it is ThingsBoard's public, documented default, not a secret.
const DemoCustomerPassword = "customer"

// loadDemo loads the demo data.
func (e *Emulator) loadDemo() error {
	for _, c := range demoCustomers {
		id, err := e.AddCustomer(c.title)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		for _, u := range c.users {
			if err := e.AddCustomerUser(id, u, DemoCustomerPassword); err != nil {
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
		if _, err := e.AddDevice(d[0], d[1]); err != nil {
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
