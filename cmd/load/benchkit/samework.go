package benchkit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// The same-work floor S writes under its own hash tag, as long as
// Signpost's ("{signpost}"), so that its keys are as long as Signpost's.
const sameNS = "{samework}"

// Who S pretends the caller and the provider are. Signpost learns them
// from the caller's credentials and from routing; S does neither and writes
// the values Signpost writes for the load generator's referral under
// config/example.yaml.
const (
	sameClient   = "practice-a"
	sameProvider = "leeds-walking"
	sameCategory = "physical-activity"
)

// SameWorkHandler is the same-work floor S: Gin, the same body limit as
// Signpost, a decode of the ServiceRequest into the samply model, and then
// exactly the writes one new referral's commit makes in Signpost, in one
// MULTI/EXEC round trip. No validation, no routing, no preconditions, no
// logging. It answers 201 with the body it stored.
//
// It is the yardstick of issue 18: what a referral's atomic write set costs
// when nothing else is done. What Signpost spends beyond S is what it does
// besides storing the referral. SameWorkSet says how S's writes map onto
// Signpost's commit.
//
// It serves POST /fhir/:type (any type; the body is read as a
// ServiceRequest) and GET /readyz.
func SameWorkHandler(rdb *redis.Client, maxBody int64) http.Handler {
	return sameWork(rdb, maxBody, nil)
}

// ValidatedSameWorkHandler is S+V: S, after the structural validation that
// every resource Signpost accepts must pass (issue 15: the FHIR R4
// definitions, element by element), a body that fails it answered 400.
// Signpost cannot skip that check, and S does not make it, so Signpost's
// ratio to S+V is what it spends beyond its write set and the check the
// standard requires; S+V's to S is what the check costs.
//
// valid is the check (cmd/floor passes fhir/structure's): this package
// cannot import it, since fhir/structure's own tests use this one.
func ValidatedSameWorkHandler(rdb *redis.Client, maxBody int64, valid func(body []byte) bool) http.Handler {
	return sameWork(rdb, maxBody, valid)
}

func sameWork(rdb *redis.Client, maxBody int64, valid func(body []byte) bool) http.Handler {
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	r := newGin(rdb)
	r.POST("/fhir/:type", func(c *gin.Context) {
		body, ok := readBody(c, maxBody)
		if !ok {
			return
		}
		if valid != nil && !valid(body) {
			c.Status(http.StatusBadRequest)
			return
		}
		sr, err := models.UnmarshalServiceRequest(body)
		if err != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		ws := SameWorkSet(&sr, body, NewSameWorkIDs(time.Now()))
		ctx := c.Request.Context()
		pipe := rdb.TxPipeline() // MULTI ... EXEC
		for _, cmd := range ws.Commands {
			pipe.Do(ctx, cmd...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			c.Status(http.StatusServiceUnavailable)
			return
		}
		c.Header("Location", "/fhir/ServiceRequest/"+ws.ServiceRequestID+"/_history/1")
		c.Data(http.StatusCreated, "application/fhir+json; charset=utf-8", ws.Body)
	})
	return r
}

// SameWorkIDs are what Signpost makes up for a new referral: the two ids,
// the commit's token and the time.
type SameWorkIDs struct {
	ServiceRequest, Task, Token string
	Now                         time.Time
}

// NewSameWorkIDs makes random ids as Signpost does (UUIDs, a 12-byte token).
func NewSameWorkIDs(now time.Time) SameWorkIDs {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return SameWorkIDs{ServiceRequest: uuid.NewString(), Task: uuid.NewString(), Token: hex.EncodeToString(b[:]), Now: now}
}

// WriteSet is one referral's writes, as Redis commands in the order
// Signpost's commit.lua runs them.
type WriteSet struct {
	ServiceRequestID string
	Body             []byte  // the ServiceRequest as stored and answered
	Commands         [][]any // each a command name and its arguments
}

// SameWorkSet builds the write set of one new referral, as Signpost's
// commit writes it (gateway/redisstore: Store.commit builds the arguments,
// scripts/commit.lua writes them; BenchmarkCommitReferral commits the same
// shape). For the load generator's referral under config/example.yaml,
// command for command (keys under "{samework}" here, "{signpost}" there):
//
//	commit.lua, step 3, per write (ServiceRequest, then Task):
//	  ZADD i:<Type>:<term> <ms> <id>    one per index term: 7 for the
//	                                    ServiceRequest (status, identifier,
//	                                    subject:identifier, requester:identifier,
//	                                    code, _client, _provider), 6 for the
//	                                    Task (status, focus, owner,
//	                                    subject:identifier, requester:identifier,
//	                                    _client)
//	  ZADD a:<Type> <ms> <id>           the type's all-ids set
//	  HSET r:<Type>:<id> v 1 c <token> o <client> x <the term keys, one a line>
//	       1 <body> t1 <ms>             the resource
//	  13 + 2 = 15 index entries, 2 bodies.
//	SET u:referral|<client>|<system>|<value> ServiceRequest/<id>
//	SET u:referral-task|<sr id> Task/<task id>   the two unique keys
//	XADD q:delivery * event referral task … accepted_at <ms>   the delivery job
//	XADD audit * t <ms> i create a C s 201 …                   the audit record
//
// 21 commands: 2 HSET, 15 ZADD, 2 SET, 2 XADD, with the same field names and
// about the same sizes (the Task body is built from a template of the
// size Signpost's is; the ServiceRequest body is the one received with its
// id added, where Signpost adds meta.versionId and lastUpdated too, some
// 80 bytes more).
//
// What commit.lua does besides, and S does not: its preconditions, 6 reads
// (HGET of the commit token, GET of the 2 unique keys, HGET of the 2
// versions, HMGET of the token-system registry), the Task's journey field
// set apart (HSETNX, where S sets it in the Task's HSET), and the script around its
// commands (EVALSHA with 135 arguments for this referral: 28 keys, 107
// values). What the gateway does besides: validation, routing, building
// the Task as FHIR, the group commit, the access log. The test in gateway/httpapi (TestSameWorkFloorWritesWhatACommitWrites)
// checks this list against a referral Signpost commits.
func SameWorkSet(sr *models.ServiceRequest, body []byte, ids SameWorkIDs) *WriteSet {
	ms := strconv.FormatInt(ids.Now.UnixMilli(), 10)
	stamp := ids.Now.UTC().Format("2006-01-02T15:04:05.000Z")
	srID, taskID := ids.ServiceRequest, ids.Task

	// The index terms, from the decoded referral.
	srTerms := []string{"status=" + sr.Status.Code()}
	var uniqueRef string
	for _, id := range sr.Identifier {
		if id.System != nil && id.Value != nil {
			srTerms = append(srTerms, "identifier="+*id.System+"|"+*id.Value)
			if uniqueRef == "" {
				uniqueRef = *id.System + "|" + *id.Value
			}
		}
	}
	subject := identifierTerm("subject:identifier=", sr.Subject.Identifier)
	var requester string
	if sr.Requester != nil {
		requester = identifierTerm("requester:identifier=", sr.Requester.Identifier)
	}
	srTerms = appendNonEmpty(srTerms, subject, requester)
	if sr.Code != nil {
		for _, cd := range sr.Code.Coding {
			if cd.System != nil && cd.Code != nil {
				srTerms = append(srTerms, "code="+*cd.System+"|"+*cd.Code)
			}
		}
	}
	srTerms = append(srTerms, "_client="+sameClient, "_provider="+sameProvider)
	taskTerms := appendNonEmpty([]string{"status=requested", "focus=ServiceRequest/" + srID,
		"owner=Organization/" + sameProvider}, subject, requester)
	taskTerms = append(taskTerms, "_client="+sameClient)

	stored := make([]byte, 0, len(body)+64)
	if i := bytes.IndexByte(body, '{'); i >= 0 {
		stored = append(stored, body[:i+1]...)
		stored = append(stored, `"id":"`...)
		stored = append(stored, srID...)
		stored = append(stored, `",`...)
		stored = append(stored, body[i+1:]...)
	}
	task := taskBody(taskID, srID, stamp, sr)

	ws := &WriteSet{ServiceRequestID: srID, Body: stored, Commands: make([][]any, 0, 21)}
	write := func(typ, id string, terms []string, body []byte, more ...any) {
		keys := make([]string, len(terms))
		for i, t := range terms {
			keys[i] = sameNS + ":i:" + typ + ":" + t
			ws.Commands = append(ws.Commands, []any{"zadd", keys[i], ms, id})
		}
		ws.Commands = append(ws.Commands, []any{"zadd", sameNS + ":a:" + typ, ms, id})
		ws.Commands = append(ws.Commands, append([]any{"hset", sameNS + ":r:" + typ + ":" + id,
			"v", "1", "c", ids.Token, "o", sameClient, "x", strings.Join(keys, "\n"), "1", body, "t1", ms}, more...))
	}
	write("ServiceRequest", srID, srTerms, stored)
	// A referral Task's first version also says its versions record the
	// referral's journey (a field commit.lua sets with HSETNX; S in its HSET).
	write("Task", taskID, taskTerms, task, "j", "1")
	ws.Commands = append(ws.Commands,
		[]any{"set", sameNS + ":u:referral|" + sameClient + "|" + uniqueRef, "ServiceRequest/" + srID},
		[]any{"set", sameNS + ":u:referral-task|" + srID, "Task/" + taskID},
		[]any{"xadd", sameNS + ":q:delivery", "*", "event", "referral", "task", taskID, "service_request", srID,
			"provider", sameProvider, "category", sameCategory, "delivery_id", "msg_" + taskID + "_referral",
			"attempt", "0", "accepted_at", ms},
		[]any{"xadd", sameNS + ":audit", "*", "t", ms, "i", "create", "a", "C", "s", "201", "c", sameClient,
			"os", "https://fhir.nhs.uk/Id/ods-organization-code", "ov", PracticeODS, "ip", "127.0.0.1",
			"w", "ServiceRequest/" + srID, "q", "", "u", ""})
	return ws
}

func identifierTerm(prefix string, id *models.Identifier) string {
	if id == nil || id.System == nil || id.Value == nil {
		return ""
	}
	return prefix + *id.System + "|" + *id.Value
}

func appendNonEmpty(terms []string, more ...string) []string {
	for _, t := range more {
		if t != "" {
			terms = append(terms, t)
		}
	}
	return terms
}

// taskBody is a referral Task of the size and shape Signpost stores (about
// 1.2 KB), filled in from the referral without building it as FHIR.
func taskBody(taskID, srID, stamp string, sr *models.ServiceRequest) []byte {
	nhs, ods := "", ""
	if id := sr.Subject.Identifier; id != nil && id.Value != nil {
		nhs = *id.Value
	}
	if sr.Requester != nil && sr.Requester.Identifier != nil && sr.Requester.Identifier.Value != nil {
		ods = *sr.Requester.Identifier.Value
	}
	b := make([]byte, 0, 1280)
	b = append(b, `{"resourceType":"Task","id":"`...)
	b = append(b, taskID...)
	b = append(b, `","meta":{"versionId":"1","lastUpdated":"`...)
	b = append(b, stamp...)
	b = append(b, `","profile":["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"]},`+
		`"status":"requested","intent":"order","priority":"routine",`+
		`"code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill","display":"Fulfill the focal request"}]},`+
		`"focus":{"reference":"ServiceRequest/`...)
	b = append(b, srID...)
	b = append(b, `"},"for":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`...)
	b = append(b, nhs...)
	b = append(b, `"}},"authoredOn":"`...)
	b = append(b, stamp...)
	b = append(b, `","lastModified":"`...)
	b = append(b, stamp...)
	b = append(b, `","requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"`...)
	b = append(b, ods...)
	b = append(b, `"},"display":"Example Surgery"},`+
		`"owner":{"display":"Leeds Walking for Health","identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"X1A2B"},`+
		`"reference":"Organization/`+sameProvider+`","type":"Organization"},`+
		`"input":[{"type":{"text":"Social prescribing category"},"valueCoding":{"code":"`+sameCategory+`",`+
		`"system":"https://signpost.health/fhir/CodeSystem/social-prescribing-category"}}]}`...)
	return b
}
