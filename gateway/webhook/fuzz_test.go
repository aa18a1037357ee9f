package webhook

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsec_" + base64.StdEncoding.EncodeToString(keyA),
		"whsec_", "", "whsec_====", "whsec_\n", "whsec_AAAA\r\nAAAA",
		"whsec_" + strings.Repeat("A", 200),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseSecret(s)
		if err != nil {
			if key != nil {
				t.Fatalf("key returned with error %v", err)
			}
			return
		}
		if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
			t.Fatalf("accepted a %d-byte secret", len(key))
		}
		if got := SecretPrefix + base64.StdEncoding.EncodeToString(key); got != s {
			t.Fatalf("accepted a non-canonical form: %q re-encodes as %q", s, got)
		}
	})
}

// FuzzVerify feeds arbitrary header values and bodies to Verify: it must
// not panic, and may accept only what one of its secrets signed.
func FuzzVerify(f *testing.F) {
	body := []byte(`{"resourceType":"Task"}`)
	ts := strconv.FormatInt(testNow.Unix(), 10)
	f.Add("dlv_1", ts, Sign("dlv_1", testNow, body, keyA), body)
	f.Add("dlv_1", ts, Sign("dlv_1", testNow, body, keyB, keyA), body)
	f.Add("dlv_1", ts, "v1,"+strings.Repeat("A", 43)+"=", body)
	f.Add("", "", "", []byte(nil))
	f.Add("x", "-1", "v1,,, v1 ,v1,=", []byte("x"))
	f.Add("x", "99999999999999999999", "v2,abc v1", []byte{0})
	f.Add("x", "1e9", "v1,"+strings.Repeat("/", 100), []byte{})
	f.Fuzz(func(t *testing.T, id, rawTS, sig string, body []byte) {
		h := http.Header{}
		h[http.CanonicalHeaderKey(HeaderID)] = []string{id}
		h[http.CanonicalHeaderKey(HeaderTimestamp)] = []string{rawTS}
		h[http.CanonicalHeaderKey(HeaderSignature)] = []string{sig}
		err := Verify(h, body, [][]byte{keyA}, testNow, 0)
		if err != nil {
			return
		}
		n, perr := strconv.ParseInt(rawTS, 10, 64)
		if perr != nil {
			t.Fatalf("accepted unparsable timestamp %q", rawTS)
		}
		want := Sign(id, time.Unix(n, 0), body, keyA)
		if !strings.Contains(" "+strings.Join(strings.Fields(sig), " ")+" ", " "+want+" ") {
			t.Fatalf("accepted %q without the signature %q", sig, want)
		}
	})
}
