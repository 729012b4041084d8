package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"supportbridge/bridge"
)

// CallbackClient posts signed callbacks to the ENT (Standard Webhooks).
type CallbackClient struct {
	URL string
	Key []byte
	// ExtraKeys also sign every callback, each signature beside Key's in
	// webhook-signature. That is how the spec rotates a secret without a
	// window where the ENT refuses us: sign with old and new, let the ENT
	// move to the new key, then drop the old one.
	ExtraKeys [][]byte
	Client    *http.Client
	Now       func() time.Time
}

var _ bridge.CallbackSender = (*CallbackClient)(nil)

// NewCallbackClient returns a client with the given timeout per try. It
// follows no redirect: the URL is the configured one, never another.
func NewCallbackClient(url string, key []byte, timeout time.Duration) *CallbackClient {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	return &CallbackClient{URL: url, Key: key, Now: time.Now, Client: &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// CallbackError is a callback the ENT did not take: no answer came, or an
// answer other than a 2xx. It is a temporary failure whatever the status
// (bridge's taxonomy: it is never marked bridge.Permanent): a 4xx other
// than 408 and 429 too, though the ENT may well answer it again. The job
// queue retries it on ent.callback_retry_schedule and dead-letters it after
// the last try, where an operator can replay it (README, "Callbacks to the
// ENT"). Only a callback that cannot be made at all (its data, its body or
// its request) is a permanent failure.
type CallbackError struct {
	Status int // 0 when no answer came
	Err    error
}

func (e *CallbackError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("callback answered %d", e.Status)
	}
	return "callback: " + e.Err.Error()
}

func (e *CallbackError) Unwrap() error { return e.Err }

// SendCallback posts one callback; nil only on a 2xx answer.
func (c *CallbackClient) SendCallback(ctx context.Context, id, typ string, at time.Time, data any) error {
	var raw json.RawMessage
	switch d := data.(type) {
	case json.RawMessage:
		raw = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return bridge.Permanent(fmt.Errorf("callback data: %v", err))
		}
		raw = b
	}
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	body, err := json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{typ, at.UTC().Format(time.RFC3339), raw})
	if err != nil {
		return bridge.Permanent(fmt.Errorf("callback body: %v", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return bridge.Permanent(fmt.Errorf("callback request: %v", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "supportbridge")
	// Signed at each try with the time of the try, as the spec has it; the
	// id stays the same so that the ENT can drop a repeat.
	now := c.Now()
	SignHeaders(req.Header, c.Key, id, now, body)
	if len(c.ExtraKeys) > 0 {
		sigs := []string{req.Header.Get(HeaderSignature)}
		for _, k := range c.ExtraKeys {
			sigs = append(sigs, Sign(k, id, now, body))
		}
		req.Header.Set(HeaderSignature, strings.Join(sigs, " "))
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		// The URL may carry a token in its query: keep it out of errors
		// (and so out of logs).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		return &CallbackError{Err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &CallbackError{Status: resp.StatusCode, Err: errors.New(resp.Status)}
	}
	return nil
}
