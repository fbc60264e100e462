package factory

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// IdempotencyKey derives a row's Idempotency-Key from its content: the same
// row gets the same key in every run, so sending a file again after a crash
// or a network cut stores nothing twice (claimsvc answers a replay), while a
// row whose secret, duration, delivery or name changed is a new request. It
// is an HMAC keyed with the token, as claimsvc's own fingerprint is, so the
// key stored in claimsvc's database reveals nothing of the secret without
// the token.
func IdempotencyKey(r Row) string {
	m := hmac.New(sha256.New, []byte(r.Token))
	m.Write([]byte("claimsvc import v1\x00"))
	if r.HasSecret {
		m.Write([]byte{1})
		m.Write([]byte(r.SecretKey))
	}
	m.Write([]byte{0})
	if r.DurationMs != nil {
		m.Write([]byte(strconv.FormatInt(*r.DurationMs, 10)))
	}
	m.Write([]byte{0})
	m.Write([]byte(r.Delivery))
	m.Write([]byte{0})
	m.Write([]byte(r.DeviceName))
	return "import-" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// secretAlphabet has no characters a person confuses when reading a label
// (no 0/O, 1/I/L).
const secretAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// NewSecret returns a strong random claim secret that a customer can type
// from a label: 16 characters of secretAlphabet (79 bits) in groups of four,
// e.g. "7KQM-X2HD-9RWB-CT4F".
func NewSecret() string {
	var b strings.Builder
	buf := make([]byte, 1)
	for i := 0; i < 16; {
		if _, err := rand.Read(buf); err != nil {
			panic(err) // crypto/rand does not fail on supported systems
		}
		// Rejection sampling: no bias towards the first characters.
		if int(buf[0]) >= 256/len(secretAlphabet)*len(secretAlphabet) {
			continue
		}
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(secretAlphabet[int(buf[0])%len(secretAlphabet)])
		i++
	}
	return b.String()
}

// Outcome is what claimsvc answered for one row.
type Outcome struct {
	Result  string // created, replayed, refused, invalid, not sent
	ClaimID string
	Status  string // the claim's status when answered
	Problem string
}

// The results a row can have.
const (
	ResultCreated  = "created"  // stored now
	ResultReplayed = "replayed" // stored by an earlier run: nothing new
	ResultRefused  = "refused"  // claimsvc refused it (409, 422, …): Problem says why
	ResultInvalid  = "invalid"  // the row breaks a field rule: never sent
	ResultNotSent  = "not sent" // the import stopped before this row
)

// Accepted reports whether claimsvc holds a claim for the row.
func (o Outcome) Accepted() bool { return o.Result == ResultCreated || o.Result == ResultReplayed }

// Submitter stores one chunk of rows as one batch and answers an Outcome per
// row, in order. An error means the chunk as a whole was not answered (and
// perhaps stored: the rows' Idempotency-Keys make sending it again safe).
type Submitter interface {
	Submit(ctx context.Context, rows []Row) ([]Outcome, error)
}

// Progress is how far an import is.
type Progress struct {
	Total, Done, Created, Replayed, Refused int
}

// DefaultChunk is the rows per batch unless told otherwise.
const DefaultChunk = 250

// Import sends rows to sub in chunks of chunk rows (at most 1,000), each row
// with its IdempotencyKey, and returns one Outcome per row (in order) with
// progress told after each chunk, with the chunk's rows and outcomes. It stops at the
// first chunk that fails or when ctx ends: the rows not sent are "not sent",
// and the error says why.
func Import(ctx context.Context, sub Submitter, rows []Row, chunk int, progress func(Progress, []Row, []Outcome)) ([]Outcome, error) {
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	chunk = min(chunk, 1000)
	out := make([]Outcome, len(rows))
	for i := range out {
		out[i] = Outcome{Result: ResultNotSent}
	}
	p := Progress{Total: len(rows)}
	for start := 0; start < len(rows); start += chunk {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		part := rows[start:min(start+chunk, len(rows))]
		for i := range part {
			part[i].IdempotencyKey = IdempotencyKey(part[i])
		}
		res, err := sub.Submit(ctx, part)
		if err == nil && len(res) != len(part) {
			err = fmt.Errorf("%d answers for %d rows", len(res), len(part))
		}
		if err != nil {
			return out, fmt.Errorf("rows %d to %d (lines %d-%d): %w", start+1, start+len(part), part[0].Line, part[len(part)-1].Line, err)
		}
		copy(out[start:], res)
		for _, o := range res {
			switch o.Result {
			case ResultCreated:
				p.Created++
			case ResultReplayed:
				p.Replayed++
			default:
				p.Refused++
			}
		}
		p.Done += len(part)
		if progress != nil {
			progress(p, part, res)
		}
	}
	return out, nil
}
