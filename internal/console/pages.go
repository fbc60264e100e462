package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/factory"
	"github.com/claimsvc/claimsvc/internal/health"
)

//go:embed templates/*.html static/*
var assets embed.FS

// pages holds one template set per page (the layout and the page).
type pages struct {
	byName map[string]*template.Template
}

var pageNames = []string{"login", "error", "overview", "claims", "claim", "new", "import", "progress"}

func loadPages() (*pages, error) {
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range pageNames {
		t, err := template.New("layout").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return nil, err
		}
		p.byName[n] = t
	}
	return p, nil
}

// view is what every page's template gets.
type view struct {
	Title      string
	Prefix     string
	CSRF       string
	Nav        string // the main navigation's current item; "" hides it
	ActorLabel string
	CanLogOut  bool
	Flash      string
	Error      string
	Data       any
}

var titles = map[string]string{"login": "Log in", "error": "Error", "overview": "Overview", "claims": "Claims",
	"claim": "Claim", "new": "New claim", "import": "Import CSV", "progress": "Import"}

// render writes page name with data. Flash and error messages come in data
// as "Flash"/"Error" keys of a map, or through the query (flash only, from a
// fixed list: nothing a link can inject).
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	v := view{Title: titles[name], Prefix: c.d.Prefix, CSRF: c.csrfToken(w, r), Data: data}
	if name != "login" {
		v.Nav = name
		if name == "claim" {
			v.Nav = "claims"
		}
		if name == "progress" {
			v.Nav = "import"
		}
		v.ActorLabel, v.CanLogOut = actorLabel(claim.ActorFrom(r.Context())), !c.open()
	}
	if m, ok := data.(map[string]any); ok {
		v.Error, _ = m["Error"].(string)
	}
	if msg, ok := flashes[r.URL.Query().Get("done")]; ok {
		v.Flash = msg
	}
	var buf bytes.Buffer
	if err := c.pages.byName[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.d.Log.ErrorContext(r.Context(), "console page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

var flashes = map[string]string{
	"retried":   "The claim is pending again and will be sent now.",
	"cancelled": "The claim is cancelled.",
	"created":   "The claim is stored and will be sent.",
}

// fail shows an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := view{Title: http.StatusText(status), Prefix: c.d.Prefix, CSRF: c.csrfToken(w, r), Data: msg, Nav: "error",
		ActorLabel: actorLabel(claim.ActorFrom(r.Context())), CanLogOut: !c.open()}
	var buf bytes.Buffer
	if err := c.pages.byName["error"].ExecuteTemplate(&buf, "layout", v); err != nil {
		http.Error(w, msg, status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// storeFailed shows a store error as a person should read it.
func (c *Console) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch claim.ErrorCode(err) {
	case claim.CodeNotFound:
		c.fail(w, r, http.StatusNotFound, "There is no such claim.")
	case claim.CodeUnavailable:
		c.fail(w, r, http.StatusServiceUnavailable, "The database does not answer. Try again in a moment.")
	case claim.CodeInvalid:
		c.fail(w, r, http.StatusUnprocessableEntity, problemText(err))
	default:
		c.d.Log.ErrorContext(r.Context(), "console", "err", err)
		c.fail(w, r, http.StatusInternalServerError, "Something went wrong; the service's log has the details.")
	}
}

// problemText is a claim error as one line a person reads: the message and
// each field's rule (never a token or a secret: claim errors hold neither).
func problemText(err error) string {
	var ce *claim.Error
	if !errors.As(err, &ce) {
		return "internal error"
	}
	msg := ce.Message
	for _, f := range ce.Fields {
		msg += "; " + f.Field + " " + f.Message
	}
	if ce.Blocking != nil {
		msg += " (claim " + ce.Blocking.String() + ")"
	}
	return msg
}

func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := path.Base(chi.URLParam(r, "file"))
	b, err := fs.ReadFile(assets, "static/"+name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(b)
}

type tile struct {
	Status claim.Status
	Count  int64
}

type dep struct {
	Name string
	health.State
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st, err := c.d.Store.Stats(ctx)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	del, err := c.d.Store.RecentOutcomes(ctx, []string{"delivered"}, 10)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	fails, err := c.d.Store.RecentOutcomes(ctx, []string{"rejected", "failed"}, 8)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	tiles := make([]tile, len(claim.Statuses))
	for i, s := range claim.Statuses {
		tiles[i] = tile{s, st.Counts[s]}
	}
	var deps []dep
	if c.d.Health != nil {
		for name, s := range c.d.Health.Snapshot() {
			deps = append(deps, dep{name, s})
		}
		sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
	}
	c.render(w, r, http.StatusOK, "overview", map[string]any{"Stats": st, "Tiles": tiles, "Deliveries": del,
		"Failures": fails, "Health": deps})
}

// hintPrefix accepts a hint as shown ("DHT1…EN", also typed with "...") or
// its first 1 to 4 characters; anything else (a whole token, say) is refused,
// so that no token is ever echoed on a page or kept in a URL.
func hintFilter(s string) (string, bool) {
	s = strings.ReplaceAll(strings.TrimSpace(s), "...", "…")
	switch {
	case s == "":
		return "", true
	case strings.Count(s, "…") == 1 && len([]rune(s)) <= 7 && claim.ValidToken(strings.ReplaceAll(s, "…", "")):
		return s, true
	case len(s) <= 4 && claim.ValidToken(s):
		return s, true
	}
	return "", false
}

const timeInput = "2006-01-02T15:04"

func (c *Console) claimList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := claim.Filter{Status: claim.Status(q.Get("status")), DeviceName: strings.TrimSpace(q.Get("device"))}
	data := map[string]any{"Statuses": claim.Statuses, "From": q.Get("from"), "To": q.Get("to")}
	var problems []string
	if f.Status != "" && !f.Status.Valid() {
		problems, f.Status = append(problems, "unknown status"), ""
	}
	hint, ok := hintFilter(q.Get("hint"))
	if !ok {
		problems = append(problems, "type the token hint as shown (first 4 … last 2, e.g. DHT1…EN) or its first 1 to 4 characters: the console never takes a whole token")
	}
	f.TokenHint = hint
	f.DeviceName = truncateRunes(f.DeviceName, claim.MaxDeviceName)
	loc := time.Local
	if v := q.Get("from"); v != "" {
		if t, err := time.ParseInLocation(timeInput, v, loc); err == nil {
			f.From = t
		} else {
			problems = append(problems, "from: not a date and time")
		}
	}
	if v := q.Get("to"); v != "" {
		if t, err := time.ParseInLocation(timeInput, v, loc); err == nil {
			f.To = t
		} else {
			problems = append(problems, "to: not a date and time")
		}
	}
	cursor := q.Get("cursor")
	page, err := c.d.Store.Search(r.Context(), f, 50, cursor)
	if claim.ErrorCode(err) == claim.CodeInvalid && cursor != "" {
		problems, cursor = append(problems, "that page is no longer valid: here is the first"), ""
		page, err = c.d.Store.Search(r.Context(), f, 50, "")
	}
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	keep := url.Values{}
	for _, k := range []string{"status", "device", "from", "to"} {
		if v := q.Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	if hint != "" {
		keep.Set("hint", hint)
	}
	data["Filter"], data["Page"], data["Cursor"] = f, page, cursor
	data["FirstURL"] = c.d.Prefix + "/claims?" + keep.Encode()
	if page.NextCursor != "" {
		keep.Set("cursor", page.NextCursor)
		data["NextURL"] = c.d.Prefix + "/claims?" + keep.Encode()
	}
	if len(problems) > 0 {
		data["Error"] = strings.Join(problems, "; ")
	}
	c.render(w, r, http.StatusOK, "claims", data)
}

func (c *Console) claimDetail(w http.ResponseWriter, r *http.Request) {
	c.showClaim(w, r, http.StatusOK, "")
}

// showClaim renders a claim's page, with an error banner when an action on
// it was refused.
func (c *Console) showClaim(w http.ResponseWriter, r *http.Request, status int, problem string) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, http.StatusNotFound, "There is no such claim.")
		return
	}
	cl, err := c.d.Store.Get(r.Context(), id)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	evs, err := c.d.Store.Events(r.Context(), id)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	revoke := cl.Status == claim.StatusDelivered && cl.Delivery == claim.DeliveryAttribute
	data := map[string]any{"Claim": cl, "Events": evs, "CanRetry": cl.Status == claim.StatusFailed,
		"CanCancel":   c.d.Canceller != nil && (cl.Status == claim.StatusPending || revoke),
		"CancelLabel": "Cancel", "CancelConfirm": "Cancel this claim? It will not be sent, and its token and secret are erased."}
	if revoke {
		data["CancelLabel"], data["CancelConfirm"] = "Revoke", "Revoke this claim? Its claimingData is deleted in ThingsBoard: the customer can no longer claim the device with it."
	}
	if problem != "" {
		data["Error"] = problem
	}
	c.render(w, r, status, "claim", data)
}

// act runs an action on the claim in the path and shows the outcome.
func (c *Console) act(w http.ResponseWriter, r *http.Request, done string, f func(uuid.UUID) error) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, http.StatusNotFound, "There is no such claim.")
		return
	}
	if err := f(id); err != nil {
		if claim.ErrorCode(err) == claim.CodeConflict {
			c.showClaim(w, r, http.StatusConflict, "Not done: "+problemText(err))
		} else {
			c.storeFailed(w, r, err)
		}
		return
	}
	http.Redirect(w, r, c.d.Prefix+"/claims/"+id.String()+"?done="+done, http.StatusSeeOther)
}

func (c *Console) retry(w http.ResponseWriter, r *http.Request) {
	c.act(w, r, "retried", func(id uuid.UUID) error {
		_, err := c.d.Store.Retry(r.Context(), id, c.d.Hold, r.FormValue("force") == "true")
		if err == nil {
			c.d.Wake()
		}
		return err
	})
}

func (c *Console) cancel(w http.ResponseWriter, r *http.Request) {
	if c.d.Canceller == nil {
		c.fail(w, r, http.StatusNotFound, "Cancelling is not available.")
		return
	}
	c.act(w, r, "cancelled", func(id uuid.UUID) error {
		_, err := c.d.Canceller.Cancel(r.Context(), id)
		return err
	})
}

func (c *Console) newClaimPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "new", map[string]any{"Deliveries": claim.Deliveries, "Delivery": ""})
}

func (c *Console) newClaim(w http.ResponseWriter, r *http.Request) {
	in := claim.Input{Token: strings.TrimSpace(r.FormValue("token")), Delivery: r.FormValue("delivery"),
		Force: r.FormValue("force") == "true"}
	if s := r.FormValue("secretKey"); s != "" {
		in.SecretKey = &s
	}
	name := strings.TrimSpace(r.FormValue("deviceName"))
	if name != "" {
		in.DeviceName = &name
	}
	// The form is shown again without the token and the secret: they are
	// never written into a page.
	again := map[string]any{"Deliveries": claim.Deliveries, "Delivery": in.Delivery, "DeviceName": name,
		"Duration": r.FormValue("duration")}
	if d := strings.TrimSpace(r.FormValue("duration")); d != "" {
		ms, err := factory.ParseDurationMs(d)
		if err != nil {
			again["Error"] = "Duration: " + err.Error() + ". Type the token and the secret again."
			c.render(w, r, http.StatusUnprocessableEntity, "new", again)
			return
		}
		in.DurationMs = &ms
	}
	req, err := c.d.Validator.Request(in)
	if err != nil {
		again["Error"] = "Not stored: " + problemText(err) + ". Type the token and the secret again."
		c.render(w, r, http.StatusUnprocessableEntity, "new", again)
		return
	}
	acc, err := c.d.Store.Create(r.Context(), req, c.d.Hold)
	if err != nil {
		switch claim.ErrorCode(err) {
		case claim.CodeConflict, claim.CodeIdemReuse:
			again["Error"] = "Not stored: " + problemText(err) + ". Type the token and the secret again."
			c.render(w, r, http.StatusConflict, "new", again)
		default:
			c.storeFailed(w, r, err)
		}
		return
	}
	if !acc.Replayed {
		c.d.Wake()
	}
	http.Redirect(w, r, c.d.Prefix+"/claims/"+acc.Claim.ID.String()+"?done=created", http.StatusSeeOther)
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"badge": func(s claim.Status) template.HTML {
		return template.HTML(fmt.Sprintf(`<span class="badge s-%s">%s</span>`, template.HTMLEscapeString(string(s)),
			template.HTMLEscapeString(string(s)))) //nolint:gosec // both escaped
	},
	"iso": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format(time.RFC3339)
		case *time.Time:
			if v != nil {
				return v.UTC().Format(time.RFC3339)
			}
		}
		return ""
	},
	"stamp": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if v != nil {
				return v.UTC().Format("2006-01-02 15:04:05 UTC")
			}
		}
		return ""
	},
	"ago": func(t time.Time) string { return ago(time.Since(t)) },
	"dur": span,
	"durMs": func(ms *int64) string {
		if ms == nil {
			return ""
		}
		return strings.TrimSuffix(strings.TrimSuffix((time.Duration(*ms)*time.Millisecond).String(), "0s"), "0m")
	},
	"ageClass": func(d time.Duration) string {
		switch {
		case d > time.Hour:
			return "age-old"
		case d > 5*time.Minute:
			return "age-mid"
		}
		return ""
	},
	"num": func(n int64) string {
		s := strconv.FormatInt(n, 10)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		return s
	},
	"actorLabel": actorLabel,
	"statusHelp": func(s claim.Status) string { return statusHelp[s] },
}

var statusHelp = map[claim.Status]string{
	claim.StatusPending:    "stored, waiting to be sent (or being sent)",
	claim.StatusDelivered:  "ThingsBoard took it; waiting for the customer",
	claim.StatusClaimed:    "a customer has the device",
	claim.StatusExpired:    "the claim lapsed before a customer used it",
	claim.StatusSuperseded: "a newer attribute claim replaced it",
	claim.StatusRejected:   "ThingsBoard does not know the token or the device, or it is already claimed",
	claim.StatusFailed:     "still undelivered after the longest wait: retry it",
	claim.StatusCancelled:  "cancelled by an operator",
}

// actorLabel is how an actor reads on a page: "console (key 3f2a9c1b)".
func actorLabel(a string) string {
	name, key, ok := strings.Cut(a, ":")
	if !ok {
		return a
	}
	return name + " (key " + key + ")"
}

// span is a duration as a person reads it: "12 s", "4 min", "3 h 5 min", "2 days".
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(max(d, 0).Seconds())) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return strconv.Itoa(int(d.Hours()/24)) + " days"
}

// ago is how long ago: "4 min ago".
func ago(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return span(d) + " ago"
}
