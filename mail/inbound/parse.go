package inbound

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"net/textproto"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	gomail "github.com/emersion/go-message/mail"
	mtextproto "github.com/emersion/go-message/textproto"
	"github.com/microcosm-cc/bluemonday"

	"supportbridge/bridge"
)

// ErrTooLarge is returned by ParseMessage for a mail over ParseLimits.MaxBytes.
var ErrTooLarge = errors.New("mail: message too large")

// ErrMalformed is returned, wrapped, by ParseMessage for a mail that cannot
// be read at all: no header, or a MIME structure so broken that nothing of
// the content survives.
var ErrMalformed = errors.New("mail: malformed message")

// ParseLimits bound what ParseMessage reads. A zero or negative field takes
// the value of DefaultParseLimits.
type ParseLimits struct {
	MaxBytes           int64 // the raw mail
	MaxAttachmentBytes int64 // one decoded attachment; larger ones are dropped
	MaxAttachments     int   // attachments kept; the rest are dropped
	MaxParts           int   // MIME parts visited; the rest are ignored
	MaxDepth           int   // nesting of multiparts
}

// DefaultParseLimits returns limits that fit a help desk mailbox: 25 MiB
// mails, 10 MiB attachments.
func DefaultParseLimits() ParseLimits {
	return ParseLimits{
		MaxBytes:           25 << 20,
		MaxAttachmentBytes: 10 << 20,
		MaxAttachments:     50,
		MaxParts:           200,
		MaxDepth:           10,
	}
}

func (l ParseLimits) withDefaults() ParseLimits {
	d := DefaultParseLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxAttachmentBytes <= 0 {
		l.MaxAttachmentBytes = d.MaxAttachmentBytes
	}
	if l.MaxAttachments <= 0 {
		l.MaxAttachments = d.MaxAttachments
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	return l
}

// Inbound is a parsed inbound mail.
type Inbound struct {
	MessageID  string   // without <>
	InReplyTo  []string // without <>
	References []string // without <>

	From       *netmail.Address // nil when the mail has no usable From
	ReplyTo    []*netmail.Address
	To, Cc     []*netmail.Address
	ReturnPath string // the envelope sender without <>; "" for the null sender "<>" or when absent
	Sender     string // the address of the Sender header, if any

	Subject string // decoded
	Date    time.Time

	// Header gives access to every top-level header field, decoded.
	Header Header

	// Text is the best plain text body: the text/plain parts, or the HTML
	// converted to text when there are none.
	Text string
	// HTML is the HTML body sanitised for display, or "" when the mail had
	// none. It keeps the class, id and type attributes that mark quotes so
	// that ExtractReply can still cut it.
	HTML string

	Attachments []Attachment
	// Report is set for a multipart/report; report-type=delivery-status.
	Report *DeliveryReport
	// Problems lists what was odd but not fatal (unknown charset, truncated
	// part, dropped attachment…), one short line each, without mail content
	// beyond part types and file names.
	Problems []Problem
}

// Problem is something odd the parser met in a mail, which did not stop
// it.
type Problem struct {
	Kind ProblemKind
	// Text says what, in one short line for operators, without mail
	// content beyond part types and file names.
	Text string
}

func (p Problem) String() string { return p.Text }

// ProblemKind tells what a Problem cost.
type ProblemKind int

const (
	// ProblemOddity: what the mail says came through, though something
	// about it was odd (an unknown charset, an undecodable header word)
	// or left out by the limits (an attachment dropped).
	ProblemOddity ProblemKind = iota
	// ProblemDamaged: part of the content itself was lost: a part
	// truncated, a transfer encoding damaged, a multipart broken after a
	// part.
	ProblemDamaged
)

// Attachment is a file part of an inbound mail. Inline images
// referenced from the HTML with cid: URLs are attachments too, with Inline
// set and their ContentID (without <>).
type Attachment struct {
	Filename    string // safe: no path, no control characters, never empty
	ContentType string // lower-case media type, without parameters
	ContentID   string
	Inline      bool
	Content     []byte // decoded
}

// DeliveryReport holds the fields of a delivery status notification
// (RFC 3464). When it lists several recipients, Action, Status and
// Diagnostic are those of the first failed one, or of the first one.
type DeliveryReport struct {
	Action     string // lower-case: failed, delayed, delivered, relayed, expanded
	Status     string // e.g. 5.1.1
	Diagnostic string // e.g. "smtp; 550 5.1.1 <x@y>: Recipient address rejected"
	Recipients []string
	// OriginalMessageID is the Message-ID (without <>) of the mail that
	// could not be delivered, from the returned message or its headers.
	OriginalMessageID string
}

// Header is the decoded top-level header of an inbound mail, in
// order. Names are case-insensitive.
type Header struct {
	fields []headerField
}

type headerField struct {
	key   string // canonical
	value string // decoded, unfolded
}

// Get returns the first value of the named field, or "".
func (h Header) Get(name string) string {
	k := textproto.CanonicalMIMEHeaderKey(name)
	for _, f := range h.fields {
		if f.key == k {
			return f.value
		}
	}
	return ""
}

// Values returns every value of the named field, in order.
func (h Header) Values(name string) []string {
	k := textproto.CanonicalMIMEHeaderKey(name)
	var vs []string
	for _, f := range h.fields {
		if f.key == k {
			vs = append(vs, f.value)
		}
	}
	return vs
}

// Has reports whether the named field is present, even empty.
func (h Header) Has(name string) bool {
	k := textproto.CanonicalMIMEHeaderKey(name)
	for _, f := range h.fields {
		if f.key == k {
			return true
		}
	}
	return false
}

// Len returns the number of fields.
func (h Header) Len() int { return len(h.fields) }

// ParseMessage parses a raw RFC 5322 mail. It never panics and reads at
// most lim allows; what is odd but not fatal is listed in Problems. It
// returns ErrTooLarge for a mail over lim.MaxBytes and an error wrapping
// ErrMalformed for a mail that cannot be read at all.
func ParseMessage(raw []byte, lim ParseLimits) (*Inbound, error) {
	return NewMessageParser(lim).Parse(raw)
}

// MessageParser is ParseMessage with its limits and HTML policy built
// once: build it with NewMessageParser and reuse it. It is safe for
// concurrent use.
type MessageParser struct {
	lim    ParseLimits
	policy *bluemonday.Policy
}

// NewMessageParser returns a parser for lim (zero fields take the
// defaults).
func NewMessageParser(lim ParseLimits) *MessageParser {
	return &MessageParser{lim: lim.withDefaults(), policy: sanitizer()}
}

// Parse does what ParseMessage does, with the parser's limits.
func (mp *MessageParser) Parse(raw []byte) (*Inbound, error) {
	if mp == nil || mp.policy == nil {
		var lim ParseLimits
		if mp != nil {
			lim = mp.lim
		}
		mp = NewMessageParser(lim)
	}
	lim := mp.lim
	if int64(len(raw)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), lim.MaxBytes)
	}
	raw = skipMboxLine(raw)
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	th, err := readHeader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if th.Len() == 0 {
		return nil, fmt.Errorf("%w: no header", ErrMalformed)
	}

	p := &parser{lim: lim}
	in := &Inbound{}
	p.readTopHeader(in, th)

	body := p.walk(th, br, 0)
	if p.lostStructure && body.empty() && len(p.atts) == 0 && p.report == nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, p.structureErr)
	}

	in.Text = strings.TrimSpace(strings.Join(body.texts, "\n\n"))
	if len(body.htmls) > 0 {
		in.HTML = strings.TrimSpace(mp.policy.Sanitize(strings.Join(body.htmls, "\n")))
		if in.Text == "" {
			// From the sanitised HTML, so that ExtractReply can tell a
			// text made from the HTML from one the sender wrote.
			in.Text = HTMLToText(in.HTML)
		}
	}
	in.Attachments = p.atts
	in.Report = p.report
	in.Problems = p.problems
	return in, nil
}

// readHeader reads one header block. Its size needs no bound of its
// own: the whole mail is already within MaxBytes and reading is linear.
func readHeader(br *bufio.Reader) (mtextproto.Header, error) {
	return mtextproto.ReadHeader(br)
}

// skipMboxLine drops an mbox "From " separator that some exports keep.
func skipMboxLine(raw []byte) []byte {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			return raw[i+1:]
		}
	}
	return raw
}

type parser struct {
	lim      ParseLimits
	parts    int
	stopped  bool // MaxParts reached
	atts     []Attachment
	problems []Problem
	report   *DeliveryReport
	// lostStructure is set when a multipart could not be read from its
	// first part on; with nothing else read the mail is malformed.
	lostStructure bool
	structureErr  string
	dropped       int // attachments over MaxAttachments
}

func (p *parser) problem(kind ProblemKind, format string, args ...any) {
	if len(p.problems) >= 100 {
		return
	}
	p.problems = append(p.problems, Problem{Kind: kind, Text: fmt.Sprintf(format, args...)})
}

// bodyParts is the displayable text gathered from a subtree.
type bodyParts struct {
	texts []string
	htmls []string
}

func (b bodyParts) empty() bool {
	for _, t := range b.texts {
		if strings.TrimSpace(t) != "" {
			return false
		}
	}
	for _, h := range b.htmls {
		if strings.TrimSpace(h) != "" {
			return false
		}
	}
	return true
}

func (b *bodyParts) add(o bodyParts) {
	b.texts = append(b.texts, o.texts...)
	b.htmls = append(b.htmls, o.htmls...)
}

func (p *parser) readTopHeader(in *Inbound, th mtextproto.Header) {
	mh := message.Header{Header: th}
	dec := wordDecoder()
	fields := mh.Fields()
	for fields.Next() {
		v, err := dec.DecodeHeader(relabelLatin1Words(fields.Value()))
		if err != nil {
			p.problem(ProblemOddity, "header %s: undecodable encoded word", fields.Key())
			v = fields.Value()
		}
		in.Header.fields = append(in.Header.fields, headerField{key: fields.Key(), value: cleanHeader(v)})
	}

	h := gomail.Header{Header: mh}
	in.MessageID = firstOf(msgIDs(th.Get("Message-Id")))
	in.InReplyTo = msgIDs(th.Get("In-Reply-To"))
	in.References = msgIDs(strings.Join(th.Values("References"), " "))

	if froms := p.addresses(h, "From"); len(froms) > 0 {
		in.From = froms[0]
	}
	in.ReplyTo = p.addresses(h, "Reply-To")
	in.To = p.addresses(h, "To")
	in.Cc = p.addresses(h, "Cc")
	if s := p.addresses(h, "Sender"); len(s) > 0 {
		in.Sender = s[0].Address
	}
	in.ReturnPath = returnPath(th.Get("Return-Path"))

	in.Subject = in.Header.Get("Subject")
	if th.Has("Date") {
		d, err := h.Date()
		if err != nil {
			p.problem(ProblemOddity, "unparseable Date header")
		} else {
			in.Date = d
		}
	}
}

// addresses parses an address list; a list the strict parser refuses is
// searched for anything that looks like an address, because a sender with a
// sloppy client is still a sender.
func (p *parser) addresses(h gomail.Header, key string) []*netmail.Address {
	v := h.Get(key)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	list, err := h.AddressList(key)
	if err == nil {
		return list
	}
	var out []*netmail.Address
	for _, piece := range strings.Split(v, ",") {
		if a, err := gomail.ParseAddress(piece); err == nil {
			out = append(out, a)
			continue
		}
		for _, m := range addrRe().FindAllString(piece, -1) {
			out = append(out, &netmail.Address{Address: m})
		}
	}
	p.problem(ProblemOddity, "header %s: malformed address list", key)
	return out
}

func addrRe() *regexp.Regexp {
	return regexp.MustCompile(`[^\s<>()\[\],;:"']+@[^\s<>()\[\],;:"']+`)
}

func returnPath(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "<")
	v = strings.TrimSuffix(v, ">")
	return strings.TrimSpace(v)
}

// msgIDs reads a list of message ids leniently: the angle-bracketed ones
// if any, else the whitespace or comma separated words. Clients in the wild
// send ids without @, without brackets, separated by commas.
func msgIDs(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	var ids []string
	if strings.Contains(v, "<") {
		bracketed(v, '<', '>', func(seg string) bool {
			if id := strings.TrimSpace(seg[1 : len(seg)-1]); id != "" && !strings.ContainsAny(id, " \t") {
				ids = append(ids, id)
			}
			return len(ids) < 500
		})
		return ids
	}
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		if len(ids) >= 500 {
			break
		}
		if strings.Contains(w, "@") {
			ids = append(ids, w)
		}
	}
	return ids
}

func firstOf(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

// cleanHeader drops control characters a decoded word may carry: a
// subject with a CR or NUL in it must not reach a log or another header.
func cleanHeader(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || r == '\u00a0' || r == '\u202f' {
			// Non-breaking spaces too: Outlook writes "RE\u00a0:".
			return ' '
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s))
}

// walk reads one entity whose header is h and whose raw (still encoded)
// body is r, and returns the displayable text under it; files go to
// p.atts.
func (p *parser) walk(h mtextproto.Header, r io.Reader, depth int) bodyParts {
	var out bodyParts
	if p.stopped {
		return out
	}
	p.parts++
	if p.parts > p.lim.MaxParts {
		p.stopped = true
		p.problem(ProblemOddity, "more than %d MIME parts: the rest is ignored", p.lim.MaxParts)
		return out
	}
	mh := message.Header{Header: h}
	mediaType, params, err := mh.ContentType()
	if err != nil {
		// A Content-Type the mime package refuses is still mostly
		// readable: keep its bare type.
		mediaType = strings.ToLower(strings.TrimSpace(strings.SplitN(h.Get("Content-Type"), ";", 2)[0]))
		params = looseParams(h.Get("Content-Type"))
		if mediaType == "" || !strings.Contains(mediaType, "/") {
			mediaType = "text/plain"
		}
	}
	mediaType = strings.ToLower(mediaType)

	if strings.HasPrefix(mediaType, "multipart/") {
		if depth >= p.lim.MaxDepth {
			p.problem(ProblemOddity, "multipart nested deeper than %d: skipped", p.lim.MaxDepth)
			return out
		}
		return p.walkMultipart(mediaType, params, r, depth)
	}

	switch mediaType {
	case "message/rfc822", "message/global":
		p.addMessage(mh, r)
		return out
	case "message/delivery-status", "message/global-delivery-status":
		data := p.decode(mh, r, mediaType, p.lim.MaxBytes)
		p.addDeliveryStatus(data)
		return out
	case "message/disposition-notification", "message/global-disposition-notification":
		// A read receipt's machine part: Classify reads the top-level
		// Content-Type; the part itself is no file for anyone.
		_, _ = io.Copy(io.Discard, r)
		return out
	case "text/rfc822-headers", "message/global-headers":
		data := p.decode(mh, r, mediaType, p.lim.MaxBytes)
		if id := headerMessageID(data); id != "" {
			p.noteOriginalID(id)
		}
		return out
	}

	disp, dparams, _ := mh.ContentDisposition()
	disp = strings.ToLower(disp)
	filename := filename(mh, dparams, params)
	isBody := (mediaType == "text/plain" || mediaType == "text/html") &&
		disp != "attachment" && filename == ""
	if !isBody {
		p.addAttachment(mh, r, mediaType, disp, filename)
		return out
	}

	data := p.decode(mh, r, mediaType, p.lim.MaxBytes)
	text := string(data)
	if mediaType == "text/html" {
		out.htmls = append(out.htmls, text)
		return out
	}
	if strings.EqualFold(params["format"], "flowed") {
		text = unflow(text, strings.EqualFold(params["delsp"], "yes"))
	}
	out.texts = append(out.texts, cleanBody(normalizeNewlines(text)))
	return out
}

func (p *parser) walkMultipart(mediaType string, params map[string]string, r io.Reader, depth int) bodyParts {
	var out bodyParts
	boundary := params["boundary"]
	if boundary == "" {
		p.lostStructure = true
		p.structureErr = mediaType + " without boundary"
		p.problem(ProblemOddity, "%s without boundary", mediaType)
		return out
	}
	isReport := mediaType == "multipart/report" && strings.EqualFold(params["report-type"], "delivery-status")
	if isReport && p.report == nil {
		p.report = &DeliveryReport{}
	}
	mr := mtextproto.NewMultipartReader(r, boundary)
	var children []bodyParts
	n := 0
	for !p.stopped {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if n == 0 {
				p.lostStructure = true
				p.structureErr = fmt.Sprintf("%s: no part found", mediaType)
				p.problem(ProblemOddity, "%s: no part could be read", mediaType)
			} else {
				p.problem(ProblemDamaged, "%s: broken after part %d (missing or damaged boundary)", mediaType, n)
			}
			break
		}
		n++
		children = append(children, p.walk(part.Header, part, depth+1))
	}

	if mediaType == "multipart/alternative" {
		// Prefer the plain text a sender wrote over text made from HTML,
		// and the richest HTML (the last one) for display.
		for _, c := range children {
			if len(c.texts) > 0 && !(bodyParts{texts: c.texts}).empty() {
				out.texts = c.texts
				break
			}
		}
		for i := len(children) - 1; i >= 0; i-- {
			if len(children[i].htmls) > 0 {
				out.htmls = children[i].htmls
				break
			}
		}
		return out
	}
	for _, c := range children {
		out.add(c)
	}
	return out
}

// decode reads a leaf body and returns it decoded from its transfer
// encoding and, for text, converted to UTF-8. It reads at most limit
// decoded bytes and records what went wrong as problems.
func (p *parser) decode(mh message.Header, r io.Reader, mediaType string, limit int64) []byte {
	// No encoding makes the raw body more than about 3 times the decoded
	// one (quoted-printable "=XX", plus line breaks): reading 4 times the
	// limit is enough to decode past it, and an oversized attachment of a
	// 30 MB mail is not held twice in memory. The rest is skipped.
	rawCap := min(p.lim.MaxBytes, 4*(limit+1)+4096)
	rawBody, err := io.ReadAll(io.LimitReader(r, rawCap))
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	if err != nil {
		// The multipart reader says unexpected EOF for a part cut before
		// its boundary: what was read is still worth having.
		p.problem(ProblemDamaged, "%s part truncated", mediaType)
	}
	if strings.HasPrefix(mediaType, "text/") {
		mh = latin1AsWindows1252(mh)
	}
	data, err := p.decodeBytes(mh, rawBody, mediaType, limit)
	if err != nil {
		data = p.decodeLenient(mh, rawBody, mediaType, limit, err)
	}
	if strings.HasPrefix(mediaType, "text/") && !utf8.Valid(data) {
		data = p.fixText(data, mediaType, limit)
	}
	return data
}

// fixText turns text that is not valid UTF-8 into UTF-8. Text that holds
// real UTF-8 sequences is UTF-8 with a few bad bytes: those are replaced.
// Otherwise it is undeclared (or wrongly declared) 8-bit text, which in
// French mail is nearly always Windows-1252 (a superset of Latin-1 for
// printable text).
func (p *parser) fixText(data []byte, mediaType string, limit int64) []byte {
	multi := 0
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r != utf8.RuneError && size > 1 {
			multi++
		}
		i += size
	}
	if multi == 0 {
		if conv, err := readCharset("windows-1252", data, limit); err == nil {
			p.problem(ProblemOddity, "%s part is not valid in its charset: read as windows-1252", mediaType)
			return conv
		}
	}
	p.problem(ProblemOddity, "%s part has invalid UTF-8: bad bytes replaced", mediaType)
	return []byte(strings.ToValidUTF8(string(data), "\uFFFD"))
}

// decodeBytes decodes with go-message; the error says why the transfer
// encoding could not be decoded to the end.
func (p *parser) decodeBytes(mh message.Header, rawBody []byte, mediaType string, limit int64) ([]byte, error) {
	e, err := message.New(mh, bytes.NewReader(rawBody))
	if e == nil {
		if err == nil {
			err = errors.New("unreadable part")
		}
		return nil, err
	}
	if err != nil {
		switch {
		case message.IsUnknownCharset(err):
			_, params, _ := mh.ContentType()
			p.problem(ProblemOddity, "%s part: unknown charset %q", mediaType, clip(params["charset"], 40))
		case message.IsUnknownEncoding(err):
			p.problem(ProblemOddity, "%s part: unknown transfer encoding %q", mediaType, clip(mh.Get("Content-Transfer-Encoding"), 40))
		default:
			p.problem(ProblemOddity, "%s part: %v", mediaType, err)
		}
	}
	data, err := io.ReadAll(io.LimitReader(e.Body, limit+1))
	if err != nil {
		return nil, err
	}
	return data, nil
}

// decodeLenient is the fallback for damaged base64 or quoted-printable: it
// decodes what can be decoded rather than losing the part.
func (p *parser) decodeLenient(mh message.Header, rawBody []byte, mediaType string, limit int64, cause error) []byte {
	enc := strings.ToLower(strings.TrimSpace(mh.Get("Content-Transfer-Encoding")))
	var data []byte
	switch enc {
	case "base64":
		data = lenientBase64(rawBody)
		p.problem(ProblemDamaged, "%s part: damaged base64, decoded what was readable", mediaType)
	case "quoted-printable":
		data = lenientQP(rawBody)
		if errors.Is(cause, bufio.ErrBufferFull) {
			// A line longer than the standard reader's buffer (HTML
			// written on one line, against RFC 2045's 76): nothing is
			// lost, lenientQP decodes it whole.
			p.problem(ProblemOddity, "%s part: quoted-printable lines over 4 KB, decoded leniently", mediaType)
		} else {
			p.problem(ProblemDamaged, "%s part: damaged quoted-printable, decoded leniently", mediaType)
		}
	default:
		data = rawBody
		p.problem(ProblemOddity, "%s part: undecodable, kept raw", mediaType)
	}
	if int64(len(data)) > limit+1 {
		data = data[:limit+1]
	}
	if strings.HasPrefix(mediaType, "text/") {
		_, params, _ := mh.ContentType()
		if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
			if isLatin1(cs) {
				cs = "windows-1252"
			}
			if conv, err := readCharset(cs, data, limit); err == nil {
				data = conv
			}
		}
	}
	return data
}

// isLatin1 reports whether a charset label names ISO-8859-1. Mail
// labelled so is, in practice, Windows-1252 (Outlook's curly quotes and
// euro sign live in 0x80–0x9F, control characters in true Latin-1), as
// browsers have long assumed.
func isLatin1(cs string) bool {
	switch strings.ToLower(strings.TrimSpace(cs)) {
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "cp819", "ibm819", "iso-ir-100", "csisolatin1":
		return true
	}
	return false
}

// latin1AsWindows1252 returns the header with a Latin-1 charset
// relabelled Windows-1252, a copy so the caller's header is untouched.
func latin1AsWindows1252(mh message.Header) message.Header {
	mt, params, err := mh.ContentType()
	if err != nil || !isLatin1(params["charset"]) {
		return mh
	}
	c := mh.Copy()
	params["charset"] = "windows-1252"
	c.SetContentType(mt, params)
	return c
}

// relabelLatin1Words relabels the ISO-8859-1 encoded words of a header
// value Windows-1252: mime.WordDecoder decodes ISO-8859-1 itself, without
// asking its CharsetReader.
func relabelLatin1Words(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	var b strings.Builder
	rest := v
	for {
		i := strings.Index(rest, "=?")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(rest[:i+2])
		rest = rest[i+2:]
		j := strings.IndexByte(rest, '?')
		if j < 0 {
			b.WriteString(rest)
			return b.String()
		}
		cs := rest[:j]
		if isLatin1(cs) {
			cs = "windows-1252"
		}
		b.WriteString(cs)
		rest = rest[j:]
	}
}

// wordDecoder decodes RFC 2047 words with every charset go-message
// knows, Latin-1 read as Windows-1252.
func wordDecoder() *mime.WordDecoder {
	return &mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
		if isLatin1(cs) {
			cs = "windows-1252"
		}
		switch strings.ToLower(cs) {
		case "utf-8", "us-ascii":
			return r, nil
		}
		return charset.Reader(cs, r)
	}}
}

func readCharset(cs string, data []byte, limit int64) ([]byte, error) {
	r, err := charset.Reader(cs, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, limit+1))
}

func lenientBase64(raw []byte) []byte {
	clean := make([]byte, 0, len(raw))
	for _, c := range raw {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
			clean = append(clean, c)
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}

// lenientQP decodes a quoted-printable body that mime/quotedprintable
// (go-message's decoder) refused. That reader already takes lower-case hex,
// "=" without two hex digits as a literal "=", spaces before a soft line
// break, LF line ends, 8-bit bytes and a final "="; but it stops at the
// first of these, which this keeps going past (TestLenientQP):
//   - a line longer than its 4096-byte buffer (HTML on one line): decoded;
//   - an unescaped control byte (NUL, FF, DEL, ISO-2022-JP's ESC): kept;
//   - "=" before a bare CR (old Mac line ends): a soft line break;
//   - a literal "=" just before a soft line break ("==\n"): kept.
//
// It cannot be the stdlib reader with fixes around it: it runs only on what
// that reader refused. Unlike it, it keeps the spaces at the end of a line.
func lenientQP(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for {
		i := bytes.IndexByte(raw, '=')
		if i < 0 {
			return append(out, raw...)
		}
		out, raw = append(out, raw[:i]...), raw[i+1:]
		// A soft line break: "=", spaces, then CRLF, LF, CR or the end.
		if rest := bytes.TrimLeft(raw, " \t"); len(rest) == 0 || rest[0] == '\r' || rest[0] == '\n' {
			raw = rest[min(len(rest), 1):]
			if bytes.HasPrefix(rest, []byte("\r\n")) {
				raw = rest[2:]
			}
			continue
		}
		var b [1]byte
		if len(raw) >= 2 {
			if _, err := hex.Decode(b[:], raw[:2]); err == nil {
				out, raw = append(out, b[0]), raw[2:]
				continue
			}
		}
		out = append(out, '=')
	}
}

// addAttachment keeps a file part, within the limits.
func (p *parser) addAttachment(mh message.Header, r io.Reader, mediaType, disp, filename string) {
	index := len(p.atts) + p.dropped + 1
	mediaType = safeMediaType(mediaType)
	name := safeFilename(filename, mediaType, index)
	if len(p.atts) >= p.lim.MaxAttachments {
		p.dropped++
		_, _ = io.Copy(io.Discard, io.LimitReader(r, p.lim.MaxBytes))
		p.problem(ProblemOddity, "attachment %q dropped: more than %d attachments", name, p.lim.MaxAttachments)
		return
	}
	data := p.decode(mh, r, mediaType, p.lim.MaxAttachmentBytes)
	if int64(len(data)) > p.lim.MaxAttachmentBytes {
		p.dropped++
		p.problem(ProblemOddity, "attachment %q dropped: larger than %d bytes", name, p.lim.MaxAttachmentBytes)
		return
	}
	cid := contentID(mh.Get("Content-Id"))
	p.atts = append(p.atts, Attachment{
		Filename:    name,
		ContentType: mediaType,
		ContentID:   cid,
		Inline:      disp == "inline" || (disp == "" && cid != ""),
		Content:     data,
	})
}

// addMessage keeps an attached mail (a forward, or the returned mail of a
// bounce) whole as message.eml, and notes its Message-ID for a report.
func (p *parser) addMessage(mh message.Header, r io.Reader) {
	data := p.decode(mh, r, "message/rfc822", p.lim.MaxBytes)
	if id := headerMessageID(data); id != "" {
		p.noteOriginalID(id)
	}
	disp, dparams, _ := mh.ContentDisposition()
	_, params, _ := mh.ContentType()
	name := filename(mh, dparams, params)
	if name == "" {
		name = "message.eml"
	}
	index := len(p.atts) + p.dropped + 1
	name = safeFilename(name, "message/rfc822", index)
	if len(p.atts) >= p.lim.MaxAttachments {
		p.dropped++
		p.problem(ProblemOddity, "attachment %q dropped: more than %d attachments", name, p.lim.MaxAttachments)
		return
	}
	if int64(len(data)) > p.lim.MaxAttachmentBytes {
		p.dropped++
		p.problem(ProblemOddity, "attachment %q dropped: larger than %d bytes", name, p.lim.MaxAttachmentBytes)
		return
	}
	p.atts = append(p.atts, Attachment{
		Filename:    name,
		ContentType: "message/rfc822",
		ContentID:   contentID(mh.Get("Content-Id")),
		Inline:      strings.EqualFold(disp, "inline"),
		Content:     data,
	})
}

func (p *parser) noteOriginalID(id string) {
	if p.report != nil && p.report.OriginalMessageID == "" {
		p.report.OriginalMessageID = id
	}
}

// addDeliveryStatus reads the fields of a message/delivery-status body:
// one per-message block, then one block per recipient.
func (p *parser) addDeliveryStatus(data []byte) {
	if p.report == nil {
		// A delivery-status part outside a delivery report: still a DSN.
		p.report = &DeliveryReport{}
	}
	rep := p.report
	br := bufio.NewReader(bytes.NewReader(normalizeNewlinesBytes(data)))
	first := true
	firstFailed := false
	for block := 0; block < 1000; block++ {
		// Blank lines between blocks.
		for {
			b, err := br.Peek(1)
			if err != nil || (b[0] != '\n' && b[0] != '\r') {
				break
			}
			_, _ = br.ReadByte()
		}
		if _, err := br.Peek(1); err != nil {
			break
		}
		h, err := mtextproto.ReadHeader(br)
		if err != nil && h.Len() == 0 {
			p.problem(ProblemOddity, "message/delivery-status: unreadable block")
			break
		}
		if fr := h.Get("Final-Recipient"); fr != "" {
			rep.Recipients = append(rep.Recipients, dsnAddress(fr))
		} else if or := h.Get("Original-Recipient"); or != "" {
			rep.Recipients = append(rep.Recipients, dsnAddress(or))
		}
		action := strings.ToLower(strings.TrimSpace(h.Get("Action")))
		if action == "" {
			if err != nil {
				break
			}
			continue
		}
		// Keep the first recipient's fields, replaced by the first failed
		// one: a failure is what matters.
		if first || (action == "failed" && !firstFailed) {
			rep.Action = action
			rep.Status = strings.TrimSpace(h.Get("Status"))
			rep.Diagnostic = cleanHeader(h.Get("Diagnostic-Code"))
			first = false
			firstFailed = action == "failed"
		}
		if err != nil {
			break
		}
	}
}

// dsnAddress turns "rfc822; user@example.org" into "user@example.org".
func dsnAddress(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[i+1:]
	}
	return strings.Trim(strings.TrimSpace(v), "<>")
}

// headerMessageID reads the Message-ID from the header of an attached
// mail or of a text/rfc822-headers part.
func headerMessageID(data []byte) string {
	br := bufio.NewReader(bytes.NewReader(data))
	h, _ := mtextproto.ReadHeader(br)
	return firstOf(msgIDs(h.Get("Message-Id")))
}

func contentID(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "<")
	v = strings.TrimSuffix(v, ">")
	return cleanHeader(v)
}

// filename finds a part's file name: Content-Disposition's filename
// (RFC 2231 continuations and charsets, RFC 2047 words as Outlook sends
// them), else Content-Type's name.
func filename(mh message.Header, dparams, ctparams map[string]string) string {
	if dparams != nil && dparams["filename"] != "" {
		return dparams["filename"]
	}
	if ctparams != nil && ctparams["name"] != "" {
		return ctparams["name"]
	}
	ah := gomail.AttachmentHeader{Header: mh}
	if name, err := ah.Filename(); err == nil && name != "" {
		return name
	}
	// A disposition the mime package refuses (an unquoted space, a stray
	// semicolon) may still hold a usable name.
	for _, v := range []string{mh.Get("Content-Disposition"), mh.Get("Content-Type")} {
		if m := looseParams(v); m["filename"] != "" {
			return m["filename"]
		} else if m["name"] != "" {
			return m["name"]
		}
	}
	return ""
}

// looseParams reads key=value parameters without the strictness of
// mime.ParseMediaType.
func looseParams(v string) map[string]string {
	out := map[string]string{}
	pieces := strings.Split(v, ";")
	for _, piece := range pieces[1:] {
		k, val, ok := strings.Cut(piece, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		if k == "" || val == "" {
			continue
		}
		if strings.HasSuffix(k, "*") {
			// RFC 2231 extended value: charset'lang'percent-encoded.
			k = strings.TrimSuffix(k, "*")
			if parts := strings.SplitN(val, "'", 3); len(parts) == 3 {
				if dec, err := percentDecode(parts[2]); err == nil {
					val = dec
					if cs := strings.ToLower(parts[0]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
						if conv, err := readCharset(cs, []byte(val), int64(len(val))*4); err == nil {
							val = string(conv)
						}
					}
				}
			}
		}
		if dec, err := wordDecoder().DecodeHeader(relabelLatin1Words(val)); err == nil {
			val = dec
		}
		if _, seen := out[k]; !seen {
			out[k] = val
		}
	}
	return out
}

func percentDecode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte{s[i+1], s[i+2]} {
				v <<= 4
				switch {
				case c >= '0' && c <= '9':
					v |= c - '0'
				case c >= 'a' && c <= 'f':
					v |= c - 'a' + 10
				case c >= 'A' && c <= 'F':
					v |= c - 'A' + 10
				default:
					ok = false
				}
			}
			if ok {
				b.WriteByte(v)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// safeFilename is bridge.SafeFilename; an empty result becomes
// attachment-<index>.<extension of the type>.
func safeFilename(name, mediaType string, index int) string {
	if name = bridge.SafeFilename(name); name == "" {
		name = fmt.Sprintf("attachment-%d%s", index, extension(mediaType))
	}
	return name
}

// safeMediaType keeps a media type only in the form mime can read back
// (type/subtype of token characters): the lenient header reading above may
// hand over any text, and the type reaches the ENT and the read API.
func safeMediaType(mediaType string) string {
	mt, _, err := mime.ParseMediaType(mediaType)
	if err != nil || mt != mediaType || strings.Count(mt, "/") != 1 {
		return "application/octet-stream"
	}
	return mt
}

// extension gives a stable extension for a media type: the system
// mime.types differ from one machine to another, so common types come
// from a table of our own.
func extension(mediaType string) string {
	switch mediaType {
	case "image/png":
		return ".png"
	case "image/jpeg", "image/jpg", "image/pjpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	case "image/heic":
		return ".heic"
	case "application/pdf":
		return ".pdf"
	case "text/plain":
		return ".txt"
	case "text/html":
		return ".html"
	case "text/calendar":
		return ".ics"
	case "text/csv":
		return ".csv"
	case "message/rfc822", "message/global":
		return ".eml"
	case "application/zip":
		return ".zip"
	case "application/msword":
		return ".doc"
	case "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
		return ".docx"
	case "application/vnd.ms-excel":
		return ".xls"
	case "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
		return ".xlsx"
	case "application/vnd.oasis.opendocument.text":
		return ".odt"
	}
	exts, err := mime.ExtensionsByType(mediaType)
	if err == nil && len(exts) > 0 {
		sort.Strings(exts)
		return exts[0]
	}
	return ".bin"
}

// unflow undoes format=flowed (RFC 3676): a line ending in a space
// continues on the next one; a leading space was added for stuffing.
func unflow(s string, delsp bool) string {
	lines := strings.Split(normalizeNewlines(s), "\n")
	var b strings.Builder
	var cur strings.Builder
	curQuote := -1
	flush := func() {
		if curQuote < 0 {
			return
		}
		line := cur.String()
		if line != "-- " {
			// A soft break left dangling by a change of quote depth.
			line = strings.TrimRight(line, " ")
		}
		b.WriteString(strings.Repeat(">", curQuote))
		if curQuote > 0 && line != "" {
			b.WriteByte(' ')
		}
		b.WriteString(line)
		b.WriteByte('\n')
		cur.Reset()
		curQuote = -1
	}
	for _, line := range lines {
		q := 0
		for q < len(line) && line[q] == '>' {
			q++
		}
		content := line[q:]
		if strings.HasPrefix(content, " ") {
			content = content[1:] // space-stuffing or the space after ">"
		}
		if curQuote >= 0 && q != curQuote {
			flush()
		}
		curQuote = q
		flowed := strings.HasSuffix(content, " ") && content != "-- "
		if flowed && delsp {
			content = content[:len(content)-1]
		}
		cur.WriteString(content)
		if !flowed {
			flush()
		}
	}
	flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// cleanBody drops the control characters that have no place in text
// shown to people (NUL, escape sequences…), keeping line ends and tabs.
func cleanBody(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return r
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

func normalizeNewlinesBytes(b []byte) []byte {
	if bytes.IndexByte(b, '\r') < 0 {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))
}

func clip(s string, n int) string {
	s = cleanHeader(s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// sanitizer is the policy for HTML shown in the ENT: bluemonday's UGC
// policy, plus the class, id and type attributes that mark quoted text
// (harmless, and ExtractReply needs them) and cid: image sources.
func sanitizer() *bluemonday.Policy {
	pol := bluemonday.UGCPolicy()
	pol.AllowAttrs("class").Matching(bluemonday.SpaceSeparatedTokens).OnElements("div", "blockquote", "span", "p", "hr", "table")
	pol.AllowAttrs("type").Matching(regexp.MustCompile(`(?i)^cite$`)).OnElements("blockquote")
	pol.AllowURLSchemes("mailto", "http", "https", "cid")
	return pol
}
