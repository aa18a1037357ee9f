package mappings

import (
	"errors"
	"fmt"
)

// The reasons ValidSCTID can give, so that callers (and tests) can tell a
// mistyped code from one that is simply the wrong kind of identifier
// without matching on message text.
var (
	ErrSCTIDLength      = errors.New("SNOMED CT identifier must be 6 to 18 digits long")
	ErrSCTIDDigits      = errors.New("SNOMED CT identifier must contain only the digits 0-9")
	ErrSCTIDLeadingZero = errors.New("SNOMED CT identifier must not start with 0")
	ErrSCTIDPartition   = errors.New("SNOMED CT identifier is not a concept identifier")
	ErrSCTIDCheckDigit  = errors.New("SNOMED CT check digit is wrong (Verhoeff)")
)

// ValidSCTID reports why s cannot be a SNOMED CT concept identifier. A
// referral reason is always a concept, so description and relationship
// identifiers (which are also well-formed SCTIDs) are rejected here: they
// are a common copy-and-paste mistake from terminology browsers, and would
// otherwise never match an incoming referral.
//
// The check digit is tested last so that a structurally wrong identifier
// gets the more helpful message. The expected check digit is deliberately
// not suggested: a wrong check digit usually means a mistyped digit
// elsewhere, and "fixing" the check digit would hide that.
func ValidSCTID(s string) error {
	if s == "" {
		return fmt.Errorf("%w, not empty", ErrSCTIDLength)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("%w, found %q at byte %d", ErrSCTIDDigits, s[i:i+1], i+1)
		}
	}
	if n := len(s); n < 6 || n > 18 {
		return fmt.Errorf("%w, not %d", ErrSCTIDLength, n)
	}
	if s[0] == '0' {
		return ErrSCTIDLeadingZero
	}
	// The partition identifier is the two digits just before the check
	// digit; the first says short or long (extension) form, the second
	// says what kind of component the identifier names.
	switch part := s[len(s)-3 : len(s)-1]; part {
	case "00", "10":
	case "01", "11":
		return fmt.Errorf("%w: partition %s is a description identifier", ErrSCTIDPartition, part)
	case "02", "12":
		return fmt.Errorf("%w: partition %s is a relationship identifier", ErrSCTIDPartition, part)
	default:
		return fmt.Errorf("%w: partition %s is not 00 or 10", ErrSCTIDPartition, part)
	}
	if !VerhoeffValid(s) {
		return ErrSCTIDCheckDigit
	}
	return nil
}

// VerhoeffValid reports whether digits, including its final check digit,
// passes the Verhoeff check. SNOMED CT uses Verhoeff rather than a simple
// modulus scheme because it catches every single-digit error and every
// transposition of adjacent digits, the two commonest ways a hand-copied
// code goes wrong. Anything other than a non-empty string of ASCII digits
// is reported as invalid rather than panicking, since input comes from
// hand-edited files.
func VerhoeffValid(digits string) bool {
	if digits == "" {
		return false
	}
	var c uint8
	for i := 0; i < len(digits); i++ {
		ch := digits[len(digits)-1-i]
		if ch < '0' || ch > '9' {
			return false
		}
		c = verhoeffD[c][verhoeffP[i%8][ch-'0']]
	}
	return c == 0
}

// verhoeffD is the multiplication table of the dihedral group D5, the
// non-commutative group whose use is what lets the scheme catch
// transpositions that any sum-based check digit would miss.
var verhoeffD = [10][10]uint8{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	{1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
	{2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
	{3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
	{4, 0, 1, 2, 3, 9, 5, 6, 7, 8},
	{5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
	{6, 5, 9, 8, 7, 1, 0, 4, 3, 2},
	{7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
	{8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
	{9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
}

// verhoeffP holds the position-dependent permutations: row i is the basic
// permutation applied i times, so a digit's contribution depends on where
// it sits. The cycle repeats every eight positions.
var verhoeffP = [8][10]uint8{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	{1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
	{5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
	{8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
	{9, 4, 5, 3, 1, 2, 6, 8, 7, 0},
	{4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
	{2, 7, 9, 3, 8, 0, 6, 4, 1, 5},
	{7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
}
