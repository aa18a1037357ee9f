package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Synthetic keys: fixed patterns, never real secrets.
var (
	keyA = bytes.Repeat([]byte{0xA5}, 32)
	keyB = []byte("synthetic-rotation-key-number-two-000000")
	keyC = bytes.Repeat([]byte{0x3C}, 24)
)

var testNow = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

// refSig computes a v1 signature entry directly from the definition, not
// through the package.
func refSig(key []byte, id string, ts int64, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + string(body)))
	return "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set(HeaderID, id)
	}
	if ts != "" {
		h.Set(HeaderTimestamp, ts)
	}
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	return h
}

func TestSignKnownAnswer(t *testing.T) {
	t.Parallel()
	// The example published with the Standard Webhooks specification.
	specKey, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  []byte
		id   string
		ts   time.Time
		body []byte
		want string
	}{
		{"Standard Webhooks example", specKey, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0),
			[]byte(`{"test": 2432232314}`), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		{"referral event", keyA, "dlv_01", testNow, []byte(`{"resourceType":"Task","id":"t1"}`),
			refSig(keyA, "dlv_01", testNow.Unix(), []byte(`{"resourceType":"Task","id":"t1"}`))},
		{"empty body", keyC, "dlv_02", testNow, nil, refSig(keyC, "dlv_02", testNow.Unix(), nil)},
		{"sub-second clock truncates to seconds", keyB, "dlv_03", testNow.Add(999 * time.Millisecond), []byte("x"),
			refSig(keyB, "dlv_03", testNow.Unix(), []byte("x"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Sign(tt.id, tt.ts, tt.body, tt.key); got != tt.want {
				t.Errorf("Sign = %q, want %q", got, tt.want)
			}
			h := headers(tt.id, strconv.FormatInt(tt.ts.Unix(), 10), tt.want)
			if err := Verify(h, tt.body, [][]byte{tt.key}, tt.ts, 0); err != nil {
				t.Errorf("Verify of the known answer: %v", err)
			}
		})
	}
	if got := Sign("id", testNow, []byte("x")); got != "" {
		t.Errorf("Sign without secrets = %q, want empty", got)
	}
}

func TestSignRotation(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"task-updated"}`)
	ts := strconv.FormatInt(testNow.Unix(), 10)
	sig := Sign("dlv_rot", testNow, body, keyA, keyB)
	want := refSig(keyA, "dlv_rot", testNow.Unix(), body) + " " + refSig(keyB, "dlv_rot", testNow.Unix(), body)
	if sig != want {
		t.Fatalf("Sign with two secrets = %q, want %q", sig, want)
	}
	tests := []struct {
		name    string
		secrets [][]byte
		ok      bool
	}{
		{"old secret", [][]byte{keyA}, true},
		{"new secret", [][]byte{keyB}, true},
		{"both", [][]byte{keyB, keyA}, true},
		{"unrelated and new", [][]byte{keyC, keyB}, true},
		{"unrelated only", [][]byte{keyC}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(headers("dlv_rot", ts, sig), body, tt.secrets, testNow, 0)
			if (err == nil) != tt.ok {
				t.Errorf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	body := []byte(`{"resourceType":"Task","status":"requested"}`)
	id := "dlv_verify"
	ts := testNow.Unix()
	tsS := strconv.FormatInt(ts, 10)
	good := refSig(keyA, id, ts, body)
	at := func(d time.Duration) (string, string) {
		t := testNow.Add(d).Unix()
		return strconv.FormatInt(t, 10), refSig(keyA, id, t, body)
	}
	oldTS, oldSig := at(-5*time.Minute - time.Second)
	edgeOldTS, edgeOldSig := at(-5 * time.Minute)
	newTS, newSig := at(5*time.Minute + time.Second)
	edgeNewTS, edgeNewSig := at(5 * time.Minute)
	goodRaw := strings.TrimPrefix(good, "v1,")

	tests := []struct {
		name      string
		h         http.Header
		body      []byte
		secrets   [][]byte
		tolerance time.Duration
		want      error // nil: accepted
	}{
		{"valid", headers(id, tsS, good), body, [][]byte{keyA}, 0, nil},
		{"missing webhook-id", headers("", tsS, good), body, [][]byte{keyA}, 0, ErrMissingHeader},
		{"missing webhook-timestamp", headers(id, "", good), body, [][]byte{keyA}, 0, ErrMissingHeader},
		{"missing webhook-signature", headers(id, tsS, ""), body, [][]byte{keyA}, 0, ErrMissingHeader},
		{"blank webhook-signature", headers(id, tsS, "   "), body, [][]byte{keyA}, 0, ErrMissingHeader},
		{"no headers at all", http.Header{}, body, [][]byte{keyA}, 0, ErrMissingHeader},
		{"stale timestamp", headers(id, oldTS, oldSig), body, [][]byte{keyA}, 0, ErrTimestampTooOld},
		{"stale at exactly the tolerance is accepted", headers(id, edgeOldTS, edgeOldSig), body, [][]byte{keyA}, 0, nil},
		{"future timestamp", headers(id, newTS, newSig), body, [][]byte{keyA}, 0, ErrTimestampTooNew},
		{"future at exactly the tolerance is accepted", headers(id, edgeNewTS, edgeNewSig), body, [][]byte{keyA}, 0, nil},
		{"custom tolerance rejects what 5 min accepts", headers(id, edgeOldTS, edgeOldSig), body, [][]byte{keyA}, time.Minute, ErrTimestampTooOld},
		{"custom tolerance accepts", headers(id, oldTS, oldSig), body, [][]byte{keyA}, 10 * time.Minute, nil},
		{"far-future timestamp", headers(id, "9223372036854775807", good), body, [][]byte{keyA}, 0, ErrTimestampTooNew},
		{"epoch timestamp", headers(id, "0", good), body, [][]byte{keyA}, 0, ErrTimestampTooOld},
		{"timestamp with sign", headers(id, "+"+tsS, good), body, [][]byte{keyA}, 0, ErrInvalidTimestamp},
		{"negative timestamp", headers(id, "-"+tsS, good), body, [][]byte{keyA}, 0, ErrInvalidTimestamp},
		{"timestamp in milliseconds overflowing", headers(id, "99999999999999999999", good), body, [][]byte{keyA}, 0, ErrInvalidTimestamp},
		{"timestamp as a date", headers(id, testNow.Format(time.RFC3339), good), body, [][]byte{keyA}, 0, ErrInvalidTimestamp},
		{"wrong secret", headers(id, tsS, good), body, [][]byte{keyB}, 0, ErrSignatureMismatch},
		{"tampered body", headers(id, tsS, good), append(bytes.Clone(body), ' '), [][]byte{keyA}, 0, ErrSignatureMismatch},
		{"tampered id", headers(id+"x", tsS, good), body, [][]byte{keyA}, 0, ErrSignatureMismatch},
		{"tampered timestamp", headers(id, strconv.FormatInt(ts+1, 10), good), body, [][]byte{keyA}, 0, ErrSignatureMismatch},
		{"malformed: no version", headers(id, tsS, goodRaw), body, [][]byte{keyA}, 0, ErrMalformedSignature},
		{"malformed: other version only", headers(id, tsS, "v2,"+goodRaw), body, [][]byte{keyA}, 0, ErrMalformedSignature},
		{"malformed: not base64", headers(id, tsS, "v1,!!not-base64!!"), body, [][]byte{keyA}, 0, ErrMalformedSignature},
		{"malformed: truncated signature", headers(id, tsS, "v1,"+goodRaw[:20]), body, [][]byte{keyA}, 0, ErrMalformedSignature},
		{"malformed: wrong length", headers(id, tsS, "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 31))), body, [][]byte{keyA}, 0, ErrMalformedSignature},
		{"malformed: comma only", headers(id, tsS, ","), body, [][]byte{keyA}, 0, ErrMalformedSignature},
		{"unknown versions alongside a good v1", headers(id, tsS, "v1a,xyz "+good+" garbage"), body, [][]byte{keyA}, 0, nil},
		{"bad v1 alongside a wrong v1", headers(id, tsS, "v1,@@ "+refSig(keyB, id, ts, body)), body, [][]byte{keyA}, 0, ErrSignatureMismatch},
		{"no secrets", headers(id, tsS, good), body, nil, 0, ErrNoSecrets},
		{"empty secret", headers(id, tsS, good), body, [][]byte{keyA, {}}, 0, ErrNoSecrets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tt.h, tt.body, tt.secrets, testNow, tt.tolerance)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), goodRaw) {
				t.Errorf("error %q repeats the signature", err)
			}
		})
	}
}

func TestVerifySignatureHeaderLines(t *testing.T) {
	t.Parallel()
	body := []byte("{}")
	h := headers("dlv_lines", strconv.FormatInt(testNow.Unix(), 10), refSig(keyC, "dlv_lines", testNow.Unix(), body))
	h.Add(HeaderSignature, refSig(keyA, "dlv_lines", testNow.Unix(), body))
	if err := Verify(h, body, [][]byte{keyA}, testNow, 0); err != nil {
		t.Fatalf("signature on the second header line not found: %v", err)
	}
}

// TestVerifyConstantTime checks in the source that Verify compares
// signatures with hmac.Equal and that nothing in the package compares
// bytes with bytes.Equal, whose time depends on the data.
func TestVerifyConstantTime(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	foundVerify, usesHMACEqual := false, false
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if fn, ok := n.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "Verify" {
				foundVerify = true
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					if isCall(n, "hmac", "Equal") {
						usesHMACEqual = true
					}
					return true
				})
			}
			for _, bad := range [][2]string{{"bytes", "Equal"}, {"bytes", "Compare"}, {"subtle", "XORBytes"}} {
				if isCall(n, bad[0], bad[1]) {
					t.Errorf("%s: %s.%s used; compare MACs with hmac.Equal", fset.Position(n.Pos()), bad[0], bad[1])
				}
			}
			return true
		})
	}
	if !foundVerify || !usesHMACEqual {
		t.Errorf("Verify found %v, calls hmac.Equal %v; want both", foundVerify, usesHMACEqual)
	}
}

func isCall(n ast.Node, pkg, fun string) bool {
	call, ok := n.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg && sel.Sel.Name == fun
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	enc := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 1)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	tests := []struct {
		name string
		in   string
		n    int // decoded length; 0 = error
	}{
		{"24 bytes", "whsec_" + enc(24), 24},
		{"32 bytes", "whsec_" + enc(32), 32},
		{"64 bytes", "whsec_" + enc(64), 64},
		{"23 bytes", "whsec_" + enc(23), 0},
		{"65 bytes", "whsec_" + enc(65), 0},
		{"very long", "whsec_" + enc(4096), 0},
		{"no prefix", enc(32), 0},
		{"other prefix", "whsk_" + enc(32), 0},
		{"upper-case prefix", "WHSEC_" + enc(32), 0},
		{"prefix only", "whsec_", 0},
		{"empty", "", 0},
		{"URL-safe alphabet", "whsec_" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16)), 0},
		{"missing padding", "whsec_" + strings.TrimRight(enc(32), "="), 0},
		{"line break inside", "whsec_" + enc(32)[:20] + "\n" + enc(32)[20:], 0},
		{"space inside", "whsec_" + enc(32)[:20] + " " + enc(32)[20:], 0},
		{"trailing space", "whsec_" + enc(32) + " ", 0},
		{"not base64", "whsec_" + strings.Repeat("*", 44), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, err := ParseSecret(tt.in)
			if tt.n == 0 {
				if err == nil || !errors.Is(err, ErrInvalidSecret) {
					t.Fatalf("ParseSecret = %d bytes, %v; want ErrInvalidSecret", len(key), err)
				}
				if rest := strings.TrimPrefix(tt.in, "whsec_"); len(rest) >= 8 && strings.Contains(err.Error(), rest[:8]) {
					t.Errorf("error %q contains part of the secret", err)
				}
				return
			}
			if err != nil || len(key) != tt.n {
				t.Fatalf("ParseSecret = %d bytes, %v; want %d bytes", len(key), err, tt.n)
			}
			if got := "whsec_" + base64.StdEncoding.EncodeToString(key); got != tt.in {
				t.Errorf("round trip %q, want %q", got, tt.in)
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := NewSecret(), NewSecret()
	if a == b {
		t.Fatal("two NewSecret calls returned the same secret")
	}
	for _, s := range []string{a, b} {
		if key, err := ParseSecret(s); err != nil || len(key) != 32 {
			t.Errorf("ParseSecret(NewSecret()) = %d bytes, %v", len(key), err)
		}
	}
}
