package structure

// Fast checks for the primitive formats that are a character class, not a
// grammar. R4's regular expressions stay the definition: each check here
// answers exactly what its expression answers (FuzzFastChecksMatchR4 holds
// them to it), without the regexp engine's cost on every string of every
// resource — three quarters of validation went to it before.

// fastChecks are the primitives with a check of their own, by name.
var fastChecks = map[string]func(string) bool{
	// [ \r\n\t\S]+ : anything but a form feed (the one \s outside the set).
	"string":   noFormFeed,
	"markdown": noFormFeed,
	// \S* : no whitespace at all.
	"uri":       noWhitespace,
	"url":       noWhitespace,
	"canonical": noWhitespace,
	// [^\s]+(\s[^\s]+)* : words separated by single whitespace.
	"code": isCode,
	// [A-Za-z0-9\-\.]{1,64}
	"id": isID,
}

// isSpace is RE2's \s: [\t\n\f\r ].
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

func noFormFeed(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\f' {
			return false
		}
	}
	return true
}

func noWhitespace(s string) bool {
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			return false
		}
	}
	return true
}

func isCode(s string) bool {
	if s == "" || isSpace(s[0]) || isSpace(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isSpace(s[i]) && isSpace(s[i-1]) {
			return false
		}
	}
	return true
}

func isID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
