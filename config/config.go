// Package config turns Signpost's YAML file and environment into one typed
// Config, so every other package can take settings as plain Go values and
// never has to re-check them. Settings are layered defaults, then the file,
// then environment overrides, and Validate reports every problem in one go
// so an operator can fix a file in a single pass rather than one error per
// restart.
//
// The package imports nothing else from the project (only the standard
// library and yaml.v3): every other package may depend on it without a
// cycle, and project knowledge it needs, such as which service categories
// exist, is passed in by the caller.
package config

import (
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// UnmappedPolicy decides what happens to a referral whose reason code has no
// category in the mapping table: refusing it keeps the GP in the loop,
// triaging it lets a link worker decide by hand.
type UnmappedPolicy string

const (
	UnmappedReject UnmappedPolicy = "reject"
	// UnmappedTriage routes unmapped referrals to the category TriageCategory.
	UnmappedTriage UnmappedPolicy = "triage"
)

// TriageCategory is where UnmappedTriage sends referrals; it is named here so
// the router and the validator agree on the spelling.
const TriageCategory = "link-worker"

// NHSNumberPolicy decides whether a failed NHS number check stops a referral.
// Strict is the safe default; warn exists for test data from systems that
// issue numbers which do not pass the modulus 11 check.
type NHSNumberPolicy string

const (
	NHSNumberStrict NHSNumberPolicy = "strict"
	NHSNumberWarn   NHSNumberPolicy = "warn"
)

// AuthMode selects how callers prove who they are. None exists only for
// local development and demos, which is why Validate refuses it unless the
// gateway listens on a loopback address.
type AuthMode string

const (
	AuthSMART AuthMode = "smart"
	AuthNone  AuthMode = "none"
)

// DeliveryKind says how a provider receives referrals, because voluntary
// organisations range from those with their own FHIR server to those with
// nothing but a web browser.
type DeliveryKind string

const (
	// DeliveryWebhook posts a signed notification (Standard Webhooks) to URL.
	DeliveryWebhook DeliveryKind = "webhook"
	// DeliveryFHIR writes the referral to the provider's own FHIR server at URL.
	DeliveryFHIR DeliveryKind = "fhir"
	// DeliveryBars sends the referral as an NHS BaRS servicerequest-request
	// message to the provider's FHIR base ({URL}/$process-message), for
	// providers whose systems speak the Booking and Referral Standard.
	DeliveryBars DeliveryKind = "bars"
	// DeliveryPortal leaves referrals in Signpost for the provider to collect,
	// so there is nothing to call and no URL.
	DeliveryPortal DeliveryKind = "portal"
)

// PayloadKind decides how much patient data leaves Signpost in a delivery.
// Thin (the default) sends only identifiers, so the provider must fetch the
// referral with its own credentials and the access is audited; full sends the
// whole referral for providers that cannot call back.
type PayloadKind string

const (
	PayloadThin PayloadKind = "thin"
	PayloadFull PayloadKind = "full"
)

// RateLimit is how many requests each client (GP system or provider) may
// make, counted across every gateway replica: PerSecond sustained, with
// bursts of up to Burst. PerSecond 0 turns the limit off.
type RateLimit struct {
	PerSecond float64
	Burst     int
	// PerAddress limits, per caller address, what callers not yet known may
	// ask: token requests, and FHIR requests without a valid token (each is
	// audited, so without a limit a stranger could fill Redis).
	PerAddress AddressRate
}

// AddressRate is the per-address limit: PerSecond sustained with bursts
// of up to Burst; PerSecond 0 turns it off.
type AddressRate struct {
	PerSecond float64
	Burst     int
}

// Audit is how much of the audit trail Redis keeps.
type Audit struct {
	// MaxEntries is about how many records the audit stream keeps; the
	// oldest beyond it are trimmed (archive them first with signpost
	// audit tail if policy says to keep them longer).
	MaxEntries int64
}

// Retention configures removing what is no longer needed (retention:).
// 0 keeps for ever, the default.
type Retention struct {
	// ClosedAfter: a referral whose Task is final and whose last change
	// is older than this is removed (at least a day).
	ClosedAfter time.Duration
	// AuditAfter: audit records older than this are trimmed (at least a year).
	AuditAfter time.Duration
}

// Export configures the Bulk Data export ($export).
type Export struct {
	// Dir is where the NDJSON files are written, one directory per export;
	// "" is a directory under the operating system's temporary directory.
	// With more than one replica serving the API it must be a volume every
	// replica sees: any replica may be asked for a file. Parse makes a
	// relative path relative to the file's directory.
	Dir string
	// Keep is how long a finished export and its files stay.
	Keep time.Duration
	// PseudonymKeyEnv names the environment variable holding the key of
	// the de-identified export's pseudonyms (the key itself is never in
	// the file). Unset or empty variable: de-identified exports are refused.
	PseudonymKeyEnv string
	// BirthDate is how the de-identified export reduces a patient's dates
	// of birth and death.
	BirthDate BirthDateRule
}

// BirthDateRule is what the de-identified export keeps of a patient's dates
// of birth and death.
type BirthDateRule string

const (
	BirthDateYear   BirthDateRule = "year"   // the year only (the default)
	BirthDateRemove BirthDateRule = "remove" // nothing
)

// DefaultPseudonymKeyEnv is the variable export.pseudonym_key_env names
// unless set.
const DefaultPseudonymKeyEnv = "SIGNPOST_PSEUDONYM_KEY"

// Bounds of export.keep: less than a minute gives a client no time to
// download; more than 30 days keeps copies of patient data long after any
// evaluation needs them.
const (
	MinExportKeep     = time.Minute
	MaxExportKeep     = 30 * 24 * time.Hour
	DefaultExportKeep = 24 * time.Hour
)

// Bounds of audit.max_entries: fewer would lose a day's trail of a small
// deployment; more (at some 200 bytes each) would need hundreds of GiB.
const (
	MinAuditEntries     int64 = 1_000
	MaxAuditEntries     int64 = 1_000_000_000
	DefaultAuditEntries int64 = 1_000_000
)

// Limits on MaxBodyBytes: below 1 KiB no real referral fits, above 64 MiB a
// single request could exhaust memory.
const (
	MinBodyLimit     int64 = 1 << 10
	MaxBodyLimit     int64 = 64 << 20
	DefaultBodyLimit int64 = 1 << 20
)

// MaxRetryWait caps each delivery_retry wait: a referral held longer than
// three days between attempts is better dead-lettered and looked at by a
// person.
const MaxRetryWait = 72 * time.Hour

// Names of the environment variables Signpost reads. Deployment tools set
// these rather than templating the file.
const (
	EnvConfig   = "SIGNPOST_CONFIG"
	EnvListen   = "SIGNPOST_LISTEN"
	EnvRedisURL = "SIGNPOST_REDIS_URL"
	// EnvRedisCluster sets redis_cluster: the nodes' host:port, separated
	// by commas.
	EnvRedisCluster = "SIGNPOST_REDIS_CLUSTER"
	// EnvRedisUsername and EnvRedisPassword are what redis_cluster's nodes
	// ask of a client (AUTH, or an ACL user's name and password). They are
	// read from the environment only: a secret belongs in a secret store,
	// not in a file a ConfigMap holds.
	EnvRedisUsername = "SIGNPOST_REDIS_USERNAME"
	EnvRedisPassword = "SIGNPOST_REDIS_PASSWORD"
	// EnvRedisNamespace sets redis_namespace.
	EnvRedisNamespace = "SIGNPOST_REDIS_NAMESPACE"
	EnvPublicURL      = "SIGNPOST_PUBLIC_URL"
	// EnvMetricsListen sets metrics_listen.
	EnvMetricsListen = "SIGNPOST_METRICS_LISTEN"
)

// Config is the whole of Signpost's configuration. Values produced by Load
// have passed Validate (apart from category names, see Load), so users need
// not check them again.
type Config struct {
	Listen    string
	PublicURL string
	RedisURL  string
	// RedisCluster, when set, are the host:port of some nodes of a Redis
	// Cluster (the client learns the rest from them), used instead of
	// RedisURL, which is then not used at all.
	RedisCluster []string
	// RedisUsername and RedisPassword authenticate to RedisCluster's nodes
	// (from EnvRedisUsername and EnvRedisPassword only; one Redis takes
	// them in RedisURL). RedisPassword is never shown: RedisTarget and
	// every message leave it out.
	RedisUsername, RedisPassword string
	// RedisTLS makes the client speak TLS to every node of RedisCluster
	// (one Redis says so with a rediss:// RedisURL).
	RedisTLS bool
	// RedisTLSCA is a PEM file of the certificate authorities that sign
	// Redis's certificates, trusted instead of the system's (a private
	// CA); "" trusts the system's. For RedisCluster with RedisTLS, or a
	// rediss:// RedisURL.
	RedisTLSCA string
	// RedisTLSServerName is the name every node's certificate must hold,
	// when nodes are reached by addresses the certificate does not name
	// (a cluster announcing its nodes' IP addresses); "" checks each
	// node's certificate against the host it is reached at.
	RedisTLSServerName string
	// RedisNamespace is the hash tag of every key Signpost keeps in Redis
	// ("signpost": keys read {signpost}:…), so that deployments sharing a
	// Redis (signpost demo beside a development server) keep apart.
	RedisNamespace string
	// RedisWaitReplicas, above 0, is how many Redis replicas must have a
	// change before Signpost acknowledges it (WAIT), within
	// RedisWaitTimeout; otherwise the request is answered 503 and the
	// caller retries. 0: acknowledged once the primary has it.
	RedisWaitReplicas int
	RedisWaitTimeout  time.Duration
	// Mappings is the referral-code table to use instead of the embedded one;
	// "" means the embedded table. Parse makes a relative path relative to the
	// file's directory, so the file works whatever the working directory.
	Mappings  string
	Unmapped  UnmappedPolicy
	NHSNumber NHSNumberPolicy
	// UnderstoodModifierExtensions are the modifierExtension urls this
	// deployment's receivers understand. A resource carrying any other is
	// refused: R4 forbids processing it as if the modifier were absent.
	UnderstoodModifierExtensions []string
	Auth                         Auth
	MaxBodyBytes                 int64
	RateLimit                    RateLimit
	Audit                        Audit
	// Export is where the Bulk Data export writes its files, and for how long.
	Export Export
	// Retention is how long closed referrals and audit records are kept.
	Retention Retention
	// Measures say which outcome measures (Questionnaire ids) providers
	// ask, for which referrals, at which points; none: no measure is asked
	// and none is recorded.
	Measures []MeasureRule
	// Questionnaires is a directory of the deployment's own measures
	// (*.json Questionnaires and scores.csv) used instead of the built-in
	// ones; "" means the built-in set. Relative to the file's directory.
	Questionnaires string
	// MetricsListen is the host:port serving /metrics, apart from the API
	// so that the public listener never shows it; "" serves none.
	MetricsListen string
	// DeliveryTimeout bounds one send to a provider. A job held six times
	// as long by a worker that stopped is taken over by another.
	DeliveryTimeout time.Duration
	DeliveryRetry   []time.Duration
	// SubscriptionsPerClient caps the subscriptions one GP system has that
	// are not ended: each is sent every change and its heartbeats.
	SubscriptionsPerClient int
	OutboundAllow          []netip.Prefix
	// TrustedProxies are the proxies (a TLS terminator, a load balancer)
	// whose X-Forwarded-For is believed: a request from one of them is
	// counted, limited and audited by the address it forwarded. From any
	// other address the header is ignored, or a caller could choose the
	// address its rate limit is counted by.
	TrustedProxies []netip.Prefix
	// Organizations names the organisations people read about (referring
	// practices above all), keyed by ODS code; see OrganizationNames.
	Organizations []Organization
	Clients       []Client
	Providers     []Provider
	// Consent is the deployment's consent policy, for providers that set
	// none of their own (ConsentUnset: none is checked).
	Consent ConsentPolicy
	// ShareProfiles are the named sets of elements providers may be limited
	// to (providers[].share), in file order.
	ShareProfiles []ShareProfile
	// Operators are the SMART clients that take system-level Bulk Data
	// exports: the deployment's own operators and the evaluators it
	// serves. They may use $export and nothing else.
	Operators []Operator
	// Path is the file the configuration came from, "" if none; kept so
	// messages can say which file to fix.
	Path string

	// Where values came from, so problems can name a line or a variable.
	src *sources
}

// MeasurePoint is when in a referral a provider asks an outcome measure:
// at first contact (the "before") and at completion (the "after").
type MeasurePoint string

const (
	MeasureFirstContact MeasurePoint = "first-contact"
	MeasureCompletion   MeasurePoint = "completion"
)

// AllCategories in a measure rule's categories matches every category.
const AllCategories = "*"

// MeasureRule asks the given Questionnaires at the given points of the
// referrals of the given categories ("*": all) and providers (none: all).
type MeasureRule struct {
	Categories     []string
	Providers      []string
	Questionnaires []string
	At             []MeasurePoint
}

// Auth holds gateway-wide authentication settings.
type Auth struct {
	Mode AuthMode
}

// Identifier is a FHIR identifier (system and value) naming an organisation,
// so referrals can be matched to the ODS code GP systems already use.
type Identifier struct {
	System, Value string
}

// String gives the FHIR token form system|value used in search parameters.
func (id Identifier) String() string { return id.System + "|" + id.Value }

// ClientAuth holds what a caller needs to authenticate with SMART Backend
// Services. JWKS is kept as raw JSON because the key handling code, not this
// package, decides what a usable key is.
type ClientAuth struct {
	JWKS    json.RawMessage
	JWKSURL string
	Scopes  []string
}

// Notify is where status changes are written back to a GP system. The token
// is named by environment variable, never stored, so the file can be
// committed without secrets.
type Notify struct {
	FHIRBase, BearerTokenEnv string
}

// Operator is a SMART client that may take system-level exports, and do
// nothing else through the API: its token's scopes must also allow
// reading each type exported (system/*.rs does).
type Operator struct {
	ID, Name string
	Auth     ClientAuth
	Export   ExportRight
}

// ExportRight says which exports an operator may take.
type ExportRight string

const (
	// ExportDeidentified: only $export?_deidentify=true (the default), for
	// evaluators, who need the journeys but no one's identity.
	ExportDeidentified ExportRight = "deidentified"
	// ExportFull: identified exports too, for the deployment's operator.
	ExportFull ExportRight = "full"
)

// Client is a GP record system allowed to send referrals. Its ID doubles as
// the client_id in SMART assertions.
type Client struct {
	ID, Name     string
	Organization Identifier
	Auth         ClientAuth
	Notify       *Notify // nil when the system takes no write-back
	// Bars is where BaRS servicerequest-response messages go for the
	// referrals this system sent as BaRS messages (nil: none are sent).
	Bars *Bars
	// SubscriptionOrigins are origins (scheme://host[:port]) the operator
	// registers for this system's subscription endpoints. A Subscription's
	// endpoint is the client's choice, so it reaches public addresses only;
	// one under a registered origin may also reach what OutboundAllow
	// admits, as configured endpoints do (an on-premises GP system).
	SubscriptionOrigins []string
}

// WritesBack reports whether Task changes are written back into this
// system's record: it has a write-back target.
func (c Client) WritesBack() bool { return c.Notify != nil && c.Notify.FHIRBase != "" }

// Bars is a GP system's BaRS endpoint: the FHIR base whose $process-message
// takes the answers to its referrals. The token is named by environment
// variable, as for Notify, so the file holds no secret.
type Bars struct {
	Endpoint, BearerTokenEnv string
}

// Delivery says how referrals reach a provider.
type Delivery struct {
	Kind DeliveryKind
	URL  string
	// Secret signs webhook deliveries (Standard Webhooks whsec_ form). It is
	// never included in errors.
	Secret string
	// SecretEnv names the environment variable holding Secret instead, so
	// the file can be shared (a ConfigMap) while the secret stays in a
	// Secret. Read by ApplyEnv.
	SecretEnv string
	// RotatingSecrets are further secrets to sign with while a secret is
	// being rotated: each message carries a signature per secret, so the
	// provider may check with the old or the new one.
	RotatingSecrets []string
	Payload         PayloadKind
	// BearerTokenEnv names the environment variable holding the bearer
	// token a bars delivery sends (Authorization), so the file holds no
	// secret; "" sends none.
	BearerTokenEnv string
}

// Provider is a voluntary-sector organisation that receives referrals for
// its categories. Providers also call the API (to update Tasks), so ID is
// also their client_id and shares a namespace with Client IDs.
type Provider struct {
	ID, Name     string
	Organization Identifier
	Categories   []string
	// Services are the BaRS destination endpoints (system|value, e.g. a DoS
	// service id) whose messages are routed to this provider.
	Services []string
	Auth     ClientAuth
	Delivery Delivery
	// NHS marks a provider inside the NHS (an NHS trust's service, a PCN's
	// link workers): only such a provider may take referrals with no
	// consent on record (consent: not-required), as direct care.
	NHS bool
	// Consent is the provider's own consent policy (ConsentUnset: the
	// deployment's).
	Consent ConsentPolicy
	// Share names the share profile the provider is limited to; "" shares
	// everything the GP sent.
	Share string
}

// DisplayName is the name people read for the provider: its name, or its id
// when the file gives none, so that what Signpost writes about it (a
// Task's owner, "delivered to …") is never empty.
func (p Provider) DisplayName() string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// ODSSystem is the identifier system of NHS ODS organisation codes, the
// key of the organisation directory.
const ODSSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// Organization is one entry of the organisation directory: the name people
// read for an ODS code, so pages say "Example Surgery", not "A81001".
type Organization struct {
	ODS, Name string
}

// WriteBackClients are the GP systems whose Task changes are written back
// into their record: those with a write-back target (clients[].notify).
func (c Config) WriteBackClients() []string {
	out := []string{}
	for _, cl := range c.Clients {
		if cl.WritesBack() {
			out = append(out, cl.ID)
		}
	}
	return out
}

// SubscriptionOrigins are the origins registered for each GP system's
// subscription endpoints (clients[].subscription_origins), by client id.
func (c Config) SubscriptionOrigins() map[string][]string {
	out := map[string][]string{}
	for _, cl := range c.Clients {
		if len(cl.SubscriptionOrigins) > 0 {
			out[cl.ID] = cl.SubscriptionOrigins
		}
	}
	return out
}

// OrganizationNames is the organisation directory: ODS code to the name
// people read. A client's or provider's own name wins for its own ODS
// code, so a name is written once where the party is configured and the
// directory only adds the organisations Signpost has no other setting for
// (the practices behind a GP system, say).
func (c Config) OrganizationNames() map[string]string {
	out := make(map[string]string, len(c.Organizations)+len(c.Clients)+len(c.Providers))
	for _, o := range c.Organizations {
		out[o.ODS] = o.Name
	}
	own := func(name string, org Identifier) {
		if name != "" && org.System == ODSSystem && org.Value != "" {
			out[org.Value] = name
		}
	}
	for _, cl := range c.Clients {
		own(cl.Name, cl.Organization)
	}
	for _, p := range c.Providers {
		own(p.Name, p.Organization)
	}
	return out
}

// DefaultDeliveryRetry spreads attempts over roughly four days, long enough
// to ride out a small charity's weekend outage before dead-lettering.
func DefaultDeliveryRetry() []time.Duration {
	return []time.Duration{
		5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour,
		14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
	}
}

// Default returns the settings used for anything the file and environment do
// not set. They are safe rather than convenient: loopback addresses,
// authentication on, unmapped referrals refused, strict NHS numbers.
func Default() Config {
	return Config{
		Listen:           "127.0.0.1:8080",
		PublicURL:        "http://127.0.0.1:8080",
		RedisURL:         "redis://127.0.0.1:6379/0",
		RedisNamespace:   DefaultRedisNamespace,
		RedisWaitTimeout: time.Second,
		Unmapped:         UnmappedReject,
		NHSNumber:        NHSNumberStrict,
		Auth:             Auth{Mode: AuthSMART},
		MaxBodyBytes:     DefaultBodyLimit,
		RateLimit:        RateLimit{PerSecond: 50, Burst: 100, PerAddress: AddressRate{PerSecond: 5, Burst: 50}},
		Audit:            Audit{MaxEntries: DefaultAuditEntries},
		Export:           Export{Keep: DefaultExportKeep, PseudonymKeyEnv: DefaultPseudonymKeyEnv, BirthDate: BirthDateYear},
		DeliveryTimeout:  10 * time.Second,
		DeliveryRetry:    DefaultDeliveryRetry(),

		SubscriptionsPerClient: DefaultSubscriptionsPerClient,
	}
}

// DefaultRedisNamespace is the namespace of Signpost's keys unless
// redis_namespace says otherwise.
const DefaultRedisNamespace = "signpost"

// DefaultSubscriptionsPerClient is the default cap on a GP system's
// subscriptions (a few per system is the use: one per endpoint or filter).
const DefaultSubscriptionsPerClient = 20

// redactedPassword is what stands in for a password; it matches what
// net/url uses so redacted URLs look the same everywhere.
const redactedPassword = "xxxxx"

// SpreadOnRedisCluster is the switch of issue 21's last step: whether a
// Redis Cluster deployment spreads new referrals over the store's
// partitions, so that its primaries share the data and the commands
// (redisstore.Store.SpreadReferrals). Off, a cluster keeps every key in
// one slot, as before partitions. It is one constant so that the code
// around it can be merged before everything a spreading store needs is,
// and the switch turned on last.
const SpreadOnRedisCluster = true

// SpreadReferrals reports whether Signpost spreads new referrals over the
// store's partitions: on a Redis Cluster (SpreadOnRedisCluster), never on
// one Redis, where a single thread serves every partition, so spreading
// buys nothing and a search would visit every partition instead of one
// (deploy/README.md, "Partitioned keys"). Data written before keeps its
// place either way: a cluster that starts spreading still reads, updates
// and drains what it held.
func (c Config) SpreadReferrals() bool {
	return SpreadOnRedisCluster && len(c.RedisCluster) > 0
}

// RedisURLRedacted returns the Redis URL safe for logs and error messages:
// the password is masked. A URL that cannot be parsed is not shown at all,
// since we cannot tell which part of it is secret.
func (c Config) RedisURLRedacted() string {
	return redactURL(c.RedisURL)
}

// RedisTarget says which Redis Signpost uses, safe for logs and error
// messages: the cluster's nodes, or the URL with its password masked.
func (c Config) RedisTarget() string {
	if len(c.RedisCluster) > 0 {
		target := "Redis Cluster " + strings.Join(c.RedisCluster, ",")
		if c.RedisTLS {
			target += " (TLS)"
		}
		return target
	}
	return c.RedisURLRedacted()
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL hidden)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redactedPassword)
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redactedPassword)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// FHIRBase returns the base URL other systems use for Signpost's FHIR API,
// built here so every component writes the same fullUrl and Location values.
func (c Config) FHIRBase() string {
	return strings.TrimRight(c.PublicURL, "/") + "/fhir"
}

// IsLoopbackListen reports whether only this machine can reach the listener,
// which is the condition for running without authentication.
func (c Config) IsLoopbackListen() bool {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return false
	}
	return isLoopbackHost(host)
}

// isLoopbackHost accepts "localhost" and loopback IP literals. Other names
// are refused even if they resolve to loopback today, because DNS can change
// under a running service.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return addr.Unmap().IsLoopback()
}

// ProviderByID finds a provider by id. The pointer refers to the Config's own
// element, so it stays valid as long as the Config does.
func (c Config) ProviderByID(id string) (*Provider, bool) {
	for i := range c.Providers {
		if c.Providers[i].ID == id {
			return &c.Providers[i], true
		}
	}
	return nil, false
}

// ClientByID finds a GP system by id, with the same pointer rules as
// ProviderByID.
func (c Config) ClientByID(id string) (*Client, bool) {
	for i := range c.Clients {
		if c.Clients[i].ID == id {
			return &c.Clients[i], true
		}
	}
	return nil, false
}
