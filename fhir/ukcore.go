package fhir

// Identifier systems of the NHS in England.
const (
	NHSNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"
	ODSSystem       = "https://fhir.nhs.uk/Id/ods-organization-code"
	SNOMEDSystem    = "http://snomed.info/sct"
)

// ValidNHSNumber reports whether s is a 10-digit NHS number whose last digit
// is its Modulus 11 check digit: the first nine digits are weighted 10 down to
// 2, the check digit is 11 minus the remainder of their sum divided by 11
// (11 becomes 0, and 10 means no valid number has those nine digits).
func ValidNHSNumber(s string) bool {
	if len(s) != 10 {
		return false
	}
	sum := 0
	for i := 0; i < 10; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		if i < 9 {
			sum += int(c-'0') * (10 - i)
		}
	}
	check := 11 - sum%11
	switch check {
	case 11:
		check = 0
	case 10:
		return false
	}
	return int(s[9]-'0') == check
}
