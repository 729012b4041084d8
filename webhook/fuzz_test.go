package webhook

import (
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzVerify(f *testing.F) {
	key := []byte("fuzz-key-fuzz-key-fuzz-key")
	otherKey := []byte("other-key-other-key-other")
	now := time.Unix(vectorTimestamp, 0)
	good := Sign(key, vectorMsgID, now, []byte(vectorPayload))
	f.Add(vectorMsgID, strconv.Itoa(vectorTimestamp), good, []byte(vectorPayload), int64(0))
	f.Add(vectorMsgID, strconv.Itoa(vectorTimestamp), "v1a,xyz "+good+" v1,AAAA", []byte(vectorPayload), int64(301))
	f.Add(vectorMsgID, strconv.Itoa(vectorTimestamp+1), good, []byte(vectorPayload), int64(-300))
	f.Add("", "", "", []byte{}, int64(0))
	f.Add("msg 1", "-1", "v1,", []byte("{}"), int64(1<<62))
	f.Add("msg_1", "99999999999999999999", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)), []byte("\xff"), int64(-1<<62))

	v := &Verifier{Keys: [][]byte{otherKey, key}, Tolerance: 5 * time.Minute, Now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, msgID, ts, sig string, body []byte, skew int64) {
		h := http.Header{}
		h.Set(HeaderID, msgID)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		id, signed, err := v.Verify(h, body)
		if err != nil {
			if !errors.Is(err, ErrMissingHeaders) && !errors.Is(err, ErrInvalidSignature) && !errors.Is(err, ErrStaleTimestamp) {
				t.Fatalf("unexpected error %v", err)
			}
			if id != "" || !signed.IsZero() {
				t.Fatalf("values returned with an error: %q %v", id, signed)
			}
		} else {
			if id != msgID || strconv.FormatInt(signed.Unix(), 10) != ts {
				t.Fatalf("Verify = %q %v for headers %q %q", id, signed, msgID, ts)
			}
			if d := now.Sub(signed); d > v.Tolerance || d < -v.Tolerance {
				t.Fatalf("accepted a timestamp %v away", d)
			}
			found := false
			for _, k := range v.Keys {
				found = found || slices.Contains(strings.Fields(sig), Sign(k, id, signed, body))
			}
			if !found {
				t.Fatalf("accepted signature %q that no key made", sig)
			}
		}

		// What Sign makes, Verify accepts, within the tolerance only.
		if !ValidMsgID(msgID) {
			return
		}
		skew %= int64(24 * time.Hour / time.Second)
		signedAt := now.Add(time.Duration(skew) * time.Second)
		h = http.Header{}
		SignHeaders(h, key, msgID, signedAt, body)
		id, signed, err = v.Verify(h, body)
		inTolerance := skew >= -300 && skew <= 300
		switch {
		case inTolerance && (err != nil || id != msgID || !signed.Equal(signedAt)):
			t.Fatalf("own signature refused (skew %ds): %v", skew, err)
		case !inTolerance && !errors.Is(err, ErrStaleTimestamp):
			t.Fatalf("skew %ds: err = %v, want ErrStaleTimestamp", skew, err)
		}
	})
}
