package tbemu

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// routes registers the REST subset and the HTTP device API. Routes that change what ThingsBoard
// keeps in its database save the state before they answer (persistent).
func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/auth/login", e.handleLogin)
	mux.HandleFunc("POST /api/auth/token", e.handleRefresh)
	mux.HandleFunc("GET /api/auth/user", e.authed(e.handleCurrentUser))
	mux.HandleFunc("POST /api/apiKey", e.persistent(e.authed(e.handleSaveAPIKey)))
	mux.HandleFunc("GET /api/apiKeys/{userId}", e.authed(e.handleUserAPIKeys))
	mux.HandleFunc("PUT /api/apiKey/{id}/enabled/{enabled}", e.persistent(e.authed(e.handleEnableAPIKey)))
	mux.HandleFunc("PUT /api/apiKey/{id}/description", e.persistent(e.authed(e.handleAPIKeyDescription)))
	mux.HandleFunc("DELETE /api/apiKey/{id}", e.persistent(e.authed(e.handleDeleteAPIKey)))
	mux.HandleFunc("POST /api/deviceProfile", e.persistent(e.authed(e.handleSaveProfile)))
	mux.HandleFunc("GET /api/deviceProfile/{id}", e.authed(e.handleGetProfile))
	mux.HandleFunc("POST /api/device", e.persistent(e.authed(e.handleSaveDevice)))
	mux.HandleFunc("GET /api/device/{id}", e.authed(e.handleGetDevice))
	mux.HandleFunc("GET /api/device/{id}/credentials", e.authed(e.handleGetCredentials))
	mux.HandleFunc("GET /api/tenant/devices", e.authed(e.handleTenantDevice))
	mux.HandleFunc("POST /api/customer", e.persistent(e.authed(e.handleSaveCustomer)))
	mux.HandleFunc("POST /api/user", e.persistent(e.authed(e.handleSaveUser)))
	mux.HandleFunc("GET /api/user/{id}/token", e.authed(e.handleUserToken))
	mux.HandleFunc("POST /api/customer/device/{deviceName}/claim", e.persistent(e.authed(e.handleClaim)))
	mux.HandleFunc("DELETE /api/customer/device/{deviceName}/claim", e.persistent(e.authed(e.handleReclaim)))
	mux.HandleFunc("POST /api/plugins/telemetry/{entityType}/{id}/attributes/{scope}", e.persistent(e.authed(e.handleSaveAttributes)))
	mux.HandleFunc("POST /api/plugins/telemetry/{entityType}/{id}/{scope}", e.persistent(e.authed(e.handleSaveAttributes)))
	mux.HandleFunc("DELETE /api/plugins/telemetry/{entityType}/{id}/{scope}", e.persistent(e.authed(e.handleDeleteAttributes)))
	mux.HandleFunc("GET /api/plugins/telemetry/{entityType}/{id}/values/attributes/{scope}", e.authed(e.handleGetAttributes))
	mux.HandleFunc("POST /api/v1/{token}/claim", e.handleDeviceHTTPClaim)
	return mux
}

// persistent saves the state after h, before the (buffered) answer leaves, so a 200 means the
// change is on disk as it is in ThingsBoard's database.
func (e *Emulator) persistent(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h(w, r)
		e.saveIfDirty()
	}
}

// session is the authenticated caller of a REST request.
type session struct {
	claims jwtClaims
	user   *user
}

// authHeader is the credential header: X-Authorization, else Authorization (accepted from TB 4.3).
func authHeader(r *http.Request) string {
	if h := r.Header.Get("X-Authorization"); h != "" {
		return h
	}
	return r.Header.Get("Authorization")
}

// authed wraps a handler with ThingsBoard's authentication filters (docs/thingsboard.md §4.1 rows
// 1, 1a, 1b; docs/thingsboard.md §9): "ApiKey <value>" goes to
// ApiKeyTokenAuthenticationProcessingFilter, "Bearer <JWT>" and a missing header to
// JwtTokenAuthenticationProcessingFilter.
func (e *Emulator) authed(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hdr := authHeader(r)
		if v, ok := strings.CutPrefix(hdr, apiKeyHeader); ok {
			u, msg := e.authenticateAPIKey(v)
			if u == nil {
				e.writeError(w, http.StatusUnauthorized, errCodeAuthentication, msg)
				return
			}
			h(w, r, session{user: u})
			return
		}
		tok, ok := strings.CutPrefix(hdr, "Bearer ")
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

// validID is toUUID for an id in the path: a malformed UUID is 400 errorCode 31 ("Invalid UUID
// string"). It writes that answer and reports false.
func (e *Emulator) validID(w http.ResponseWriter, id string) bool {
	if _, err := uuid.Parse(id); err != nil {
		e.badRequest(w, "Invalid UUID string: "+id)
		return false
	}
	return true
}

func (e *Emulator) badRequest(w http.ResponseWriter, msg string) {
	e.writeError(w, http.StatusBadRequest, errCodeBadRequestParams, msg)
}

// readBody reads a request body of at most 1 MiB.
func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}

// decodeBody decodes a JSON request body; an empty body is reported as (false, nil). It is for the
// authentication filters, which read the body themselves whatever its Content-Type.
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

// jsonContentType reports whether the request's Content-Type is one Spring's Jackson converter
// reads (application/json or application/*+json), and the type as Spring names it in errors (a
// missing header is application/octet-stream).
func jsonContentType(r *http.Request) (ok, missing bool, name string) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false, true, "application/octet-stream"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, false, ct
	}
	name = mt
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name += ";" + k + "=" + params[k]
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")), false, name
}

// requestBodyError is an exception Spring throws while it resolves a controller's @RequestBody:
// BaseController's @ExceptionHandler turns it into 500 errorCode 2 with the exception's message.
func (e *Emulator) requestBodyError(w http.ResponseWriter, msg string) {
	e.writeError(w, http.StatusInternalServerError, errCodeGeneral, msg)
}

// unsupportedContentType is HttpMediaTypeNotSupportedException's message.
func unsupportedContentType(name string) string {
	return "Content-Type '" + name + "' is not supported"
}

// decodeJSONBody reads a required @RequestBody object into v as Spring MVC does: a body that is not
// JSON by its Content-Type, a missing body and malformed JSON are refused with 500 errorCode 2. It
// reports whether v was filled; otherwise it has written the answer.
func (e *Emulator) decodeJSONBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := readBody(r)
	if err != nil {
		e.requestBodyError(w, "I/O error while reading input message")
		return false
	}
	if ok, _, name := jsonContentType(r); !ok {
		e.requestBodyError(w, unsupportedContentType(name))
		return false
	}
	if len(body) == 0 {
		e.requestBodyError(w, "Required request body is missing")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		e.requestBodyError(w, "JSON parse error: "+err.Error())
		return false
	}
	return true
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
		Name            string          `json:"name"`
		Type            string          `json:"type"`
		Label           string          `json:"label"`
		AdditionalInfo  json.RawMessage `json:"additionalInfo"`
		DeviceProfileID *struct {
			ID string `json:"id"`
		} `json:"deviceProfileId"`
	}
	if !e.decodeJSONBody(w, r, &req) {
		return
	}
	profileID := ""
	if req.DeviceProfileID != nil {
		profileID = req.DeviceProfileID.ID
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
		switch {
		case profileID != "":
			p := e.st.profiles[profileID]
			if p == nil || p.TenantID != d.TenantID {
				e.badRequest(w, errNoProfile.Error())
				return
			}
			d.ProfileID, d.Type = p.ID, p.Name
		case req.Type != "" && req.Type != d.Type:
			// Without a profile id the type names the profile (findOrCreateDeviceProfile).
			p := e.st.profileForType(d.TenantID, req.Type, e.cfg.Clock.Now().UnixMilli())
			d.ProfileID, d.Type = p.ID, p.Name
		}
		d.Name, d.Label, d.AdditionalInfo = req.Name, req.Label, req.AdditionalInfo
		d.Version++
		e.st.dirty = true
		writeJSON(w, http.StatusOK, e.deviceJSON(d))
		return
	}
	d := &device{TenantID: s.user.TenantID, Name: req.Name, Type: req.Type, Label: req.Label,
		AdditionalInfo: req.AdditionalInfo, Token: r.URL.Query().Get("accessToken"), ProfileID: profileID}
	if err := e.st.addDevice(d, now); err != nil {
		e.badRequest(w, err.Error())
		return
	}
	e.log.Info("device created", "device", d.Name, "token", tokenHint(d.Token))
	writeJSON(w, http.StatusOK, e.deviceJSON(d))
}

// deviceLookup is the outcome of finding a device by id for a caller.
type deviceLookup int

const (
	deviceOK deviceLookup = iota
	deviceBadID
	deviceMissing
	deviceForbidden
)

// lookupDevice finds a device of the caller's tenant by id; a customer user may only reach its
// customer's devices. The caller holds the state lock.
func (e *Emulator) lookupDevice(id string, s session) (*device, deviceLookup) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, deviceBadID
	}
	d := e.st.devices[id]
	if d == nil || d.TenantID != s.user.TenantID {
		return nil, deviceMissing
	}
	switch s.user.Authority {
	case authTenantAdmin:
	case authCustomerUser:
		if d.CustomerID != s.user.CustomerID {
			return nil, deviceForbidden
		}
	default:
		return nil, deviceForbidden
	}
	return d, deviceOK
}

// deviceFor is BaseController.checkDeviceId: 400 for a malformed id, 404 "Device with id [...] is
// not found" if absent or in another tenant, 403 for a customer user and another customer's
// device. The caller holds the state lock.
func (e *Emulator) deviceFor(w http.ResponseWriter, id string, s session) *device {
	d, res := e.lookupDevice(id, s)
	switch res {
	case deviceBadID:
		e.badRequest(w, "Invalid UUID string: "+id)
	case deviceMissing:
		e.writeError(w, http.StatusNotFound, errCodeItemNotFound, "Device with id ["+id+"] is not found")
	case deviceForbidden:
		e.forbidden(w)
	}
	return d
}

func (e *Emulator) handleGetDevice(w http.ResponseWriter, r *http.Request, s session) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if d := e.deviceFor(w, r.PathValue("id"), s); d != nil {
		writeJSON(w, http.StatusOK, e.deviceJSON(d))
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
		e.notFound(w) // checkNotNull: "Requested item wasn't found!"
		return
	}
	writeJSON(w, http.StatusOK, e.deviceJSON(d))
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
	if !e.decodeJSONBody(w, r, &req) {
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
	e.st.dirty = true
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
	if !e.decodeJSONBody(w, r, &req) {
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
	e.st.dirty = true
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
	if !e.validID(w, id) {
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
