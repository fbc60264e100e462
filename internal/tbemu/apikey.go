package tbemu

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// API keys, ThingsBoard 4.3+ (ApiKeyController, ApiKeyServiceImpl, ApiKeyAuthenticationProvider;
// docs/thingsboard.md §9 "REST"). A key belongs to a user and authenticates as that user with the
// header "X-Authorization: ApiKey <value>" (or "Authorization: ApiKey <value>").

// apiKeyValuePrefix and apiKeyValueBytes are security.api_key.value_prefix ("tb_") and
// value_bytes_size (64): the value is the prefix and 64 random bytes in unpadded base64url.
const (
	apiKeyValuePrefix = "tb_"
	apiKeyValueBytes  = 64
	apiKeyHeader      = "ApiKey "
)

// apiKey is ApiKey (ApiKeyInfo plus its value).
type apiKey struct {
	ID             string
	CreatedTime    int64
	TenantID       string
	UserID         string
	Description    string
	Enabled        bool
	ExpirationTime int64 // epoch ms; 0: never expires
	Value          string
}

func newAPIKeyValue() string {
	b := make([]byte, apiKeyValueBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return apiKeyValuePrefix + base64.RawURLEncoding.EncodeToString(b)
}

// apiKeyJSON renders ApiKey; withValue is false for ApiKeyInfo (the value is returned only once,
// when the key is created).
func apiKeyJSON(k *apiKey, now time.Time, withValue bool) map[string]any {
	m := map[string]any{
		"id":             entityID{"API_KEY", k.ID},
		"createdTime":    k.CreatedTime,
		"tenantId":       entityID{"TENANT", k.TenantID},
		"userId":         entityID{"USER", k.UserID},
		"expirationTime": k.ExpirationTime,
		"description":    k.Description,
		"enabled":        k.Enabled,
		"expired":        k.ExpirationTime != 0 && now.UnixMilli() > k.ExpirationTime,
	}
	if withValue {
		m["value"] = k.Value
	}
	return m
}

// APIKeyOptions are the optional settings of AddAPIKey.
type APIKeyOptions struct {
	Description string    // "" means "tbemu"
	ExpiresAt   time.Time // zero: never expires
	Disabled    bool
}

// AddAPIKey creates an API key for the user with that e-mail, as POST /api/apiKey does, and returns
// its value: send it as "X-Authorization: ApiKey <value>".
func (e *Emulator) AddAPIKey(email string, opts APIKeyOptions) (string, error) {
	e.st.mu.Lock()
	u := e.st.userByEmail(email)
	if u == nil {
		e.st.mu.Unlock()
		return "", errors.New("API key reference a non-existent user!")
	}
	k := e.addAPIKeyLocked(u, opts)
	e.st.mu.Unlock()
	e.saveIfDirty()
	return k.Value, nil
}

func (e *Emulator) addAPIKeyLocked(u *user, opts APIKeyOptions) *apiKey {
	k := &apiKey{ID: newID(), CreatedTime: e.cfg.Clock.Now().UnixMilli(), TenantID: u.TenantID, UserID: u.ID,
		Description: opts.Description, Enabled: !opts.Disabled, Value: newAPIKeyValue()}
	if k.Description == "" {
		k.Description = "tbemu"
	}
	if !opts.ExpiresAt.IsZero() {
		k.ExpirationTime = opts.ExpiresAt.UnixMilli()
	}
	e.st.apiKeys[k.ID] = k
	e.st.dirty = true
	return k
}

// DemoAPIKey returns the API key of tenant@thingsboard.org that Config.Demo creates ("" without
// Demo). With a data directory it is created once and kept.
func (e *Emulator) DemoAPIKey() string {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if k := e.st.apiKeys[e.st.demoKeyID]; k != nil {
		return k.Value
	}
	return ""
}

// authenticateAPIKey is ApiKeyAuthenticationProvider.authenticate: an unknown or empty key is
// BadCredentialsException ("Invalid username or password"), a disabled key DisabledException
// ("User account is not active"), an expired one CredentialsExpiredException ("API key is
// expired"); all are 401 with errorCode 10.
func (e *Emulator) authenticateAPIKey(value string) (*user, string) {
	if value == "" {
		return nil, msgBadCredentials
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	var k *apiKey
	for _, c := range e.st.apiKeys {
		if c.Value == value {
			k = c
			break
		}
	}
	switch {
	case k == nil:
		return nil, msgBadCredentials
	case !k.Enabled:
		return nil, msgAccountNotActive
	case k.ExpirationTime != 0 && k.ExpirationTime < e.cfg.Clock.Now().UnixMilli():
		return nil, msgAPIKeyExpired
	}
	u := e.st.users[k.UserID]
	if u == nil {
		return nil, msgBadCredentials
	}
	return u, ""
}

// canWriteUser is checkUserId(…, WRITE) as the API key endpoints use it: a user may manage its own
// keys; a tenant administrator also those of its tenant's users.
func canWriteUser(caller, target *user) bool {
	if caller.ID == target.ID {
		return true
	}
	return caller.Authority == authTenantAdmin && target.TenantID == caller.TenantID
}

// handleSaveAPIKey is POST /api/apiKey: create ({userId, description, enabled, expirationTime}),
// or update description and enabled of an existing key (body with id; the value is not returned).
func (e *Emulator) handleSaveAPIKey(w http.ResponseWriter, r *http.Request, s session) {
	var req struct {
		ID *struct {
			ID string `json:"id"`
		} `json:"id"`
		UserID *struct {
			ID string `json:"id"`
		} `json:"userId"`
		Description    string `json:"description"`
		Enabled        bool   `json:"enabled"`
		ExpirationTime int64  `json:"expirationTime"`
	}
	if !e.decodeJSONBody(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Description) == "" {
		e.badRequest(w, "Validation error: description must not be blank")
		return
	}
	if req.UserID == nil || req.UserID.ID == "" {
		e.badRequest(w, "API key should be assigned to user!")
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	target := e.st.users[req.UserID.ID]
	if target == nil || (s.user.Authority != authSysAdmin && target.TenantID != s.user.TenantID) {
		e.writeError(w, http.StatusNotFound, errCodeItemNotFound, "User with id ["+req.UserID.ID+"] is not found")
		return
	}
	if !canWriteUser(s.user, target) {
		e.forbidden(w)
		return
	}
	now := e.cfg.Clock.Now()
	if req.ID != nil && req.ID.ID != "" {
		k := e.st.apiKeys[req.ID.ID]
		switch {
		case k == nil:
			e.badRequest(w, "Cannot update non-existent API key!")
			return
		case k.UserID != target.ID:
			e.badRequest(w, "Cannot update API key user id!")
			return
		case k.ExpirationTime != req.ExpirationTime:
			e.badRequest(w, "Cannot update API key expiration time!")
			return
		}
		k.Description, k.Enabled = req.Description, req.Enabled
		e.st.dirty = true
		writeJSON(w, http.StatusOK, apiKeyJSON(k, now, false))
		return
	}
	k := e.addAPIKeyLocked(target, APIKeyOptions{Description: req.Description, Disabled: !req.Enabled})
	k.ExpirationTime = req.ExpirationTime
	writeJSON(w, http.StatusOK, apiKeyJSON(k, now, true))
}

// handleUserAPIKeys is GET /api/apiKeys/{userId}?pageSize=&page=: the user's keys without values.
func (e *Emulator) handleUserAPIKeys(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("userId")
	if !e.validID(w, id) {
		return
	}
	pageSize, err1 := strconv.Atoi(r.URL.Query().Get("pageSize"))
	page, err2 := strconv.Atoi(r.URL.Query().Get("page"))
	if err1 != nil || err2 != nil || pageSize < 1 || page < 0 {
		e.badRequest(w, "Required request parameters 'pageSize' and 'page' must be numbers")
		return
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	target := e.st.users[id]
	if target == nil || target.TenantID != s.user.TenantID {
		e.writeError(w, http.StatusNotFound, errCodeItemNotFound, "User with id ["+id+"] is not found")
		return
	}
	if !canWriteUser(s.user, target) {
		e.forbidden(w)
		return
	}
	var keys []*apiKey
	for _, k := range e.st.apiKeys {
		if k.UserID == id {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].CreatedTime < keys[j].CreatedTime || (keys[i].CreatedTime == keys[j].CreatedTime && keys[i].ID < keys[j].ID)
	})
	now := e.cfg.Clock.Now()
	data := []map[string]any{}
	for i := page * pageSize; i < len(keys) && i < (page+1)*pageSize; i++ {
		data = append(data, apiKeyJSON(keys[i], now, false))
	}
	total := len(keys)
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "totalPages": (total + pageSize - 1) / pageSize,
		"totalElements": total, "hasNext": (page+1)*pageSize < total})
}

// apiKeyFor loads a key the caller may write; it writes the error otherwise. The caller holds the
// state lock.
func (e *Emulator) apiKeyFor(w http.ResponseWriter, id string, s session) *apiKey {
	if !e.validID(w, id) {
		return nil
	}
	k := e.st.apiKeys[id]
	if k == nil || k.TenantID != s.user.TenantID {
		e.writeError(w, http.StatusNotFound, errCodeItemNotFound, "Api key with id ["+id+"] is not found")
		return nil
	}
	if u := e.st.users[k.UserID]; u == nil || !canWriteUser(s.user, u) {
		e.forbidden(w)
		return nil
	}
	return k
}

// handleEnableAPIKey is PUT /api/apiKey/{id}/enabled/{enabledValue}.
func (e *Emulator) handleEnableAPIKey(w http.ResponseWriter, r *http.Request, s session) {
	enabled, err := strconv.ParseBool(r.PathValue("enabled"))
	if err != nil {
		e.badRequest(w, "Invalid boolean: "+r.PathValue("enabled"))
		return
	}
	e.updateAPIKey(w, r, s, func(k *apiKey) { k.Enabled = enabled })
}

// updateAPIKey applies change to the path's key and answers with the ApiKeyInfo.
func (e *Emulator) updateAPIKey(w http.ResponseWriter, r *http.Request, s session, change func(*apiKey)) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if k := e.apiKeyFor(w, r.PathValue("id"), s); k != nil {
		change(k)
		e.st.dirty = true
		writeJSON(w, http.StatusOK, apiKeyJSON(k, e.cfg.Clock.Now(), false))
	}
}

// handleAPIKeyDescription is PUT /api/apiKey/{id}/description with the new description as body
// (a JSON string or plain text; empty clears it).
func (e *Emulator) handleAPIKeyDescription(w http.ResponseWriter, r *http.Request, s session) {
	body, err := readBody(r)
	if err != nil {
		e.badRequest(w, "Invalid request body")
		return
	}
	desc := string(body)
	var js string
	if json.Unmarshal(body, &js) == nil {
		desc = js
	}
	e.updateAPIKey(w, r, s, func(k *apiKey) { k.Description = desc })
}

// handleDeleteAPIKey is DELETE /api/apiKey/{id}: 200 with an empty body.
func (e *Emulator) handleDeleteAPIKey(w http.ResponseWriter, r *http.Request, s session) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if k := e.apiKeyFor(w, r.PathValue("id"), s); k != nil {
		delete(e.st.apiKeys, k.ID)
		if e.st.demoKeyID == k.ID {
			e.st.demoKeyID = ""
		}
		e.st.dirty = true
		w.WriteHeader(http.StatusOK)
	}
}
