package mail

import (
	"strconv"
	"strings"

	"golang.org/x/text/currency"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Money formats an amount in integer minor units of an ISO 4217 currency for a buyer: the
// currency's symbol where it has a short one ("€49.90", "$5.00", "¥1200"), its code otherwise
// ("CHF 49.90", "KWD 1.250"), with as many decimals as the currency has minor units. No floating
// point is involved. A code x/text does not know is written as given, with two decimals.
func Money(minor int64, code string) string {
	scale, symbol := 2, code
	if u, err := currency.ParseISO(code); err == nil {
		s, _ := currency.Standard.Rounding(u)
		scale = s
		symbol = message.NewPrinter(language.English).Sprint(currency.Symbol(u))
	}
	var b strings.Builder
	if minor < 0 {
		b.WriteByte('-')
		minor = -minor
	}
	b.WriteString(symbol)
	if len([]rune(symbol)) > 1 {
		b.WriteByte(' ')
	}
	digits := strconv.FormatInt(minor, 10)
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	b.WriteString(digits)
	return b.String()
}
