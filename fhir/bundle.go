package fhir

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// BundleEntry is one entry of a Bundle the server builds. Resource holds the
// stored bytes of a resource, copied into the Bundle as they are, so a client's
// resource is never re-serialised on the way out.
type BundleEntry struct {
	FullURL  string
	Resource []byte // raw JSON; nil for entries with no resource (Prefer: return=minimal)
	Search   string // "match" | "include" | "" (searchset entries)
	Request  *EntryRequest
	Response *EntryResponse
}

// EntryRequest is Bundle.entry.request (history and transaction Bundles).
type EntryRequest struct {
	Method, URL string
}

// EntryResponse is Bundle.entry.response in batch and transaction responses.
type EntryResponse struct {
	Status       string // e.g. "201 Created"
	Location     string
	ETag         string
	LastModified string
	Outcome      []byte // OperationOutcome, optional
}

// BundleLink is Bundle.link (self, next, previous).
type BundleLink struct {
	Relation, URL string
}

// Bundle describes a Bundle to render. Total < 0 leaves Bundle.total out.
type Bundle struct {
	ID        string
	Type      string // "searchset" | "transaction-response" | "batch-response" | "history"
	Timestamp string
	Total     int
	Links     []BundleLink
	Entries   []BundleEntry
}

// Marshal renders the Bundle. It writes JSON by hand rather than through a
// struct so that stored resource bytes are spliced in unchanged.
func (b *Bundle) Marshal() []byte {
	var buf bytes.Buffer
	size := 256
	for _, e := range b.Entries {
		size += len(e.Resource) + 128
	}
	buf.Grow(size)
	buf.WriteString(`{"resourceType":"Bundle"`)
	if b.ID != "" {
		buf.WriteString(`,"id":`)
		writeString(&buf, b.ID)
	}
	buf.WriteString(`,"type":`)
	writeString(&buf, b.Type)
	if b.Timestamp != "" {
		buf.WriteString(`,"timestamp":`)
		writeString(&buf, b.Timestamp)
	}
	if b.Total >= 0 {
		buf.WriteString(`,"total":`)
		buf.WriteString(strconv.Itoa(b.Total))
	}
	if len(b.Links) > 0 {
		buf.WriteString(`,"link":[`)
		for i, l := range b.Links {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(`{"relation":`)
			writeString(&buf, l.Relation)
			buf.WriteString(`,"url":`)
			writeString(&buf, l.URL)
			buf.WriteByte('}')
		}
		buf.WriteByte(']')
	}
	if len(b.Entries) > 0 {
		buf.WriteString(`,"entry":[`)
		for i, e := range b.Entries {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeEntry(&buf, e)
		}
		buf.WriteByte(']')
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

func writeEntry(buf *bytes.Buffer, e BundleEntry) {
	buf.WriteByte('{')
	sep := ""
	if e.FullURL != "" {
		buf.WriteString(`"fullUrl":`)
		writeString(buf, e.FullURL)
		sep = ","
	}
	if e.Resource != nil {
		buf.WriteString(sep + `"resource":`)
		buf.Write(e.Resource)
		sep = ","
	}
	if e.Search != "" {
		buf.WriteString(sep + `"search":{"mode":`)
		writeString(buf, e.Search)
		buf.WriteByte('}')
		sep = ","
	}
	if r := e.Request; r != nil {
		buf.WriteString(sep + `"request":{"method":`)
		writeString(buf, r.Method)
		buf.WriteString(`,"url":`)
		writeString(buf, r.URL)
		buf.WriteByte('}')
		sep = ","
	}
	if r := e.Response; r != nil {
		buf.WriteString(sep + `"response":{"status":`)
		writeString(buf, r.Status)
		if r.Location != "" {
			buf.WriteString(`,"location":`)
			writeString(buf, r.Location)
		}
		if r.ETag != "" {
			buf.WriteString(`,"etag":`)
			writeString(buf, r.ETag)
		}
		if r.LastModified != "" {
			buf.WriteString(`,"lastModified":`)
			writeString(buf, r.LastModified)
		}
		if r.Outcome != nil {
			buf.WriteString(`,"outcome":`)
			buf.Write(r.Outcome)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte('}')
}

// writeString writes a JSON string without HTML escaping, so that paging
// links keep a readable "&" rather than "\u0026".
func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode ends with a newline
}
