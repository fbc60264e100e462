package http

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/wire"
)

// POST /claims:batch takes up to MaxBatchItems claims, as a JSON array or as
// NDJSON (one claim object per line), stores them in one transaction and
// answers 200 with one result per claim, in input order: the claim view with
// its own status (202 created, 200 replayed) or a problem (409, 422, 400,
// 413, 429 over the per-device limit) for that claim alone. Whole-request problems: 400 (not an array,
// broken JSON array, empty), 413 (too many claims or bytes), 415 (content
// type), 422 (a batch-level Idempotency-Key), 503 (nothing was stored).
//
// Each item is {"token", "secretKey", "durationMs", "idempotencyKey"} with the
// single route's field rules; idempotencyKey is the item's own Idempotency-Key
// (the header is refused on this route: one key cannot name many claims).
// ?force=true applies to every item. Prefer: wait is refused (422), not
// ignored: a caller who asked for outcomes must not take 202s for them.

const (
	// MaxBatchItems is the most claims one batch may hold.
	MaxBatchItems = 1000
	// MaxBatchBody is the largest batch body. A typical claim takes about
	// 100 bytes, so 1,000 of them fit many times over; each one is still
	// bounded by MaxClaimBody. With at most Caps.Batches batches at once,
	// bodies cost a bounded amount of memory (docs/security.md §4).
	MaxBatchBody = 512 << 10
)

func (s *server) createBatch(w http.ResponseWriter, r *http.Request) {
	release, ok := s.batchSlot(w, r) // before the body is read: a queued batch holds no body
	if !ok {
		return
	}
	defer release()
	raws, err := readBatch(w, r)
	if err == nil {
		if _, ok := r.Header["Idempotency-Key"]; ok {
			err = invalidField("Idempotency-Key", "is not supported on /claims:batch: give each claim its own idempotencyKey")
		} else if prefersWait(r.Header.Values("Prefer")) {
			err = invalidField("Prefer", "wait is not supported on /claims:batch: the answer comes once the claims are stored; "+
				"read their outcomes with GET /claims/{id}")
		}
	}
	var force bool
	if err == nil {
		force, err = forceParam(r)
	}
	if err != nil {
		s.metrics.ClaimsAccepted.WithLabelValues(acceptOutcome(err)).Inc()
		writeError(w, r, s.log, err)
		return
	}

	ans := wire.BatchAnswer{Results: make([]wire.BatchResult, len(raws))}
	errs := make([]error, len(raws)) // each failed item's error, for the metrics
	reqs := make([]claim.Request, 0, len(raws))
	at := make([]int, 0, len(raws)) // reqs[k] is item at[k]
	var taken []counted
	for i, raw := range raws {
		ans.Results[i].Index = i
		req, tok, err := s.batchRequest(raw, force)
		// Counted like a single request: every item that names a valid
		// token, whatever else is wrong with it.
		if claim.ValidToken(tok) {
			if lerr := s.itemWithinTokenLimit(claim.Token(tok), &taken); lerr != nil {
				err = lerr
			}
		}
		if err != nil {
			errs[i] = fail(r, &ans.Results[i], err)
			continue
		}
		reqs = append(reqs, req)
		at = append(at, i)
	}
	if len(reqs) > 0 {
		res, err := s.store.CreateBatch(r.Context(), reqs, s.hold)
		if err != nil { // nothing was stored: the items do not count against their devices
			for _, c := range taken {
				s.tokenLimit.giveBack(c.key, c.q)
			}
			s.metrics.ClaimsAccepted.WithLabelValues(acceptOutcome(err)).Add(float64(len(raws)))
			writeError(w, r, s.log, err)
			return
		}
		for k, out := range res {
			br := &ans.Results[at[k]]
			if out.Err != nil {
				errs[at[k]] = fail(r, br, out.Err)
				continue
			}
			v := view(out.Claim)
			br.Claim, br.HTTPStatus, br.Replayed = &v, http.StatusAccepted, out.Replayed
			if out.Replayed {
				br.HTTPStatus = http.StatusOK
			}
		}
	}
	for i, br := range ans.Results {
		switch {
		case br.Problem != nil:
			ans.Failed++
			s.metrics.ClaimsAccepted.WithLabelValues(acceptOutcome(errs[i])).Inc()
		case br.Replayed:
			ans.Replayed++
			s.metrics.ClaimsAccepted.WithLabelValues("replayed").Inc()
		default:
			ans.Created++
			s.metrics.ClaimsAccepted.WithLabelValues("created").Inc()
		}
	}
	if ans.Created > 0 {
		s.wake()
	}
	writeJSON(w, "application/json", http.StatusOK, ans)
}

// fail makes err the item's problem (problemFor: the same as a single
// request's), and returns err.
func fail(r *http.Request, br *wire.BatchResult, err error) error {
	p := problemFor(r, err)
	br.HTTPStatus, br.Problem = p.Status, &p
	return err
}

// counted is a batch item counted against its device's limit, to give back
// when nothing is stored.
type counted struct {
	key string
	q   quota
}

// itemWithinTokenLimit applies the per-device limit (CLAIMSVC_RATE_LIMIT_TOKEN)
// to one item, as the single route does to each request: a batch cannot send
// more claims for one device than that many requests could. The headers it
// would set belong to the item, not to the whole answer; its problem says
// when to try again.
func (s *server) itemWithinTokenLimit(tok claim.Token, taken *[]counted) error {
	if s.tokenLimit == nil {
		return nil
	}
	key := tokenKey(tok)
	q := s.tokenLimit.take(key)
	if q.allowed {
		*taken = append(*taken, counted{key, q})
		return nil
	}
	h := http.Header{}
	q.setHeaders(h)
	return claim.Errorf(codeRateLimited, "%s; retry after %s seconds", s.tokenLimit.detail, h.Get("Retry-After"))
}

// batchRequest decodes and validates one item.
// batchRequest decodes and validates one item; token is the item's token as
// sent (for the per-device limit), also when the item is refused.
func (s *server) batchRequest(raw []byte, force bool) (req claim.Request, token string, err error) {
	if raw == nil {
		return claim.Request{}, "", claim.Errorf(codeTooLarge, "a claim may be at most %d bytes", MaxClaimBody)
	}
	in := claim.Input{Force: force}
	if err := decodeClaim(raw, itemShape, &in); err != nil {
		return claim.Request{}, in.Token, err
	}
	req, err = s.validate.Request(in)
	return req, in.Token, renameField(err, "Idempotency-Key", "idempotencyKey")
}

// readBatch reads a batch body and splits it into its items' raw JSON; an
// item too large to consider is nil.
func readBatch(w http.ResponseWriter, r *http.Request) ([][]byte, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	ndjson := mt == "application/x-ndjson"
	if !ndjson && !isJSON(r.Header.Get("Content-Type")) {
		return nil, claim.Errorf(codeMediaType, "send the claims as application/json (an array) or application/x-ndjson (one object per line)")
	}
	if r.ContentLength > MaxBatchBody {
		return nil, claim.Errorf(codeTooLarge, "the body may be at most %d bytes", MaxBatchBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBatchBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, claim.Errorf(codeTooLarge, "the body may be at most %d bytes", MaxBatchBody)
		}
		return nil, claim.Errorf(claim.CodeMalformed, "cannot read the request body")
	}
	var items [][]byte
	if ndjson {
		items, err = splitNDJSON(body)
	} else {
		items, err = splitArray(body)
	}
	switch {
	case err != nil:
		return nil, err
	case len(items) == 0:
		return nil, claim.Errorf(claim.CodeMalformed, "the batch holds no claims")
	}
	return items, nil
}

func tooManyItems() error {
	return claim.Errorf(codeTooLarge, "a batch may hold at most %d claims", MaxBatchItems)
}

// splitArray splits a JSON array into its elements. A syntax error anywhere
// fails the whole request: the items' boundaries are unknown after it.
func splitArray(body []byte) ([][]byte, error) {
	if !utf8.Valid(body) {
		return nil, claim.Errorf(claim.CodeMalformed, "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, claim.Errorf(claim.CodeMalformed, "the body must be a JSON array of claims (or NDJSON with Content-Type: application/x-ndjson)")
	}
	var items [][]byte
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, claim.Errorf(claim.CodeMalformed, "the body is not a valid JSON array: %s", jsonProblem(err))
		}
		if len(items) == MaxBatchItems {
			return nil, tooManyItems()
		}
		if len(raw) > MaxClaimBody {
			raw = nil
		}
		items = append(items, raw)
	}
	if _, err := dec.Token(); err != nil {
		return nil, claim.Errorf(claim.CodeMalformed, "the body is not a valid JSON array: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, claim.Errorf(claim.CodeMalformed, "the body has data after the JSON array")
	}
	return items, nil
}

// splitNDJSON splits NDJSON into its non-blank lines. Each line stands alone,
// so a broken line fails only its own item.
func splitNDJSON(body []byte) ([][]byte, error) {
	var items [][]byte
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, MaxBatchBody+1)
	for sc.Scan() {
		// Clone: the scanner reuses its buffer, and an item kept as a slice
		// of it would turn into a later line (another device's claim).
		line := bytes.Clone(bytes.TrimSpace(sc.Bytes()))
		if len(line) == 0 {
			continue
		}
		if len(items) == MaxBatchItems {
			return nil, tooManyItems()
		}
		if len(line) > MaxClaimBody {
			line = nil
		}
		items = append(items, line)
	}
	if err := sc.Err(); err != nil {
		return nil, claim.Errorf(claim.CodeMalformed, "cannot read the NDJSON body")
	}
	return items, nil
}
