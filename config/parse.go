package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The file's shape. It is separate from Config because the file holds text
// (durations, CIDRs, free-form JWKS) that only becomes typed after checks
// that must be reported as problems rather than abort the decode.
type fileConfig struct {
	Listen            string             `yaml:"listen"`
	PublicURL         string             `yaml:"public_url"`
	RedisURL          string             `yaml:"redis_url"`
	RedisCluster      []string           `yaml:"redis_cluster"`
	RedisTLS          bool               `yaml:"redis_tls"`
	RedisTLSCA        string             `yaml:"redis_tls_ca"`
	RedisTLSName      string             `yaml:"redis_tls_server_name"`
	RedisNamespace    string             `yaml:"redis_namespace"`
	RedisWaitReplicas int                `yaml:"redis_wait_replicas"`
	RedisWaitTimeout  string             `yaml:"redis_wait_timeout"`
	Mappings          string             `yaml:"mappings"`
	Unmapped          string             `yaml:"unmapped"`
	NHSNumber         string             `yaml:"nhs_number"`
	Understood        []string           `yaml:"understood_modifier_extensions"`
	Auth              fileAuth           `yaml:"auth"`
	MaxBodyBytes      int64              `yaml:"max_body_bytes"`
	RateLimit         *fileRateLimit     `yaml:"rate_limit"`
	Audit             fileAudit          `yaml:"audit"`
	Export            fileExport         `yaml:"export"`
	Retention         fileRetention      `yaml:"retention"`
	Measures          []fileMeasureRule  `yaml:"measures"`
	Questionnaires    string             `yaml:"questionnaires"`
	MetricsListen     string             `yaml:"metrics_listen"`
	DeliveryTimeout   string             `yaml:"delivery_timeout"`
	DeliveryRetry     []string           `yaml:"delivery_retry"`
	SubsPerClient     *int               `yaml:"subscriptions_per_client"`
	OutboundAllow     []string           `yaml:"outbound_allow"`
	TrustedProxies    []string           `yaml:"trusted_proxies"`
	Organizations     []fileOrganization `yaml:"organizations"`
	Clients           []fileClient       `yaml:"clients"`
	Providers         []fileProvider     `yaml:"providers"`
	Consent           string             `yaml:"consent"`
	ShareProfiles     yaml.Node          `yaml:"share_profiles"`
	Operators         []fileOperator     `yaml:"operators"`
}

type fileOperator struct {
	ID     string         `yaml:"id"`
	Name   string         `yaml:"name"`
	Auth   fileClientAuth `yaml:"auth"`
	Export string         `yaml:"export"`
}

type fileRateLimit struct {
	PerSecond  float64          `yaml:"per_second"`
	Burst      int              `yaml:"burst"`
	PerAddress *fileAddressRate `yaml:"per_address"`
}

type fileAddressRate struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

type fileAudit struct {
	MaxEntries int64 `yaml:"max_entries"`
}

type fileMeasureRule struct {
	Categories     []string `yaml:"categories"`
	Providers      []string `yaml:"providers"`
	Questionnaires []string `yaml:"questionnaires"`
	At             []string `yaml:"at"`
}

type fileRetention struct {
	ClosedAfter string `yaml:"closed_after"`
	AuditAfter  string `yaml:"audit_after"`
}

// ParseRetentionDuration reads a period: a Go duration ("36h"), or a
// whole number of days or years ("180d", "8y"; a year is 365 days); ""
// is 0.
func ParseRetentionDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "y": 365 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			i, err := strconv.Atoi(n)
			if err != nil || i < 0 {
				return 0, fmt.Errorf("%q is not a whole number of %s", v, map[string]string{"d": "days", "y": "years"}[suffix])
			}
			return time.Duration(i) * unit, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a period; write such as \"180d\", \"8y\" or \"36h\"", v)
	}
	return d, nil
}

type fileExport struct {
	Dir             string `yaml:"dir"`
	Keep            string `yaml:"keep"`
	PseudonymKeyEnv string `yaml:"pseudonym_key_env"`
	BirthDate       string `yaml:"birth_date"`
}

type fileAuth struct {
	Mode string `yaml:"mode"`
}

type fileIdentifier struct {
	System string `yaml:"system"`
	Value  string `yaml:"value"`
}

type fileClientAuth struct {
	// A node, so that any YAML or JSON shape is accepted here and turned
	// into JSON for the key handling code to judge.
	JWKS    yaml.Node `yaml:"jwks"`
	JWKSURL string    `yaml:"jwks_url"`
	Scopes  []string  `yaml:"scopes"`
}

type fileNotify struct {
	FHIRBase       string `yaml:"fhir_base"`
	BearerTokenEnv string `yaml:"bearer_token_env"`
}

type fileOrganization struct {
	ODS  string `yaml:"ods"`
	Name string `yaml:"name"`
}

type fileClient struct {
	ID           string         `yaml:"id"`
	Name         string         `yaml:"name"`
	Organization fileIdentifier `yaml:"organization"`
	Auth         fileClientAuth `yaml:"auth"`
	Notify       *fileNotify    `yaml:"notify"`
	Bars         *fileBars      `yaml:"bars"`
	SubOrigins   []string       `yaml:"subscription_origins"`
}

type fileBars struct {
	Endpoint       string `yaml:"endpoint"`
	BearerTokenEnv string `yaml:"bearer_token_env"`
}

type fileDelivery struct {
	Kind            string   `yaml:"kind"`
	URL             string   `yaml:"url"`
	Secret          string   `yaml:"secret"`
	SecretEnv       string   `yaml:"secret_env"`
	RotatingSecrets []string `yaml:"rotating_secrets"`
	Payload         string   `yaml:"payload"`
	BearerTokenEnv  string   `yaml:"bearer_token_env"`
}

type fileProvider struct {
	ID           string         `yaml:"id"`
	Name         string         `yaml:"name"`
	Organization fileIdentifier `yaml:"organization"`
	Categories   []string       `yaml:"categories"`
	Services     []string       `yaml:"services"`
	Auth         fileClientAuth `yaml:"auth"`
	Delivery     fileDelivery   `yaml:"delivery"`
	NHS          bool           `yaml:"nhs"`
	Consent      string         `yaml:"consent"`
	Share        string         `yaml:"share"`
}

// sources remembers where each value came from (a file line or an
// environment variable) and what went wrong while decoding, so Validate can
// point at the exact place to fix and report decode and rule problems
// together.
type sources struct {
	lines   map[string]int    // field path -> line of its key or list item
	entries []nodeEntry       // every field in document order
	env     map[string]string // field path -> environment variable that set it
	parse   []FieldProblem    // found while decoding the file
}

type nodeEntry struct {
	path    string
	key     string // the mapping key; "" for list items
	keyLine int
	valLine int
	tag     string
	value   string
}

func (s *sources) clone() *sources {
	n := &sources{lines: map[string]int{}, env: map[string]string{}}
	if s == nil {
		return n
	}
	n.entries = s.entries
	n.parse = s.parse
	for k, v := range s.lines {
		n.lines[k] = v
	}
	for k, v := range s.env {
		n.env[k] = v
	}
	return n
}

// line finds the line of a field or, for a field the file leaves out, of the
// nearest enclosing one, so "missing" problems still point somewhere useful.
func (s *sources) line(field string) int {
	if s == nil {
		return 0
	}
	for field != "" {
		if l, ok := s.lines[field]; ok {
			return l
		}
		field = parentPath(field)
	}
	return 0
}

func parentPath(field string) string {
	i := strings.LastIndexAny(field, ".[")
	if i < 0 {
		return ""
	}
	return field[:i]
}

func (s *sources) index(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			s.index(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			s.add(nodeEntry{path: p, key: k.Value, keyLine: k.Line, valLine: v.Line, tag: v.ShortTag(), value: v.Value}, v)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			s.add(nodeEntry{path: p, keyLine: v.Line, valLine: v.Line, tag: v.ShortTag(), value: v.Value}, v)
		}
	}
}

func (s *sources) add(e nodeEntry, v *yaml.Node) {
	s.entries = append(s.entries, e)
	if _, seen := s.lines[e.path]; !seen {
		s.lines[e.path] = e.keyLine
	}
	// Aliases are not followed: their contents already have lines where
	// they were defined.
	if v.Kind != yaml.AliasNode {
		s.index(v, e.path)
	}
}

var (
	reLineMsg   = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reUnknown   = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	reTwice     = regexp.MustCompile(`^field (.+) already set in type \S+$`)
	reDupKey    = regexp.MustCompile(`^mapping key "(.*)" already defined at line \d+$`)
	reUnmarshal = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

const errNotSingle = "the file holds more than one YAML document; put all settings in one"

// translate turns one of yaml.v3's decode messages into a problem that names
// the setting in the file's own terms, rather than Go type names, and never
// repeats the offending value (it could be a secret).
func (s *sources) translate(msg string, used map[int]bool) FieldProblem {
	m := reLineMsg.FindStringSubmatch(msg)
	if m == nil {
		return FieldProblem{Reason: msg}
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	find := func(match func(e nodeEntry) bool) string {
		for i, e := range s.entries {
			if !used[i] && match(e) {
				used[i] = true
				return e.path
			}
		}
		return ""
	}
	p := FieldProblem{Line: line, Reason: rest}
	if sm := reUnknown.FindStringSubmatch(rest); sm != nil {
		p.Field = find(func(e nodeEntry) bool { return e.keyLine == line && e.key == sm[1] })
		p.Reason = "is not a known setting (check the spelling and the indentation)"
		if p.Field == "" {
			p.Reason = fmt.Sprintf("%q is not a known setting (check the spelling and the indentation)", sm[1])
		}
		return p
	}
	if sm := reTwice.FindStringSubmatch(rest); sm != nil {
		p.Field = find(func(e nodeEntry) bool { return e.keyLine == line && e.key == sm[1] })
		p.Reason = "is set more than once"
		return p
	}
	if sm := reDupKey.FindStringSubmatch(rest); sm != nil {
		p.Field = find(func(e nodeEntry) bool { return e.keyLine == line && e.key == sm[1] })
		p.Reason = "is set more than once"
		return p
	}
	if sm := reUnmarshal.FindStringSubmatch(rest); sm != nil {
		tag, val, into := sm[1], sm[2], sm[3]
		val = strings.TrimSuffix(val, "...")
		p.Field = find(func(e nodeEntry) bool {
			return e.valLine == line && e.tag == tag && strings.HasPrefix(e.value, val)
		})
		want, got := goTypeWords(into), yamlTagWords(tag)
		p.Reason = fmt.Sprintf("must be %s, not %s", want, got)
		if got == "a number" && want == "a whole number" {
			p.Reason = "must be a whole number small enough to store"
		}
		return p
	}
	return p
}

func goTypeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case t == "string":
		return "a single value"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "config."), strings.HasPrefix(t, "*config."):
		return "a mapping of settings"
	}
	return "a different kind of value"
}

func yamlTagWords(tag string) string {
	switch tag {
	case "!!str":
		return "text"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "true/false"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "empty"
	case "!!timestamp":
		return "a date"
	}
	return tag
}

// Parse reads a configuration file's contents on top of Default, without
// environment overrides or Validate, so tests and the demo's embedded example
// can build a Config from bytes. name is used in messages, recorded as Path,
// and its directory anchors a relative mappings path.
//
// Unknown keys are errors, because a misspelt setting silently keeping its
// default is worse than a refusal to start. Problems with individual values
// (a bad duration, a wrong type) are all collected into one *Error; the
// Config returned alongside is then only good for Validate, which repeats
// those problems together with its own. A YAML syntax error stops the parse.
func Parse(data []byte, name string) (Config, error) {
	cfg, fatal := parse(data, name)
	if fatal != nil {
		return Config{}, fatal
	}
	if len(cfg.src.parse) > 0 {
		return cfg, &Error{File: name, Problems: sortProblems(append([]FieldProblem(nil), cfg.src.parse...))}
	}
	return cfg, nil
}

func parse(data []byte, name string) (Config, *Error) {
	cfg := Default()
	cfg.Path = name
	src := &sources{lines: map[string]int{}, env: map[string]string{}}
	cfg.src = src

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Config{}, &Error{File: name, Problems: []FieldProblem{syntaxProblem(err)}}
	}
	if root.Kind == 0 {
		return cfg, nil // an empty file means all defaults
	}
	src.index(&root, "")

	fc := fileFrom(cfg)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&fc)
	var te *yaml.TypeError
	switch {
	case err == nil, errors.Is(err, io.EOF):
	case errors.As(err, &te):
		used := map[int]bool{}
		for _, msg := range te.Errors {
			src.parse = append(src.parse, src.translate(msg, used))
		}
	default:
		return Config{}, &Error{File: name, Problems: []FieldProblem{syntaxProblem(err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		src.parse = append(src.parse, FieldProblem{Line: extra.Line, Reason: errNotSingle})
	}

	fc.into(&cfg, src)
	return cfg, nil
}

func syntaxProblem(err error) FieldProblem {
	msg := err.Error()
	if m := reLineMsg.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return FieldProblem{Line: line, Reason: "YAML syntax: " + m[2]}
	}
	return FieldProblem{Reason: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// fileFrom seeds the file shape with defaults, so keys the file leaves out
// keep them after decoding.
func fileFrom(c Config) fileConfig {
	fc := fileConfig{
		Listen:            c.Listen,
		PublicURL:         c.PublicURL,
		RedisURL:          c.RedisURL,
		RedisCluster:      c.RedisCluster,
		RedisTLS:          c.RedisTLS,
		RedisTLSCA:        c.RedisTLSCA,
		RedisTLSName:      c.RedisTLSServerName,
		RedisNamespace:    c.RedisNamespace,
		RedisWaitReplicas: c.RedisWaitReplicas,
		RedisWaitTimeout:  c.RedisWaitTimeout.String(),
		Mappings:          c.Mappings,
		Unmapped:          string(c.Unmapped),
		NHSNumber:         string(c.NHSNumber),
		Understood:        c.UnderstoodModifierExtensions,
		Auth:              fileAuth{Mode: string(c.Auth.Mode)},
		MaxBodyBytes:      c.MaxBodyBytes,
		RateLimit: &fileRateLimit{PerSecond: c.RateLimit.PerSecond, Burst: c.RateLimit.Burst,
			PerAddress: &fileAddressRate{PerSecond: c.RateLimit.PerAddress.PerSecond, Burst: c.RateLimit.PerAddress.Burst}},
		Audit: fileAudit{MaxEntries: c.Audit.MaxEntries},
		Export: fileExport{Dir: c.Export.Dir, Keep: c.Export.Keep.String(), PseudonymKeyEnv: c.Export.PseudonymKeyEnv,
			BirthDate: string(c.Export.BirthDate)},
		MetricsListen:   c.MetricsListen,
		Questionnaires:  c.Questionnaires,
		DeliveryTimeout: c.DeliveryTimeout.String(),
		SubsPerClient:   &c.SubscriptionsPerClient,
	}
	for _, d := range c.DeliveryRetry {
		fc.DeliveryRetry = append(fc.DeliveryRetry, d.String())
	}
	for _, p := range c.OutboundAllow {
		fc.OutboundAllow = append(fc.OutboundAllow, p.String())
	}
	for _, p := range c.TrustedProxies {
		fc.TrustedProxies = append(fc.TrustedProxies, p.String())
	}
	for _, m := range c.Measures {
		fm := fileMeasureRule{Categories: m.Categories, Providers: m.Providers, Questionnaires: m.Questionnaires}
		for _, at := range m.At {
			fm.At = append(fm.At, string(at))
		}
		fc.Measures = append(fc.Measures, fm)
	}
	return fc
}

// into converts the decoded file into cfg. Values that cannot be converted
// are recorded as problems and left as zero values at the same index, so
// positions in lists still match the file.
func (fc fileConfig) into(cfg *Config, src *sources) {
	problem := func(field, reason string) {
		src.parse = append(src.parse, FieldProblem{Field: field, Reason: reason, Line: src.line(field)})
	}
	cfg.Listen = fc.Listen
	cfg.PublicURL = fc.PublicURL
	cfg.RedisURL = fc.RedisURL
	cfg.RedisCluster = fc.RedisCluster
	cfg.RedisTLS = fc.RedisTLS
	cfg.RedisTLSCA = fc.RedisTLSCA
	if cfg.RedisTLSCA != "" && !filepath.IsAbs(cfg.RedisTLSCA) && cfg.Path != "" {
		cfg.RedisTLSCA = filepath.Join(filepath.Dir(cfg.Path), cfg.RedisTLSCA)
	}
	cfg.RedisTLSServerName = fc.RedisTLSName
	cfg.RedisNamespace = fc.RedisNamespace
	cfg.RedisWaitReplicas = fc.RedisWaitReplicas
	if d, err := time.ParseDuration(fc.RedisWaitTimeout); err == nil {
		cfg.RedisWaitTimeout = d
	} else {
		cfg.RedisWaitTimeout = -1 // reported by Validate
	}
	cfg.Mappings = fc.Mappings
	if cfg.Mappings != "" && !filepath.IsAbs(cfg.Mappings) && cfg.Path != "" {
		cfg.Mappings = filepath.Join(filepath.Dir(cfg.Path), cfg.Mappings)
	}
	cfg.Unmapped = UnmappedPolicy(fc.Unmapped)
	cfg.NHSNumber = NHSNumberPolicy(fc.NHSNumber)
	cfg.UnderstoodModifierExtensions = fc.Understood
	cfg.Auth = Auth{Mode: AuthMode(fc.Auth.Mode)}
	cfg.MaxBodyBytes = fc.MaxBodyBytes
	if d, err := time.ParseDuration(fc.DeliveryTimeout); err == nil {
		cfg.DeliveryTimeout = d
	} else {
		cfg.DeliveryTimeout = -1 // reported by Validate
	}
	if fc.SubsPerClient != nil {
		cfg.SubscriptionsPerClient = *fc.SubsPerClient
	}
	if fc.RateLimit != nil {
		cfg.RateLimit = RateLimit{PerSecond: fc.RateLimit.PerSecond, Burst: fc.RateLimit.Burst}
		if pa := fc.RateLimit.PerAddress; pa != nil {
			cfg.RateLimit.PerAddress = AddressRate{PerSecond: pa.PerSecond, Burst: pa.Burst}
		}
	}
	cfg.Audit = Audit{MaxEntries: fc.Audit.MaxEntries}
	cfg.Export = Export{Dir: fc.Export.Dir, PseudonymKeyEnv: strings.TrimSpace(fc.Export.PseudonymKeyEnv),
		BirthDate: BirthDateRule(strings.TrimSpace(fc.Export.BirthDate))}
	if cfg.Export.Dir != "" && !filepath.IsAbs(cfg.Export.Dir) && cfg.Path != "" {
		cfg.Export.Dir = filepath.Join(filepath.Dir(cfg.Path), cfg.Export.Dir)
	}
	if d, err := time.ParseDuration(strings.TrimSpace(fc.Export.Keep)); err == nil {
		cfg.Export.Keep = d
	} else {
		problem("export.keep", fmt.Sprintf("%q is not a duration; write a number and a unit, such as \"24h\" (there is no day unit)", fc.Export.Keep))
	}
	if d, err := ParseRetentionDuration(fc.Retention.ClosedAfter); err == nil {
		cfg.Retention.ClosedAfter = d
	} else {
		problem("retention.closed_after", err.Error())
	}
	if d, err := ParseRetentionDuration(fc.Retention.AuditAfter); err == nil {
		cfg.Retention.AuditAfter = d
	} else {
		problem("retention.audit_after", err.Error())
	}
	cfg.Measures = nil
	for _, fm := range fc.Measures {
		rule := MeasureRule{Categories: fm.Categories, Providers: fm.Providers, Questionnaires: fm.Questionnaires}
		for _, at := range fm.At {
			rule.At = append(rule.At, MeasurePoint(strings.TrimSpace(at)))
		}
		cfg.Measures = append(cfg.Measures, rule)
	}
	cfg.Questionnaires = fc.Questionnaires
	if cfg.Questionnaires != "" && !filepath.IsAbs(cfg.Questionnaires) && cfg.Path != "" {
		cfg.Questionnaires = filepath.Join(filepath.Dir(cfg.Path), cfg.Questionnaires)
	}
	cfg.MetricsListen = fc.MetricsListen

	cfg.DeliveryRetry = nil
	if fc.DeliveryRetry != nil {
		cfg.DeliveryRetry = make([]time.Duration, len(fc.DeliveryRetry))
	}
	for i, s := range fc.DeliveryRetry {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			problem(fmt.Sprintf("delivery_retry[%d]", i),
				fmt.Sprintf("%q is not a duration; write a number and a unit, such as \"30s\", \"5m\" or \"24h\" (there is no day unit)", s))
			continue
		}
		cfg.DeliveryRetry[i] = d
	}

	cfg.OutboundAllow = prefixes("outbound_allow", fc.OutboundAllow, problem)
	cfg.TrustedProxies = prefixes("trusted_proxies", fc.TrustedProxies, problem)

	cfg.Consent = ConsentPolicy(strings.TrimSpace(fc.Consent))
	cfg.ShareProfiles = shareProfiles(&fc.ShareProfiles, problem)

	cfg.Organizations = nil
	for _, fo := range fc.Organizations {
		cfg.Organizations = append(cfg.Organizations, Organization{ODS: strings.TrimSpace(fo.ODS), Name: strings.TrimSpace(fo.Name)})
	}

	cfg.Clients = nil
	for i, fcl := range fc.Clients {
		prefix := fmt.Sprintf("clients[%d]", i)
		cl := Client{
			ID:                  fcl.ID,
			Name:                fcl.Name,
			Organization:        Identifier(fcl.Organization),
			Auth:                fcl.Auth.into(prefix+".auth", problem),
			SubscriptionOrigins: fcl.SubOrigins,
		}
		if fcl.Notify != nil {
			n := Notify(*fcl.Notify)
			cl.Notify = &n
		}
		if fcl.Bars != nil {
			b := Bars(*fcl.Bars)
			cl.Bars = &b
		}
		cfg.Clients = append(cfg.Clients, cl)
	}

	cfg.Operators = nil
	for i, fo := range fc.Operators {
		prefix := fmt.Sprintf("operators[%d]", i)
		cfg.Operators = append(cfg.Operators, Operator{ID: fo.ID, Name: fo.Name, Auth: fo.Auth.into(prefix+".auth", problem),
			Export: cmp.Or(ExportRight(fo.Export), ExportDeidentified)})
	}

	cfg.Providers = nil
	for i, fp := range fc.Providers {
		prefix := fmt.Sprintf("providers[%d]", i)
		if fp.Delivery.Secret != "" && fp.Delivery.SecretEnv != "" {
			problem(prefix+".delivery.secret_env", "give secret or secret_env, not both")
		}
		payload := PayloadKind(fp.Delivery.Payload)
		if payload == "" {
			payload = PayloadThin
		}
		cfg.Providers = append(cfg.Providers, Provider{
			ID:           fp.ID,
			Name:         fp.Name,
			Organization: Identifier(fp.Organization),
			Categories:   fp.Categories,
			Services:     fp.Services,
			Auth:         fp.Auth.into(prefix+".auth", problem),
			NHS:          fp.NHS,
			Consent:      ConsentPolicy(strings.TrimSpace(fp.Consent)),
			Share:        strings.TrimSpace(fp.Share),
			Delivery: Delivery{
				Kind:            DeliveryKind(fp.Delivery.Kind),
				URL:             fp.Delivery.URL,
				Secret:          fp.Delivery.Secret,
				SecretEnv:       fp.Delivery.SecretEnv,
				RotatingSecrets: fp.Delivery.RotatingSecrets,
				Payload:         payload,
				BearerTokenEnv:  fp.Delivery.BearerTokenEnv,
			},
		})
	}
}

// into turns the JWKS node into JSON. A YAML string is taken as JSON text,
// so a key set can be pasted in exactly as an identity provider publishes it.
func (fa fileClientAuth) into(prefix string, problem func(field, reason string)) ClientAuth {
	ca := ClientAuth{JWKSURL: fa.JWKSURL, Scopes: fa.Scopes}
	n := &fa.JWKS
	switch {
	case n.Kind == 0, n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(n.Value)); err != nil {
			problem(prefix+".jwks", "is text but not JSON; give the key set as a mapping or as JSON text")
			break
		}
		ca.JWKS = buf.Bytes()
	default:
		var v any
		if err := n.Decode(&v); err != nil {
			problem(prefix+".jwks", "could not be read as a key set")
			break
		}
		b, err := json.Marshal(v)
		if err != nil {
			problem(prefix+".jwks", "cannot be expressed as JSON (mapping keys must be text)")
			break
		}
		ca.JWKS = b
	}
	return ca
}

// ApplyEnv lets the environment override the file, because containers and
// test harnesses set addresses per instance while the file is shared. Empty
// variables are ignored so an unset variable never blanks a setting. A nil
// getenv changes nothing.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if getenv == nil {
		return
	}
	for _, o := range []struct {
		dst         *string
		field, name string
	}{
		{&c.Listen, "listen", EnvListen},
		{&c.MetricsListen, "metrics_listen", EnvMetricsListen},
		{&c.RedisURL, "redis_url", EnvRedisURL},
		{&c.RedisUsername, "redis_username", EnvRedisUsername},
		{&c.RedisPassword, "redis_password", EnvRedisPassword},
		{&c.RedisNamespace, "redis_namespace", EnvRedisNamespace},
		{&c.PublicURL, "public_url", EnvPublicURL},
	} {
		v := getenv(o.name)
		if v == "" {
			continue
		}
		*o.dst = v
		// Copy before writing: Configs copied by value share sources.
		src := c.src.clone()
		src.env[o.field] = o.name
		c.src = src
	}
	// Either Redis given by the environment wins over both in the file;
	// both given by the environment is a problem Validate reports.
	if v := getenv(EnvRedisCluster); v != "" {
		c.RedisCluster = nil
		src := c.src.clone()
		for i, addr := range strings.Split(v, ",") {
			c.RedisCluster = append(c.RedisCluster, strings.TrimSpace(addr))
			src.env[fmt.Sprintf("redis_cluster[%d]", i)] = EnvRedisCluster
		}
		src.env["redis_cluster"] = EnvRedisCluster
		c.src = src
	} else if getenv(EnvRedisURL) != "" {
		c.RedisCluster = nil
	}
	// Webhook secrets named by variable. Providers is copied first: Configs
	// copied by value share the slice.
	c.Providers = slices.Clone(c.Providers)
	for i := range c.Providers {
		if d := &c.Providers[i].Delivery; d.SecretEnv != "" {
			d.Secret = getenv(d.SecretEnv)
		}
	}
}

// Load is how the server gets its configuration: defaults, then the file at
// path (or at $SIGNPOST_CONFIG when path is ""; no file at all when both are
// empty), then environment overrides, then Validate. getenv is usually
// os.Getenv; nil means an empty environment. isCategory is the closed set
// of social prescribing categories (mappings.IsCategory); it is a parameter
// because config imports nothing of the project. nil skips that one check.
func Load(path string, getenv func(string) string, isCategory func(string) bool) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	via := ""
	if path == "" {
		path = getenv(EnvConfig)
		via = " (named by " + EnvConfig + ")"
	}
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("reading configuration file%s: %w", via, err)
		}
		var fatal *Error
		cfg, fatal = parse(data, path)
		if fatal != nil {
			return Config{}, fatal
		}
	}
	cfg.ApplyEnv(getenv)
	if err := cfg.Validate(isCategory); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// prefixes reads a list of CIDR prefixes. One that does not parse is a
// problem, left as the zero prefix at its index (Validate reports it too).
func prefixes(name string, list []string, problem func(field, reason string)) []netip.Prefix {
	if list == nil {
		return nil
	}
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		field := fmt.Sprintf("%s[%d]", name, i)
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				problem(field, fmt.Sprintf("%q is an address, not a CIDR prefix; write %s/%d for just that address", s, s, a.BitLen()))
			} else {
				problem(field, fmt.Sprintf("%q is not a CIDR prefix such as \"10.0.0.0/8\"", s))
			}
			continue
		}
		out[i] = p.Masked()
	}
	return out
}

// shareProfiles reads share_profiles, a mapping of names to lists of
// element names, keeping the file's order so problems are listed as the
// file has them.
func shareProfiles(n *yaml.Node, problem func(field, reason string)) []ShareProfile {
	switch {
	case n.Kind == 0, n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return nil
	case n.Kind != yaml.MappingNode:
		problem("share_profiles", "must map profile names to lists of elements, such as minimal: [name, telecom, reasonCode]")
		return nil
	}
	var out []ShareProfile
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		var elements []string
		if err := n.Content[i+1].Decode(&elements); err != nil {
			problem("share_profiles."+name, "must be a list of element names, such as [name, telecom, reasonCode]")
			continue
		}
		for j := range elements {
			elements[j] = strings.TrimSpace(elements[j])
		}
		out = append(out, ShareProfile{Name: name, Elements: elements})
	}
	return out
}
