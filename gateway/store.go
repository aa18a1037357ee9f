package gateway

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Store is what the domain needs from durable storage. The Redis
// implementation lives in redisstore; every method either completes or
// changes nothing.
type Store interface {
	// Commit applies a change set atomically: first every precondition is
	// checked (unique keys, If-None-Exist criteria, expected versions), then,
	// only if all hold, every write, unique key and job is stored. A failed
	// precondition is reported in the result, not as an error.
	Commit(ctx context.Context, c *Commit) (*CommitResult, error)
	// Read returns the current version of a resource, or ErrNotFound.
	Read(ctx context.Context, typ, id string) (*Resource, error)
	// ReadVersion returns one version of a resource, or ErrNotFound.
	ReadVersion(ctx context.Context, typ, id string, version int) (*Resource, error)
	// JourneyRecords returns, for each referral Task id, what its journey
	// is read from (JourneyRecord), in one round trip: the milestones its
	// versions recorded and its first and current versions, whatever the
	// number of its versions. Of a Task written before versions recorded
	// their milestones it reads the first version and the newest within
	// older instead.
	JourneyRecords(ctx context.Context, ids []string, older HistoryWindow) ([]JourneyRecord, error)
	// LatestVersions returns the newest versions of a resource within w,
	// oldest first, and its current version (0 for one not held): the
	// history a page shows, whose cost is w's, not the resource's.
	LatestVersions(ctx context.Context, typ, id string, w HistoryWindow) ([]*Resource, int, error)
	// ReadMany returns the current versions of the given "Type/id"
	// references; those it does not hold are left out.
	ReadMany(ctx context.Context, refs []string) ([]*Resource, error)
	// Lookup returns the value held under a unique key ("" if none).
	Lookup(ctx context.Context, key string) (string, error)
	// LookupMany returns the values held under unique keys, in their order
	// ("" for a key not held), in one round trip: a request's idempotency
	// keys, all its entries' together, cost one wait however many they are.
	LookupMany(ctx context.Context, keys []string) ([]string, error)
	// Search returns one page of ids matching q, and how many match in all.
	Search(ctx context.Context, q *StoreQuery) (ids []string, total int, err error)
	// TokenSystems returns every registered token system ("Type index
	// system", from Commit.Systems) and the registry's generation, which
	// grows whenever one is added.
	TokenSystems(ctx context.Context) (systems []string, generation int64, err error)
	// Ping reports whether the store answers and accepts writes.
	Ping(ctx context.Context) error
	// EventCount is how many events a subscription has had since it started.
	EventCount(ctx context.Context, subscriptionID string) (int64, error)
	// KeptJourneys returns the summaries retention kept of the referrals it
	// removed that were sent in the UTC months [from, to) touches (the
	// caller decides by each summary's own time).
	KeptJourneys(ctx context.Context, from, to time.Time) ([][]byte, error)
}

// HistoryWindow bounds a read of a resource's newest versions: at most
// Versions of them, whose bodies come to at most Bytes (the newest is
// read whatever its size, as a read of the resource would). Nothing
// bounds how many versions a Task has (a provider's note makes one) or,
// below the body limit, how large each is, so a read of them all moved
// what a client chose; a window's worst case is Signpost's.
type HistoryWindow struct {
	Versions int
	Bytes    int
}

// Placer is a store that spreads referrals over partitions (redisstore
// on a Redis Cluster). A referral's resources live together in one
// partition, so that its commit stays atomic, and their ids carry it, so
// that a read by id goes straight to it: the ids of a new referral's
// resources, and of whatever is made later beside them (its Task's
// Provenances, its outcome measures), start with the partition's prefix.
// A store that is not a Placer, or does not spread, gives "" and ids stay
// as they were.
type Placer interface {
	// Place returns the id prefix of a new referral placed by key: its
	// client and business identifier (ReferralKey), so a repeat is placed
	// where the first one was; "" for a referral without one: anywhere.
	Place(key string) string
	// PlaceOf returns the id prefix of what is made beside the resource
	// with store id id.
	PlaceOf(id string) string
	// PlacePatient returns the id prefix of what is written with the
	// Patient whose store id is key (PatientKey): a Patient whose GP
	// system chose its id is placed by its key, so a referral for it can
	// be written beside it, atomically, and its repeats land there too.
	PlacePatient(ctx context.Context, key string) (string, error)
	// Spread reports whether new referrals are spread over places at all
	// (false: every prefix above is "").
	Spread() bool
}

// SubscriptionsKey places every Subscription of a client (Placer.Place):
// all of them in one place, so that the cap on how many a client holds is
// counted in the one atomic step that stores a new one.
func SubscriptionsKey(clientID string) string { return "subscriptions|" + clientID }

// KeptJourney is what stays of a referral once retention has removed it:
// the summary of its journey that the outcomes view counts (category,
// practice, provider, when each step was reached, how it ended — no
// patient data), kept under the month it was sent so that the figures
// for a period do not change when its referrals go.
type KeptJourney struct {
	TaskID  string
	Sent    time.Time
	Summary []byte
}

// Commit is one atomic change set.
type Commit struct {
	Unique   []UniqueKey
	Criteria []Criteria // conditional create: abort when any criteria matches (a cap: its Limit or more)
	Writes   []Write
	Jobs     []Job
	// Done acknowledges the job whose handling this commit records, in the
	// same step, so a job is finished exactly when its outcome is stored.
	Done *JobRef
	// Audit is appended to the audit trail with the change, when set.
	Audit *AuditRecord
	// Systems are the token systems the writes are indexed under (see
	// TokenSystems), registered with the change so that a search for a code
	// without its system finds every write made under any of them.
	Systems []string
	// SystemsSeen, when set, is the registry generation the commit's
	// criteria were expanded with: a commit made after a new system was
	// registered is refused (SystemsChanged) and planned again.
	SystemsSeen *int64
	// Unchanged are the resources the change was decided on without
	// writing them (the Consents a referral's delivery rests on, and the
	// Patients their names were compared with), each at the version read:
	// a commit made after one of them changed is refused (ReadChanged) and
	// planned again, so that nothing is decided on a version no longer
	// current.
	Unchanged []ReadVersion
}

// ReadVersion is one version of a resource a change was decided on
// (Commit.Unchanged); Version 0: it was not held, and must still not be.
// The domain names a Patient by its FHIR id and Owner, the client whose
// Patient it is; the store beneath it is given its PatientKey as ID, as
// for a Write (patientStore).
type ReadVersion struct {
	Type, ID string
	Owner    string
	Version  int
}

// QueuedJob is one job read from a queue.
type QueuedJob struct {
	Queue string
	// Place is the store's partition of the queue the job was read from
	// (Placer), "" for a store that does not spread: the job is finished
	// there, by a commit in that partition.
	Place    string
	ID       string // the stream entry id
	Consumer string // the worker that read it
	Fields   map[string]string
}

// Name names the job among every partition's: stream entry ids are unique
// only within one stream, so two partitions can hand out the same id in the
// same millisecond. It is the partition's prefix and the entry id, as
// `signpost dlq` lists dead letters.
func (j QueuedJob) Name() string { return j.Place + j.ID }

// Ref names the job for finishing it.
func (j QueuedJob) Ref() *JobRef {
	return &JobRef{Queue: j.Queue, Place: j.Place, ID: j.ID, Consumer: j.Consumer}
}

// JobRef names one job taken from a queue, and who holds it.
type JobRef struct {
	Queue    string
	Place    string // the partition of its queue (QueuedJob.Place)
	ID       string // the stream entry id
	Consumer string // the worker holding it; "" for an entry with no holder (a dead letter)
}

// UniqueKey claims a key for a value, once and for ever: the idempotency
// key of a referral (client + business identifier) or the one referral Task
// of a ServiceRequest. If the key is already held the commit is aborted and
// the holder is reported.
type UniqueKey struct {
	Key   string
	Value string
	// Of, when set, is the resource ("Type/id") whose removal takes the key
	// with it: the store files the key under it in the same commit, so
	// retention can find keys whose names hold what is not stored (a
	// message's id, a fullUrl, an X-Request-Id). Keys it can name from the
	// referral itself need none.
	Of string
}

// Criteria is a conditional create's search, in store terms, or a cap on
// how many resources may match it.
type Criteria struct {
	Type   string
	Groups [][]string // AND of ORs of index terms
	// Limit, above 0, makes the criteria a cap: the commit is aborted
	// (OverLimit) when Limit or more resources match already (before the
	// commit's own writes). 0: a conditional create, aborted on any match.
	Limit int
}

// Key names the criteria's search whatever the order of its groups and of
// the terms in each (an AND of ORs): the type, then the groups, each
// sorted, in sorted order. Every part is length-prefixed, so no term (a
// client's value, whatever characters it holds) can make two different
// searches one name.
func (c Criteria) Key() string {
	groups := make([]string, len(c.Groups))
	for i, g := range c.Groups {
		g = slices.Clone(g)
		slices.Sort(g)
		var b strings.Builder
		for _, t := range g {
			b.WriteString(strconv.Itoa(len(t)) + ":" + t)
		}
		groups[i] = b.String()
	}
	slices.Sort(groups)
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(c.Type)) + ":" + c.Type)
	for _, g := range groups {
		b.WriteString(strconv.Itoa(len(g)) + ":" + g)
	}
	return b.String()
}

// Write is one new version of a resource. ExpectVersion is the version the
// resource must have now: 0 means it must not exist yet, AnyVersion skips the
// check (used only where the caller asked for no concurrency control).
type Write struct {
	Resource *Resource
	Expect   int
	Terms    []string // search index terms of this version
	// Step is, for a referral Task's version, what it says of the
	// referral's journey (TaskStepOf, from the view its terms come from):
	// the store records the milestones it reaches with it, so that the
	// journey is read without reading every version (JourneyRecords).
	// Every Task version carries it (Core.Commit refuses one without).
	Step TaskStep
}

// AnyVersion as Write.Expect accepts whatever version is current.
const AnyVersion = -1

// Job is a unit of work queued in the same atomic step as the change that
// caused it, so that a crash can never leave one without the other.
type Job struct {
	Queue  string // e.g. QueueDelivery
	Fields []string
	// OnlyIfAny, when set, queues the job only if some resource carries
	// that index term when the commit applies: a Task change's job for the
	// client's subscriptions, only when the client has a subscription.
	// Decided in the commit's atomic step, so a subscription stored before
	// the change is always seen, and a job its worker could only drop (most
	// GP systems have no subscription) is never queued. A store that cannot
	// decide it in that step queues the job.
	OnlyIfAny *IndexTerm
}

// IndexTerm is one index term of one resource type.
type IndexTerm struct {
	Type, Term string
}

// The queues. Delivery carries referrals (and their cancellations) to
// providers; notify carries Task changes back to GP systems; deadletter
// holds deliveries that failed for good, for an operator to re-drive.
const (
	QueueDelivery     = "delivery"
	QueueNotify       = "notify"
	QueueSubscription = "subscription"
	QueueDeadLetter   = "deadletter"
)

// WorkerQueues are the queues workers read (the dead letters wait for an
// operator instead).
var WorkerQueues = [...]string{QueueDelivery, QueueNotify, QueueSubscription}

// WorkerGroup is the consumer group every worker reads the queues in.
const WorkerGroup = "workers"

// CommitResult says which precondition failed, if any.
type CommitResult struct {
	// Held is set when a unique key was already held.
	Held *UniqueHit
	// Matched lists up to two ids found by a conditional create's criteria.
	Matched []string
	// Stale is set when a write's expected version did not hold.
	Stale *StaleWrite
	// Lost is set when the job the commit would finish is no longer the
	// caller's: another worker reclaimed it and records the outcome.
	Lost bool
	// SystemsChanged is set when SystemsSeen no longer held.
	SystemsChanged bool
	// OverLimit is set when a capping criteria matched its Limit or more.
	OverLimit bool
	// ReadChanged is set when a resource of Commit.Unchanged is no longer
	// at the version read (or no longer held).
	ReadChanged bool
	// StampedBehind is set when a write is stamped before the version it
	// replaces (written after the stamp was taken): the caller reads again
	// and stamps anew (NextVersionTime), as for any change made meanwhile.
	StampedBehind bool
}

// OK reports whether the commit was applied.
func (r *CommitResult) OK() bool {
	return r.Held == nil && r.Matched == nil && r.Stale == nil && !r.Lost && !r.SystemsChanged && !r.OverLimit && !r.ReadChanged && !r.StampedBehind
}

// UniqueHit names the unique key already held and its holder.
type UniqueHit struct {
	Index  int // into Commit.Unique
	Holder string
}

// StaleWrite names the write whose version expectation failed.
type StaleWrite struct {
	Index   int // into Commit.Writes
	Current int // the version held now (0: none)
}

// StoreQuery is a search in store terms: a conjunction of groups, each a
// disjunction of index terms, over resources of one type, ordered by
// lastUpdated.
type StoreQuery struct {
	Type       string
	Groups     [][]string
	Since      time.Time // inclusive lower bound of lastUpdated; zero: none
	Until      time.Time // exclusive upper bound; zero: none
	Offset     int
	Count      int
	Descending bool
	// Keyset pages the search in its order as it was at Snapshot, from
	// after the position After (nil: from the start) instead of by Offset,
	// so that no match is skipped or repeated while matches change.
	Keyset *Keyset
}

// Keyset is where a page of a search starts: its snapshot and the
// position of the last match already returned.
type Keyset struct {
	Snapshot time.Time
	After    *Position
	// Positions receives the position of each match of the page.
	Positions []Position
	// Followed, when set, is what the store learnt on earlier pages of
	// matches written since the snapshot, kept by a caller that reads every
	// page in one process, in order (the export), and passed with each:
	// each such match is then looked at once in the whole search, not on
	// every page (again only if written again), and a run of the store is
	// given only the changed ones of the snapshot placed nearest after the
	// page's start (MaxChangedFollowed of them; those before it were
	// returned already, and are forgotten), so writers cannot make the
	// search fail by how many they create, nor by how many they change but
	// past MaxFollowedAhead ahead of the page at once. nil (a
	// paging link, which keeps nothing): each page looks at every match
	// written since the snapshot, at most MaxChangedFollowed.
	Followed *Followed
}

// FollowLag is how long after its lastUpdated a write may still land in
// the store: the time between a process choosing it and its commit
// applying (batched, retried), and the difference between processes'
// clocks. A keyset search that keeps what it followed looks again, on its
// next page, at the matches written since the snapshot in the FollowLag
// before the page began (however long its runs took), so one landing late
// among those it looked at already is not passed over; and the export takes its snapshot FollowLag (and a
// millisecond) before it starts, so every write stamped at or before the
// snapshot has landed before its first page, and every later one scores
// after it and is followed, never moved among the pages as unchanged.
// The store holds processes to it: a write stamped more than FollowLag
// before the store's own clock is refused (ErrClockBehind).
const FollowLag = 10 * time.Second

// Followed is what a store learnt, paging one keyset search, of the
// matches written since its snapshot, by place (a store's partition, named
// by the store); only the store reads it.
type Followed struct {
	Places map[string]*FollowedPlace
}

// FollowedPlace is Followed in one place.
type FollowedPlace struct {
	// Seen is how far the matches written since the snapshot were looked
	// at: every one whose lastUpdated (ms) is up to Seen (0: none yet).
	Seen int64
	// Changed are the matches among them that were in the snapshot, each
	// with the score of its position then (the lastUpdated of its version
	// current at the snapshot).
	Changed map[string]int64
	// Ahead are their positions, in the search's order: a run is given the
	// nearest. Both hold only those after the last page's start: the caller
	// pages forward, and a match's position is its snapshot's, so one
	// behind is never in a page again (one of them written again since is
	// placed afresh by a run that meets it). An export under churn so holds
	// what changed ahead of it, not all that changed while it ran.
	Ahead []Position
	// Dropped is how many were dropped since Changed was last made afresh:
	// a map keeps its room when entries are deleted, so once more were
	// dropped than it holds, it is made again at its size.
	Dropped int
}

// Kept is how many changed matches f holds ahead of the page, in every
// place.
func (f *Followed) Kept() int {
	n := 0
	for _, p := range f.Places {
		n += len(p.Changed)
	}
	return n
}

// Place returns the record of the place named name, made if new.
func (f *Followed) Place(name string) *FollowedPlace {
	if f.Places == nil {
		f.Places = map[string]*FollowedPlace{}
	}
	p := f.Places[name]
	if p == nil {
		p = &FollowedPlace{Changed: map[string]int64{}}
		f.Places[name] = p
	}
	return p
}

// Position is a match's place in a search's order: the lastUpdated (ms) of
// its version current at the snapshot, then its store id.
type Position struct {
	Score int64
	ID    string
}

// ErrSnapshotStale is a keyset page whose snapshot is too old to keep:
// too many matches changed since. The client starts the search again.
var ErrSnapshotStale = errors.New("search snapshot too old")

// Event is one notification event of a subscription.
type Event struct {
	Number    int64
	Timestamp time.Time
	Task      string // "Task/id"
	Version   string
}

// WriteBackState is what Signpost last wrote to a GP system of one Task:
// the Signpost version, the GP server's id and version of its copy, and the
// status whose outcome entry was filed.
type WriteBackState struct {
	Version int    `json:"v"`
	GPID    string `json:"id,omitempty"`
	GPETag  string `json:"etag,omitempty"`
	// Filed lists the statuses whose outcome entries were filed.
	Filed []TaskStatus `json:"filed,omitempty"`
	// Scores lists the outcome measures' scores filed, each an Observation
	// version ("Observation/id/_history/v").
	Scores []string `json:"scores,omitempty"`
}

// MaxChangedFollowed is how many matches changed since a keyset search's
// snapshot one run of the store places where they stood (the bound keeps a
// run cheap). A paging link, which keeps nothing, has every match written
// since its first page placed on each page, so it is refused once more than
// this many are. A search that keeps what it followed (Keyset.Followed) has
// no such bound: a run is given this many of the changed matches of its
// snapshot, those placed nearest after the page's start, and a page that
// reaches past them is read in parts, each ending before the first one its
// runs were not given.
const MaxChangedFollowed = 1000

// MaxFollowedAhead is how many changed matches of its snapshot a keyset
// search that keeps what it followed (the export, one type at a time)
// holds at once, ahead of its page (Followed.Kept; some 100 bytes each):
// past it the search fails with ErrTooManyFollowed rather than grow the
// process without end while writers change a large type faster than it
// pages.
const MaxFollowedAhead = 250_000

// ErrTooManyFollowed is a keyset search that keeps what it followed, past
// MaxFollowedAhead: the caller starts again when fewer are changing.
var ErrTooManyFollowed = errors.New("too many matches ahead of the search changed while it ran")
