package conform

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// MaxTransactionEntries bounds a transaction, which is committed as one
// atomic step in the store and must stay small enough to be quick.
const MaxTransactionEntries = 100

// TransactionEntry is one write a transaction Bundle asks for.
type TransactionEntry struct {
	Method      string // POST or PUT
	Type, ID    string // ID for a PUT only
	Body        []byte
	IfNoneExist string
	IfMatch     string
	FullURL     string
	Expr        string // the entry's resource, e.g. "Bundle.entry[2].resource"
}

// ReadTransaction reads the writes of a transaction Bundle that passed the
// structure checks, refusing every entry Signpost does not take at once:
// only POST and PUT of ServiceRequest, Task and Patient, each with its
// resource, fullUrls distinct. localRef turns an entry's request.url into
// Type or Type/id (an absolute url of Signpost's own base included).
func ReadTransaction(obj *fhir.Object, localRef func(string) string) ([]TransactionEntry, error) {
	typ, _ := obj.String("type")
	switch typ {
	case "transaction":
	case "":
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueRequired, "Bundle.type", "Bundle.type is required; Signpost accepts transaction Bundles here")
	default:
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueNotSupported, "Bundle.type", "only transaction Bundles are accepted at the FHIR base")
	}
	raw, ok := obj.Member("entry")
	if !ok {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueRequired, "Bundle.entry", "a transaction needs at least one entry")
	}
	var entries []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			IfNoneExist string `json:"ifNoneExist"`
			IfMatch     string `json:"ifMatch"`
		} `json:"request"`
	}
	if err := gateway.DecodeView(raw, "Bundle.entry", &entries); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueRequired, "Bundle.entry", "a transaction needs at least one entry")
	}
	if len(entries) > MaxTransactionEntries {
		return nil, gateway.NewError(gateway.KindTooLarge, fhir.IssueTooCostly, "Bundle.entry", "a transaction may have at most %d entries", MaxTransactionEntries)
	}
	var p gateway.Problems
	out := make([]TransactionEntry, 0, len(entries))
	seenURL := map[string]bool{}
	for i, e := range entries {
		at := "Bundle.entry[" + strconv.Itoa(i) + "]"
		if e.Request == nil {
			p.Add(fhir.IssueRequired, at+".request", "every transaction entry needs request.method and request.url")
			continue
		}
		if m := e.Request.Method; m != "POST" && m != "PUT" {
			p.Add(fhir.IssueNotSupported, at+".request.method", "transaction entries may POST or PUT; other methods (GET, DELETE, PATCH, HEAD) are not supported in a transaction")
			continue
		}
		if len(e.Resource) == 0 || e.Resource[0] != '{' {
			p.Add(fhir.IssueRequired, at+".resource", "a %s entry carries the resource it writes", e.Request.Method)
			continue
		}
		if e.FullURL != "" {
			if seenURL[e.FullURL] {
				p.Add(fhir.IssueInvalid, at+".fullUrl", "two entries have the same fullUrl")
			}
			seenURL[e.FullURL] = true
		}
		r := TransactionEntry{Method: e.Request.Method, Body: e.Resource, IfNoneExist: e.Request.IfNoneExist, IfMatch: e.Request.IfMatch,
			FullURL: e.FullURL, Expr: at + ".resource"}
		path, _, _ := strings.Cut(strings.TrimPrefix(localRef(e.Request.URL), "/"), "?")
		switch r.Method {
		case "POST":
			r.Type = path
		case "PUT":
			r.Type, r.ID, _ = strings.Cut(path, "/")
			if r.ID == "" {
				p.Add(fhir.IssueInvalid, at+".request.url", "a PUT entry's url is Type/id")
				continue
			}
		default:
			p.Add(fhir.IssueNotSupported, at+".request.method", "transaction entries may POST or PUT; other methods are not supported")
			continue
		}
		if r.Type != gateway.TypeServiceRequest && r.Type != gateway.TypeTask && r.Type != gateway.TypePatient && r.Type != "Consent" {
			p.Add(fhir.IssueNotSupported, at+".request.url", "transactions may write ServiceRequest, Task, Patient and Consent resources")
			continue
		}
		out = append(out, r)
	}
	if err := p.Err(gateway.KindInvalid); err != nil {
		return nil, err
	}
	return out, nil
}
