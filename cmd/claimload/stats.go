package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// measured is what one load loop measured.
type measured struct {
	n       int           // successful operations (claims)
	errs    int           // failed operations
	elapsed time.Duration // first request to last answer
	lat     []time.Duration
}

func (r measured) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

// pct is the q-quantile of the latencies (nearest rank), in milliseconds.
func (r measured) pct(q float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}

// row is one line of the report: claimsvc's figure, the baseline's, their
// ratio, and the docs/design.md §8 target when there is one.
type row struct {
	figure, unit string
	ours, base   float64
	higherBetter bool    // the ratio is ours/base (else base/ours)
	target       float64 // the ratio to reach; 0: none
	note         string
	absolute     string // for figures with no baseline ("≤ 100 MB")
	absOK        *bool
}

func (r row) ratio() float64 {
	if r.base == 0 || r.ours == 0 {
		return 0
	}
	if r.higherBetter {
		return r.ours / r.base
	}
	return r.base / r.ours
}

func (r row) verdict() string {
	switch {
	case r.absOK != nil && *r.absOK:
		return "met"
	case r.absOK != nil:
		return "MISSED"
	case r.target == 0:
		return ""
	case r.ratio() >= r.target:
		return "met"
	}
	return "MISSED"
}

func num(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// table renders rows as a Markdown table (readable in a terminal too).
func table(rows []row) string {
	var b strings.Builder
	b.WriteString("| figure | unit | claimsvc | baseline | ratio | target | |\n|---|---|---:|---:|---:|---|---|\n")
	for _, r := range rows {
		ratio, target := "", r.absolute
		if r.base != 0 {
			ratio = fmt.Sprintf("%.2f×", r.ratio())
		}
		if r.target != 0 {
			target = fmt.Sprintf("≥ %.1f×", r.target)
		}
		fig := r.figure
		if r.note != "" {
			fig += " (" + r.note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", fig, r.unit, num(r.ours), num(r.base), ratio, target, r.verdict())
	}
	return b.String()
}
