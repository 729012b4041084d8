package inbound

import (
	"regexp"
	"strings"
)

// DeskProduct is what the bridge knows of a help-desk product's mail: how
// to recognise it, where its ticket number stands, how its notifications
// are laid out (the "reply above this line" separator, a preamble, the
// history below the new text), and which of its mails are automatic
// acknowledgements or solved/closed notices.
//
// Its patterns match a trimmed line (separators, preamble, history) or a
// subject, accents and case as the product writes them; (?i) where the
// product's wording varies.
type DeskProduct struct {
	// Name is the value of desk.product.
	Name string

	// Headers whose presence marks the product's mail (any one of them).
	Headers []string
	// HeaderValues: a header whose value matches marks it too (X-Mailer,
	// Message-ID shapes…).
	HeaderValues []HeaderPattern
	// SubjectTag matches the product's ticket tag in a subject; its first
	// capture group is the number.
	SubjectTag *regexp.Regexp
	// ReferenceHeaders hold the number in a header of their own; the
	// pattern's first capture group is the number.
	ReferenceHeaders []HeaderPattern
	// BodyReferences find the number in a line of the text when the
	// subject does not carry it ("Votre demande (23871) a été mise à
	// jour"); first capture group.
	BodyReferences []*regexp.Regexp
	// BodyMarkers are lines only the product writes; with the subject tag
	// they recognise it when it sets no header of its own.
	BodyMarkers []*regexp.Regexp

	// Separators are "reply above this line" lines, in every language the
	// product speaks (the HTML forms become the same text).
	Separators []*regexp.Regexp
	// Preamble lines open a notification: dropped.
	Preamble []*regexp.Regexp
	// History lines start the history below the new text: the new text
	// ends there.
	History []*regexp.Regexp
	// Layout, when set, reads a notification whose layout patterns cannot
	// describe (a ticket dump with the newest follow-up somewhere inside):
	// given the normalised text, it returns the agent's new text and true,
	// or false to let the generic reading (separators, preamble, history,
	// quotes) run. An empty text with true means the mail carries none.
	Layout func(text string) (string, bool)

	// Acknowledgement subjects and body lines: the automatic answer that
	// opens the product's ticket; it teaches the number, posts nothing.
	AckSubjects, AckBody []*regexp.Regexp
	// Solved and Closed subjects and body lines: the product's notices
	// that its ticket was solved or closed.
	SolvedSubjects, SolvedBody []*regexp.Regexp
	ClosedSubjects, ClosedBody []*regexp.Regexp

	// MarksAllAutomatic says the product puts Auto-Submitted or
	// Precedence: bulk on every mail, an agent's reply included: those
	// headers then say nothing of the mail.
	MarksAllAutomatic bool
}

// HeaderPattern is a header and a pattern of its value.
type HeaderPattern struct {
	Name    string
	Pattern *regexp.Regexp
}

// DeskMailKind is what a product's mail is.
type DeskMailKind int

// The kinds of a product's mail; the zero kind is "not told apart": the
// generic classification stands.
const (
	DeskMailUnknown DeskMailKind = iota
	DeskMailAck                  // acknowledgement: number learned, nothing posted
	DeskMailSolved               // notice: its ticket was solved
	DeskMailClosed               // notice: its ticket was closed
)

func (p *DeskProduct) isSeparator(line string) bool {
	return p != nil && len(line) <= 300 && anyMatch(p.Separators, line)
}

func (p *DeskProduct) isPreamble(line string) bool {
	return p != nil && len(line) <= 500 && anyMatch(p.Preamble, line)
}

// isHistory reports whether line starts the product's history. Outside a
// notification (the mail did not open with the separator) only the
// product's own history markers count, never a bare rule line.
func (p *DeskProduct) isHistory(line string, notification bool) bool {
	if p == nil || len(line) > 500 {
		return false
	}
	for _, re := range p.History {
		if !notification && strings.Trim(line, "-_=*# ") == "" {
			continue
		}
		if re.MatchString(line) {
			return true
		}
	}
	return false
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// Reference returns the product's ticket number in the mail: from its
// headers first, then the subject tag.
func (p *DeskProduct) Reference(in *Inbound) string {
	if p == nil || in == nil {
		return ""
	}
	for _, hp := range p.ReferenceHeaders {
		for _, v := range in.Header.Values(hp.Name) {
			if m := hp.Pattern.FindStringSubmatch(v); len(m) > 1 && m[1] != "" {
				return m[1]
			}
		}
	}
	if p.SubjectTag != nil {
		if m := p.SubjectTag.FindStringSubmatch(in.Subject); len(m) > 1 && m[1] != "" {
			return m[1]
		}
	}
	if len(p.BodyReferences) == 0 {
		return ""
	}
	n := 0
	for _, line := range strings.Split(normalizeReply(in.Text), "\n") {
		l := strings.TrimSpace(line)
		if l == "" || len(l) > 500 {
			continue
		}
		if n++; n > 200 {
			break
		}
		for _, re := range p.BodyReferences {
			if m := re.FindStringSubmatch(l); len(m) > 1 && m[1] != "" {
				return m[1]
			}
		}
	}
	return ""
}

// Tag returns the product's ticket tag as the mail's subject writes it, or
// "".
func (p *DeskProduct) Tag(in *Inbound) string {
	if p == nil || in == nil || p.SubjectTag == nil {
		return ""
	}
	return p.SubjectTag.FindString(in.Subject)
}

// Kind tells the product's acknowledgements and notices apart from the
// rest of its mail, by its subject, then by the first lines of its text.
func (p *DeskProduct) Kind(in *Inbound) DeskMailKind {
	if p == nil || in == nil {
		return DeskMailUnknown
	}
	subject := stripReplyPrefixes(in.Subject)
	switch {
	case anyMatch(p.ClosedSubjects, subject):
		return DeskMailClosed
	case anyMatch(p.SolvedSubjects, subject):
		return DeskMailSolved
	case anyMatch(p.AckSubjects, subject):
		return DeskMailAck
	}
	if len(p.ClosedBody)+len(p.SolvedBody)+len(p.AckBody) == 0 {
		return DeskMailUnknown
	}
	n := 0
	for _, line := range strings.Split(normalizeReply(in.Text), "\n") {
		l := strings.TrimSpace(line)
		if l == "" || len(l) > 500 {
			continue
		}
		if isQuoteLine(l) {
			// The history quotes older notices: only the new text counts.
			break
		}
		if n++; n > 40 {
			break
		}
		switch {
		case anyMatch(p.ClosedBody, l):
			return DeskMailClosed
		case anyMatch(p.SolvedBody, l):
			return DeskMailSolved
		case anyMatch(p.AckBody, l):
			return DeskMailAck
		}
	}
	return DeskMailUnknown
}

// stripReplyPrefixes removes "Re:", "RE :", "TR:", "Fwd:"… from the front
// of a subject.
func stripReplyPrefixes(subject string) string {
	s := strings.TrimSpace(subject)
	for n := 0; n < 5; n++ {
		word, rest, ok := strings.Cut(s, ":")
		if !ok || len(word) > 6 {
			break
		}
		switch strings.ToLower(strings.TrimSpace(word)) {
		case "re", "aw", "sv", "tr", "fw", "fwd", "wg", "rv", "réf", "ref":
			s = strings.TrimSpace(rest)
			continue
		}
		break
	}
	return s
}

// markedBy reports whether the mail carries one of the product's own
// headers (strong evidence), or its subject tag with one of its body
// markers or separators (weaker, but no other product writes both).
func (p *DeskProduct) markedBy(in *Inbound) (strong, weak bool) {
	for _, h := range p.Headers {
		if in.Header.Has(h) {
			return true, true
		}
	}
	for _, hp := range p.HeaderValues {
		for _, v := range in.Header.Values(hp.Name) {
			if hp.Pattern.MatchString(v) {
				return true, true
			}
		}
	}
	if p.SubjectTag == nil || !p.SubjectTag.MatchString(in.Subject) {
		return false, false
	}
	n := 0
	for _, line := range strings.Split(normalizeReply(in.Text), "\n") {
		l := strings.TrimSpace(line)
		if l == "" || len(l) > 500 {
			continue
		}
		if n++; n > 400 {
			break
		}
		if anyMatch(p.BodyMarkers, l) || p.isSeparator(l) {
			return false, true
		}
	}
	return false, false
}

// templateOnlyLayout is the Layout of a product whose automatic mails are
// its template from end to end: when one of the template's lines (any of
// sets) opens the mail (within its first maxLines lines, before any quote)
// the mail carries no agent's words; any other mail is left to the generic
// reading.
func templateOnlyLayout(maxLines int, sets ...[]*regexp.Regexp) func(string) (string, bool) {
	return func(text string) (string, bool) {
		n := 0
		for _, line := range strings.Split(text, "\n") {
			l := strings.TrimSpace(line)
			if l == "" || len(l) > 500 {
				continue
			}
			if isQuoteLine(l) {
				break
			}
			if n++; n > maxLines {
				break
			}
			for _, set := range sets {
				if anyMatch(set, l) {
					return "", true
				}
			}
		}
		return "", false
	}
}

// DeskProducts is the catalogue: every product the bridge knows, by name.
type DeskProducts struct {
	list []*DeskProduct
}

// Product returns the product called name, or nil.
func (c *DeskProducts) Product(name string) *DeskProduct {
	for _, p := range c.list {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Names lists the products' names.
func (c *DeskProducts) Names() []string {
	out := make([]string, 0, len(c.list))
	for _, p := range c.list {
		out = append(out, p.Name)
	}
	return out
}

// Detect recognises the product that wrote a mail: one whose own headers
// it carries, else one whose subject tag and body markers it shows; nil
// for a mail of no known product (a person's mail client).
func (c *DeskProducts) Detect(in *Inbound) *DeskProduct {
	if c == nil || in == nil {
		return nil
	}
	var weak *DeskProduct
	for _, p := range c.list {
		strong, w := p.markedBy(in)
		if strong {
			return p
		}
		if w && weak == nil {
			weak = p
		}
	}
	return weak
}

// DeskProductNames are the values of desk.product: auto, each product of
// the catalogue, generic.
func DeskProductNames() []string {
	return append(append([]string{"auto"}, KnownDeskProducts().Names()...), "generic")
}

// DeskProductFor returns, for a desk.product value, how the inbound side
// finds a mail's product: the catalogue for auto, one product for its
// name, nothing for generic (or an unknown name: generic behaviour).
func DeskProductFor(name string) (detect *DeskProducts, fixed *DeskProduct) {
	cat := KnownDeskProducts()
	switch name {
	case "", "auto":
		return cat, nil
	case "generic":
		return nil, nil
	}
	return nil, cat.Product(name)
}

// mustRe compiles a pattern of the catalogue.
func mustRe(pattern string) *regexp.Regexp { return regexp.MustCompile(pattern) }

// res compiles several patterns of the catalogue.
func res(patterns ...string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		out[i] = mustRe(p)
	}
	return out
}
