package bridge

import "errors"

// Failures have two classes, and one marker tells them apart: a failure is
// temporary unless it is marked permanent.
//
//   - Temporary: trying again later may help (a server down, a timeout, a
//     4xx SMTP reply, a callback the ENT did not take). The worker's jobs
//     are retried; a mail to the desk until the worker's lifetime, when it
//     is given up; the IMAP reader leaves the message for a later pass.
//   - Permanent: retrying cannot help (a 5xx SMTP reply, a mail that cannot
//     be composed, an effect whose ticket no longer has what it is about).
//     Permanent marks it, IsPermanent tells it. The worker gives the
//     effect up (see Worker.Handle), and the job queue moves the job to its
//     dead letters instead of retrying it; the IMAP reader quarantines the
//     message.
//
// Each adapter classifies its own failures at its edge, where it turns
// them into the errors bridge's interfaces return: mail/compose marks an
// SMTP 5xx permanent; the callback client marks a callback it cannot even
// make permanent, while every answer of the ENT but a 2xx is temporary.
//
// A context that ended is neither: the caller stopped, and whatever was
// under way is done again by the next run. Callers check ctx.Err() before
// classifying.
//
// The domain's refusals (an *Error with a code other than CodeUnavailable)
// are answers rather than failures: whoever asked decides what they mean
// (the HTTP API's 4xx, a mail quarantined).

// PermanentError marks a failure that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as a permanent failure; its text is err's. Permanent
// of nil is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is a permanent failure: whether its chain
// holds a *PermanentError. Any other error is temporary.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
