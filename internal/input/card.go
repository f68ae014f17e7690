package input

import (
	"regexp"
	"strings"
	"unicode"
)

// Card numbers (PANs) are 13 to 19 digits whose last digit is a Luhn check digit.
const (
	minPANDigits = 13
	maxPANDigits = 19
)

// uuidPattern finds canonical UUIDs (order ids, event ids): their digit groups are masked before
// the card scan, so an id made of digits is never mistaken for a card number.
var uuidPattern = regexp.MustCompile(`[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}`)

// timePattern finds ISO 8601 / RFC 3339 dates and instants (2026-12-07T08:00:00.123456789Z,
// 2026-12-07 08:00:00+01:00): their digits joined across separators often make 13-19 digits.
var timePattern = regexp.MustCompile(`[0-9]{4}-[01][0-9]-[0-3][0-9](?:[T ][0-2][0-9]:[0-5][0-9](?::[0-6][0-9](?:[.,][0-9]+)?)?)?(?:Z|[+-][0-2][0-9]:?[0-5][0-9])?`)

// HasCardNumber reports whether s contains something that looks like a payment card number:
// a Luhn-valid run of 13 to 19 digits. Digits are any Unicode decimal digits (full-width,
// Arabic-Indic, mathematical...), and a run goes on across separators (white space of any kind
// including NBSP, invisible format characters, dashes, and . , _ / \ : ; | + * # ~ ' " ( ) [ ]),
// so "4242 4242 4242 4242", "4242.4242.4242.4242" and "tok_4242424242424242" are all caught. A
// run is made of whole digit groups: "4242 4242 4242 4242 12/29 123" is caught by its first four
// groups. Anything else (a letter, an @) ends a run.
//
// Three near-misses are let through on purpose: canonical UUIDs, ISO 8601 dates and instants,
// and 13-digit runs that are valid GTIN-13/EAN-13 product codes (a 13-digit PAN is a retired
// Visa format).
func HasCardNumber(s string) bool {
	if len(s) < minPANDigits {
		return false
	}
	if len(s) >= 36 && uuidPattern.MatchString(s) {
		s = uuidPattern.ReplaceAllLiteralString(s, "x")
	}
	if strings.IndexByte(s, '-') >= 0 && timePattern.MatchString(s) {
		s = timePattern.ReplaceAllLiteralString(s, "x")
	}
	var (
		dbuf   [64]byte
		gbuf   [32]int
		digits = dbuf[:0] // the run's digit values
		groups = gbuf[:0] // lengths of the run's digit groups
		cur    int        // length of the group being read
	)
	endGroup := func() {
		if cur > 0 {
			groups = append(groups, cur)
			cur = 0
		}
	}
	for _, r := range s {
		if d, ok := digitValue(r); ok {
			digits = append(digits, d)
			cur++
			continue
		}
		endGroup()
		if isSeparator(r) {
			continue
		}
		if runHasPAN(digits, groups) {
			return true
		}
		digits, groups = digits[:0], groups[:0]
	}
	endGroup()
	return runHasPAN(digits, groups)
}

// runHasPAN checks every sequence of whole consecutive groups of 13 to 19 digits.
func runHasPAN(digits []byte, groups []int) bool {
	if len(digits) < minPANDigits {
		return false
	}
	start := 0
	for i := range groups {
		total := 0
		for j := i; j < len(groups); j++ {
			total += groups[j]
			if total > maxPANDigits {
				break
			}
			if total >= minPANDigits {
				cand := digits[start : start+total]
				if luhn(cand) && !(total == 13 && gtin13(cand)) {
					return true
				}
			}
		}
		start += groups[i]
	}
	return false
}

// luhn reports whether the digits (values 0-9) end in a valid Luhn check digit.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// gtin13 reports whether 13 digits are a valid GTIN-13 (EAN-13): weights 1,3,1,3... and a
// check digit that brings the sum to a multiple of 10.
func gtin13(d []byte) bool {
	sum := 0
	for i, v := range d[:12] {
		if i%2 == 1 {
			sum += 3 * int(v)
		} else {
			sum += int(v)
		}
	}
	return (10-sum%10)%10 == int(d[12])
}

// digitValue returns the value of a Unicode decimal digit (category Nd). Unicode encodes every
// Nd digit in contiguous runs of ten, zero first, so the value is the offset in its range mod 10.
// Full-width digits are Nd too.
func digitValue(r rune) (byte, bool) {
	if r >= '0' && r <= '9' {
		return byte(r - '0'), true
	}
	if r < 0x80 || !unicode.IsDigit(r) {
		return 0, false
	}
	for _, rg := range unicode.Nd.R16 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return byte((r - rune(rg.Lo)) % 10), true
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return byte((r - rune(rg.Lo)) % 10), true
		}
	}
	return 0, false
}

// isSeparator reports whether r may sit between the digit groups of a card number as people and
// programs write them.
func isSeparator(r rune) bool {
	if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII forms
		r -= 0xFEE0
	}
	switch r {
	case ' ', '.', ',', '-', '_', '/', '\\', ':', ';', '|', '+', '*', '#', '~', '\'', '"', '(', ')', '[', ']':
		return true
	}
	if r < 0x80 {
		return r < 0x20 || r == 0x7f
	}
	return unicode.IsSpace(r) || unicode.In(r, unicode.Zs, unicode.Pd, unicode.Cf, unicode.Cc) ||
		r == '\u00b7' || r == '\u2022' || r == '\u30fb' // middle dot, bullet, katakana middle dot
}
