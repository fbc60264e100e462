// Package factory is what a factory line does with claimsvc, shared by the
// `claimsvc import` and `claimsvc labels` commands and the operator console:
// read a devices CSV, import it in idempotent batches, write the results, and
// print labels with QR codes (docs/design.md §12).
package factory

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// The columns of a devices CSV. The header row names them, in any order and
// any case; only token is needed for an import, deviceName and secretKey for
// labels. result is a results file's (what claimsvc answered): labels print
// only the rows claimsvc stored; an import ignores it.
const (
	ColToken      = "token"
	ColDeviceName = "deviceName"
	ColSecretKey  = "secretKey"
	ColDuration   = "durationMs"
	ColDelivery   = "delivery"
	ColResult     = "result"
)

var columns = []string{ColToken, ColDeviceName, ColSecretKey, ColDuration, ColDelivery, ColResult}

// Row is one device of the CSV.
type Row struct {
	Line       int // its line in the file (the header is line 1)
	Token      string
	DeviceName string
	SecretKey  string
	HasSecret  bool   // the cell was not empty (an empty one sends no secretKey: ThingsBoard's "")
	DurationMs *int64 // nil: none given
	Delivery   string // "": claimsvc's default
	Result     string // a results file's result column: what claimsvc answered ("" in a devices CSV)
	// GeneratedSecret is set when --generate-secrets made SecretKey.
	GeneratedSecret bool
	// IdempotencyKey is derived from the row (IdempotencyKey) before it is sent.
	IdempotencyKey string
}

// Problem is a row that cannot be used, with its line number.
type Problem struct {
	Line    int
	Problem string
}

func (p Problem) String() string { return fmt.Sprintf("line %d: %s", p.Line, p.Problem) }

// Sheet is a devices CSV, read: the good rows, the bad ones, and what its
// header had.
type Sheet struct {
	Rows     []Row
	Problems []Problem
	Has      map[string]bool // the known columns the header names
	Ignored  []string        // header names that are not known columns (ignored)
}

// Use says what the rows are for, and so which cells each row needs.
type Use int

const (
	ForImport Use = iota // token
	ForLabels            // deviceName and secretKey
)

// MaxRows bounds a sheet: larger files are split by the caller.
const MaxRows = 1_000_000

// ErrTooManyRows is the error of a file with more rows than its reader takes.
var ErrTooManyRows = errors.New("the file has too many rows")

// ReadCSV reads a devices CSV. Comma or semicolon separated (as the header
// row shows), UTF-8 with or without a byte order mark. A row that breaks a
// field rule (docs/design.md §2.1, §9) is reported as a Problem with its line
// and left out; only a file that cannot be read at all, or whose header lacks
// what use needs, is an error.
func ReadCSV(r io.Reader, use Use) (*Sheet, error) { return ReadCSVUpTo(r, use, MaxRows) }

// ReadCSVUpTo is ReadCSV stopping with an error (ErrTooManyRows) after max
// rows: what the file holds beyond them is not read.
func ReadCSVUpTo(r io.Reader, use Use, max int) (*Sheet, error) {
	cr := newCSVReader(r)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("the file is empty: it needs a header row (token,deviceName,secretKey,durationMs,delivery)")
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the header row: %w", err)
	}
	sh := &Sheet{Has: map[string]bool{}}
	at := map[string]int{}
	for i, h := range header {
		name := canonical(h)
		if name == "" {
			if strings.TrimSpace(h) != "" {
				sh.Ignored = append(sh.Ignored, strings.TrimSpace(h))
			}
			continue
		}
		if sh.Has[name] {
			return nil, fmt.Errorf("the header names the column %s twice", name)
		}
		sh.Has[name], at[name] = true, i
	}
	need := []string{ColToken}
	if use == ForLabels {
		need = []string{ColDeviceName, ColSecretKey}
	}
	for _, n := range need {
		if !sh.Has[n] {
			// Only the recognised names are quoted: a file without a header
			// row has a device's token and secret where the names should be.
			var found []string
			for _, c := range columns {
				if sh.Has[c] {
					found = append(found, c)
				}
			}
			return nil, fmt.Errorf("the first row must be a header naming the columns, and it has no %s column "+
				"(recognised: %s; %d other cells, not shown; known columns: %s)",
				n, orNone(found), len(header)-len(found), strings.Join(columns, ","))
		}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// A broken quote or the like: the rest of the file cannot be
			// split into rows reliably.
			sh.Problems = append(sh.Problems, Problem{Line: pe.StartLine, Problem: "unreadable CSV: " + pe.Err.Error()})
			return sh, fmt.Errorf("line %d: the CSV cannot be read past this point: %w", pe.StartLine, pe.Err)
		}
		if err != nil {
			return sh, err
		}
		lineNo, _ := cr.FieldPos(0)
		if blank(rec) {
			continue
		}
		if len(sh.Rows)+len(sh.Problems) >= max {
			return sh, fmt.Errorf("%w: more than %d: split it", ErrTooManyRows, max)
		}
		cell := func(name string) string {
			if i, ok := at[name]; ok && i < len(rec) {
				if sh.Has[ColResult] { // a results file: its cells went through safeCell
					return resultCell(rec[i])
				}
				return rec[i]
			}
			return ""
		}
		row, problem := parseRow(lineNo, cell, use)
		if problem != "" {
			sh.Problems = append(sh.Problems, Problem{Line: lineNo, Problem: problem})
			continue
		}
		sh.Rows = append(sh.Rows, row)
	}
	return sh, nil
}

// canonical maps a header cell to its column name, or "".
func canonical(h string) string {
	h = strings.TrimSpace(h)
	for _, c := range columns {
		if strings.EqualFold(h, c) {
			return c
		}
	}
	return ""
}

func blank(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// parseRow checks one row's cells against the field rules; problem says what
// is wrong ("" when nothing is).
func parseRow(line int, cell func(string) string, use Use) (Row, string) {
	r := Row{Line: line, Token: strings.TrimSpace(cell(ColToken)), DeviceName: strings.TrimSpace(cell(ColDeviceName)),
		SecretKey: cell(ColSecretKey), Delivery: strings.ToLower(strings.TrimSpace(cell(ColDelivery))),
		Result: strings.TrimSpace(cell(ColResult))}
	r.HasSecret = r.SecretKey != ""
	switch {
	case use == ForImport && r.Token == "":
		return r, "token: is empty"
	case r.Token != "" && !claim.ValidToken(r.Token):
		return r, "token: must be 1-128 printable ASCII characters without spaces or '/'"
	case use == ForLabels && r.DeviceName == "":
		return r, "deviceName: is empty (a customer claims the device by its name)"
	case utf8.RuneCountInString(r.DeviceName) > claim.MaxDeviceName || !claim.Printable(r.DeviceName):
		return r, "deviceName: must be at most 255 characters without control characters"
	case use == ForLabels && !r.HasSecret:
		return r, "secretKey: is empty (import with --generate-secrets first, then print labels from its results file)"
	case utf8.RuneCountInString(r.SecretKey) > 128 || !claim.Printable(r.SecretKey):
		return r, "secretKey: must be at most 128 characters without control characters"
	case strings.TrimSpace(r.SecretKey) != r.SecretKey:
		return r, "secretKey: starts or ends with a space, which a customer would not type"
	case r.Delivery != "" && !claim.Delivery(r.Delivery).Valid():
		return r, "delivery: must be mqtt, http or attribute"
	case r.Delivery == string(claim.DeliveryAttribute) && r.DeviceName == "":
		return r, "deviceName: is needed for the attribute delivery"
	}
	if d := strings.TrimSpace(cell(ColDuration)); d != "" {
		ms, err := ParseDurationMs(d)
		if err != nil {
			return r, "durationMs: " + err.Error()
		}
		r.DurationMs = &ms
	}
	return r, ""
}

// ParseDurationMs reads a claim duration: whole milliseconds ("604800000"),
// or a duration with units, days included ("7d", "36h", "1d12h", "90m").
func ParseDurationMs(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 1 || ms > claim.MaxDurationMs {
			return 0, fmt.Errorf("%d ms is not from 1 ms to 365 days", ms)
		}
		return ms, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, err
	}
	ms := d.Milliseconds()
	if ms < 1 || ms > claim.MaxDurationMs {
		return 0, fmt.Errorf("%s is not from 1 ms to 365 days", s)
	}
	return ms, nil
}

// ParseDuration is time.ParseDuration with days ("7d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("%q is not a duration (e.g. 7d, 24h, 90m, 604800000)", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 7d, 24h, 90m, 604800000)", s)
	}
	return days + d, nil
}

// newCSVReader reads CSV as a spreadsheet saves it: comma or semicolon
// separated (as the header row shows), UTF-8 with or without a byte order
// mark, rows of any length.
func newCSVReader(r io.Reader) *csv.Reader {
	br := bufio.NewReader(r)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	first, _ := br.Peek(4096)
	line, _, _ := bytes.Cut(first, []byte("\n"))
	cr := csv.NewReader(br)
	if bytes.Count(line, []byte(";")) > bytes.Count(line, []byte(",")) {
		cr.Comma = ';'
	}
	cr.FieldsPerRecord = -1
	return cr
}

// orNone joins names, or says there are none.
func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}
