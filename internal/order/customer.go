package order

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxCustomerIDLen is the longest customer id, in characters (the checkout's id of the buyer, on
// orders and trade accounts alike).
const MaxCustomerIDLen = 64

// CustomerIDProblem says what is wrong with a customer id, or "" when it is valid: it is required
// (not blank) and at most MaxCustomerIDLen characters.
func CustomerIDProblem(id string) string {
	switch {
	case strings.TrimSpace(id) == "":
		return "is required"
	case utf8.RuneCountInString(id) > MaxCustomerIDLen:
		return fmt.Sprintf("must be at most %d characters", MaxCustomerIDLen)
	}
	return ""
}
