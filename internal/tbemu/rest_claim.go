package tbemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// --- claiming -----------------------------------------------------------------------------------

// handleClaim is POST /api/customer/device/{deviceName}/claim, following the order of
// docs/thingsboard.md §4.1: authentication (rows 1-1b), the @RequestBody (a body that is not JSON
// is refused with 500 errorCode 2 before anything else, as Spring resolves arguments before
// @PreAuthorize runs), authority (row 2), device by exact name in the caller's tenant (row 3), a
// missing body (row 5), then the claim decision (rows 6-10).
func (e *Emulator) handleClaim(w http.ResponseWriter, r *http.Request, s session) {
	body, err := readBody(r)
	if err != nil {
		e.requestBodyError(w, "I/O error while reading input message")
		return
	}
	// @RequestBody(required = false) ClaimRequest: without a Content-Type an empty body is null;
	// otherwise only a JSON Content-Type has a converter (HttpMediaTypeNotSupportedException).
	isJSON, missing, ctName := jsonContentType(r)
	var secret string
	hasBody := false
	switch {
	case missing && len(body) == 0:
	case !isJSON:
		e.requestBodyError(w, unsupportedContentType(ctName))
		return
	case len(body) > 0:
		secret, hasBody, err = claimRequestSecret(body)
		if err != nil {
			e.requestBodyError(w, "JSON parse error: "+err.Error())
			return
		}
	}
	if s.user.Authority != authCustomerUser {
		e.forbidden(w)
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.namedDevice(w, r, s)
	if d == nil {
		return
	}
	if !hasBody {
		e.writeError(w, http.StatusInternalServerError, errCodeGeneral,
			`Cannot invoke "org.thingsboard.server.common.data.ClaimRequest.getSecretKey()" because "claimRequest" is null`)
		return
	}
	res, err := e.claim(d, s.user.CustomerID, secret)
	if err != nil {
		e.badRequest(w, err.Error())
		return
	}
	if res != claimSuccess {
		writeJSON(w, http.StatusBadRequest, string(res)) // the JSON string "FAILURE" / "CLAIMED"
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": e.deviceJSON(d), "response": string(res)})
}

// claimRequestSecret decodes ClaimRequest {secretKey} as Jackson does: null or absent is "", numbers
// and booleans are coerced to their text, objects and arrays are errors. present is false for the
// JSON null, which leaves the request null.
func claimRequestSecret(body []byte) (secret string, present bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var req map[string]any
	if err := dec.Decode(&req); err != nil {
		return "", false, err
	}
	if dec.More() {
		return "", false, errors.New("trailing token after the JSON value")
	}
	if req == nil {
		return "", false, nil // JSON null
	}
	switch v := req["secretKey"].(type) {
	case nil:
		return "", true, nil
	case string:
		return v, true, nil
	case json.Number:
		return v.String(), true, nil
	case bool:
		return strconv.FormatBool(v), true, nil
	default:
		return "", false, errors.New("Cannot deserialize value of type `java.lang.String` from " + jsonKindName(v))
	}
}

func jsonKindName(v any) string {
	if _, ok := v.([]any); ok {
		return "Array value"
	}
	return "Object value"
}

// handleReclaim is DELETE /api/customer/device/{deviceName}/claim (docs/thingsboard.md §4.2): tenant
// admins and customer users, any device of the tenant, 200 with an empty body.
func (e *Emulator) handleReclaim(w http.ResponseWriter, r *http.Request, s session) {
	if s.user.Authority != authCustomerUser && s.user.Authority != authTenantAdmin {
		e.forbidden(w)
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if d := e.namedDevice(w, r, s); d != nil {
		e.reclaim(d)
		w.WriteHeader(http.StatusOK)
	}
}

// namedDevice is checkNotNull(findDeviceByTenantIdAndName(…)) for the path's {deviceName}: 404
// "Requested item wasn't found!" when the caller's tenant has no device of that exact name. The
// caller holds the state lock.
func (e *Emulator) namedDevice(w http.ResponseWriter, r *http.Request, s session) *device {
	d := e.st.deviceByName(s.user.TenantID, r.PathValue("deviceName"))
	if d == nil {
		e.notFound(w)
	}
	return d
}

// --- attributes (TelemetryController) -------------------------------------------------------------

// attributeTarget checks the path of an attribute request and returns the device id: the entity
// type (only DEVICE is modelled) and the id (EntityIdFactory: a malformed UUID is 400 errorCode
// 31). It writes the error.
func (e *Emulator) attributeTarget(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.PathValue("entityType") != "DEVICE" {
		e.badRequest(w, "Entity type "+r.PathValue("entityType")+" is not supported by the emulator")
		return "", false
	}
	id := r.PathValue("id")
	return id, e.validID(w, id)
}

// attributeDevice is AccessValidator.validateEntityAndCallback for a device: the answers are plain
// text (ToErrorResponseEntity), 404 "Device with requested id wasn't found!" and 403 with the
// permission message. The caller holds the state lock.
func (e *Emulator) attributeDevice(w http.ResponseWriter, id string, s session) *device {
	d, res := e.lookupDevice(id, s)
	switch res {
	case deviceBadID:
		e.badRequest(w, "Invalid UUID string: "+id)
	case deviceMissing:
		writeText(w, http.StatusNotFound, "Device with requested id wasn't found!")
	case deviceForbidden:
		writeText(w, http.StatusForbidden, msgNoPermission)
	}
	return d
}

// handleSaveAttributes is POST /api/plugins/telemetry/DEVICE/{id}/attributes/SERVER_SCOPE (and the
// older …/DEVICE/{id}/SERVER_SCOPE): the body, read as text and parsed leniently by Gson, must be a
// JSON object of key → value; a value may be a string, number, boolean, object or array
// (docs/thingsboard.md §3.2). Errors in the body are plain-text 400s; success is 200 with an empty
// body.
func (e *Emulator) handleSaveAttributes(w http.ResponseWriter, r *http.Request, s session) {
	id, ok := e.attributeTarget(w, r)
	if !ok {
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeText(w, http.StatusBadRequest, "Invalid JSON")
		return
	}
	scope := r.PathValue("scope")
	if scope != "SERVER_SCOPE" && scope != "SHARED_SCOPE" {
		writeText(w, http.StatusBadRequest, "Invalid scope: "+scope)
		return
	}
	root, err := parseGsonLenient(string(body))
	if err != nil || len(body) == 0 {
		writeText(w, http.StatusBadRequest, "Invalid JSON")
		return
	}
	if root.kind != jsonObject {
		writeText(w, http.StatusBadRequest, "Request is not a JSON object")
		return
	}
	type kv struct {
		key   string
		value json.RawMessage
	}
	var kvs []kv
	for _, m := range root.entries() {
		v := m.value
		if v.kind == jsonNull {
			// JsonConverter.parseValues throws JsonSyntaxException, which the controller does not catch.
			e.writeError(w, http.StatusInternalServerError, errCodeGeneral, "Can't parse value: null")
			return
		}
		kvs = append(kvs, kv{m.name, json.RawMessage(gsonToJSON(v))})
	}
	if len(kvs) == 0 {
		writeText(w, http.StatusBadRequest, "No attributes data found in request body!")
		return
	}
	for _, a := range kvs {
		if strings.TrimSpace(a.key) == "" {
			writeText(w, http.StatusBadRequest, "Key cannot be blank")
			return
		}
	}
	e.changeAttributes(w, id, s, scope, func(d *device) {
		now := e.cfg.Clock.Now().UnixMilli()
		for _, a := range kvs {
			e.st.setServerAttr(d.ID, a.key, a.value, now)
		}
	})
}

// changeAttributes checks the device for the caller and applies change to its SERVER_SCOPE
// attributes (other scopes are accepted and not kept), then answers 200 with an empty body.
func (e *Emulator) changeAttributes(w http.ResponseWriter, id string, s session, scope string, change func(*device)) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.attributeDevice(w, id, s)
	if d == nil {
		return
	}
	if scope == "SERVER_SCOPE" {
		change(d)
	}
	w.WriteHeader(http.StatusOK)
}

// handleDeleteAttributes is DELETE /api/plugins/telemetry/DEVICE/{id}/SERVER_SCOPE?keys=a,b (or
// repeated key=): 200 with an empty body, also for keys that do not exist; no keys is a plain-text
// 400 "Empty keys: []".
func (e *Emulator) handleDeleteAttributes(w http.ResponseWriter, r *http.Request, s session) {
	id, ok := e.attributeTarget(w, r)
	if !ok {
		return
	}
	scope := r.PathValue("scope")
	switch scope {
	case "SERVER_SCOPE", "SHARED_SCOPE", "CLIENT_SCOPE":
	default:
		e.badRequest(w, "No enum constant org.thingsboard.server.common.data.AttributeScope."+scope)
		return
	}
	q := r.URL.Query()
	keys := q["key"]
	if keys == nil && q.Get("keys") != "" {
		keys = strings.Split(q.Get("keys"), ",")
	}
	if len(keys) == 0 {
		writeText(w, http.StatusBadRequest, "Empty keys: []")
		return
	}
	e.changeAttributes(w, id, s, scope, func(d *device) { e.st.deleteServerAttr(d.ID, keys...) })
}

// handleGetAttributes is GET …/values/attributes/SERVER_SCOPE[?keys=a,b].
func (e *Emulator) handleGetAttributes(w http.ResponseWriter, r *http.Request, s session) {
	id, ok := e.attributeTarget(w, r)
	if !ok {
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.attributeDevice(w, id, s)
	if d == nil {
		return
	}
	var want map[string]bool
	if k := r.URL.Query().Get("keys"); k != "" {
		want = map[string]bool{}
		for _, key := range strings.Split(k, ",") {
			want[key] = true
		}
	}
	out := []map[string]any{}
	if r.PathValue("scope") == "SERVER_SCOPE" {
		for k, a := range e.st.attrs[d.ID] {
			if want == nil || want[k] {
				out = append(out, map[string]any{"lastUpdateTs": a.LastUpdate, "key": k, "value": a.Value})
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// gsonToJSON renders a leniently parsed value as strict JSON (Gson's toString quotes names and
// strings), which is how the emulator keeps attribute values; a value JSON cannot express (NaN) is
// kept as its text.
func gsonToJSON(v *jsonValue) string {
	s := v.String()
	if json.Valid([]byte(s)) {
		return s
	}
	b, _ := json.Marshal(s)
	return string(b)
}
