package config

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Error lists every problem found in a configuration, so an operator can fix
// the whole file at once instead of meeting the problems one restart at a
// time.
type Error struct {
	// File is the configuration file, "" when there was none.
	File     string
	Problems []FieldProblem
}

// FieldProblem is one problem: which setting and why it is wrong.
type FieldProblem struct {
	// Field is the setting's path in the file's own names, for example
	// providers[1].delivery.url; "" when the problem is with the file as a
	// whole (such as a YAML syntax error).
	Field  string
	Reason string
	// Line is the line of the setting in the file, or of the nearest
	// enclosing setting when it is missing; 0 when unknown.
	Line int
	// Env names the environment variable the value came from, if it did;
	// then the file's line would point at the wrong place.
	Env string
}

// String renders a problem the way Error lists it.
func (p FieldProblem) String() string {
	var b strings.Builder
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	} else if p.Line > 0 && p.Env == "" {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	b.WriteString(p.Reason)
	switch {
	case p.Env != "":
		fmt.Fprintf(&b, " (from %s)", p.Env)
	case p.Line > 0 && p.Field != "":
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration")
	if e.File != "" {
		b.WriteString(" in ")
		b.WriteString(e.File)
	}
	b.WriteString(":")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// sortProblems puts problems in file order. Ones with no line (from the
// environment, or about the file as a whole) come first; ties keep the order
// they were found in, which follows the file's documented layout.
func sortProblems(ps []FieldProblem) []FieldProblem {
	slices.SortStableFunc(ps, func(a, b FieldProblem) int { return a.Line - b.Line })
	return ps
}

var (
	reID       = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	reEnvName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reHostname = regexp.MustCompile(`^(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?))*\.?$`)
)

const idRuleReason = "must be 1 to 63 lowercase letters, digits or hyphens, starting with a letter or digit"

// validator collects problems. Fields that already failed while the file was
// decoded are not judged again, so each mistake is reported once.
type validator struct {
	// isCategory is Validate's: nil skips the category checks.
	isCategory func(string) bool
	src        *sources
	decoded    map[string]bool
	problems   []FieldProblem
}

func (v *validator) add(field, format string, args ...any) {
	if v.decoded[field] {
		return
	}
	p := FieldProblem{Field: field, Reason: fmt.Sprintf(format, args...)}
	if v.src != nil {
		if env, ok := v.src.env[field]; ok {
			p.Env = env
		} else {
			p.Line = v.src.line(field)
		}
	}
	v.problems = append(v.problems, p)
}

// Validate checks every rule and returns an *Error listing all problems, in
// file order, or nil. Error messages never contain a webhook secret or the
// Redis password, because they end up in logs.
//
// isCategory says whether a provider category exists; the category list
// belongs to the mapping table, which this package does not know. A nil
// isCategory skips only that check.
func (c Config) Validate(isCategory func(string) bool) error {
	v := &validator{src: c.src, decoded: map[string]bool{}, isCategory: isCategory}
	if c.src != nil {
		for _, p := range c.src.parse {
			v.problems = append(v.problems, p)
			if p.Field != "" {
				v.decoded[p.Field] = true
			}
		}
	}

	listenOK := v.listen(c.Listen)
	if reason := publicURLProblem(c.PublicURL); reason != "" {
		v.add("public_url", "%s", reason)
	}
	if len(c.RedisCluster) > 0 {
		v.redisCluster(c)
	} else if reason := redisURLProblem(c.RedisURL); reason != "" {
		v.add("redis_url", "%s", reason)
	}
	v.redisSecurity(c)
	if c.RedisWaitReplicas < 0 || c.RedisWaitReplicas > 16 {
		v.add("redis_wait_replicas", "must be 0 (acknowledge once the primary has a change) to 16 replicas")
	}
	if c.RedisWaitTimeout < 10*time.Millisecond || c.RedisWaitTimeout > 2*time.Second {
		v.add("redis_wait_timeout", "must be a duration from 10ms to 2s (a request waits this long for its replicas, within the Redis client's 3 s read timeout)")
	}
	if reason := redisNamespaceProblem(c.RedisNamespace); reason != "" {
		v.add("redis_namespace", "%s", reason)
	}
	switch c.Unmapped {
	case UnmappedReject, UnmappedTriage:
	default:
		v.add("unmapped", "%q is not one of reject, triage", c.Unmapped)
	}
	switch c.NHSNumber {
	case NHSNumberStrict, NHSNumberWarn:
	default:
		v.add("nhs_number", "%q is not one of strict, warn", c.NHSNumber)
	}
	for i, u := range c.UnderstoodModifierExtensions {
		if parsed, err := url.Parse(u); err != nil || !parsed.IsAbs() || strings.ContainsFunc(u, unicode.IsSpace) {
			v.add(fmt.Sprintf("understood_modifier_extensions[%d]", i), "%q is not an absolute URL (an extension's url)", u)
		}
	}
	switch c.Auth.Mode {
	case AuthSMART:
	case AuthNone:
		// A malformed listen is reported already; guessing its host here
		// would only add a confusing second problem.
		if listenOK && !c.IsLoopbackListen() {
			v.add("auth.mode", "\"none\" is only allowed when listen is a loopback address (127.0.0.1, ::1 or localhost): "+
				"without authentication anyone who can reach the port could read referrals")
		}
	default:
		v.add("auth.mode", "%q is not one of smart, none", c.Auth.Mode)
	}
	if c.MaxBodyBytes < MinBodyLimit || c.MaxBodyBytes > MaxBodyLimit {
		v.add("max_body_bytes", "%d is outside %d..%d (1 KiB to 64 MiB)", c.MaxBodyBytes, MinBodyLimit, MaxBodyLimit)
	}
	v.rate("rate_limit", c.RateLimit.PerSecond, c.RateLimit.Burst)
	v.rate("rate_limit.per_address", c.RateLimit.PerAddress.PerSecond, c.RateLimit.PerAddress.Burst)
	if n := c.Audit.MaxEntries; n < MinAuditEntries || n > MaxAuditEntries {
		v.add("audit.max_entries", "%d is outside %d..%d: the audit stream must be bounded, or a full Redis stops every referral", n, MinAuditEntries, MaxAuditEntries)
	}
	if d := c.Retention.ClosedAfter; d != 0 && d < 24*time.Hour {
		v.add("retention.closed_after", "%s is under a day: write 0 (keep for ever) or a period of at least 1d", d)
	}
	if d := c.Retention.AuditAfter; d != 0 && d < 365*24*time.Hour {
		v.add("retention.audit_after", "%s is under a year: write 0 (trim by count only) or a period of at least 1y", d)
	}
	if k := c.Export.Keep; !v.decoded["export.keep"] && (k < MinExportKeep || k > MaxExportKeep) {
		v.add("export.keep", "%s is outside 1m..720h (30 days): finished exports are copies of patient data, kept only long enough to download", k)
	}
	if c.Export.BirthDate != BirthDateYear && c.Export.BirthDate != BirthDateRemove {
		v.add("export.birth_date", "%q is not a rule for dates of birth; use %q (the year only, the default) or %q", c.Export.BirthDate, BirthDateYear, BirthDateRemove)
	}
	if !reEnvName.MatchString(c.Export.PseudonymKeyEnv) {
		v.add("export.pseudonym_key_env", "%q is not an environment variable's name (letters, digits and _, not starting with a digit), such as %s", c.Export.PseudonymKeyEnv, DefaultPseudonymKeyEnv)
	}
	if strings.ContainsRune(c.Export.Dir, 0) {
		v.add("export.dir", "is not a usable path")
	}
	if c.MetricsListen != "" {
		if host, port, err := net.SplitHostPort(c.MetricsListen); err != nil || host == "" || port == "" {
			v.add("metrics_listen", "%q must be host:port with an explicit host, such as 127.0.0.1:9090", c.MetricsListen)
		} else if c.MetricsListen == c.Listen && port != "0" { // port 0: each listener gets its own
			v.add("metrics_listen", "must differ from listen: the metrics are served apart from the API")
		}
	}
	if c.DeliveryTimeout < 100*time.Millisecond || c.DeliveryTimeout > 5*time.Minute {
		v.add("delivery_timeout", "must be a duration from 100ms to 5m, such as \"10s\"")
	}
	if c.SubscriptionsPerClient < 1 || c.SubscriptionsPerClient > 1000 {
		v.add("subscriptions_per_client", "%d is outside 1..1000", c.SubscriptionsPerClient)
	}
	if len(c.DeliveryRetry) == 0 {
		v.add("delivery_retry", "must list at least one wait between delivery attempts")
	}
	for i, d := range c.DeliveryRetry {
		field := fmt.Sprintf("delivery_retry[%d]", i)
		switch {
		case d <= 0:
			v.add(field, "%s must be greater than zero", shortDuration(d))
		case d > MaxRetryWait:
			v.add(field, "%s is longer than the %s limit", shortDuration(d), shortDuration(MaxRetryWait))
		}
	}
	for i, p := range c.OutboundAllow {
		if !p.IsValid() {
			v.add(fmt.Sprintf("outbound_allow[%d]", i), "is not a valid CIDR prefix")
		}
	}
	for i, p := range c.TrustedProxies {
		if !p.IsValid() {
			v.add(fmt.Sprintf("trusted_proxies[%d]", i), "is not a valid CIDR prefix")
		}
	}

	v.organizations(c.Organizations)

	// Ids and organisations must be unique across clients and providers
	// together: providers sign in with their id as client_id, and an
	// organisation must map back to exactly one party.
	ids := map[string]string{}
	orgs := map[Identifier]string{}
	claim := func(prefix, id string, org Identifier) {
		if id != "" {
			if prev, dup := ids[id]; dup {
				v.add(prefix+".id", "%q is already used by %s; ids must be unique across clients, providers and operators", id, prev)
			} else {
				ids[id] = prefix
			}
		}
		if org.System != "" && org.Value != "" {
			if prev, dup := orgs[org]; dup {
				v.add(prefix+".organization", "%s is already used by %s", org, prev)
			} else {
				orgs[org] = prefix
			}
		}
	}

	for i, cl := range c.Clients {
		prefix := fmt.Sprintf("clients[%d]", i)
		v.id(prefix, cl.ID)
		v.organization(prefix, cl.Organization)
		claim(prefix, cl.ID, cl.Organization)
		v.clientAuth(prefix+".auth", cl.Auth)
		if cl.Notify != nil {
			v.notify(prefix+".notify", *cl.Notify)
		}
		if cl.Bars != nil {
			v.bars(prefix+".bars", *cl.Bars)
		}
		for j, o := range cl.SubscriptionOrigins {
			if reason := originProblem(o); reason != "" {
				v.add(fmt.Sprintf("%s.subscription_origins[%d]", prefix, j), "%s", reason)
			}
		}
	}
	services := map[string]string{} // BaRS destination endpoint -> the provider field naming it
	for i, p := range c.Providers {
		prefix := fmt.Sprintf("providers[%d]", i)
		v.id(prefix, p.ID)
		v.organization(prefix, p.Organization)
		claim(prefix, p.ID, p.Organization)
		v.categories(prefix, p.Categories, isCategory)
		v.services(prefix, p.Services, services)
		v.clientAuth(prefix+".auth", p.Auth)
		v.delivery(prefix+".delivery", p.Delivery)
		if p.Delivery.Kind == DeliveryBars && len(p.Services) == 0 {
			v.add(prefix+".services", "bars delivery needs at least one service: a BaRS message names the service it is for (MessageHeader.destination.endpoint), and Signpost sends the first")
		}
	}

	for i, o := range c.Operators {
		prefix := fmt.Sprintf("operators[%d]", i)
		v.id(prefix, o.ID)
		claim(prefix, o.ID, Identifier{})
		v.clientAuth(prefix+".auth", o.Auth)
		if o.Export != ExportDeidentified && o.Export != ExportFull {
			v.add(prefix+".export", "%q is not an export right; use %q (only de-identified exports, the default) or %q", o.Export, ExportDeidentified, ExportFull)
		}
		if c.Auth.Mode == AuthSMART && len(o.Auth.Scopes) == 0 {
			v.add(prefix+".auth.scopes", "list the read scopes of what it exports, e.g. system/*.rs")
		}
	}

	v.consent(c)
	v.measures(c)

	if len(v.problems) == 0 {
		return nil
	}
	return &Error{File: c.Path, Problems: sortProblems(v.problems)}
}

// measures checks the measure rules' shape: categories the table knows
// (or "*"), configured providers, Questionnaire ids, and the points a
// measure is asked at. Whether each Questionnaire exists is known only
// once the measures are loaded (CheckQuestionnaires).
func (v *validator) measures(c Config) {
	for i, m := range c.Measures {
		prefix := fmt.Sprintf("measures[%d]", i)
		if len(m.Categories) == 0 {
			v.add(prefix+".categories", "must list at least one category, or \"*\" for all")
		}
		for k, cat := range m.Categories {
			if cat != AllCategories && v.isCategory != nil && !v.isCategory(cat) {
				v.add(fmt.Sprintf("%s.categories[%d]", prefix, k), "%q is not a category of the code table (or \"*\" for all)", cat)
			}
		}
		for k, id := range m.Providers {
			if _, ok := c.ProviderByID(id); !ok {
				v.add(fmt.Sprintf("%s.providers[%d]", prefix, k), "%q is not a configured provider's id", id)
			}
		}
		if len(m.Questionnaires) == 0 {
			v.add(prefix+".questionnaires", "must list at least one Questionnaire id, such as ons4 or ucla3")
		}
		if len(m.At) == 0 {
			v.add(prefix+".at", "must list when the measures are asked: first-contact, completion or both")
		}
		for k, at := range m.At {
			if at != MeasureFirstContact && at != MeasureCompletion {
				v.add(fmt.Sprintf("%s.at[%d]", prefix, k), "%q is not one of first-contact, completion", at)
			}
		}
	}
	if strings.ContainsRune(c.Questionnaires, 0) {
		v.add("questionnaires", "is not a usable path")
	}
}

// CheckQuestionnaires reports the measure rules' Questionnaire ids that
// the loaded measures do not hold, as Validate reports its problems.
func (c Config) CheckQuestionnaires(known func(id string) bool) error {
	v := &validator{src: c.src, decoded: map[string]bool{}}
	for i, m := range c.Measures {
		for k, id := range m.Questionnaires {
			if !known(id) {
				v.add(fmt.Sprintf("measures[%d].questionnaires[%d]", i, k), "%q is not a Questionnaire Signpost holds (the built-in ones are ons4 and ucla3; a deployment adds its own with questionnaires:)", id)
			}
		}
	}
	if len(v.problems) == 0 {
		return nil
	}
	return &Error{File: c.Path, Problems: sortProblems(v.problems)}
}

// shortDuration writes 100h rather than 100h0m0s, as people write them.
func shortDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// listen reports whether the address splits into host and port, so other
// checks can rely on its host.
func (v *validator) listen(listen string) bool {
	if listen == "" {
		v.add("listen", "is required: host:port, such as 127.0.0.1:8080")
		return false
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		v.add("listen", "%q must be host:port, such as 127.0.0.1:8080", listen)
		return false
	}
	if host == "" {
		v.add("listen", "%q has no host; name one explicitly (127.0.0.1 for this machine only, 0.0.0.0 for every interface) so the gateway is never exposed by accident", listen)
	} else if _, err := netip.ParseAddr(host); err != nil && !reHostname.MatchString(host) {
		v.add("listen", "host %q is neither an IP address nor a host name", host)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add("listen", "port %q must be a number from 0 to 65535", port)
	}
	return true
}

func (v *validator) id(prefix, id string) {
	switch {
	case id == "":
		v.add(prefix+".id", "is required")
	case !reID.MatchString(id):
		v.add(prefix+".id", "%q %s", id, idRuleReason)
	}
}

func (v *validator) organization(prefix string, org Identifier) {
	switch {
	case org.System == "":
		v.add(prefix+".organization.system", "is required, for example https://fhir.nhs.uk/Id/ods-organization-code")
	case !isAbsoluteURI(org.System):
		v.add(prefix+".organization.system", "%q must be an absolute URI, for example https://fhir.nhs.uk/Id/ods-organization-code", org.System)
	}
	if strings.TrimSpace(org.Value) == "" {
		v.add(prefix+".organization.value", "is required (the organisation's code in that system)")
	}
}

// reODS is the shape of an ODS organisation code: capital letters and
// digits, three (an NHS trust) to ten characters (A81001 is a practice).
var reODS = regexp.MustCompile(`^[A-Z0-9]{3,10}$`)

// maxOrganizationName bounds a directory name: it is shown in table cells
// and page headers.
const maxOrganizationName = 200

// organizations checks the organisation directory: each entry an ODS code
// of the right shape and a name, no code listed twice (which name would
// people read?).
func (v *validator) organizations(orgs []Organization) {
	seen := map[string]int{}
	for i, o := range orgs {
		prefix := fmt.Sprintf("organizations[%d]", i)
		switch {
		case o.ODS == "":
			v.add(prefix+".ods", "is required (the organisation's ODS code, such as A81001)")
		case !reODS.MatchString(o.ODS):
			v.add(prefix+".ods", "%q is not an ODS code: 3 to 10 capital letters and digits, such as A81001", o.ODS)
		default:
			if prev, dup := seen[o.ODS]; dup {
				v.add(prefix+".ods", "%q is already listed as organizations[%d] (%q); list each organisation once", o.ODS, prev, orgs[prev].Name)
			} else {
				seen[o.ODS] = i
			}
		}
		switch {
		case o.Name == "":
			v.add(prefix+".name", "is required (the name people read for %s)", cmp.Or(o.ODS, "the organisation"))
		case len(o.Name) > maxOrganizationName:
			v.add(prefix+".name", "is longer than %d characters", maxOrganizationName)
		case strings.ContainsFunc(o.Name, unicode.IsControl):
			v.add(prefix+".name", "must not contain control characters (line breaks, tabs)")
		}
	}
}

func isAbsoluteURI(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	// "https:" alone parses as absolute but names nothing.
	return u.Opaque != "" || u.Host != "" || u.Path != ""
}

func (v *validator) categories(prefix string, cats []string, isCategory func(string) bool) {
	if len(cats) == 0 {
		v.add(prefix+".categories", "must list at least one category, or the provider can never receive a referral")
		return
	}
	seen := map[string]bool{}
	for i, cat := range cats {
		field := fmt.Sprintf("%s.categories[%d]", prefix, i)
		switch {
		case cat == "":
			v.add(field, "must not be empty")
		case seen[cat]:
			v.add(field, "%q is listed twice", cat)
		case isCategory != nil && !isCategory(cat):
			v.add(field, "unknown category %q", cat)
		}
		seen[cat] = true
	}
}

// services checks a provider's BaRS destination endpoints: each a
// system|value pair (as MessageHeader.destination.endpoint names a DoS
// service), and each routed to one provider only, or a message for it
// would go to whichever came first.
func (v *validator) services(prefix string, services []string, taken map[string]string) {
	for i, s := range services {
		field := fmt.Sprintf("%s.services[%d]", prefix, i)
		system, value, ok := strings.Cut(s, "|")
		switch {
		case !ok || system == "" || value == "" || strings.ContainsAny(s, " \t\r\n"):
			v.add(field, "must be a BaRS destination endpoint system|value without spaces, e.g. http://fhir.nhs.uk/Id/dos-service-id|111111111")
		case taken[s] != "":
			v.add(field, "%q is already routed by %s", s, taken[s])
		default:
			taken[s] = field
		}
	}
}

func (v *validator) clientAuth(prefix string, a ClientAuth) {
	if len(a.JWKS) > 0 && a.JWKSURL != "" {
		v.add(prefix+".jwks_url", "cannot be used together with jwks; give the keys inline or a URL to fetch them from, not both")
	}
	if len(a.JWKS) > 0 && !isJWKS(a.JWKS) {
		v.add(prefix+".jwks", "must be a JSON object with a \"keys\" array of key objects")
	}
	if a.JWKSURL != "" {
		if reason := jwksURLProblem(a.JWKSURL); reason != "" {
			v.add(prefix+".jwks_url", "%s", reason)
		}
	}
	for i, s := range a.Scopes {
		field := fmt.Sprintf("%s.scopes[%d]", prefix, i)
		switch {
		case strings.TrimSpace(s) == "":
			v.add(field, "must not be empty")
		case strings.ContainsAny(s, " \t\r\n"):
			v.add(field, "%q must be a single scope, without spaces", s)
		}
	}
}

func isJWKS(raw json.RawMessage) bool {
	var set map[string]json.RawMessage
	if err := json.Unmarshal(raw, &set); err != nil || set == nil {
		return false
	}
	var keys []json.RawMessage
	if err := json.Unmarshal(set["keys"], &keys); err != nil || keys == nil {
		return false
	}
	for _, k := range keys {
		if !bytes.HasPrefix(bytes.TrimSpace(k), []byte("{")) {
			return false
		}
	}
	return true
}

func jwksURLProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "must be an absolute https URL"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return ""
		}
		return "must use https (http only for loopback hosts): keys fetched over plain http could be replaced in transit"
	}
	return "must be an absolute https URL"
}

func (v *validator) notify(prefix string, n Notify) {
	if reason := httpURLProblem(n.FHIRBase); reason != "" {
		v.add(prefix+".fhir_base", "%s", reason)
	}
	if n.BearerTokenEnv != "" && !reEnvName.MatchString(n.BearerTokenEnv) {
		v.add(prefix+".bearer_token_env", "%q is not an environment variable name (letters, digits and _, not starting with a digit)", n.BearerTokenEnv)
	}
}

// bars holds a BaRS endpoint to the write-back target's rules: both carry
// referral status to the GP system, over the same outbound client.
func (v *validator) bars(prefix string, b Bars) {
	if reason := httpURLProblem(b.Endpoint); reason != "" {
		v.add(prefix+".endpoint", "%s", reason)
	}
	if b.BearerTokenEnv != "" && !reEnvName.MatchString(b.BearerTokenEnv) {
		v.add(prefix+".bearer_token_env", "%q is not an environment variable name (letters, digits and _, not starting with a digit)", b.BearerTokenEnv)
	}
}

func (v *validator) delivery(prefix string, d Delivery) {
	switch d.Kind {
	case DeliveryWebhook, DeliveryFHIR:
		if reason := httpURLProblem(d.URL); reason != "" {
			v.add(prefix+".url", "%s (%s delivery sends to it)", reason, d.Kind)
		}
	case DeliveryBars:
		if reason := httpURLProblem(d.URL); reason != "" {
			v.add(prefix+".url", "%s (bars delivery POSTs each referral as a BaRS message to {url}/$process-message: give the provider's FHIR base)", reason)
		}
	case DeliveryPortal:
		if d.URL != "" {
			v.add(prefix+".url", "must be empty for portal delivery: portal providers collect referrals from Signpost, nothing is sent to them")
		}
	case "":
		v.add(prefix+".kind", "is required: webhook, fhir, bars or portal")
	default:
		v.add(prefix+".kind", "%q is not one of webhook, fhir, bars, portal", d.Kind)
	}
	if d.BearerTokenEnv != "" && d.Kind != DeliveryBars {
		v.add(prefix+".bearer_token_env", "is read for bars delivery only")
	}
	if d.BearerTokenEnv != "" && !reEnvName.MatchString(d.BearerTokenEnv) {
		v.add(prefix+".bearer_token_env", "%q is not an environment variable name (letters, digits and _, not starting with a digit)", d.BearerTokenEnv)
	}
	if d.Kind == DeliveryWebhook {
		switch reason := webhookSecretProblem(d.Secret); {
		case reason == "":
		case d.SecretEnv != "" && d.Secret == "":
			v.add(prefix+".secret_env", "names %s, which is not set: it must hold the webhook secret (whsec_...)", d.SecretEnv)
		case d.SecretEnv != "":
			v.add(prefix+".secret_env", "the secret in %s: %s", d.SecretEnv, reason)
		default:
			v.add(prefix+".secret", "%s", reason)
		}
	}
	for i, s := range d.RotatingSecrets {
		if reason := webhookSecretProblem(s); reason != "" {
			v.add(fmt.Sprintf("%s.rotating_secrets[%d]", prefix, i), "%s", reason)
		}
	}
	switch d.Payload {
	case PayloadThin, PayloadFull:
	default:
		v.add(prefix+".payload", "%q is not one of thin, full", d.Payload)
	}
}

// webhookSecretProblem checks the Standard Webhooks secret form. The reasons
// never quote the secret.
func webhookSecretProblem(s string) string {
	const form = "whsec_ followed by standard base64 of 24 to 64 random bytes"
	if s == "" {
		return "is required for webhook delivery: " + form
	}
	rest, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return "must be " + form
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "is not valid base64 after whsec_; it must be " + form
	}
	if len(b) < 24 || len(b) > 64 {
		return fmt.Sprintf("holds %d bytes; it must be %s", len(b), form)
	}
	return ""
}

// URL reasons never quote the URL: it may carry a password or token.
func httpURLProblem(raw string) string {
	const want = "must be an absolute http(s) URL"
	if raw == "" {
		return want
	}
	u, err := url.Parse(raw)
	if err != nil {
		return want + "; this one does not parse"
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return want
	}
	return ""
}

// originProblem checks a registered origin: scheme, host and port, nothing
// more, so that it names one endpoint host and port, never a network.
func originProblem(raw string) string {
	const want = "must be an origin, scheme://host[:port] (http or https), such as https://gp-system.example:8443"
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Opaque != "":
		return want
	case u.User != nil:
		return want + "; it must not contain a user name or password"
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "#"):
		return want + "; it has a path, query or fragment: the origin covers every path"
	case strings.Contains(u.Hostname(), "*"):
		return want + "; a wildcard is not allowed"
	case strings.ContainsFunc(u.Hostname(), func(r rune) bool { return r >= utf8.RuneSelf }):
		return want + "; write a host name outside ASCII in its ASCII form (xn--…), the name that is dialled"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return want + "; its port must be from 1 to 65535"
		}
	}
	return ""
}

func publicURLProblem(raw string) string {
	if reason := httpURLProblem(raw); reason != "" {
		return reason
	}
	u, _ := url.Parse(raw)
	switch {
	case u.User != nil:
		return "must not contain a user name or password"
	case u.RawQuery != "" || u.ForceQuery:
		return "must not have a query (?...): resource URLs are built by appending to it"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "must not have a fragment (#...): resource URLs are built by appending to it"
	}
	return ""
}

func redisURLProblem(raw string) string {
	const want = "must be a redis://, rediss:// or unix:// URL"
	if raw == "" {
		return "is required: " + want
	}
	u, err := url.Parse(raw)
	if err != nil {
		return want + "; this one does not parse"
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Hostname() == "" {
			return "needs a host, as in redis://127.0.0.1:6379/0"
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			if _, err := strconv.ParseUint(db, 10, 16); err != nil {
				return "the path after the host must be a database number, as in redis://127.0.0.1:6379/0"
			}
		}
	case "unix":
		if u.Path == "" {
			return "needs a socket path, as in unix:///run/redis/redis.sock"
		}
	default:
		return want
	}
	return ""
}

// redisCluster checks the nodes of redis_cluster, and that redis_url is not
// given beside it from the same place (the environment overrides the file).
func (v *validator) redisCluster(c Config) {
	if c.src != nil {
		_, clusterFromEnv := c.src.env["redis_cluster"]
		_, urlFromEnv := c.src.env["redis_url"]
		if urlFromEnv || (!clusterFromEnv && c.src.line("redis_url") > 0) {
			v.add("redis_cluster", "is instead of redis_url: give one of them (redis_cluster for a Redis Cluster, redis_url for one Redis)")
		}
	}
	seen := map[string]bool{}
	for i, addr := range c.RedisCluster {
		field := fmt.Sprintf("redis_cluster[%d]", i)
		host, port, err := net.SplitHostPort(addr)
		n, perr := strconv.ParseUint(port, 10, 16)
		switch {
		case strings.Contains(addr, "@") || strings.Contains(addr, "://"):
			// Never the entry itself: it may hold a password.
			v.add(field, "is a URL or holds credentials; give a node's host:port, as in 10.0.0.5:6379 (a password goes in %s, TLS in redis_tls)", EnvRedisPassword)
		case err != nil || host == "" || perr != nil || n == 0:
			v.add(field, "%q is not a host:port, as in 10.0.0.5:6379", addr)
		case seen[addr]:
			v.add(field, "%s is listed twice", addr)
		}
		seen[addr] = true
	}
}

// redisSecurity checks the password and TLS settings: each applies to the
// Redis in use, and none is silently ignored.
func (v *validator) redisSecurity(c Config) {
	cluster := len(c.RedisCluster) > 0
	if !cluster {
		// One Redis takes its credentials and TLS in redis_url, as it
		// always has; a second place for them would leave it unclear
		// which wins.
		if c.RedisUsername != "" || c.RedisPassword != "" {
			field := "redis_password"
			if c.RedisPassword == "" {
				field = "redis_username"
			}
			v.add(field, "is for redis_cluster; one Redis takes its password in redis_url, as in redis://:PASSWORD@10.0.0.5:6379/0")
		}
		if c.RedisTLS {
			v.add("redis_tls", "is for redis_cluster; one Redis speaks TLS with a rediss:// redis_url, as in rediss://10.0.0.5:6380/0")
		}
	}
	if cluster && c.RedisUsername != "" && c.RedisPassword == "" {
		v.add("redis_username", "needs %s as well: the password of that Redis user", EnvRedisPassword)
	}
	tls := c.RedisTLS && cluster || !cluster && strings.HasPrefix(c.RedisURL, "rediss://")
	for _, o := range []struct {
		field string
		set   bool
	}{{"redis_tls_ca", c.RedisTLSCA != ""}, {"redis_tls_server_name", c.RedisTLSServerName != ""}} {
		// Not said again when redis_tls was just refused beside one Redis.
		if o.set && !tls && (cluster || !c.RedisTLS) {
			v.add(o.field, "applies only with TLS: redis_tls: true beside redis_cluster, or a rediss:// redis_url")
		}
	}
	if n := c.RedisTLSServerName; n != "" && (strings.ContainsAny(n, " /:@") || len(n) > 253) {
		v.add("redis_tls_server_name", "%q is not a host name, as in redis.example.net", n)
	}
}

// rate checks a limit of perSecond sustained with bursts of burst.
func (v *validator) rate(field string, perSecond float64, burst int) {
	if perSecond < 0 || perSecond > 100000 || (perSecond > 0 && (burst < 1 || burst > 100000)) {
		v.add(field, "per_second must be 0 (no limit) to 100000, and burst 1 to 100000 when there is a limit")
	}
}

// redisNamespaceProblem says why a namespace cannot be a key's hash tag:
// braces would end the tag early, and a name of letters, digits, '.', '_'
// and '-' reads plainly in redis-cli and in key patterns.
func redisNamespaceProblem(ns string) string {
	if ns == "" || len(ns) > 64 {
		return "must be 1 to 64 characters"
	}
	for _, r := range ns {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Sprintf("%q may hold only letters, digits, '.', '_' and '-'", ns)
		}
	}
	return ""
}
