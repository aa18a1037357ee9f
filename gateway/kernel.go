package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/mappings"
)

// Options are the core's dependencies and policies, all given at start.
type Options struct {
	Store Store
	Codes *mappings.Table
	// Outcomes codes the outcomes written back to GP records (default: the embedded table).
	Outcomes *mappings.OutcomeTable
	// ConsentCodes are the codes of a referrer's consent attestation
	// (default: the embedded table).
	ConsentCodes *mappings.ConsentTable
	// Providers receive referrals; the order decides precedence within a category.
	Providers []Provider
	// Organizations names organisations by ODS code, for what people read.
	Organizations map[string]string
	// TriageUnmapped sends referrals whose code is not in the table to the
	// link-worker category instead of refusing them.
	TriageUnmapped bool
	// StrictNHSNumber refuses NHS numbers that fail Modulus 11; otherwise they
	// are accepted with a warning (NHS England's own examples fail it).
	StrictNHSNumber bool
	// FHIRBase is the absolute URL of the FHIR API, used to recognise
	// absolute references to Signpost's own resources.
	FHIRBase string
	// MaxDepth caps JSON nesting (default 64).
	MaxDepth int
	// UnderstoodModifiers are the modifierExtension urls the deployment
	// understands; a resource carrying another is refused.
	UnderstoodModifiers []string
	// MaxSubscriptions caps the subscriptions one client has that are not
	// ended (default DefaultMaxSubscriptions).
	MaxSubscriptions int
	// SubscriberOrigins are the origins the operator registered for GP
	// systems' subscription endpoints (nil: none; every endpoint a client
	// chooses must then be public).
	SubscriberOrigins SubscriberOrigins
	// Measures are the outcome measures (Questionnaires) the deployment
	// offers (default: the built-in ones); MeasureRules say which are asked
	// of which referrals, and when (none: no measure is recorded).
	Measures     *mappings.Measures
	MeasureRules []MeasureRule
	// WriteBackClients are the GP systems whose Task changes are written
	// back into their record. Only their changes queue a write-back job:
	// at intake's rate a job the worker can only drop costs as much as one
	// it sends. nil queues every client's, for the worker to sort out.
	WriteBackClients []string
	Now              func() time.Time
	NewID            func() string
}

// Core is what every use case shares: the store as the domain sees it
// (Patients scoped per client), the providers, the code tables and the
// policies, and the kernel API over them — read a referral's resources
// under the visibility rules (ReadVisible, PatientOf), read a Task
// (ReadTask), and change it atomically (TaskChange, Commit). Its fields are
// set by NewCore and only read after. It is safe for concurrent use.
type Core struct {
	Store        Store
	Codes        *mappings.Table
	OutcomeCodes *mappings.OutcomeTable
	ConsentCodes *mappings.ConsentTable
	router       *Router
	// Organizations names organisations (referring practices, providers)
	// by ODS code for the pages, the CSV and the MeasureReport.
	Organizations  Directory
	TriageUnmapped bool
	StrictNHS      bool
	Base           string
	// MaxDepth caps JSON nesting; UnderstoodModifiers are the
	// modifierExtension urls that may be processed (Options).
	MaxDepth            int
	UnderstoodModifiers []string
	MaxSubscriptions    int
	subscriberOrigins   SubscriberOrigins
	Measures            *mappings.Measures
	MeasureRules        []MeasureRule
	// writesBack holds Options.WriteBackClients (nil: every client).
	writesBack map[string]bool
	Now        func() time.Time
	NewID      func() string
	// placer is the store as a Placer; nil when it does not place.
	placer Placer
}

// NewCore makes a Core, with the defaults for what o leaves out.
func NewCore(o Options) *Core {
	s := &Core{Store: patientStore{o.Store}, Codes: o.Codes, router: NewRouter(o.Providers), Organizations: cloneDirectory(o.Organizations), TriageUnmapped: o.TriageUnmapped,
		StrictNHS: o.StrictNHSNumber, Base: strings.TrimSuffix(o.FHIRBase, "/"), MaxDepth: o.MaxDepth,
		UnderstoodModifiers: slices.Clone(o.UnderstoodModifiers), Now: o.Now, NewID: o.NewID}
	if s.Codes == nil {
		s.Codes = mappings.Default()
	}
	s.Measures, s.MeasureRules = o.Measures, slices.Clone(o.MeasureRules)
	if s.Measures == nil {
		s.Measures = mappings.DefaultMeasures()
	}
	s.ConsentCodes = o.ConsentCodes
	if s.ConsentCodes == nil {
		s.ConsentCodes = mappings.DefaultConsent()
	}
	s.OutcomeCodes = o.Outcomes
	if s.OutcomeCodes == nil {
		s.OutcomeCodes = mappings.DefaultOutcomes()
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.NewID == nil {
		s.NewID = NewID
	}
	s.placer, _ = o.Store.(Placer)
	if s.MaxDepth == 0 {
		s.MaxDepth = 64
	}
	if o.WriteBackClients != nil {
		s.writesBack = make(map[string]bool, len(o.WriteBackClients))
		for _, c := range o.WriteBackClients {
			s.writesBack[c] = true
		}
	}
	s.subscriberOrigins = o.SubscriberOrigins
	s.MaxSubscriptions = o.MaxSubscriptions
	if s.MaxSubscriptions <= 0 {
		s.MaxSubscriptions = DefaultMaxSubscriptions
	}
	return s
}

// WritesBack reports whether a client's Task changes are written back into
// its record (Options.WriteBackClients).
func (s *Core) WritesBack(client string) bool { return s.writesBack == nil || s.writesBack[client] }

// SubscriberRegistered reports whether a subscription endpoint is under an
// origin the operator registered for the GP system client (SubscriberOrigins):
// only then may it reach the private addresses outbound_allow admits.
func (s *Core) SubscriberRegistered(client, endpoint string) bool {
	return s.subscriberOrigins != nil && s.subscriberOrigins.Registered(client, endpoint)
}

// Router exposes the routing table (for the metadata and the web pages).
func (s *Core) Router() *Router { return s.router }

// NewID returns a random UUID (version 4, from crypto/rand), the form of
// every id Signpost assigns: unguessable, so ids leak nothing about volumes
// or order.
func NewID() string { return uuid.NewString() }

// Place is the id prefix of a new referral placed by key (Placer): ""
// unless the store spreads referrals over partitions.
func (s *Core) Place(key string) string {
	if s.placer == nil {
		return ""
	}
	return s.placer.Place(key)
}

// Spreads reports whether the store spreads referrals over partitions.
func (s *Core) Spreads() bool { return s.placer != nil && s.placer.Spread() }

// NewIDAt returns a new id in the place a prefix from Place names.
func (s *Core) NewIDAt(place string) string { return place + s.NewID() }

// NewIDBeside returns a new id in the place of the resource whose store id
// is id (its Task's, for a Provenance): a change writes them in one commit.
func (s *Core) NewIDBeside(id string) string { return s.PlaceOf(id) + s.NewID() }

// PlaceOf is the id prefix of the place of the resource whose store id is
// id ("" unless the store spreads referrals).
func (s *Core) PlaceOf(id string) string {
	if s.placer == nil {
		return ""
	}
	return s.placer.PlaceOf(id)
}

// PlacePatient is the id prefix of what is written with the Patient whose
// store id is key ("" unless the store spreads referrals).
func (s *Core) PlacePatient(ctx context.Context, key string) (string, error) {
	if s.placer == nil {
		return "", nil
	}
	return s.placer.PlacePatient(ctx, key)
}

// derivedIDs is the name space of DerivedID.
var derivedIDs = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://signpost.health/id/derived"))

// DerivedID is an id made from names (a name-based UUID, version 5): the
// same names always give the same id, so a thing sent again is stored
// under the id it was stored under the first time.
func DerivedID(names ...string) string {
	return uuid.NewSHA1(derivedIDs, []byte(strings.Join(names, "\x00"))).String()
}

// Outcome is the result of one create or update.
type Outcome struct {
	Resource *Resource
	// Created is true when this request made the resource (201), false when
	// it updated one or found an identical earlier request (200).
	Created bool
	// Warnings are issues that did not stop the request (an NHS number
	// failing its check under the warn policy).
	Warnings []fhir.Issue
	// Category is the social prescribing category a referral was routed
	// to ("" when it was not routed), for the metrics.
	Category string
	// Audited is true when the request's audit record (AuditIntent) was
	// committed with the change; otherwise its caller keeps the record.
	Audited bool
}

// Ping reports whether storage answers; /readyz uses it.
func (s *Core) Ping(ctx context.Context) error { return s.Store.Ping(ctx) }

func NotFound(typ, id string) error {
	// The id is left out: a client-chosen Patient id can be anything,
	// an NHS number included.
	return NewError(KindNotFound, fhir.IssueNotFound, "", "no such %s is known to this client", typ)
}

// checkID enforces the FHIR id syntax, [A-Za-z0-9\-\.]{1,64}.
// ValidID reports whether id is a FHIR resource id (1 to 64 letters, digits,
// '-' and '.').
func ValidID(id string) bool { return CheckID(id) == nil }

func CheckID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return NewError(KindInvalid, fhir.IssueValue, "", "a resource id is 1 to 64 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return NewError(KindInvalid, fhir.IssueValue, "", "a resource id may hold only letters, digits, '-' and '.'")
		}
	}
	return nil
}

// ParseIfMatch reads a weak or strong ETag holding a version number.
func ParseIfMatch(h string) (int, error) {
	v := strings.TrimSpace(h)
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, NewError(KindInvalid, fhir.IssueValue, "", `If-Match must be an ETag such as W/"3" naming a version`)
	}
	return n, nil
}

func itoa(i int) string { return strconv.Itoa(i) }

// Commit stores a change with the token systems it is indexed under.
func (s *Core) Commit(ctx context.Context, c *Commit) (*CommitResult, error) {
	for _, w := range c.Writes {
		if w.Resource.Type == TypeTask && w.Step.Status == "" {
			// A Task version that recorded no milestones would leave its
			// referral's journey wrong in the outcomes view for good.
			return nil, errTaskWithoutStep
		}
	}
	c.Systems = TokenSystems(c.Writes)
	return s.Store.Commit(ctx, c)
}

// errTaskWithoutStep is a Task write whose builder did not say what the
// version says of the journey (Write.Step): a bug, refused before Redis.
var errTaskWithoutStep = errors.New("gateway: a Task version written without its journey step (Write.Step)")

// ReadTask reads the current version of a Task and its view.
func (s *Core) ReadTask(ctx context.Context, id string) (*Resource, *TaskView, error) {
	task, err := s.Store.Read(ctx, TypeTask, id)
	if err != nil {
		return nil, nil, err
	}
	view, err := ParseTask(task.Body)
	if err != nil {
		return nil, nil, err
	}
	view.ID = task.ID
	return task, view, nil
}

// TaskVersion builds the commit of a system-made Task version: the members
// given replace the current ones and lastModified is now, with the jobs
// given. A new status is given as members["status"], a TaskStatus; the
// status the Task has after the change is returned. Use cases change a
// Task through queue.TaskChange, which also tells the GP side.
func (s *Core) TaskVersion(cur *Resource, view *TaskView, members map[string]any, jobs []Job, done *JobRef) (*Commit, TaskStatus) {
	now := s.Now().UTC().Truncate(time.Millisecond)
	write := s.nextTaskWrite(cur, members, now)
	status := view.Status
	if st, ok := members["status"].(TaskStatus); ok {
		status = st
	}
	// Signpost made this version: its Provenance says so, as every Task
	// version's names who made it.
	// A Task withheld from its provider is not the provider's to find,
	// nor are the Provenances of its versions.
	provOwner := view.Owner
	if Withheld(write.Resource.Body) {
		provOwner = ""
	}
	prov := s.ProvenanceWrite(write.Resource, provOwner, signpostAgent, now)
	return &Commit{Writes: []Write{write, prov}, Jobs: jobs, Done: done}, status
}

// nextTaskWrite writes a Task's next version: the members given replace
// the current ones, lastModified and the server's fields are now's; the
// write expects the current version and carries the index terms of the
// next.
func (s *Core) nextTaskWrite(cur *Resource, members map[string]any, now time.Time) Write {
	now = NextVersionTime(now, cur.LastUpdated)
	members["lastModified"] = Instant(now)
	obj, err := fhir.ParseResource(cur.Body, fhir.ParseOptions{})
	if err != nil {
		panic(err) // stored bytes that passed the same checks
	}
	body, err := obj.Revised(members, cur.ID, strconv.Itoa(cur.Version+1), Instant(now))
	if err != nil {
		panic(err)
	}
	next := &Resource{Type: TypeTask, ID: cur.ID, Version: cur.Version + 1, LastUpdated: now, Owner: cur.Owner, Body: body}
	view := indexedTask(body)
	terms := append(TaskTerms(cur.ID, view, s.Base), ClientTerm(cur.Owner))
	return Write{Resource: next, Expect: cur.Version, Terms: terms, Step: TaskStepOf(view)}
}

// LocalRef turns an absolute reference to this server into a relative one.
func (s *Core) LocalRef(ref string) string {
	if s.Base != "" {
		if rest, ok := strings.CutPrefix(ref, s.Base+"/"); ok {
			return rest
		}
	}
	return ref
}

func (s *Core) Absolute(ref string) string { return AbsoluteRef(s.Base, ref) }

func AbsoluteRef(base, ref string) string {
	if ref == "" || strings.Contains(ref, "://") || strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "urn:") {
		return ref
	}
	return base + "/" + ref
}

// SearchResult is one page of a search.
type SearchResult struct {
	Matches  []*Resource
	Included []*Resource
	Total    int
	// Self, Next and Previous are query strings for the paging links ("" when there is none).
	Self, Next, Previous string
}

// FocusesOf reads the ServiceRequests the matched Tasks are for.
func (s *Core) FocusesOf(ctx context.Context, tasks []*Resource) ([]*Resource, error) {
	var refs []string
	for _, t := range tasks {
		var view struct {
			Focus *models.Reference `json:"focus"`
		}
		if json.Unmarshal(t.Body, &view) != nil || view.Focus == nil || view.Focus.Reference == nil {
			continue
		}
		ref := s.LocalRef(*view.Focus.Reference)
		if strings.HasPrefix(ref, TypeServiceRequest+"/") && !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	if len(refs) == 0 {
		return nil, nil
	}
	return s.Store.ReadMany(ctx, refs)
}

// DefaultMaxSubscriptions is how many subscriptions one GP system may have
// that are not ended, unless configured otherwise. Each is sent every change
// to the client's referrals and its heartbeats: a few per system (one per
// endpoint, one per filter) is the use, and without a cap a client could
// make every change fan out without bound.
const DefaultMaxSubscriptions = 20
