package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Action is one SMART v2 permission letter.
type Action string

// The SMART v2 actions, in the order a scope must list them.
const (
	ActionCreate Action = "c"
	ActionRead   Action = "r"
	ActionUpdate Action = "u"
	ActionDelete Action = "d"
	ActionSearch Action = "s"
)

var allActions = [...]Action{ActionCreate, ActionRead, ActionUpdate, ActionDelete, ActionSearch}

// ActionSet is a set of actions (a bitset in SMART order c, r, u, d, s).
type ActionSet uint8

func actionBit(a Action) ActionSet {
	for i, x := range allActions {
		if x == a {
			return 1 << i
		}
	}
	return 0
}

// Has reports whether a is in the set.
func (s ActionSet) Has(a Action) bool {
	b := actionBit(a)
	return b != 0 && s&b != 0
}

// Covers reports whether every action of o is also in s.
func (s ActionSet) Covers(o ActionSet) bool { return o&^s == 0 }

// String gives the SMART v2 permission string, e.g. "rs".
func (s ActionSet) String() string {
	var b strings.Builder
	for i, a := range allActions {
		if s&(1<<i) != 0 {
			b.WriteString(string(a))
		}
	}
	return b.String()
}

const (
	v1Read      = 1<<1 | 1<<4        // read  = r + s
	v1Write     = 1<<0 | 1<<2 | 1<<3 // write = c + u + d
	v1All       = v1Read | v1Write   // *     = cruds
	maxScopeLen = 128
)

// Scope is a parsed SMART system scope such as "system/Task.rs".
type Scope struct {
	// Resource is a FHIR resource type name, or "*" for all types.
	Resource string
	// Actions are the permitted actions; never empty.
	Actions ActionSet
	// Raw is the scope as written.
	Raw string
}

// String gives the SMART v2 form of the scope, e.g. "system/Task.rs" for
// "system/Task.read".
func (sc Scope) String() string { return "system/" + sc.Resource + "." + sc.Actions.String() }

// Allows reports whether the scope permits action a on resource type
// resource. A "*" scope allows every type; a scope on one type does not
// allow resource "*".
func (sc Scope) Allows(resource string, a Action) bool {
	return (sc.Resource == "*" || sc.Resource == resource) && sc.Actions.Has(a)
}

// ParseScope parses a SMART Backend Services scope: v2 "system/Task.rs",
// "system/*.cruds" (permission letters in the order c, r, u, d, s, each at
// most once), or v1 "system/Task.read" (= rs), "system/Task.write" (= cud),
// "system/Task.*" (= cruds). patient/ and user/ scopes, launch and identity
// scopes, and v2 scopes with query parameters are refused: this server
// serves backend services only.
func ParseScope(s string) (Scope, error) {
	if s == "" {
		return Scope{}, errors.New("empty scope; expected system/<ResourceType>.<permissions>, e.g. system/Task.rs")
	}
	if len(s) > maxScopeLen {
		return Scope{}, fmt.Errorf("scope is longer than %d bytes", maxScopeLen)
	}
	switch s {
	case "openid", "fhirUser", "profile", "launch", "offline_access", "online_access":
		return Scope{}, fmt.Errorf("scope %s is not offered: this server issues backend-service (system/) scopes only", quote(s))
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return Scope{}, fmt.Errorf("scope %s is malformed; expected system/<ResourceType>.<permissions>, e.g. system/Task.rs", quote(s))
	}
	switch ctx {
	case "system":
	case "patient", "user":
		return Scope{}, fmt.Errorf("scope %s is refused: %s/ scopes need a user or patient context, and this server offers backend-service (system/) scopes only", quote(s), ctx)
	case "launch":
		return Scope{}, fmt.Errorf("scope %s is not offered: this server issues backend-service (system/) scopes only", quote(s))
	default:
		return Scope{}, fmt.Errorf("scope %s has unknown context %s; expected system/", quote(s), quote(ctx))
	}
	res, perm, ok := strings.Cut(rest, ".")
	if !ok {
		return Scope{}, fmt.Errorf("scope %s has no permissions; expected system/<ResourceType>.<permissions>, e.g. system/Task.rs", quote(s))
	}
	if !validResource(res) {
		return Scope{}, fmt.Errorf("scope %s names no resource type; expected a FHIR resource type such as Task, or *", quote(s))
	}
	if strings.Contains(perm, "?") {
		return Scope{}, fmt.Errorf("scope %s has query parameters, which this server does not support", quote(s))
	}
	var acts ActionSet
	switch perm {
	case "read":
		acts = v1Read
	case "write":
		acts = v1Write
	case "*":
		acts = v1All
	case "":
		return Scope{}, fmt.Errorf("scope %s has no permissions; expected letters from cruds, or read, write or *", quote(s))
	default:
		last := -1
		for _, r := range perm {
			i := -1
			for j, a := range allActions {
				if string(r) == string(a) {
					i = j
				}
			}
			if i < 0 {
				return Scope{}, fmt.Errorf("scope %s has unknown permission %q; expected letters from cruds, or read, write or *", quote(s), r)
			}
			if i <= last {
				return Scope{}, fmt.Errorf("scope %s lists permissions out of order or twice; write them in the order c, r, u, d, s", quote(s))
			}
			last = i
			acts |= 1 << i
		}
	}
	return Scope{Resource: res, Actions: acts, Raw: s}, nil
}

// validResource accepts "*" or a FHIR resource type name ([A-Z][A-Za-z]*).
func validResource(r string) bool {
	if r == "*" {
		return true
	}
	if r == "" || len(r) > 64 || r[0] < 'A' || r[0] > 'Z' {
		return false
	}
	for i := 1; i < len(r); i++ {
		c := r[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// coveredBy reports whether every action req asks for on its resource is
// allowed by some scope in allowed.
func coveredBy(req Scope, allowed []Scope) bool {
	for i, a := range allActions {
		if req.Actions&(1<<i) == 0 {
			continue
		}
		ok := false
		for _, al := range allowed {
			if al.Actions.Has(a) && (al.Resource == "*" || al.Resource == req.Resource) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// narrowScopes holds granted scopes to those allowed now: a scope allowed
// still is kept as written; one allowed in part becomes, for each allowed
// scope it meets, the actions and type both name (system/*.cruds against
// system/Task.rs is system/Task.rs); one allowed no longer is dropped.
func narrowScopes(granted []string, allowed []Scope) []string {
	var out []string
	keep := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, raw := range granted {
		sc, err := ParseScope(raw)
		if err != nil {
			continue
		}
		if coveredBy(sc, allowed) {
			keep(raw)
			continue
		}
		for _, al := range allowed {
			both := Scope{Resource: sc.Resource, Actions: sc.Actions & al.Actions}
			switch {
			case sc.Resource == "*":
				both.Resource = al.Resource
			case al.Resource != "*" && al.Resource != sc.Resource:
				continue
			}
			if both.Actions != 0 {
				keep(both.String())
			}
		}
	}
	return out
}

// Allows reports whether the grant's scopes permit action a on resource type
// resource (e.g. g.Allows("Task", ActionUpdate)). It does not look at
// Expires: Server.Authenticate refuses expired grants. A nil grant allows
// nothing.
func (g *Grant) Allows(resource string, a Action) bool {
	if g == nil {
		return false
	}
	for _, raw := range g.Scopes {
		sc, err := ParseScope(raw)
		if err == nil && sc.Allows(resource, a) {
			return true
		}
	}
	return false
}
