package notify

import "testing"

func TestIDFromLocation(t *testing.T) {
	t.Parallel()
	for loc, want := range map[string]string{
		"https://gp.example/fhir/Task/123/_history/1": "123",
		"https://gp.example/fhir/Task/123":            "123",
		"Task/abc/_history/7":                         "abc",
	} {
		if got := idFromLocation(loc); got != want {
			t.Errorf("%s: %q, want %q", loc, got, want)
		}
	}
}
