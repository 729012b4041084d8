package bridge

import (
	"context"
	"errors"
	"fmt"
)

// mailFailure is the failure of a mail to the desk on its way out:
// preparing, composing or sending it, recording that the server accepted
// it, or waiting for the escalation mail it threads on. Such a failure,
// when temporary, is given up once the effect is older than the worker's
// lifetime, as a mail server gives up a message it cannot deliver; any
// other temporary failure of an effect (loading its ticket, recording its
// outcome, a callback) is retried for as long as the job queue retries it.
type mailFailure struct{ err error }

func (e *mailFailure) Error() string { return e.err.Error() }
func (e *mailFailure) Unwrap() error { return e.err }

// givingUp is the one decision on a failed effect: it is given up now when
// its failure is permanent, or when it is a mail's temporary failure that
// has lasted past the lifetime.
func (w *Worker) givingUp(eff Effect, err error) bool {
	var mf *mailFailure
	return IsPermanent(err) || errors.As(err, &mf) && w.expired(eff)
}

// expired reports whether the effect is older than the lifetime.
func (w *Worker) expired(eff Effect) bool {
	return !eff.At.IsZero() && w.svc.now().Sub(eff.At) > w.lifetime
}

// giveUp records that eff is given up on err, and returns the error that
// tells the job queue so: a permanent one, "given up: " and err's text.
// The queue then moves the job to its dead letters, logs it and reports it
// (the jobs metric's given_up, the dead letters metric, the operators'
// alert). What the ticket keeps of it depends on the kind of effect:
//
//   - an escalation fails, with err's text as its reason (after "gave up
//     after <lifetime>: " when it failed for too long rather than for good);
//   - a follow-up whose mail failed leaves a desk_forward_failed event with
//     err's text on the timeline; one given up before it had a mail (its
//     comment gone, or its escalation mail never accepted, which the
//     escalation's own failure tells) leaves nothing;
//   - a notification, a callback: nothing.
//
// When that record fails, its error is returned instead: the job is
// retried, and gives up again.
func (w *Worker) giveUp(ctx context.Context, eff Effect, err error) error {
	var rerr error
	switch eff.Kind {
	case EffectEscalate:
		reason := err.Error()
		if !IsPermanent(err) {
			reason = "gave up after " + w.lifetime.String() + ": " + reason
		}
		rerr = w.svc.EscalationFailed(ctx, eff.TicketID, eff.Attempt, reason)
	case EffectForwardComment, EffectForwardNote:
		var mf *mailFailure
		if errors.As(err, &mf) && !errors.Is(err, errNotYetEscalated) {
			rerr = w.svc.recordForwardFailure(ctx, eff, err.Error())
		}
	}
	if rerr != nil {
		return rerr
	}
	return Permanent(fmt.Errorf("given up: %v", err))
}
