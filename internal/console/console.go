// Package console is claimsvc's operator console: server-rendered pages at
// /ui/ (html/template and a little progressive JavaScript, embedded in the
// binary) to watch the claims, find one, read its audit trail, retry or
// cancel it, make one, and import a CSV of devices (docs/design.md §12).
//
// It reads and acts through the store, as the API does, and never shows a
// token or a secret: hints only. When API keys are configured, a person logs
// in with one; the session is a signed cookie (HttpOnly, SameSite=Strict,
// Secure behind TLS) and every form carries a CSRF token. Every change is in
// the audit trail with the actor "console" (and the key's digest prefix).
package console

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/health"
	"github.com/claimsvc/claimsvc/internal/store"
)

// Store is what the console needs of the claim store (internal/store).
type Store interface {
	Stats(ctx context.Context) (claim.Stats, error)
	Search(ctx context.Context, f claim.Filter, limit int, cursor string) (claim.Page, error)
	RecentOutcomes(ctx context.Context, kinds []string, limit int) ([]claim.EventOf, error)
	Get(ctx context.Context, id uuid.UUID) (claim.Claim, error)
	Events(ctx context.Context, id uuid.UUID) ([]claim.Event, error)
	Retry(ctx context.Context, id uuid.UUID, hold time.Duration, force bool) (claim.Claim, error)
	Create(ctx context.Context, req claim.Request, hold time.Duration) (claim.Accepted, error)
	CreateBatch(ctx context.Context, reqs []claim.Request, hold time.Duration) ([]claim.ItemResult, error)
	SessionKey(ctx context.Context, name string) ([]byte, error)
	EndSession(ctx context.Context, nonce []byte, expires time.Time) error
	SessionEnded(ctx context.Context, nonce []byte) (bool, error)
	StartImport(ctx context.Context, fileName, actor string, total int) (uuid.UUID, error)
	AdvanceImport(ctx context.Context, id uuid.UUID, st store.ImportStep) error
	FinishImport(ctx context.Context, id uuid.UUID, stoppedBy error) error
	GetImport(ctx context.Context, id uuid.UUID) (store.Import, error)
	Imports(ctx context.Context, limit int) ([]store.Import, error)
	StatusCounts(ctx context.Context, ids []uuid.UUID) (map[claim.Status]int64, error)
}

// Canceller cancels claims (the store; internal/track also revokes delivered
// attribute claims).
type Canceller interface {
	Cancel(ctx context.Context, id uuid.UUID) (claim.Claim, error)
}

// Deps is everything the console depends on.
type Deps struct {
	Store     Store
	Canceller Canceller // nil: the store cannot cancel (set it)
	Validator *claim.Validator
	Hold      time.Duration // CLAIMSVC_TB_CLAIM_HOLD
	Wake      func()        // nudges the dispatcher after new claims; may be nil
	// KeyHashes are the SHA-256 digests of the API keys (CLAIMSVC_API_KEYS).
	// With none, the console is open (the demo, or the explicit opt-out),
	// as the API's operator routes are.
	KeyHashes [][]byte
	Health    *health.Board // dependencies for the overview; nil: not shown
	Log       *slog.Logger
	// Prefix is where the console is mounted [/ui].
	Prefix string
	// MaxImports is how many CSV imports run at once [2].
	MaxImports int
}

// Console serves the pages. Close stops imports under way (they are marked
// stopped: the same file uploaded again sends the rest).
type Console struct {
	d       Deps
	key     []byte // signs sessions and CSRF tokens; shared by replicas (store.SessionKey)
	pages   *pages
	imports chan struct{} // a slot per running import
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// New returns the console, with its session key read (or made) in the
// database.
func New(ctx context.Context, d Deps) (*Console, error) {
	if d.Prefix == "" {
		d.Prefix = "/ui"
	}
	if d.MaxImports <= 0 {
		d.MaxImports = 2
	}
	if d.Wake == nil {
		d.Wake = func() {}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	key, err := d.Store.SessionKey(ctx, "console-session")
	if err != nil {
		return nil, err
	}
	p, err := loadPages()
	if err != nil {
		return nil, err
	}
	c := &Console{d: d, key: key, pages: p, imports: make(chan struct{}, d.MaxImports)}
	c.ctx, c.stop = context.WithCancel(context.WithoutCancel(ctx))
	return c, nil
}

// Close stops the imports under way and waits for them.
func (c *Console) Close() {
	c.stop()
	c.wg.Wait()
}

// open reports whether no API key is configured: nobody logs in.
func (c *Console) open() bool { return len(c.d.KeyHashes) == 0 }

// Handler returns the console's routes, relative to its prefix (mount it
// there, e.g. with chi's Mount).
func (c *Console) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	r.Get("/static/{file}", c.static)
	r.Get("/login", c.loginPage)
	r.Post("/login", c.login)
	r.Group(func(r chi.Router) {
		r.Use(c.requireSession, c.checkCSRF)
		r.Get("/", c.overview)
		r.Post("/logout", c.logout)
		r.Get("/claims", c.claimList)
		r.Get("/claims/{id}", c.claimDetail)
		r.Post("/claims/{id}/retry", c.retry)
		r.Post("/claims/{id}/cancel", c.cancel)
		r.Get("/new", c.newClaimPage)
		r.Post("/new", c.newClaim)
		r.Get("/import", c.importPage)
		r.Post("/import", c.startImport)
		r.Get("/imports/{id}", c.importProgress)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "There is no such page.")
	})
	return r
}

// securityHeaders: no framing, no inline script, nothing cached, no referrer
// outside.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
