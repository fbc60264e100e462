package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/claimsvc/claimsvc/internal/factory"
)

const labelsAbout = `Prints a PDF sheet of labels, one per device: its name, its secret, and a QR
code that a phone can scan. The CSV needs the columns deviceName and secretKey
(a devices CSV, or the results file of ` + "`claimsvc import --generate-secrets`" + `); rows
without them are reported with their line number and left out. From a results
file only the rows claimsvc stored (created or already stored) get a label: the
secret of a refused or unsent row is not ThingsBoard's. Nothing is sent
anywhere: this works offline.

The QR code holds {"deviceName":"...","secretKey":"..."} unless --qr-template
names a URL of your own claim page, with {deviceName} and {secretKey} in it
(each replaced, URL-escaped).`

const labelsFooter = `Exit status:
  0  every row has its label
  1  error: the file cannot be read or written
  2  usage error
  6  some rows were left out (the PDF has the others)

Examples:
  claimsvc labels devices.results.csv -o labels.pdf
  claimsvc labels --paper Letter --grid 2x5 --qr-template 'https://iot.example.com/claim?device={deviceName}&secret={secretKey}' devices.csv`

func runLabels(args []string, env Env) error {
	f := newFlags(env, "labels", "[flags] devices.csv", labelsAbout, labelsFooter)
	out := f.String("output", "labels.pdf", "the PDF to write")
	f.StringVar(out, "o", "labels.pdf", "short for --output")
	paper := f.String("paper", "A4", "A4 or Letter")
	grid := f.String("grid", "3x8", "labels per page, COLSxROWS")
	tmpl := f.String("qr-template", "", "what the QR code holds: a URL with {deviceName} and {secretKey} (default: JSON of both)")
	caption := f.String("caption", "Scan to claim this device", "a small line on each label")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("give one CSV file")
	}
	cols, rows, err := factory.ParseGrid(*grid)
	if err != nil {
		return usageError("--grid: %v", err)
	}
	rd, err := open(env, pos[0])
	if err != nil {
		return err
	}
	sh, err := factory.ReadCSV(rd, factory.ForLabels)
	rd.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	stored := sh.Rows
	if sh.Has[factory.ColResult] {
		stored = nil
		for _, r := range sh.Rows {
			if r.Result == factory.ResultCreated || r.Result == factory.ResultReplayed {
				stored = append(stored, r)
				continue
			}
			sh.Problems = append(sh.Problems, factory.Problem{Line: r.Line,
				Problem: fmt.Sprintf("claimsvc did not store this claim (result %q): its secret is not ThingsBoard's; import the row again", r.Result)})
		}
	}
	var buf bytes.Buffer
	skipped, err := factory.Labels(&buf, stored, factory.LabelOptions{Paper: *paper, Cols: cols, Rows: rows,
		QRTemplate: *tmpl, Caption: *caption})
	for _, p := range append(sh.Problems, skipped...) {
		fmt.Fprintf(env.Stderr, "line %d: %s (no label)\n", p.Line, p.Problem)
	}
	if errors.Is(err, factory.ErrLabelsTooSmall) {
		return usageError("--grid: %v", err)
	}
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o600); err != nil { // the secrets are on it
		return err
	}
	printed := len(stored) - len(skipped)
	perPage := cols * rows
	fmt.Fprintf(env.Stdout, "%d labels on %d %s pages (%dx%d): %s\n", printed, (printed+perPage-1)/perPage, *paper, cols, rows, *out)
	if len(sh.Problems)+len(skipped) > 0 {
		return &ExitError{Code: ExitPartly}
	}
	return nil
}
