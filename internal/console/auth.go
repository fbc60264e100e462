package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

const (
	sessionCookie = "claimsvc_session"
	csrfCookie    = "claimsvc_csrf"
	// SessionTTL is how long a login lasts.
	SessionTTL = 8 * time.Hour
)

// session is what a session cookie says: who (the first 4 bytes of the API
// key's SHA-256, which names the key without revealing it), until when, and a
// nonce the CSRF tokens are bound to.
type session struct {
	keyID   [4]byte
	expires time.Time
	nonce   [16]byte
}

// actor is the audit trail's name for what this session does.
func (s session) actor() string { return "console:" + hex.EncodeToString(s.keyID[:]) }

func (c *Console) mac(parts ...[]byte) []byte {
	m := hmac.New(sha256.New, c.key)
	for _, p := range parts {
		m.Write(p)
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// encode: version, expiry, key id and nonce, then their MAC.
func (c *Console) encode(s session) string {
	b := []byte{1}
	b = binary.BigEndian.AppendUint64(b, uint64(s.expires.Unix()))
	b = append(append(b, s.keyID[:]...), s.nonce[:]...)
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(c.mac([]byte("session"), b))
}

func (c *Console) decode(v string, now time.Time) (session, bool) {
	p, m, ok := strings.Cut(v, ".")
	b, err1 := base64.RawURLEncoding.DecodeString(p)
	mac, err2 := base64.RawURLEncoding.DecodeString(m)
	if !ok || err1 != nil || err2 != nil || len(b) != 29 || b[0] != 1 || !hmac.Equal(mac, c.mac([]byte("session"), b)) {
		return session{}, false
	}
	var s session
	s.expires = time.Unix(int64(binary.BigEndian.Uint64(b[1:9])), 0)
	copy(s.keyID[:], b[9:13])
	copy(s.nonce[:], b[13:])
	if !now.Before(s.expires) || !c.keyStillConfigured(s.keyID) {
		return session{}, false
	}
	return s, true
}

// keyStillConfigured: a session ends when its key is removed from
// CLAIMSVC_API_KEYS.
func (c *Console) keyStillConfigured(id [4]byte) bool {
	for _, h := range c.d.KeyHashes {
		if len(h) >= 4 && [4]byte(h[:4]) == id {
			return true
		}
	}
	return false
}

// keyID returns the id of the configured key that key is, comparing with
// every digest in constant time.
func (c *Console) keyID(key string) ([4]byte, bool) {
	sum := sha256.Sum256([]byte(key))
	var id [4]byte
	found := 0
	for _, h := range c.d.KeyHashes {
		eq := subtle.ConstantTimeCompare(sum[:], h)
		found |= eq
		if eq == 1 {
			copy(id[:], h[:4])
		}
	}
	return id, found == 1
}

// secure reports whether the browser reached us over TLS (directly, or
// through a proxy that says so): cookies are then Secure. A client that
// claims https over plain HTTP only makes its own cookies stricter.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") ||
		strings.Contains(strings.ToLower(r.Header.Get("Forwarded")), "proto=https")
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: c.d.Prefix + "/", MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
}

type ctxKey int

const sessionKey ctxKey = 0

// requireSession lets a request through with a valid session (or in the
// open console), with its actor in the context; others go to the login page.
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if c.open() {
			ctx = claim.WithActor(ctx, "console")
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		ck, err := r.Cookie(sessionCookie)
		if err == nil {
			if s, ok := c.decode(ck.Value, time.Now()); ok {
				ended, err := c.d.Store.SessionEnded(ctx, s.nonce[:])
				if err != nil {
					c.storeFailed(w, r, err)
					return
				}
				if !ended {
					ctx = claim.WithActor(context.WithValue(ctx, sessionKey, s), s.actor())
					next.ServeHTTP(w, r.WithContext(ctx))
					return
				}
			}
		}
		if r.Method != http.MethodGet {
			c.fail(w, r, http.StatusUnauthorized, "Your session has ended: log in again.")
			return
		}
		http.Redirect(w, r, c.d.Prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	})
}

// csrfID is what this browser's CSRF tokens are bound to: the session's
// nonce, or (open console, login page) the csrf cookie, made here if absent.
func (c *Console) csrfID(w http.ResponseWriter, r *http.Request) []byte {
	if s, ok := r.Context().Value(sessionKey).(session); ok {
		return s.nonce[:]
	}
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		return []byte(ck.Value)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	c.setCookie(w, r, csrfCookie, v, 24*time.Hour)
	return []byte(v)
}

// csrfToken is the token a form of this page carries.
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request) string {
	return base64.RawURLEncoding.EncodeToString(c.mac([]byte("csrf"), c.csrfID(w, r))[:18])
}

// validCSRF checks a submitted form's token, and that the request comes from
// this origin when the browser says where it comes from.
func (c *Console) validCSRF(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !sameHost(u.Host, r) {
			return false
		}
	}
	var id []byte
	if s, ok := r.Context().Value(sessionKey).(session); ok {
		id = s.nonce[:]
	} else if ck, err := r.Cookie(csrfCookie); err == nil {
		id = []byte(ck.Value)
	} else {
		return false
	}
	want := base64.RawURLEncoding.EncodeToString(c.mac([]byte("csrf"), id)[:18])
	return subtle.ConstantTimeCompare([]byte(r.FormValue("csrf")), []byte(want)) == 1
}

// sameHost reports whether host is the one the browser addressed: the Host
// header, or the one a reverse proxy says it forwarded (X-Forwarded-Host; a
// proxy often sends its upstream's name as Host). A cross-site form cannot set
// that header, and the form's token is checked anyway.
func sameHost(host string, r *http.Request) bool {
	if host == r.Host {
		return true
	}
	fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ",")
	return fwd != "" && strings.EqualFold(strings.TrimSpace(fwd), host)
}

// checkCSRF guards every POST. The upload's multipart body is bounded first.
func (c *Console) checkCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxUpload+64<<10)
			if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
				if err := r.ParseMultipartForm(1 << 20); err != nil {
					c.fail(w, r, http.StatusRequestEntityTooLarge, "The file is too large: at most 5 MB (use `claimsvc import` for larger files).")
					return
				}
			}
			if !c.validCSRF(r) {
				c.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this console: reload the page and try again.")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.open() {
		http.Redirect(w, r, c.d.Prefix+"/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", map[string]any{"Next": safeNext(c.d.Prefix, r.URL.Query().Get("next"))})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if c.open() {
		http.Redirect(w, r, c.d.Prefix+"/", http.StatusSeeOther)
		return
	}
	next := safeNext(c.d.Prefix, r.FormValue("next"))
	if !c.validCSRF(r) {
		c.render(w, r, http.StatusForbidden, "login", map[string]any{"Next": next,
			"Error": "This form has expired: try again."})
		return
	}
	id, ok := c.keyID(strings.TrimSpace(r.FormValue("key")))
	if !ok {
		time.Sleep(300 * time.Millisecond) // guesses cost time; the per-IP rate limit bounds them too
		c.d.Log.WarnContext(r.Context(), "console login refused")
		c.render(w, r, http.StatusUnauthorized, "login", map[string]any{"Next": next,
			"Error": "That API key is not accepted."})
		return
	}
	s := session{keyID: id, expires: time.Now().Add(SessionTTL)}
	_, _ = rand.Read(s.nonce[:])
	c.setCookie(w, r, sessionCookie, c.encode(s), SessionTTL)
	c.d.Log.InfoContext(r.Context(), "console login", "actor", s.actor())
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session for good, on every replica (a copy of its cookie
// no longer opens the console), and clears the cookie.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if s, ok := r.Context().Value(sessionKey).(session); ok {
		if err := c.d.Store.EndSession(r.Context(), s.nonce[:], s.expires); err != nil {
			c.storeFailed(w, r, err)
			return
		}
		c.d.Log.InfoContext(r.Context(), "console logout", "actor", s.actor())
	}
	c.setCookie(w, r, sessionCookie, "", -time.Second)
	target := c.d.Prefix + "/login"
	if c.open() {
		target = c.d.Prefix + "/"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// safeNext keeps a post-login redirect inside the console.
func safeNext(prefix, next string) string {
	if !strings.HasPrefix(next, prefix+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return prefix + "/"
	}
	return next
}
