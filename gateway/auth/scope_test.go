package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	ok := []struct {
		in, resource, actions string
	}{
		{"system/Task.rs", "Task", "rs"},
		{"system/ServiceRequest.c", "ServiceRequest", "c"},
		{"system/Task.u", "Task", "u"},
		{"system/*.cruds", "*", "cruds"},
		{"system/Task.cud", "Task", "cud"},
		{"system/Task.read", "Task", "rs"},
		{"system/Task.write", "Task", "cud"},
		{"system/Task.*", "Task", "cruds"},
		{"system/*.read", "*", "rs"},
		{"system/*.*", "*", "cruds"},
	}
	for _, tc := range ok {
		sc, err := ParseScope(tc.in)
		if err != nil {
			t.Errorf("ParseScope(%q): %v", tc.in, err)
			continue
		}
		if sc.Resource != tc.resource || sc.Actions.String() != tc.actions || sc.Raw != tc.in {
			t.Errorf("ParseScope(%q) = %+v (%s), want %s.%s", tc.in, sc, sc.Actions, tc.resource, tc.actions)
		}
		if want := "system/" + tc.resource + "." + tc.actions; sc.String() != want {
			t.Errorf("%q.String() = %q, want %q", tc.in, sc.String(), want)
		}
	}

	bad := []struct{ in, msg string }{
		{"", "empty scope"},
		{"patient/Task.read", "patient/ scopes"},
		{"patient/*.rs", "patient/ scopes"},
		{"user/Task.rs", "user/ scopes"},
		{"user/*.*", "user/ scopes"},
		{"launch", "not offered"},
		{"launch/patient", "not offered"},
		{"openid", "not offered"},
		{"fhirUser", "not offered"},
		{"offline_access", "not offered"},
		{"Task.rs", "malformed"},
		{"system/Task", "no permissions"},
		{"system/Task.", "no permissions"},
		{"system/.rs", "no resource type"},
		{"system/task.rs", "no resource type"},
		{"system/Task1.rs", "no resource type"},
		{"system/Ta sk.rs", "no resource type"},
		{"system/**.rs", "no resource type"},
		{"system/Task.rx", "unknown permission"},
		{"system/Task.sr", "out of order"},
		{"system/Task.rr", "out of order"},
		{"system/Task.READ", "unknown permission"},
		{"system/Task.rs.rs", "unknown permission"},
		{"system/Task.rs?category=x", "query parameters"},
		{"System/Task.rs", "unknown context"},
		{"system//Task.rs", "no resource type"},
		{"system/Task.rs ", "unknown permission"},
		{"system/" + strings.Repeat("A", 200) + ".rs", "longer than"},
	}
	for _, tc := range bad {
		if sc, err := ParseScope(tc.in); err == nil {
			t.Errorf("ParseScope(%q) = %+v, want an error", tc.in, sc)
		} else if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseScope(%q) error %q does not contain %q", tc.in, err, tc.msg)
		}
	}
}

func TestGrantAllows(t *testing.T) {
	g := &Grant{Scopes: []string{"system/Task.rs", "system/ServiceRequest.c", "system/Observation.write", "patient/Task.cruds", "junk"}}
	cases := []struct {
		resource string
		a        Action
		want     bool
	}{
		{"Task", ActionRead, true},
		{"Task", ActionSearch, true},
		{"Task", ActionUpdate, false},
		{"Task", ActionCreate, false},
		{"Task", ActionDelete, false},
		{"ServiceRequest", ActionCreate, true},
		{"ServiceRequest", ActionRead, false},
		{"Observation", ActionCreate, true},
		{"Observation", ActionUpdate, true},
		{"Observation", ActionDelete, true},
		{"Observation", ActionRead, false},
		{"Patient", ActionRead, false},
		{"*", ActionRead, false},
		{"Task", Action("x"), false},
		{"task", ActionRead, false},
	}
	for _, tc := range cases {
		if got := g.Allows(tc.resource, tc.a); got != tc.want {
			t.Errorf("Allows(%s, %s) = %v, want %v", tc.resource, tc.a, got, tc.want)
		}
	}
	star := &Grant{Scopes: []string{"system/*.rs"}}
	if !star.Allows("Task", ActionRead) || !star.Allows("Patient", ActionSearch) || !star.Allows("*", ActionRead) || star.Allows("Task", ActionUpdate) {
		t.Error("system/*.rs grant")
	}
	var none *Grant
	if none.Allows("Task", ActionRead) {
		t.Error("nil grant allows")
	}
}

func TestCoveredBy(t *testing.T) {
	parse := func(ss ...string) []Scope {
		var out []Scope
		for _, s := range ss {
			sc, err := ParseScope(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sc)
		}
		return out
	}
	allowed := parse("system/Task.r", "system/Task.s", "system/ServiceRequest.c", "system/*.r")
	cases := map[string]bool{
		"system/Task.rs":              true, // r and s from two scopes
		"system/Task.read":            true,
		"system/Patient.r":            true, // by system/*.r
		"system/*.r":                  true,
		"system/*.rs":                 false,
		"system/Task.u":               false,
		"system/Task.*":               false,
		"system/ServiceRequest.c":     true,
		"system/ServiceRequest.cr":    true,
		"system/ServiceRequest.cu":    false,
		"system/ServiceRequest.write": false,
	}
	for in, want := range cases {
		if got := coveredBy(parse(in)[0], allowed); got != want {
			t.Errorf("coveredBy(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestNarrowScopes(t *testing.T) {
	var allowed []Scope
	for _, s := range []string{"system/Task.rs", "system/ServiceRequest.c", "system/Patient.read"} {
		sc, err := ParseScope(s)
		if err != nil {
			t.Fatal(err)
		}
		allowed = append(allowed, sc)
	}
	cases := []struct {
		granted []string
		want    []string
	}{
		{[]string{"system/Task.rs", "system/ServiceRequest.c"}, []string{"system/Task.rs", "system/ServiceRequest.c"}}, // kept as written
		{[]string{"system/Task.read"}, []string{"system/Task.read"}},
		{[]string{"system/Task.u"}, nil},                                            // withdrawn
		{[]string{"system/ServiceRequest.cu"}, []string{"system/ServiceRequest.c"}}, // in part
		{[]string{"system/Task.write", "system/Task.r"}, []string{"system/Task.r"}},
		{[]string{"system/*.cruds"}, []string{"system/Task.rs", "system/ServiceRequest.c", "system/Patient.rs"}},
		{[]string{"system/*.r", "system/Task.r"}, []string{"system/Task.r", "system/Patient.r"}}, // each once
		{[]string{"system/Consent.cruds"}, nil},
	}
	for _, tc := range cases {
		if got := narrowScopes(tc.granted, allowed); !slices.Equal(got, tc.want) {
			t.Errorf("narrowScopes(%v) = %v, want %v", tc.granted, got, tc.want)
		}
	}
	star, _ := ParseScope("system/*.rs")
	if got := narrowScopes([]string{"system/Task.cruds", "system/*.r"}, []Scope{star}); !slices.Equal(got, []string{"system/Task.rs", "system/*.r"}) {
		t.Errorf("against system/*.rs: %v", got)
	}
}
