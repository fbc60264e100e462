package tbemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// routes registers the REST subset of docs/design.md §6 and the HTTP device API.
func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/auth/login", e.handleLogin)
	mux.HandleFunc("POST /api/auth/token", e.handleRefresh)
	mux.HandleFunc("GET /api/auth/user", e.authed(e.handleCurrentUser))
	mux.HandleFunc("POST /api/device", e.authed(e.handleSaveDevice))
	mux.HandleFunc("GET /api/device/{id}", e.authed(e.handleGetDevice))
	mux.HandleFunc("GET /api/device/{id}/credentials", e.authed(e.handleGetCredentials))
	mux.HandleFunc("GET /api/tenant/devices", e.authed(e.handleTenantDevice))
	mux.HandleFunc("POST /api/customer", e.authed(e.handleSaveCustomer))
	mux.HandleFunc("POST /api/user", e.authed(e.handleSaveUser))
	mux.HandleFunc("GET /api/user/{id}/token", e.authed(e.handleUserToken))
	mux.HandleFunc("POST /api/customer/device/{deviceName}/claim", e.authed(e.handleClaim))
	mux.HandleFunc("DELETE /api/customer/device/{deviceName}/claim", e.authed(e.handleReclaim))
	mux.HandleFunc("POST /api/plugins/telemetry/DEVICE/{id}/attributes/SERVER_SCOPE", e.authed(e.handleSaveAttributes))
	mux.HandleFunc("POST /api/plugins/telemetry/DEVICE/{id}/SERVER_SCOPE", e.authed(e.handleSaveAttributes))
	mux.HandleFunc("GET /api/plugins/telemetry/DEVICE/{id}/values/attributes/SERVER_SCOPE", e.authed(e.handleGetAttributes))
	mux.HandleFunc("POST /api/v1/{token}/claim", e.handleDeviceHTTPClaim)
	return mux
}

// session is the authenticated caller of a REST request.
type session struct {
	claims jwtClaims
	user   *user
}

// bearer extracts the JWT: X-Authorization first, then Authorization (accepted from TB 4.3).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("X-Authorization")
	if h == "" {
		h = r.Header.Get("Authorization")
	}
	const prefix = "Bearer "
	if h == "" || len(h) < len(prefix) {
		return "", false
	}
	return h[len(prefix):], true
}

// authed wraps a handler with ThingsBoard's JWT filter (docs/thingsboard.md §4.1 rows 1, 1a, 1b).
func (e *Emulator) authed(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			e.writeError(w, http.StatusUnauthorized, errCodeAuthentication, msgAuthFailed)
			return
		}
		c, err := e.jwt.parse(tok, e.cfg.Clock.Now())
		switch {
		case errors.Is(err, errJWTExpired):
			e.writeError(w, http.StatusUnauthorized, errCodeJWTExpired, msgTokenExpired)
			return
		case err != nil || len(c.Scopes) != 1 || c.Scopes[0] == "REFRESH_TOKEN":
			e.writeError(w, http.StatusUnauthorized, errCodeAuthentication, msgBadCredentials)
			return
		}
		e.st.mu.Lock()
		u := e.st.users[c.UserID]
		e.st.mu.Unlock()
		if u == nil {
			e.writeError(w, http.StatusUnauthorized, errCodeAuthentication, msgAuthFailed)
			return
		}
		h(w, r, session{claims: c, user: u})
	}
}

func (e *Emulator) forbidden(w http.ResponseWriter) {
	e.writeError(w, http.StatusForbidden, errCodePermissionDenied, msgNoPermission)
}

func (e *Emulator) notFound(w http.ResponseWriter) {
	e.writeError(w, http.StatusNotFound, errCodeItemNotFound, msgItemNotFound)
}

func (e *Emulator) badRequest(w http.ResponseWriter, msg string) {
	e.writeError(w, http.StatusBadRequest, errCodeBadRequestParams, msg)
}

// readBody reads a request body of at most 1 MiB.
func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}

// decodeBody decodes a JSON request body; an empty body is reported as (false, nil).
func decodeBody(r *http.Request, v any) (bool, error) {
	b, err := readBody(r)
	if err != nil {
		return false, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

// --- auth ---------------------------------------------------------------------------------------

type jwtPair struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refreshToken"`
}

func (e *Emulator) issue(u *user) jwtPair {
	now := e.cfg.Clock.Now()
	c := jwtClaims{
		Sub: u.Email, UserID: u.ID, Scopes: []string{u.Authority}, SessionID: uuid.NewString(),
		FirstName: u.FirstName, LastName: u.LastName, Enabled: true, Iss: "thingsboard.io",
		Iat: now.Unix(), Exp: now.Add(e.cfg.JWTExpiration).Unix(),
	}
	if u.Authority != authSysAdmin {
		c.TenantID = u.TenantID
		c.CustomerID = u.CustomerID
	}
	r := c
	r.Scopes = []string{"REFRESH_TOKEN"}
	r.Exp = now.Add(7 * 24 * time.Hour).Unix() // JWT_REFRESH_TOKEN_EXPIRATION_TIME: 604800 s
	return jwtPair{Token: e.jwt.sign(c), RefreshToken: e.jwt.sign(r)}
}

// handleLogin is POST /api/auth/login (docs/thingsboard.md §5).
func (e *Emulator) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	ok, err := decodeBody(r, &req)
	if !ok || err != nil || req.Username == "" || req.Password == "" {
		e.writeError(w, http.StatusUnauthorized, errCodeAuthentication, msgAuthFailed)
		return
	}
	e.st.mu.Lock()
	u := e.st.userByEmail(req.Username)
	e.st.mu.Unlock()
	if u == nil || u.Password == "" || u.Password != req.Password {
		e.writeError(w, http.StatusUnauthorized, errCodeAuthentication, msgBadCredentials)
		return
	}
	writeJSON(w, http.StatusOK, e.issue(u))
}

// handleRefresh is POST /api/auth/token {"refreshToken": …}.
func (e *Emulator) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RefreshToken string `json:"refreshToken"`
	}
	if ok, err := decodeBody(r, &req); !ok || err != nil {
		e.writeError(w, http.StatusUnauthorized, errCodeAuthentication, msgAuthFailed)
		return
	}
	c, err := e.jwt.parse(req.RefreshToken, e.cfg.Clock.Now())
	if errors.Is(err, errJWTExpired) {
		e.writeError(w, http.StatusUnauthorized, errCodeJWTExpired, msgTokenExpired)
		return
	}
	if err != nil || len(c.Scopes) != 1 || c.Scopes[0] != "REFRESH_TOKEN" {
		e.writeError(w, http.StatusUnauthorized, errCodeAuthentication, msgBadCredentials)
		return
	}
	e.st.mu.Lock()
	u := e.st.users[c.UserID]
	e.st.mu.Unlock()
	if u == nil {
		e.writeError(w, http.StatusUnauthorized, errCodeAuthentication, msgAuthFailed)
		return
	}
	writeJSON(w, http.StatusOK, e.issue(u))
}

func (e *Emulator) handleCurrentUser(w http.ResponseWriter, _ *http.Request, s session) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	writeJSON(w, http.StatusOK, userJSON(s.user))
}

// --- devices ------------------------------------------------------------------------------------

// handleSaveDevice is POST /api/device[?accessToken=] (docs/thingsboard.md §5). Only creation is modelled;
// a body with an "id" updates name, type, label and additionalInfo of that device.
func (e *Emulator) handleSaveDevice(w http.ResponseWriter, r *http.Request, s session) {
	if s.user.Authority != authTenantAdmin {
		e.forbidden(w)
		return
	}
	var req struct {
		ID *struct {
			ID string `json:"id"`
		} `json:"id"`
		Name           string          `json:"name"`
		Type           string          `json:"type"`
		Label          string          `json:"label"`
		AdditionalInfo json.RawMessage `json:"additionalInfo"`
	}
	if ok, err := decodeBody(r, &req); !ok || err != nil {
		e.badRequest(w, "Invalid request body")
		return
	}
	now := e.cfg.Clock.Now().UnixMilli()
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if req.ID != nil && req.ID.ID != "" {
		d := e.st.devices[req.ID.ID]
		if d == nil || d.TenantID != s.user.TenantID {
			e.notFound(w)
			return
		}
		if req.Name == "" {
			e.badRequest(w, errEmptyName.Error())
			return
		}
		if o := e.st.deviceByName(d.TenantID, req.Name); o != nil && o != d {
			e.badRequest(w, errDuplicateName.Error())
			return
		}
		d.Name, d.Label, d.AdditionalInfo = req.Name, req.Label, req.AdditionalInfo
		if req.Type != "" {
			d.Type = req.Type
		}
		d.Version++
		writeJSON(w, http.StatusOK, deviceJSON(d))
		return
	}
	d := &device{TenantID: s.user.TenantID, Name: req.Name, Type: req.Type, Label: req.Label,
		AdditionalInfo: req.AdditionalInfo, Token: r.URL.Query().Get("accessToken")}
	if err := e.st.addDevice(d, now); err != nil {
		e.badRequest(w, err.Error())
		return
	}
	e.log.Info("device created", "device", d.Name, "token", tokenHint(d.Token))
	writeJSON(w, http.StatusOK, deviceJSON(d))
}

// deviceFor loads a device by id for the caller: 400 for a malformed id, 404 if absent or in another
// tenant, 403 for a customer user and another customer's device. The caller holds the state lock.
func (e *Emulator) deviceFor(w http.ResponseWriter, id string, s session) *device {
	if _, err := uuid.Parse(id); err != nil {
		e.badRequest(w, "Invalid UUID string: "+id)
		return nil
	}
	d := e.st.devices[id]
	if d == nil || d.TenantID != s.user.TenantID {
		e.notFound(w)
		return nil
	}
	switch s.user.Authority {
	case authTenantAdmin:
	case authCustomerUser:
		if d.CustomerID != s.user.CustomerID {
			e.forbidden(w)
			return nil
		}
	default:
		e.forbidden(w)
		return nil
	}
	return d
}

func (e *Emulator) handleGetDevice(w http.ResponseWriter, r *http.Request, s session) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if d := e.deviceFor(w, r.PathValue("id"), s); d != nil {
		writeJSON(w, http.StatusOK, deviceJSON(d))
	}
}

func (e *Emulator) handleGetCredentials(w http.ResponseWriter, r *http.Request, s session) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if d := e.deviceFor(w, r.PathValue("id"), s); d != nil {
		writeJSON(w, http.StatusOK, credentialsJSON(d))
	}
}

// handleTenantDevice is GET /api/tenant/devices?deviceName= (tenant admin).
func (e *Emulator) handleTenantDevice(w http.ResponseWriter, r *http.Request, s session) {
	if s.user.Authority != authTenantAdmin {
		e.forbidden(w)
		return
	}
	if !r.URL.Query().Has("deviceName") {
		e.badRequest(w, "Required request parameter 'deviceName' for method parameter type String is not present")
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.st.deviceByName(s.user.TenantID, r.URL.Query().Get("deviceName"))
	if d == nil {
		e.notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, deviceJSON(d))
}

// --- customers and users ------------------------------------------------------------------------

func (e *Emulator) handleSaveCustomer(w http.ResponseWriter, r *http.Request, s session) {
	if s.user.Authority != authTenantAdmin {
		e.forbidden(w)
		return
	}
	var req struct {
		Title string `json:"title"`
	}
	if ok, err := decodeBody(r, &req); !ok || err != nil {
		e.badRequest(w, "Invalid request body")
		return
	}
	if req.Title == "" {
		e.badRequest(w, "Customer title should be specified!")
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if e.st.customerByTitle(s.user.TenantID, req.Title) != nil {
		e.badRequest(w, "Customer with such title already exists!")
		return
	}
	c := &customer{ID: newID(), CreatedTime: e.cfg.Clock.Now().UnixMilli(), TenantID: s.user.TenantID, Title: req.Title}
	e.st.customers[c.ID] = c
	writeJSON(w, http.StatusOK, customerJSON(c))
}

// handleSaveUser is POST /api/user[?sendActivationMail=false]: creates a customer user or tenant
// admin in the caller's tenant. The user has no password; use GET /api/user/{id}/token.
func (e *Emulator) handleSaveUser(w http.ResponseWriter, r *http.Request, s session) {
	if s.user.Authority != authTenantAdmin {
		e.forbidden(w)
		return
	}
	var req struct {
		Email      string `json:"email"`
		Authority  string `json:"authority"`
		CustomerID *struct {
			ID string `json:"id"`
		} `json:"customerId"`
		FirstName string `json:"firstName"`
		LastName  string `json:"lastName"`
	}
	if ok, err := decodeBody(r, &req); !ok || err != nil {
		e.badRequest(w, "Invalid request body")
		return
	}
	if req.Email == "" || !strings.Contains(req.Email, "@") {
		e.badRequest(w, "Invalid email address format '"+req.Email+"'!")
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	u := &user{ID: newID(), CreatedTime: e.cfg.Clock.Now().UnixMilli(), TenantID: s.user.TenantID,
		CustomerID: nullUUID, Email: strings.ToLower(req.Email), Authority: req.Authority,
		FirstName: req.FirstName, LastName: req.LastName}
	switch req.Authority {
	case authCustomerUser:
		if req.CustomerID == nil || e.st.customers[req.CustomerID.ID] == nil ||
			e.st.customers[req.CustomerID.ID].TenantID != s.user.TenantID {
			e.badRequest(w, "Customer user should be assigned to customer!")
			return
		}
		u.CustomerID = req.CustomerID.ID
	case authTenantAdmin:
	default:
		e.forbidden(w)
		return
	}
	if e.st.userByEmail(u.Email) != nil {
		e.badRequest(w, "User with email '"+u.Email+"'  already present in database!")
		return
	}
	e.st.users[u.ID] = u
	writeJSON(w, http.StatusOK, userJSON(u))
}

// handleUserToken is GET /api/user/{id}/token: a JwtPair for a user of the caller's tenant
// (security.user_token_access_enabled, docs/thingsboard.md §5).
func (e *Emulator) handleUserToken(w http.ResponseWriter, r *http.Request, s session) {
	if s.user.Authority != authTenantAdmin {
		e.forbidden(w)
		return
	}
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil {
		e.badRequest(w, "Invalid UUID string: "+id)
		return
	}
	e.st.mu.Lock()
	u := e.st.users[id]
	e.st.mu.Unlock()
	if u == nil || u.TenantID != s.user.TenantID {
		e.notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, e.issue(u))
}

// --- claiming -----------------------------------------------------------------------------------

// handleClaim is POST /api/customer/device/{deviceName}/claim, following the order of docs/thingsboard.md
// §4.1: authentication (rows 1-1b), authority (row 2), device by exact name in the caller's tenant
// (row 3), a missing body (row 5), then the claim decision (rows 6-10).
func (e *Emulator) handleClaim(w http.ResponseWriter, r *http.Request, s session) {
	body, err := readBody(r)
	if err != nil {
		e.badRequest(w, "Invalid request body")
		return
	}
	// No body, a blank body or JSON null all leave ClaimRequest null (row 5).
	secret, hasBody, err := claimRequestSecret(body)
	if err != nil {
		e.badRequest(w, "Invalid request body")
		return
	}
	if s.user.Authority != authCustomerUser {
		e.forbidden(w)
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.st.deviceByName(s.user.TenantID, r.PathValue("deviceName"))
	if d == nil {
		e.notFound(w)
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
	writeJSON(w, http.StatusOK, map[string]any{"device": deviceJSON(d), "response": string(res)})
}

// claimRequestSecret decodes ClaimRequest {secretKey} as Jackson does: null or absent is "", numbers
// and booleans are coerced to their text, objects and arrays are errors. present is false when
// there is no request object at all.
func claimRequestSecret(body []byte) (secret string, present bool, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var req map[string]any
	if err := dec.Decode(&req); err != nil {
		return "", false, err
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
		return "", false, errors.New("secretKey: cannot deserialize")
	}
}

// handleReclaim is DELETE /api/customer/device/{deviceName}/claim (docs/thingsboard.md §4.2): tenant admins and
// customer users, any device of the tenant, 200 with an empty body.
func (e *Emulator) handleReclaim(w http.ResponseWriter, r *http.Request, s session) {
	if s.user.Authority != authCustomerUser && s.user.Authority != authTenantAdmin {
		e.forbidden(w)
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.st.deviceByName(s.user.TenantID, r.PathValue("deviceName"))
	if d == nil {
		e.notFound(w)
		return
	}
	e.reclaim(d)
	w.WriteHeader(http.StatusOK)
}

// --- attributes ---------------------------------------------------------------------------------

// handleSaveAttributes is POST /api/plugins/telemetry/DEVICE/{id}/attributes/SERVER_SCOPE with a
// JSON object of key → value (docs/thingsboard.md §3.2).
func (e *Emulator) handleSaveAttributes(w http.ResponseWriter, r *http.Request, s session) {
	body, err := readBody(r)
	if err != nil {
		e.badRequest(w, "Invalid request body")
		return
	}
	var kv map[string]json.RawMessage
	if err := json.Unmarshal(body, &kv); err != nil || len(kv) == 0 {
		e.badRequest(w, "Invalid request body")
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.deviceFor(w, r.PathValue("id"), s)
	if d == nil {
		return
	}
	now := e.cfg.Clock.Now().UnixMilli()
	for k, v := range kv {
		e.st.setServerAttr(d.ID, k, v, now)
	}
	w.WriteHeader(http.StatusOK)
}

// handleGetAttributes is GET …/values/attributes/SERVER_SCOPE[?keys=a,b].
func (e *Emulator) handleGetAttributes(w http.ResponseWriter, r *http.Request, s session) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	d := e.deviceFor(w, r.PathValue("id"), s)
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
	for k, a := range e.st.attrs[d.ID] {
		if want == nil || want[k] {
			out = append(out, map[string]any{"lastUpdateTs": a.LastUpdate, "key": k, "value": a.Value})
		}
	}
	writeJSON(w, http.StatusOK, out)
}
