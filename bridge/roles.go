package bridge

import "fmt"

// Role is what an actor is to a ticket: its owner (the requester), a
// referent of its structure or of a structure above it, both, or neither.
// The support module reserves escalating and changing the status to the
// referents; the requester creates, comments, edits a demand nobody has
// taken up yet and may close their own.
type Role struct {
	Owner    bool
	Referent bool
}

// RoleOf is actorID's role on t, given the referents of t's structure and
// of its parents.
func RoleOf(actorID string, t Ticket, referents []Referent) Role {
	var r Role
	if actorID == "" {
		return r
	}
	r.Owner = actorID == t.Owner.ID
	for _, ref := range referents {
		if ref.ID == actorID {
			r.Referent = true
			break
		}
	}
	return r
}

func (r Role) String() string {
	switch {
	case r.Referent && r.Owner:
		return "owner and referent"
	case r.Referent:
		return "referent"
	case r.Owner:
		return "owner"
	}
	return "neither the owner nor a referent"
}

// MayEscalate: only a referent hands a demand to the desk.
func MayEscalate(r Role) error {
	if r.Referent {
		return nil
	}
	return forbidden("only a referent of the structure (or of a parent) may escalate a demand; the actor is %s", r)
}

// MayChangeStatus: a referent sets any status the transitions allow; the
// owner may only close their own demand (they reopen it by commenting).
func MayChangeStatus(r Role, to Status) error {
	if r.Referent || r.Owner && to == StatusClosed {
		return nil
	}
	if r.Owner {
		return forbidden("the requester may only close their demand, not set it %s", to)
	}
	return forbidden("only a referent or the requester may change the status; the actor is %s", r)
}

// MayEdit: a referent edits the subject, description and category; the
// owner only while the demand is new and not escalated.
func MayEdit(r Role, t Ticket) error {
	if r.Referent || r.Owner && t.Status == StatusNew && !t.Escalated() {
		return nil
	}
	if r.Owner {
		return forbidden("the requester may edit their demand only while it is new and not escalated (it is %s)", t.Status)
	}
	return forbidden("only a referent or the requester may edit the demand; the actor is %s", r)
}

// MayComment: the owner and the referents.
func MayComment(r Role) error {
	if r.Owner || r.Referent {
		return nil
	}
	return forbidden("only the requester or a referent may comment; the author is %s", r)
}

func forbidden(format string, args ...any) error {
	return &Error{Code: CodeForbiddenActor, Message: fmt.Sprintf(format, args...)}
}
