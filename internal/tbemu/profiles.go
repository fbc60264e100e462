package tbemu

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Device transport types (ThingsBoard's DeviceTransportType).
const (
	transportDefault = "DEFAULT"
	transportMQTT    = "MQTT"
)

var knownTransports = map[string]bool{transportDefault: true, transportMQTT: true, "COAP": true, "LWM2M": true, "SNMP": true}

// Payload types of an MQTT device profile (TransportPayloadType).
const (
	payloadJSON     = "JSON"
	payloadProtobuf = "PROTOBUF"
)

// deviceProfile is a ThingsBoard DeviceProfile, reduced to what changes a claim's outcome
// (docs/thingsboard.md §9 "Device profiles").
type deviceProfile struct {
	ID            string
	CreatedTime   int64
	TenantID      string
	Name          string
	Description   string
	Default       bool
	TransportType string // the profile's transportType: DefaultTransportService refuses other transports
	// ProfileData is the profileData JSON as saved; nil means ThingsBoard's default data for
	// TransportType.
	ProfileData json.RawMessage
	// MQTT is set when profileData.transportConfiguration.type is MQTT; DeviceSessionCtx then
	// applies it to every MQTT session of the profile's devices.
	MQTT *mqttProfile `json:",omitempty"`
}

// mqttProfile is MqttDeviceProfileTransportConfiguration.
type mqttProfile struct {
	TelemetryTopic               string // a topic filter; "" means v1/devices/me/telemetry
	AttributesTopic              string // a topic filter; "" means v1/devices/me/attributes
	AttributesSubscribeTopic     string // a topic filter; "" means v1/devices/me/attributes
	PayloadType                  string // JSON or PROTOBUF
	JSONCompatibility            bool   // PROTOBUF: enableCompatibilityWithJsonPayloadFormat
	SendAckOnValidationException bool
}

func (s *state) defaultProfile(tenantID string) *deviceProfile {
	for _, p := range s.profiles {
		if p.TenantID == tenantID && p.Default {
			return p
		}
	}
	return nil
}

func (s *state) profileByName(tenantID, name string) *deviceProfile {
	for _, p := range s.profiles {
		if p.TenantID == tenantID && p.Name == name {
			return p
		}
	}
	return nil
}

// profileForType is DeviceProfileService.findOrCreateDeviceProfile: the profile named like a device
// type, created with the DEFAULT transport if missing.
func (s *state) profileForType(tenantID, typ string, now int64) *deviceProfile {
	if p := s.profileByName(tenantID, typ); p != nil {
		return p
	}
	p := &deviceProfile{ID: newID(), CreatedTime: now, TenantID: tenantID, Name: typ, TransportType: transportDefault}
	s.profiles[p.ID] = p
	s.dirty = true
	return p
}

// DeviceProfile describes a device profile to create in-process with AddDeviceProfile. The zero
// value is ThingsBoard's "default" kind of profile: transport type DEFAULT.
type DeviceProfile struct {
	Name string
	// TransportType is "DEFAULT" (when empty), "MQTT", "COAP", "LWM2M" or "SNMP". A device whose
	// profile is neither DEFAULT nor MQTT gets CONNACK 3 on MQTT (DefaultTransportService).
	TransportType string
	// The rest is the MQTT transport configuration, used when TransportType is "MQTT".
	// TelemetryTopic and AttributesTopic are topic filters ("+", "#"); MqttTransportHandler matches
	// them before the claim topic. Empty means ThingsBoard's defaults.
	TelemetryTopic, AttributesTopic string
	// PayloadType is "JSON" (when empty) or "PROTOBUF"; a PROTOBUF device's claim payload is the
	// protobuf message ClaimDevice, so its JSON claim is a payload error (ProtoMqttAdaptor).
	PayloadType string
	// JSONCompatibility is enableCompatibilityWithJsonPayloadFormat: PROTOBUF first, then JSON.
	JSONCompatibility bool
	// SendAckOnValidationException acknowledges a publish whose payload cannot be read (and
	// registers nothing) instead of closing an MQTT 3.x connection.
	SendAckOnValidationException bool
}

// AddDeviceProfile creates a device profile in the tenant and returns its id.
func (e *Emulator) AddDeviceProfile(dp DeviceProfile) (string, error) {
	p := &deviceProfile{Name: dp.Name, TransportType: strings.ToUpper(dp.TransportType)}
	if p.TransportType == "" {
		p.TransportType = transportDefault
	}
	if p.TransportType == transportMQTT {
		p.MQTT = &mqttProfile{TelemetryTopic: dp.TelemetryTopic, AttributesTopic: dp.AttributesTopic,
			PayloadType: strings.ToUpper(dp.PayloadType), JSONCompatibility: dp.JSONCompatibility,
			SendAckOnValidationException: dp.SendAckOnValidationException}
		if p.MQTT.PayloadType == "" {
			p.MQTT.PayloadType = payloadJSON
		}
	} else if dp.PayloadType != "" || dp.TelemetryTopic != "" || dp.AttributesTopic != "" || dp.SendAckOnValidationException {
		return "", errors.New("MQTT settings need TransportType MQTT")
	}
	e.st.mu.Lock()
	err := e.saveProfile(p, e.tenantID)
	e.st.mu.Unlock()
	if err != nil {
		return "", err
	}
	e.saveIfDirty()
	return p.ID, nil
}

// AddDeviceWithProfile creates an unassigned device with the given profile; token "" generates one.
func (e *Emulator) AddDeviceWithProfile(name, token, profileID string) (DeviceInfo, error) {
	return e.createDevice(&device{TenantID: e.tenantID, Name: name, Token: token, ProfileID: profileID})
}

// SetDeviceProfile moves the named device to another profile. Like ThingsBoard, connected MQTT
// sessions apply the new profile to their next publish.
func (e *Emulator) SetDeviceProfile(deviceName, profileID string) error {
	e.st.mu.Lock()
	d := e.st.deviceByName(e.tenantID, deviceName)
	p := e.st.profiles[profileID]
	switch {
	case d == nil:
		e.st.mu.Unlock()
		return errors.New("device not found")
	case p == nil || p.TenantID != e.tenantID:
		e.st.mu.Unlock()
		return errNoProfile
	}
	d.ProfileID, d.Type = p.ID, p.Name
	d.Version++
	e.st.dirty = true
	e.st.mu.Unlock()
	e.saveIfDirty()
	return nil
}

// saveProfile validates and stores a new profile as DeviceProfileDataValidator does. The caller
// holds the state lock.
func (e *Emulator) saveProfile(p *deviceProfile, tenantID string) error {
	switch {
	case strings.TrimSpace(p.Name) == "":
		return errors.New("Device profile name should be specified!")
	case !knownTransports[p.TransportType]:
		return errors.New("Device profile transport type should be specified!")
	}
	if o := e.st.profileByName(tenantID, p.Name); o != nil && o.ID != p.ID {
		return errors.New("Device profile with such name already exists!")
	}
	if p.MQTT != nil {
		if p.MQTT.PayloadType != payloadJSON && p.MQTT.PayloadType != payloadProtobuf {
			return errors.New("Unknown transport payload type: " + p.MQTT.PayloadType)
		}
		for _, f := range []string{p.MQTT.TelemetryTopic, p.MQTT.AttributesTopic, p.MQTT.AttributesSubscribeTopic} {
			if f != "" {
				if _, err := compileTopicFilter(f); err != nil {
					return err
				}
			}
		}
	}
	if p.ID == "" {
		p.ID = newID()
		p.CreatedTime = e.cfg.Clock.Now().UnixMilli()
	}
	p.TenantID = tenantID
	e.st.profiles[p.ID] = p
	e.st.dirty = true
	return nil
}

// --- REST ----------------------------------------------------------------------------------------

// profileRequest is the DeviceProfile JSON the REST API accepts.
type profileRequest struct {
	ID *struct {
		ID string `json:"id"`
	} `json:"id"`
	Name          string          `json:"name"`
	Description   string          `json:"description"`
	Type          string          `json:"type"`
	TransportType string          `json:"transportType"`
	Default       bool            `json:"default"`
	ProfileData   json.RawMessage `json:"profileData"`
}

// transportConfiguration is the part of profileData.transportConfiguration the emulator reads.
type transportConfiguration struct {
	Type                         string `json:"type"`
	DeviceTelemetryTopic         string `json:"deviceTelemetryTopic"`
	DeviceAttributesTopic        string `json:"deviceAttributesTopic"`
	DeviceAttributesSubscribe    string `json:"deviceAttributesSubscribeTopic"`
	SendAckOnValidationException bool   `json:"sendAckOnValidationException"`
	PayloadConfiguration         *struct {
		TransportPayloadType                     string `json:"transportPayloadType"`
		EnableCompatibilityWithJSONPayloadFormat bool   `json:"enableCompatibilityWithJsonPayloadFormat"`
		DeviceTelemetryProtoSchema               string `json:"deviceTelemetryProtoSchema"`
		DeviceAttributesProtoSchema              string `json:"deviceAttributesProtoSchema"`
		DeviceRPCRequestProtoSchema              string `json:"deviceRpcRequestProtoSchema"`
		DeviceRPCResponseProtoSchema             string `json:"deviceRpcResponseProtoSchema"`
	} `json:"transportPayloadTypeConfiguration"`
}

// mqttFromProfileData reads profileData.transportConfiguration; nil when it is not MQTT.
func mqttFromProfileData(raw json.RawMessage) (*mqttProfile, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var pd struct {
		TransportConfiguration *transportConfiguration `json:"transportConfiguration"`
	}
	if err := json.Unmarshal(raw, &pd); err != nil {
		return nil, errors.New("Invalid request body: profileData: " + err.Error())
	}
	tc := pd.TransportConfiguration
	if tc == nil || strings.ToUpper(tc.Type) != transportMQTT {
		return nil, nil
	}
	m := &mqttProfile{TelemetryTopic: strings.TrimSpace(tc.DeviceTelemetryTopic), AttributesTopic: strings.TrimSpace(tc.DeviceAttributesTopic),
		AttributesSubscribeTopic: strings.TrimSpace(tc.DeviceAttributesSubscribe),
		PayloadType:              payloadJSON, SendAckOnValidationException: tc.SendAckOnValidationException}
	if pc := tc.PayloadConfiguration; pc != nil && pc.TransportPayloadType != "" {
		m.PayloadType = strings.ToUpper(pc.TransportPayloadType)
		if m.PayloadType == payloadProtobuf {
			// DynamicProtoUtils.validateProtoSchema: every schema must be proto3. The emulator does not
			// parse the schemas further.
			for name, schema := range map[string]string{"telemetry": pc.DeviceTelemetryProtoSchema,
				"attributes": pc.DeviceAttributesProtoSchema, "rpc request": pc.DeviceRPCRequestProtoSchema,
				"rpc response": pc.DeviceRPCResponseProtoSchema} {
				if !strings.Contains(schema, "proto3") {
					return nil, errors.New("[Transport Configuration] invalid schema syntax for " + name + " proto schema provided! Only PROTO_3 allowed!")
				}
			}
			m.JSONCompatibility = pc.EnableCompatibilityWithJSONPayloadFormat
		}
	}
	return m, nil
}

// handleSaveProfile is POST /api/deviceProfile (tenant admin): create, or update when the body
// carries an id.
func (e *Emulator) handleSaveProfile(w http.ResponseWriter, r *http.Request, s session) {
	if s.user.Authority != authTenantAdmin {
		e.forbidden(w)
		return
	}
	var req profileRequest
	if !e.decodeJSONBody(w, r, &req) {
		return
	}
	switch {
	case strings.TrimSpace(req.Name) == "":
		e.badRequest(w, "Device profile name should be specified!")
		return
	case req.Type == "":
		e.badRequest(w, "Device profile type should be specified!")
		return
	case req.TransportType == "":
		e.badRequest(w, "Device profile transport type should be specified!")
		return
	}
	m, err := mqttFromProfileData(req.ProfileData)
	if err != nil {
		e.badRequest(w, err.Error())
		return
	}
	p := &deviceProfile{Name: req.Name, Description: req.Description, TransportType: strings.ToUpper(req.TransportType),
		ProfileData: req.ProfileData, MQTT: m}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if req.ID != nil && req.ID.ID != "" {
		old := e.st.profiles[req.ID.ID]
		if old == nil || old.TenantID != s.user.TenantID {
			e.writeError(w, http.StatusNotFound, errCodeItemNotFound, "Device profile with id ["+req.ID.ID+"] is not found")
			return
		}
		p.ID, p.CreatedTime, p.Default = old.ID, old.CreatedTime, old.Default
	} else if req.Default {
		e.badRequest(w, "Another default device profile is present in scope of current tenant!")
		return
	}
	if err := e.saveProfile(p, s.user.TenantID); err != nil {
		e.badRequest(w, err.Error())
		return
	}
	for _, d := range e.st.devices { // the devices keep the profile; their type follows its name
		if d.ProfileID == p.ID {
			d.Type = p.Name
		}
	}
	writeJSON(w, http.StatusOK, profileJSON(p))
}

// handleGetProfile is GET /api/deviceProfile/{id}.
func (e *Emulator) handleGetProfile(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	if !e.validID(w, id) {
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	p := e.st.profiles[id]
	if p == nil || p.TenantID != s.user.TenantID {
		e.writeError(w, http.StatusNotFound, errCodeItemNotFound, "Device profile with id ["+id+"] is not found")
		return
	}
	writeJSON(w, http.StatusOK, profileJSON(p))
}

// profileJSON renders a DeviceProfile as ThingsBoard does (the fields the emulator keeps).
func profileJSON(p *deviceProfile) map[string]any {
	data := p.ProfileData
	if len(data) == 0 || string(data) == "null" {
		data = defaultProfileData(p)
	}
	return map[string]any{
		"id":                 entityID{"DEVICE_PROFILE", p.ID},
		"createdTime":        p.CreatedTime,
		"tenantId":           entityID{"TENANT", p.TenantID},
		"name":               p.Name,
		"description":        nilIfEmpty(p.Description),
		"image":              nil,
		"type":               "DEFAULT",
		"transportType":      p.TransportType,
		"provisionType":      "DISABLED",
		"defaultRuleChainId": nil,
		"defaultDashboardId": nil,
		"defaultQueueName":   nil,
		"provisionDeviceKey": nil,
		"firmwareId":         nil,
		"softwareId":         nil,
		"externalId":         nil,
		"version":            1,
		"default":            p.Default,
		"profileData":        data,
	}
}

// defaultProfileData is the profileData of a profile created without one.
func defaultProfileData(p *deviceProfile) json.RawMessage {
	tc := map[string]any{"type": p.TransportType}
	if m := p.MQTT; m != nil {
		tc = map[string]any{"type": transportMQTT, "deviceTelemetryTopic": orDefault(m.TelemetryTopic, topicTelemetry),
			"deviceAttributesTopic":          orDefault(m.AttributesTopic, topicAttributes),
			"deviceAttributesSubscribeTopic": orDefault(m.AttributesSubscribeTopic, topicAttributes),
			"sparkplug":                      false, "sendAckOnValidationException": m.SendAckOnValidationException,
			"transportPayloadTypeConfiguration": map[string]any{"transportPayloadType": m.PayloadType,
				"enableCompatibilityWithJsonPayloadFormat": m.JSONCompatibility}}
	}
	b, _ := json.Marshal(map[string]any{
		"configuration":          map[string]string{"type": "DEFAULT"},
		"transportConfiguration": tc,
		"provisionConfiguration": map[string]any{"type": "DISABLED", "provisionDeviceSecret": nil},
		"alarms":                 nil,
	})
	return b
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
