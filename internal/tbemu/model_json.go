package tbemu

import "encoding/json"

// JSON shapes of ThingsBoard entities, as the REST API returns them (docs/thingsboard.md §4.1, §5).

type entityID struct {
	EntityType string `json:"entityType"`
	ID         string `json:"id"`
}

// defaultProfileID is the id of the emulator's single "default" device profile.
const defaultProfileID = "5f1e6b60-0000-11ee-8000-000000000001"

func deviceJSON(d *device) map[string]any {
	info := d.AdditionalInfo
	if len(info) == 0 {
		info = json.RawMessage("null")
	}
	var label any
	if d.Label != "" {
		label = d.Label
	}
	return map[string]any{
		"id":              entityID{"DEVICE", d.ID},
		"createdTime":     d.CreatedTime,
		"tenantId":        entityID{"TENANT", d.TenantID},
		"customerId":      entityID{"CUSTOMER", d.CustomerID},
		"name":            d.Name,
		"type":            d.Type,
		"label":           label,
		"deviceProfileId": entityID{"DEVICE_PROFILE", defaultProfileID},
		"deviceData": map[string]any{
			"configuration":          map[string]string{"type": "DEFAULT"},
			"transportConfiguration": map[string]string{"type": "DEFAULT"},
		},
		"firmwareId":     nil,
		"softwareId":     nil,
		"externalId":     nil,
		"version":        d.Version,
		"additionalInfo": info,
	}
}

func credentialsJSON(d *device) map[string]any {
	return map[string]any{
		"id":               map[string]string{"id": d.CredentialsID},
		"createdTime":      d.CreatedTime,
		"deviceId":         entityID{"DEVICE", d.ID},
		"credentialsType":  "ACCESS_TOKEN",
		"credentialsId":    d.Token,
		"credentialsValue": nil,
		"version":          1,
	}
}

func customerJSON(c *customer) map[string]any {
	return map[string]any{
		"id":             entityID{"CUSTOMER", c.ID},
		"createdTime":    c.CreatedTime,
		"tenantId":       entityID{"TENANT", c.TenantID},
		"title":          c.Title,
		"name":           c.Title,
		"country":        nil,
		"state":          nil,
		"city":           nil,
		"address":        nil,
		"address2":       nil,
		"zip":            nil,
		"phone":          nil,
		"email":          nil,
		"externalId":     nil,
		"version":        1,
		"additionalInfo": nil,
	}
}

func userJSON(u *user) map[string]any {
	return map[string]any{
		"id":             entityID{"USER", u.ID},
		"createdTime":    u.CreatedTime,
		"tenantId":       entityID{"TENANT", u.TenantID},
		"customerId":     entityID{"CUSTOMER", u.CustomerID},
		"email":          u.Email,
		"name":           u.Email,
		"authority":      u.Authority,
		"firstName":      nilIfEmpty(u.FirstName),
		"lastName":       nilIfEmpty(u.LastName),
		"phone":          nil,
		"version":        1,
		"additionalInfo": map[string]any{},
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
