package outbound

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name  string
		raw   string
		allow []netip.Prefix
		want  error // nil, ErrInvalidURL or ErrForbiddenAddress
	}{
		{"https ok", "https://fhir.example.nhs.uk/R4/Task?status=requested", nil, nil},
		{"http ok with port", "http://provider.example.org:8080/hook", nil, nil},
		{"upper-case scheme", "HTTPS://provider.example.org/hook", nil, nil},
		{"public IP literal", "https://8.8.8.8/hook", nil, nil},
		{"public IPv6 literal", "https://[2001:4860:4860::8888]/hook", nil, nil},
		{"userinfo", "https://user:secret@provider.example.org/hook", nil, ErrInvalidURL},
		{"user only", "https://user@provider.example.org/hook", nil, ErrInvalidURL},
		{"relative", "/hook", nil, ErrInvalidURL},
		{"scheme-relative", "//provider.example.org/hook", nil, ErrInvalidURL},
		{"ftp", "ftp://provider.example.org/file", nil, ErrInvalidURL},
		{"file", "file:///etc/passwd", nil, ErrInvalidURL},
		{"opaque", "https:provider.example.org", nil, ErrInvalidURL},
		{"no host", "https:///hook", nil, ErrInvalidURL},
		{"empty", "", nil, ErrInvalidURL},
		{"unparsable", "https://[::1/hook", nil, ErrInvalidURL},
		{"bad port", "https://provider.example.org:99999/", nil, ErrInvalidURL},
		{"port zero", "https://provider.example.org:0/", nil, ErrInvalidURL},
		{"empty port", "https://provider.example.org:/", nil, ErrInvalidURL},
		{"decimal IP", "http://2130706433/", nil, ErrInvalidURL},
		{"short IP", "http://127.1/", nil, ErrInvalidURL},
		{"hex IP", "http://0x7f.0.0.1/", nil, ErrInvalidURL},
		{"loopback literal", "http://127.0.0.1:8080/", nil, ErrForbiddenAddress},
		{"loopback literal allowed", "http://127.0.0.1:8080/", loopback, nil},
		{"private literal", "https://10.0.0.5/fhir", nil, ErrForbiddenAddress},
		{"metadata literal", "http://169.254.169.254/latest/meta-data/", nil, ErrForbiddenAddress},
		{"v6 loopback literal", "http://[::1]/", nil, ErrForbiddenAddress},
		{"mapped loopback literal", "http://[::ffff:127.0.0.1]/", nil, ErrForbiddenAddress},
		{"zoned link-local literal", "http://[fe80::1%25eth0]/", nil, ErrForbiddenAddress},
		{"localhost", "http://localhost:8080/", nil, ErrForbiddenAddress},
		{"LOCALHOST.", "http://LOCALHOST.:8080/", nil, ErrForbiddenAddress},
		{"sub.localhost", "http://api.localhost/", nil, ErrForbiddenAddress},
		{"localhost allowed", "http://localhost:8080/", loopback, nil},
		{"name that merely contains localhost", "https://localhost.example.org/", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckURL(tt.raw, tt.allow)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want nil", tt.raw, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckURL(%q) = %v, want %v", tt.raw, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "hook") {
				t.Errorf("message %q repeats the URL", err)
			}
		})
	}
}
