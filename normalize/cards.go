package normalize

import "strings"

// BrandFromNumber derives the card brand from the leading digits of a full or
// masked number (seed 003: VISA, MASTER, JCB, AMEX, DINERS). Masked leading
// digits give "".
func BrandFromNumber(n string) string {
	n = strings.TrimSpace(n)
	p := func(l int) int {
		if len(n) < l {
			return -1
		}
		v := 0
		for i := 0; i < l; i++ {
			if n[i] < '0' || n[i] > '9' {
				return -1
			}
			v = v*10 + int(n[i]-'0')
		}
		return v
	}
	switch {
	case p(1) == 4:
		return "VISA"
	case p(2) >= 51 && p(2) <= 55, p(4) >= 2221 && p(4) <= 2720:
		return "MASTER"
	case p(2) == 34, p(2) == 37:
		return "AMEX"
	case p(4) >= 3528 && p(4) <= 3589:
		return "JCB"
	case p(2) == 36, p(2) == 38, p(2) == 39, p(3) >= 300 && p(3) <= 305, p(3) == 309:
		return "DINERS"
	}
	return ""
}

// MaskNumber keeps the last four digits of a full card number.
func MaskNumber(n string) string {
	if len(n) <= 4 {
		return strings.Repeat("*", len(n))
	}
	return strings.Repeat("*", len(n)-4) + n[len(n)-4:]
}
