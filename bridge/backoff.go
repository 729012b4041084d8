package bridge

import "time"

// Backoff is the delay before the n-th retry (n from 0): initial, doubled
// at each retry, never more than max. The job queue's retries use it; the
// IMAP reader's reconnections double the same way (mail/imapreader/imap.go).
func Backoff(n int, initial, max time.Duration) time.Duration {
	d := initial
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
