package factory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
	qrcode "github.com/skip2/go-qrcode"
	"golang.org/x/text/encoding/charmap"
)

// LabelOptions lay out a sheet of labels.
type LabelOptions struct {
	Paper      string  // "A4" or "Letter" [A4]
	Cols, Rows int     // labels across and down a page [3, 8]
	MarginMm   float64 // page margin [8]
	// QRTemplate is what the QR code holds: "" for the JSON
	// {"deviceName":"…","secretKey":"…"}, or a URL of the company's own
	// claim page with {deviceName} and {secretKey} in it (each replaced,
	// URL-escaped).
	QRTemplate string
	Caption    string // a small line under the secret ["Scan to claim this device"]
	Title      string // the PDF's title [claimsvc labels]
}

func (o *LabelOptions) defaults() error {
	if o.Paper == "" {
		o.Paper = "A4"
	}
	switch strings.ToLower(o.Paper) {
	case "a4":
		o.Paper = "A4"
	case "letter":
		o.Paper = "Letter"
	default:
		return fmt.Errorf("paper %q: A4 or Letter", o.Paper)
	}
	if o.Cols == 0 {
		o.Cols = 3
	}
	if o.Rows == 0 {
		o.Rows = 8
	}
	if o.Cols < 1 || o.Cols > 6 || o.Rows < 1 || o.Rows > 20 {
		return fmt.Errorf("grid %dx%d: 1 to 6 labels across, 1 to 20 down", o.Cols, o.Rows)
	}
	if o.MarginMm == 0 {
		o.MarginMm = 8
	}
	if o.Caption == "" {
		o.Caption = "Scan to claim this device"
	}
	if o.Title == "" {
		o.Title = "claimsvc labels"
	}
	if t := o.QRTemplate; t != "" && !strings.Contains(t, "{deviceName}") && !strings.Contains(t, "{secretKey}") {
		return errors.New("the QR template has neither {deviceName} nor {secretKey}: every code would be the same")
	}
	return nil
}

// ParseGrid reads "COLSxROWS", e.g. "3x8".
func ParseGrid(s string) (cols, rows int, err error) {
	if _, err := fmt.Sscanf(strings.ToLower(s), "%dx%d", &cols, &rows); err != nil {
		return 0, 0, fmt.Errorf("grid %q: COLSxROWS, e.g. 3x8", s)
	}
	return cols, rows, nil
}

// QRContent is what the QR code of a device holds (see LabelOptions.QRTemplate).
func QRContent(template, deviceName, secretKey string) string {
	if template == "" {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(struct {
			DeviceName string `json:"deviceName"`
			SecretKey  string `json:"secretKey"`
		}{deviceName, secretKey})
		return strings.TrimSuffix(b.String(), "\n")
	}
	return strings.NewReplacer("{deviceName}", url.QueryEscape(deviceName), "{secretKey}", url.QueryEscape(secretKey)).Replace(template)
}

// printableText reports whether the label font (Windows-1252, PDF's core
// fonts) can print s exactly.
func printableText(s string) bool {
	_, err := charmap.Windows1252.NewEncoder().String(s)
	return err == nil
}

// Labels writes a PDF of labels, one per row (its device name, its secret and
// a QR code of QRContent), and returns the rows it left out: a name or
// secret the label font cannot print exactly.
func Labels(w io.Writer, rows []Row, o LabelOptions) ([]Problem, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	var skipped []Problem
	var ok []Row
	for _, r := range rows {
		if !printableText(r.DeviceName) || !printableText(r.SecretKey) {
			skipped = append(skipped, Problem{Line: r.Line, Problem: "the device name or secret has characters the label font " +
				"cannot print (Windows-1252 only): a customer could not type what the label shows"})
			continue
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return skipped, errors.New("no row to print")
	}
	pdf := fpdf.New("P", "mm", o.Paper, "")
	pdf.SetTitle(o.Title, true)
	pdf.SetCreator("claimsvc labels", true)
	pdf.SetCreationDate(time.Now())
	pdf.SetAutoPageBreak(false, 0)
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252
	pw, ph := pdf.GetPageSize()
	cw := (pw - 2*o.MarginMm) / float64(o.Cols)
	ch := (ph - 2*o.MarginMm) / float64(o.Rows)
	pad := min(3.0, ch/10)
	side := min(ch-2*pad, cw*0.4)
	tw := cw - side - 3*pad
	const (
		gap, headH, captionH = 0.8, 3.0, 2.5 // mm: below the name, "SECRET KEY", the caption
		nameMin, secretMin   = 6.0, 5.0      // pt: the smallest sizes printed
		ptMm                 = 0.42          // a line of a font of 1 pt, in mm
	)
	// The smallest label that holds a one-line name, the secret and the
	// caption: a finer grid is refused, not printed with text running into
	// the next label.
	pdf.SetFont("Courier", "B", secretMin)
	secretW := pdf.GetStringWidth(NewSecret()) // a generated secret, at the smallest size
	if need := 2*pad + nameMin*ptMm + gap + headH + secretMin*ptMm + captionH; ch < need || tw < secretW {
		return skipped, fmt.Errorf("%w: a %dx%d grid on %s makes labels of %.0f×%.0f mm, too small for a name, a secret on one "+
			"line and a caption beside the QR code (at least %.0f mm high and %.0f mm wide): use fewer columns or rows",
			ErrLabelsTooSmall, o.Cols, o.Rows, o.Paper, cw, ch, need, secretW+side+3*pad)
	}
	perPage := o.Cols * o.Rows
	n := 0
	for _, r := range ok {
		// The layout first: a name of up to two lines, smaller when longer; the
		// secret on one line (a customer types it: never broken inside); the
		// caption at the bottom. A row whose text does not fit is left out and
		// reported, never printed over the next label or cut.
		nameSz := fitText(pdf, tr(r.DeviceName), "Helvetica", "B", 11, nameMin, tw, 2)
		nameLines := pdf.SplitLines([]byte(tr(r.DeviceName)), tw) // bytes: the text is Windows-1252 now
		secretSz := fitText(pdf, tr(r.SecretKey), "Courier", "B", 10, secretMin, tw, 1)
		secretFits := pdf.GetStringWidth(tr(r.SecretKey)) <= tw
		nameH := float64(len(nameLines)) * nameSz * ptMm
		secretTop := max(pad+nameH+gap, ch*0.45)
		if len(nameLines) > 2 || !secretFits || secretTop+headH+secretSz*ptMm > ch-pad-captionH {
			skipped = append(skipped, Problem{Line: r.Line, Problem: "the device name or secret does not fit on a label this size " +
				"(the name in two lines, the secret in one): use fewer columns or rows"})
			continue
		}
		if n%perPage == 0 {
			pdf.AddPage()
		}
		x := o.MarginMm + float64(n%perPage%o.Cols)*cw
		y := o.MarginMm + float64(n%perPage/o.Cols)*ch
		n++
		// A light cut guide around each label.
		pdf.SetDrawColor(200, 200, 200)
		pdf.SetLineWidth(0.1)
		pdf.Rect(x, y, cw, ch, "D")
		if err := drawQR(pdf, QRContent(o.QRTemplate, r.DeviceName, r.SecretKey), x+pad, y+(ch-side)/2, side); err != nil {
			return skipped, fmt.Errorf("line %d: %w", r.Line, err)
		}
		tx := x + pad + side + pad
		pdf.SetTextColor(0, 0, 0)
		pdf.SetFont("Helvetica", "B", nameSz)
		for i, line := range nameLines {
			pdf.SetXY(tx, y+pad+float64(i)*nameSz*ptMm)
			pdf.CellFormat(tw, nameSz*ptMm, string(line), "", 0, "L", false, 0, "")
		}
		pdf.SetFont("Helvetica", "", 6)
		pdf.SetTextColor(90, 90, 90)
		pdf.SetXY(tx, y+secretTop)
		pdf.CellFormat(tw, headH, "SECRET KEY", "", 2, "L", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
		pdf.SetFont("Courier", "B", secretSz)
		pdf.CellFormat(tw, secretSz*ptMm, tr(r.SecretKey), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 5.5)
		pdf.SetTextColor(90, 90, 90)
		pdf.SetXY(tx, y+ch-pad-captionH)
		pdf.CellFormat(tw, captionH, tr(o.Caption), "", 0, "L", false, 0, "")
	}
	if n == 0 {
		return skipped, fmt.Errorf("%w: no row fits on a %dx%d grid's labels (%.0f×%.0f mm): use fewer columns or rows",
			ErrLabelsTooSmall, o.Cols, o.Rows, cw, ch)
	}
	if err := pdf.Error(); err != nil {
		return skipped, err
	}
	return skipped, pdf.Output(w)
}

// ErrLabelsTooSmall is the error of a grid whose labels cannot hold the text.
var ErrLabelsTooSmall = errors.New("labels too small")

// fitText sets the font at size, or smaller down to least, until s fits in
// lines lines of width w, and returns the size set.
func fitText(pdf *fpdf.Fpdf, s, family, style string, size, least, w float64, lines int) float64 {
	for sz := size; ; sz -= 0.5 {
		pdf.SetFont(family, style, sz)
		if sz <= least || pdf.GetStringWidth(s) <= float64(lines)*w*0.92 {
			return sz
		}
	}
}

// drawQR draws content's QR code as vector squares in a side×side square at
// (x, y): sharp at any printer resolution. Error correction M (15%)
// survives a scuffed label.
func drawQR(pdf *fpdf.Fpdf, content string, x, y, side float64) error {
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		return fmt.Errorf("QR code: %w", err)
	}
	q.DisableBorder = true
	bm := q.Bitmap()
	n := len(bm)
	// A quiet zone of two modules inside the square: the label around it is
	// white too.
	m := side / float64(n+4)
	x, y = x+2*m, y+2*m
	pdf.SetFillColor(0, 0, 0)
	for row := range n {
		for col := 0; col < n; {
			if !bm[row][col] {
				col++
				continue
			}
			run := col
			for run < n && bm[row][run] {
				run++
			}
			// A hair wider than the module, so that adjacent squares leave
			// no white seam when rasterised.
			pdf.Rect(x+float64(col)*m, y+float64(row)*m, float64(run-col)*m+0.01, m+0.01, "F")
			col = run
		}
	}
	return nil
}
